"""Simplified or Traditional: which one a text is written in, and the same text in the other.

`language(text)` says `zh-Hans`, `zh-Hant` or `en` for a text (a title and its first lines
are enough): English when Latin letters outweigh Chinese characters, else whichever script
OpenCC would change less, character by character. `convert_html(html, script)` converts the text of an HTML fragment
with OpenCC (`t2s` for Simplified, `s2t` for Traditional) and leaves its markup, URLs and
attributes exactly as they were.
"""

from __future__ import annotations

import re
from functools import lru_cache

import opencc
from selectolax.lexbor import LexborHTMLParser

HANS, HANT, EN = "zh-Hans", "zh-Hant", "en"
# `?script=` values: the OpenCC configuration that converts into that script, and its tag.
SCRIPTS = {"hans": ("t2s", HANS), "hant": ("s2t", HANT)}
SCRIPT_OF_LANGUAGE = {HANS: "hans", HANT: "hant"}
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
# An English word is about five letters where a Chinese one is one or two characters.
LETTERS_PER_CHARACTER = 3
# Between text nodes converted in one OpenCC call: a private-use character OpenCC leaves be,
# and which no phrase spans.
SEPARATOR = "\ue000"


@lru_cache(maxsize=None)
def converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


@lru_cache(maxsize=None)
def changed_characters(config: str) -> re.Pattern:
    """A character class of every CJK character that OpenCC's `config` changes on its own:
    for `t2s` the Traditional forms, for `s2t` the Simplified ones. Made once (about 40 ms);
    then telling a text's script is two regular-expression scans, not two conversions."""
    characters = [chr(code) for code in range(0x4E00, 0xA000)]
    converted = converter(config).convert("\n".join(characters)).split("\n")
    return re.compile("[" + "".join(a for a, b in zip(characters, converted) if a != b) + "]")


def language(text: str) -> str:
    """`zh-Hans`, `zh-Hant` or `en`: the language and script `text` is written in."""
    han = len(HAN.findall(text))
    if not han or len(LATIN.findall(text)) > han * LETTERS_PER_CHARACTER:
        return EN
    traditional = len(changed_characters("t2s").findall(text))
    simplified = len(changed_characters("s2t").findall(text))
    return HANT if traditional > simplified else HANS


def convert_text(text: str, script: str) -> str:
    """`text` in `script` ("hans" or "hant"); a KeyError names any other."""
    return converter(SCRIPTS[script][0]).convert(text)


def convert_html(html: str, script: str) -> str:
    """The fragment `html` with only its text converted into `script`: every tag, attribute
    and URL is kept. The text nodes go through OpenCC in one call."""
    if not html:
        return ""
    tree = LexborHTMLParser(html)
    nodes = [node for node in tree.body.traverse(include_text=True) if node.tag == "-text" and HAN.search(node.text_content or "")]
    if not nodes:
        return html
    texts = convert_text(SEPARATOR.join(node.text_content for node in nodes), script).split(SEPARATOR)
    if len(texts) != len(nodes):  # never seen; keep the original rather than misplace text
        return html
    for node, text in zip(nodes, texts):
        node.replace_with(text)
    return tree.body.inner_html
