"""Why a search hit matched: its text around the first match, the matches in `<mark>`.

The index matches normalized text (NFKC, Traditional → Simplified, lowercase), so the
matches are found in normalized text and marked in the original: searching 腾讯 marks
騰訊. Offsets stay honest because the text is normalized character for character (see
`normalized_with_offsets`), never in a way that moves what follows. Everything but the
`<mark>` tags is HTML-escaped, whatever the text holds.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from markupsafe import escape

from postsdb.search import CJK_RUN, WORD, _converter, normalize

SNIPPET_CHARS = 100
MAX_PIECES = 32
CHUNK = 1500  # the text is searched a piece at a time: the first match is usually early
FIRST_CHUNK = 200  # ... often within the first lines
SPACES = re.compile(r"\s+")


def query_pieces(query: str) -> list[str]:
    """What to mark for a query: its CJK runs and words, normalized, longest first."""
    return list(cached_pieces(query or ""))


@functools.lru_cache(maxsize=256)
def cached_pieces(query: str) -> tuple[str, ...]:
    """A page of hits asks for the pieces of one query twice a row: normalize it once."""
    pieces = set()
    for term in (query or "").split():
        pieces.update(m.group(0) for m in re.finditer(f"{CJK_RUN.pattern}|{WORD.pattern}", normalize(term)))
    return tuple(sorted(pieces, key=lambda p: (-len(p), p))[:MAX_PIECES])


@functools.lru_cache(maxsize=1)
def one_to_one() -> dict[int, str]:
    """NFKC and lowercase for every letter, digit or ideograph whose normal form is one
    other character: full-width ＶＰＮ is vpn, 﨑 is 崎. A table keeps every offset where it
    was; the few characters that become several ("…" is "...") stay as they are.

    Punctuation is left alone: what a query marks is only ever letters, digits and
    ideographs (`query_pieces`), which "，" is not, folded to "," or not. Chinese text has
    full-width punctuation every few characters, and each run folded costs a call."""
    table = {}
    for code in range(0x41, 0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        folded = unicodedata.normalize("NFKC", char).lower()
        if len(folded) == 1 and folded != char and (WORD.fullmatch(char) or WORD.fullmatch(folded)):
            table[code] = folded
    return table


@functools.lru_cache(maxsize=1)
def foldable() -> re.Pattern:
    """Runs of the characters `one_to_one` changes: only those go through `str.translate`,
    which costs about 60 ns a character whatever it does (twice the time, on Chinese text)."""
    return re.compile("[" + re.escape("".join(map(chr, sorted(one_to_one())))) + "]+")


def fold(text: str) -> str:
    """`text.translate(one_to_one())`, in half the time."""
    table = one_to_one()
    return foldable().sub(lambda match: match.group(0).translate(table), text)


def normalized_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """The text as the index normalizes it, character for character, and where each
    character came from (None: the same place, the common case)."""
    folded = fold(text)
    converted = _converter().convert(folded)
    if len(converted) == len(folded):
        return converted, None
    chunks = [_converter().convert(char) for char in folded]  # a conversion that changed the length
    return "".join(chunks), [i for i, chunk in enumerate(chunks) for _ in chunk]


def pieces_pattern(pieces: list[str]) -> re.Pattern:
    return compiled_pieces(tuple(pieces))


@functools.lru_cache(maxsize=256)
def compiled_pieces(pieces: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(map(re.escape, pieces)))


def first_match(text: str, pieces: list[str]) -> int | None:
    """Where in `text` the first match of a piece starts, normalizing only as far as needed:
    a short piece first (the first match is usually early), then longer ones."""
    if not pieces:
        return None
    pattern, overlap = pieces_pattern(pieces), 2 * max(map(len, pieces))
    start, size = 0, FIRST_CHUNK
    while start < len(text):
        normal, offsets = normalized_with_offsets(text[start : start + size + overlap])
        match = pattern.search(normal)
        if match:
            return start + (offsets[match.start()] if offsets is not None else match.start())
        start, size = start + size, min(size * 4, CHUNK)
    return None


def match_spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """(start, end) in `text` of every match of a piece, in order, not overlapping."""
    if not pieces or not text:
        return []
    normal, offsets = normalized_with_offsets(text)
    pattern = pieces_pattern(pieces)
    spans = []
    for match in pattern.finditer(normal):
        start, end = match.start(), match.end()
        if offsets is not None:
            start, end = offsets[start], offsets[end - 1] + 1
        if not spans or start >= spans[-1][1]:
            spans.append((start, end))
    return spans


def marked(text: str, spans: list[tuple[int, int]], start: int = 0, end: int | None = None) -> str:
    end = len(text) if end is None else end
    parts, position = [], start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        span_start, span_end = max(span_start, start), min(span_end, end)
        parts += [str(escape(text[position:span_start])), "<mark>", str(escape(text[span_start:span_end])), "</mark>"]
        position = span_end
    parts.append(str(escape(text[position:end])))
    return "".join(parts)


def highlight(text: str | None, query: str | None) -> str:
    """The whole text, escaped, with every match of the query marked."""
    text = text or ""
    return marked(text, match_spans(text, query_pieces(query or "")))


def snippet(text: str | None, query: str | None, width: int = SNIPPET_CHARS, unmatched: str | None = None) -> str:
    """About `width` characters around the first match, escaped, matches marked. When
    nothing matches (a match in the title only): `unmatched`, escaped and shortened to
    `width`, if given, else the text's start. White space is one space, as in
    `" ".join(text.split())`; only the part around the match is read."""
    text = text or ""
    pieces = query_pieces(query or "")
    first = first_match(text, pieces)
    if first is None and unmatched is not None:
        return str(escape(shortened(unmatched, width)))
    first = first or 0  # never inside white space, which no piece holds
    margin = 2 * width
    lo, hi = max(0, first - margin), min(len(text), first + margin)
    before = collapsed(text[lo:first], lo == 0, False)
    window_text = before + collapsed(text[first:hi], not before, hi == len(text))
    if (lo > 0 and len(before) < width) or (hi < len(text) and len(window_text) - len(before) < width):
        return whole_text_snippet(" ".join(text.split()), pieces, width)  # white space ran long
    more_before = lo > 0 and not text[:lo].isspace()
    more_after = hi < len(text) and not text[hi:].isspace()
    start = max(0, len(before) - width // 3)
    if not more_after:
        start = max(0, min(start, len(window_text) - width))
    end = min(len(window_text), start + width)
    window = window_text[start:end]
    body = marked(window, match_spans(window, pieces))
    return ("…" if start > 0 or more_before else "") + body + ("…" if end < len(window_text) or more_after else "")


def collapsed(text: str, at_start: bool, at_end: bool) -> str:
    """A part of the text as `" ".join(whole.split())` has it: runs of white space are one
    space, and none is left at the whole text's start or end."""
    text = SPACES.sub(" ", text)
    if at_start:
        text = text.lstrip(" ")
    return text.rstrip(" ") if at_end else text


def whole_text_snippet(text: str, pieces: list[str], width: int) -> str:
    first = first_match(text, pieces) or 0
    start = max(0, min(first - width // 3, len(text) - width))
    end = min(len(text), start + width)
    window = text[start:end]
    body = marked(window, match_spans(window, pieces))
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def shortened(text: str, width: int) -> str:
    """At most `width` characters and a "…" when cut. A text already ending in "…" was cut
    before (a stored lead): it keeps its mark when the rest fits in `width`, and gets only
    one when cut again."""
    whole = text.rstrip("…")
    return text if len(whole) <= width else whole[:width].rstrip() + "…"
