"""What a page says about itself: its authors, categories and tags.

Read from the web's conventions, in layers, before the page chrome is dropped:
microformats (`rel="author"`, `rel="tag"`, `rel="category tag"`), RDFa and microdata
(`sioc:has_creator`/`foaf:name`, `itemprop="author"`), `<meta>` names (`author`,
`article:section`, `article:tag`) and JSON-LD (`author`, `articleSection`, `keywords`).
The knowledge is data: a new convention is a new line in a list below. Comments and
related-article blocks are pruned first, so a commenter is never an author and another
article's tags are never this one's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# (selector, where the value is): "text" of the element, or an attribute's name.
AUTHOR_SOURCES = (
    ('a[rel~="author"]', "text"),
    ('[rel~="sioc:has_creator"] [property~="foaf:name"]', "text"),
    ('[itemprop~="author"] [itemprop~="name"]', "text"),
    ('meta[name="author"]', "content"),
)
CATEGORY_SOURCES = (
    ('a[rel~="category"]', "text"),
    ('meta[property="article:section"]', "content"),
)
TAG_SOURCES = (
    ('a[rel~="tag"]:not([rel~="category"])', "text"),
    ('meta[property="article:tag"]', "content"),
)
# Parts of a page that speak of other things: comments, related articles, widgets, menus.
DISCARD = (
    ".comment, .comments, #comments, .comment-list, .comment-respond, .jp-relatedposts, "
    ".related, .related-posts, .view-articles-related, .widget, aside, nav"
)
JSON_LD = 'script[type="application/ld+json"]'
MAX_NAME = 120  # a longer "tag" is a sentence, not a topic
MAX_NAMES = 60  # per kind and page: a real page has under 20
INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\x00-\x1f\x7f-\x9f]")


@dataclass
class Named:
    name: str
    href: str | None = None


@dataclass
class PageMeta:
    authors: list[str] = field(default_factory=list)
    categories: list[Named] = field(default_factory=list)
    tags: list[Named] = field(default_factory=list)


def read_page_meta(tree) -> PageMeta:
    """Every author, category and tag the page declares, in page order, without repeats."""
    discarded = {node.mem_id for node in tree.css(DISCARD)}
    ld = json_ld_objects(tree)
    return PageMeta(
        authors=[n.name for n in unique(harvest(tree, AUTHOR_SOURCES, discarded) + ld_values(ld, "author"))],
        categories=unique(harvest(tree, CATEGORY_SOURCES, discarded) + ld_values(ld, "articleSection")),
        tags=unique(harvest(tree, TAG_SOURCES, discarded) + ld_values(ld, "keywords")),
    )


def harvest(tree, sources, discarded: set[int]) -> list[Named]:
    found = []
    for selector, where in sources:
        for node in tree.css(selector):
            if discarded and inside(node, discarded):
                continue
            raw = node.text(deep=True) if where == "text" else node.attributes.get(where)
            name = clean_name(raw)
            if name:
                found.append(Named(name, node.attributes.get("href")))
    return found


def inside(node, discarded: set[int]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.mem_id in discarded:
            return True
        parent = parent.parent
    return False


def clean_name(raw: str | None) -> str | None:
    """Entities are decoded by the parser; white space is collapsed; URLs are not names."""
    name = " ".join(INVISIBLE.sub(" ", raw or "").split())
    if not name or len(name) > MAX_NAME or re.match(r"https?://", name, re.I):
        return None
    return name


def unique(items: list, name=lambda item: item.name, limit: int | None = MAX_NAMES) -> list:
    """First spelling wins; "China" and "china" are one topic. At most `limit` items."""
    seen, kept = set(), []
    for item in items:
        key = name(item).casefold()
        if key not in seen and (limit is None or len(kept) < limit):
            seen.add(key)
            kept.append(item)
    return kept


# --- JSON-LD ------------------------------------------------------------------


def json_ld_objects(tree) -> list[dict]:
    objects = []
    for script in tree.css(JSON_LD):
        try:
            data = json.loads(script.text(deep=True) or "null")
        except (ValueError, RecursionError):
            continue
        stack = [data]
        while stack and len(objects) < 50:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item[:50]))
            elif isinstance(item, dict):
                objects.append(item)
                if isinstance(item.get("@graph"), list):
                    stack.extend(reversed(item["@graph"][:50]))
    return objects


def ld_values(objects: list[dict], key: str) -> list[Named]:
    """Names under `key`: a string (keywords: comma-separated), a list, or {"name": …}."""
    found = []
    for obj in objects:
        value = obj.get(key)
        values = value if isinstance(value, list) else [value]
        for item in values[:MAX_NAMES]:
            if isinstance(item, dict):
                item = item.get("name")
            if not isinstance(item, str):
                continue
            parts = item.split(",") if key == "keywords" else [item]
            found.extend(Named(n) for n in map(clean_name, parts) if n)
    return found
