"""Simplified or Traditional (postsdb/script.py): which a text is written in, and the same
HTML in the other script with every tag, attribute and URL left as it was."""

from __future__ import annotations

import sqlite3

import pytest
from selectolax.lexbor import LexborHTMLParser

from postsdb.script import EN, HANS, HANT, convert_html, convert_text, language


@pytest.mark.parametrize(
    "text, expected",
    [
        ("香港的学生在广场上发表讲话，要求政府回应", HANS),
        ("香港的學生在廣場上發表講話，要求政府回應", HANT),
        ("How Will China Shape Global Governance? U.N. Secretary-General Antonio Guterres", EN),
        ("Photo by 张三 on Unsplash: the story of a long winter in the north of the country", EN),
        ("OpenCC 与 Python：简体和繁体的转换", HANS),
        ("", EN),
    ],
)
def test_language_of_a_text(text, expected):
    assert language(text) == expected


def test_the_sample_has_each_language_where_its_sources_write_it(corpus_db):
    with sqlite3.connect(corpus_db) as conn:
        rows = conn.execute(
            "select source, title || char(10) || substr(body_text, 1, 120) from articles join article_bodies on article_id = id"
        ).fetchall()
    by_source: dict[str, set[str]] = {}
    for source, text in rows:
        by_source.setdefault(source, set()).add(language(text))
    assert by_source["Matters"] == {HANT} and by_source["Huli"] == {HANT}  # they write Traditional
    assert by_source["泡泡"] == {HANS} and by_source["Nei.st"] == {HANS}
    assert EN in by_source["中参馆"]  # ChinaFile's English pieces


BODY = (
    '<div><p>這是<a href="https://example.org/漢字?q=與" title="漢字說明">繁體鏈接</a>與圖片'
    '<img src="https://example.org/圖.png" alt="圖片說明"></p>'
    "<figure><figcaption>圖一：說明 &amp; 註釋 &lt;b&gt;</figcaption></figure><p>English stays.</p></div>"
)


def attributes(html: str) -> list[tuple[str, dict]]:
    return [(node.tag, node.attributes) for node in LexborHTMLParser(html).body.traverse() if node.tag != "-text"]


def test_converting_html_changes_text_only():
    simplified = convert_html(BODY, "hans")
    assert attributes(simplified) == attributes(BODY)  # every tag and attribute, URLs included, as it was
    tree = LexborHTMLParser(simplified)
    assert tree.css_first("a").text() == "繁体链接" and tree.css_first("a").attributes["href"] == "https://example.org/漢字?q=與"
    assert tree.css_first("img").attributes["alt"] == "圖片說明"
    assert tree.css_first("figcaption").text() == "图一：说明 & 注释 <b>"  # an escaped tag stays text
    assert tree.css_first("figcaption b") is None
    assert "English stays." in simplified


def test_converting_there_and_back():
    assert convert_text("香港的学生", "hant") == "香港的學生"
    assert convert_text("香港的學生", "hans") == "香港的学生"
    assert LexborHTMLParser(convert_html("<p>学生</p>", "hant")).css_first("p").text() == "學生"
    assert convert_html("", "hans") == ""


def test_an_unknown_script_is_refused():
    with pytest.raises(KeyError):
        convert_text("学生", "latin")
