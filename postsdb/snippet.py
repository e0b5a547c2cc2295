"""Why a search hit matched: its text around the first match, the matches in `<mark>`.

The index matches normalized text (NFKC, Traditional → Simplified, lowercase), so the
matches are found in the normalized text and marked in the original: searching 腾讯
marks 騰訊. Offsets stay honest because the text is normalized piece by piece whenever
normalizing it whole would change its length. Everything but the `<mark>` tags is
HTML-escaped, whatever the text holds.
"""

from __future__ import annotations

import re
import unicodedata

from markupsafe import escape

from postsdb.search import CJK_RUN, WORD, _converter, normalize

SNIPPET_CHARS = 100
MAX_PIECES = 32


def query_pieces(query: str) -> list[str]:
    """What to mark for a query: its CJK runs and words, normalized, longest first."""
    pieces = set()
    for term in (query or "").split():
        pieces.update(m.group(0) for m in re.finditer(f"{CJK_RUN.pattern}|{WORD.pattern}", normalize(term)))
    return sorted(pieces, key=lambda p: (-len(p), p))[:MAX_PIECES]


def normalized_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """The normalized text and, when its length differs from the text's, where each of
    its characters came from (None: the same place)."""
    whole = normalize(text)
    if len(whole) == len(text):
        return whole, None
    chunks = [unicodedata.normalize("NFKC", char).lower() for char in text]
    converted = _converter().convert("".join(chunks))
    if len(converted) != sum(map(len, chunks)):
        converted = "".join(_converter().convert(chunk) for chunk in chunks)
    offsets = [i for i, chunk in enumerate(chunks) for _ in chunk]
    return converted, offsets if len(offsets) == len(converted) else None


def match_spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """(start, end) in `text` of every match of a piece, in order, not overlapping."""
    if not pieces or not text:
        return []
    normal, offsets = normalized_with_offsets(text)
    pattern = re.compile("|".join(map(re.escape, pieces)))
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


def snippet(text: str | None, query: str | None, width: int = SNIPPET_CHARS) -> str:
    """About `width` characters around the first match, escaped, matches marked; the
    text's start when nothing matches (a match in the title only)."""
    text = " ".join((text or "").split())
    spans = match_spans(text, query_pieces(query or ""))
    first = spans[0][0] if spans else 0
    start = max(0, min(first - width // 3, len(text) - width))
    end = min(len(text), start + width)
    return ("…" if start > 0 else "") + marked(text, spans, start, end) + ("…" if end < len(text) else "")
