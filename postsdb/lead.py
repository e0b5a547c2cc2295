"""An article's lead: the start of its text, as a list of articles shows it.

Many pages open on a photo: its credit ("Greg Baker—AFP/Getty Images", "Photo by … on
Unsplash") and its caption come before the first sentence. A list line that shows them
says nothing about the article, so the lead skips them and starts at the text. The body
keeps them: they belong to the photo there.

Captions are found in the markup, before the sanitizer drops its classes (`CAPTIONS`), and,
where no markup marks them, by the words of a credit (`CREDITS`). Both are data: a new
convention is a new entry. The lead is computed once, at build time (`articles.lead`).
"""

from __future__ import annotations

import re

LEAD_CHARS = 200
# Elements that hold a photo's caption or credit: HTML's own, WordPress's, Drupal's.
CAPTIONS = ", ".join(
    (
        "figcaption, .wp-caption-text, .wp-element-caption",
        ".photo-caption, .photo-credit, .image-caption, .image-credit, .caption, .credit",
    )
)
# A line that is a credit whatever its markup. Only short lines: a paragraph is text.
CREDITS = tuple(
    re.compile(pattern, re.I)
    for pattern in (
        r"^photo(graph)?s?\s*(by\b|:|：|credit)",
        r"\bon unsplash\b",
        r"^\(?(getty images|afp|reuters|ap photo|associated press|unsplash)\)?$",
        r"[—–/]\s*(afp|getty images|reuters|ap|associated press|pool|bloomberg|xinhua)\b[^\s]*$",
        r"^(摄|攝|图|圖|图片|圖片|照片|图源|圖源)\s*(来源|來源|提供)?\s*[：:|｜/]",
        r"^(图片|圖片|照片)(来源|來源)",
    )
)
CREDIT_MAX_CHARS = 120
BARE_URL = re.compile(r"^https?://\S+$")  # an embedded player, kept in the body as a link
INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")


def caption_texts(root) -> list[str]:
    """The text of every caption or credit element under `root`, white space collapsed."""
    texts = (" ".join(INVISIBLE.sub("", node.text(deep=True)).split()) for node in root.css(CAPTIONS))
    return [text for text in texts if text]


def is_caption(line: str, captions: list[str]) -> bool:
    """A line of the text that is (part of) a caption, reads as a credit, or is only the
    address of an embedded player."""
    bare = INVISIBLE.sub("", line).strip()
    if not bare or BARE_URL.match(bare):
        return True
    if len(bare) > 1 and any(bare in caption for caption in captions):
        return True
    return len(bare) <= CREDIT_MAX_CHARS and any(credit.search(bare) for credit in CREDITS)


def lead_text(text: str, title: str, captions: list[str], limit: int = LEAD_CHARS) -> str:
    """The first `limit` characters of `text` (one paragraph a line), captions and credits
    left out, paragraphs joined by a space; "…" when cut. A body that opens by repeating
    the title shows what follows it."""
    kept: list[str] = []
    size = 0
    for line in text.split("\n"):
        if is_caption(line, captions):
            continue
        if not kept and title and line.startswith(title):
            line = line[len(title) :].strip()
            if not line:
                continue
        kept.append(line)
        size += len(line) + 1
        if size > limit:
            break
    lead = " ".join(kept)
    return lead[:limit].rstrip() + "…" if len(lead) > limit else lead
