"""Article bodies: keep the article, drop the page around it, sanitize, extract.

`extract_body(html, base_url)` is pure. The sanitized HTML is the only HTML ever stored;
images, links and plain text are all read from the kept article, never from page chrome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import nh3
from selectolax.lexbor import LexborHTMLParser

from postsdb.lead import caption_texts
from postsdb.meta import PageMeta, read_page_meta

# Where scraped pages keep the article, most specific first.
CONTENT_SELECTORS = (
    ".entry-content",
    "#article-content",
    ".field-name-body",
    ".node .content",
    ".post-content",
    ".article-content",
    "article",
    "main",
)
# Page chrome: never part of the article, whatever the site.
CHROME = ", ".join(
    (
        "script, style, link, meta, template, iframe[src*='facebook'], form, button, input, select, textarea",
        "nav, footer, aside, header, svg, object, embed",
        ".sharedaddy, .sd-sharing, .share, .shares, .social, .social-share, .jp-relatedposts",
        ".related, .view-articles-related, .navigation, .post-navigation, .nav-links, [class*='navigation__']",
        ".comment-wrapper, .comments, #comments, .comment, .comment-form, .comment-respond",
        ".entry-meta, .entry-footer, .byline, .cat-links, .tags-links, .submitted, .rdf-meta",
        ".element-invisible, .element-hidden, .field-name-field-tags, .links.inline",
        ".author-wrap, .column-wrap, .post-meta, .wp-block-buttons, .wpcnt, .jetpack-likes-widget-wrapper",
        "#zoomattribute, .zoomattribute",
    )
)
BLOCK_TAGS = frozenset(
    "p div li ul ol h1 h2 h3 h4 h5 h6 blockquote pre figure figcaption table tr hr br dl dt dd section".split()
)
ALLOWED_TAGS = frozenset(
    """a abbr b blockquote br caption cite code dd del div dl dt em figcaption figure h1 h2 h3 h4 h5
    h6 hr i img ins kbd li mark ol p pre q s small strong sub sup table tbody td tfoot th thead time
    tr u ul""".split()
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
    "time": {"datetime"},
}
# Removed with everything inside them (nh3 strips other unknown tags but keeps their text).
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "embed", "noembed", "select", "textarea", "title"})
LAZY_SRC_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-actualsrc", "data-url", "src")
CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_LETTER = re.compile(rf"(?=\w)[{CJK}]")  # an ideograph, kana or hangul: not the full-width marks ，。！
# A comment or tag left open runs to the end of the text, as in HTML; matching it there
# (`\Z`) keeps the scan linear: otherwise each `<!--` or `<` would rescan the rest.
TAG_OR_TEXT = re.compile(r"(<!--.*?(?:-->|\Z)|<[^>]*(?:>|\Z))", re.S)
# Starts only where a run of blanks starts, so a long run without a newline is read once.
WHITESPACE_WITH_NEWLINE = re.compile(r"(?<![ \t])[ \t]*\n\s*")
# For `flatten_deep_nesting`: open and close tags, and comments (which hold no tags).
TAG_TOKEN = re.compile(r"<!--.*?(?:-->|\Z)|<(/?)([A-Za-z][^\s/>]*)[^>]*?(/?)(?:>|\Z)", re.S)
# Elements that never hold others, or that the parser closes by itself: no deeper nesting.
FLAT_TAGS = frozenset(
    """area base br col embed hr img input keygen link meta param source track wbr
    p li dt dd tr td th thead tbody tfoot option optgroup rb rt rtc rp colgroup caption""".split()
)
WORDS = re.compile(rf"[^\W{CJK}]+")


@dataclass
class Image:
    src: str
    alt: str | None
    title: str | None
    caption: str | None
    width: int | None
    height: int | None
    position: int


@dataclass
class Link:
    href: str
    text: str
    domain: str
    internal: bool
    position: int


@dataclass
class Body:
    html: str
    text: str
    word_count: int
    images: list[Image] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    page_title: str = ""
    page: PageMeta = field(default_factory=PageMeta)  # what the page said about itself
    captions: list[str] = field(default_factory=list)  # its photos' captions and credits, for the lead


def extract_body(source: str, base_url: str, scraped: bool | None = None) -> Body:
    source = unwrap_noscript(collapse_layout_whitespace(source))
    tree = LexborHTMLParser(source)
    page_title = first_text(tree, "title") or first_text(tree, "h1")
    page = read_page_meta(tree)  # before the chrome, where bylines and topics live, goes
    root = content_root(tree) if (scraped if scraped is not None else looks_scraped(source)) else tree.body
    if root is None:
        return Body(html="", text="", word_count=0, page_title=page_title, page=page)
    for node in root.css(CHROME):
        node.decompose()
    images = collect_images(root, base_url)
    links = collect_links(root, base_url)
    embeds_to_links(root, base_url)
    captions = caption_texts(root)  # while the classes that mark them are still there
    clean = sanitize(root.inner_html if root.tag in ("body", "html") else root.html)
    text = html_to_text(clean)
    return Body(
        html=clean,
        text=text,
        word_count=count_words(text),
        images=images,
        links=links,
        page_title=page_title,
        page=page,
        captions=captions,
    )


def looks_scraped(source: str) -> bool:
    """RSS bodies are one `<div>` on one line; scraped pages are pretty-printed fragments."""
    return not source.lstrip().startswith("<div>")


def content_root(tree):
    for selector in CONTENT_SELECTORS:
        candidates = tree.css(selector)
        if candidates:
            return max(candidates, key=lambda node: len(node.text(deep=True, strip=True)))
    return tree.body


def first_text(tree, selector: str) -> str:
    node = tree.css_first(selector)
    return " ".join(node.text(deep=True).split()) if node is not None else ""


# --- whitespace ---------------------------------------------------------------


def collapse_layout_whitespace(source: str) -> str:
    """Remove the line breaks a pretty-printer put inside text.

    "逾\\n   <span>6000</span>\\n 家" is "逾6000家": a break next to a CJK character goes;
    any other break between words becomes one space. `<pre>` is left alone.
    """
    if "\n" not in source:
        return source
    parts = TAG_OR_TEXT.split(source)  # text at even indexes, tags and comments at odd
    before, after = visible_neighbours(parts)
    in_pre = 0
    for i in range(0, len(parts), 2):
        if i > 0:
            tag = parts[i - 1][:5].lower()
            in_pre += tag.startswith("<pre") - tag.startswith("</pre")
        if in_pre > 0 or "\n" not in parts[i]:
            continue
        parts[i] = collapse_text(parts[i], before[i], after[i])
    return "".join(parts)


def visible_neighbours(parts: list[str]) -> tuple[list[str], list[str]]:
    """For each text part, the nearest visible character in the text before and after it."""
    before, after = [""] * len(parts), [""] * len(parts)
    last = ""
    for i in range(0, len(parts), 2):
        before[i] = last
        stripped = parts[i].strip()
        last = stripped[-1] if stripped else last
    last = ""
    for i in range(len(parts) - 1 - (len(parts) - 1) % 2, -1, -2):
        after[i] = last
        stripped = parts[i].strip()
        last = stripped[0] if stripped else last
    return before, after


def break_becomes(left: str, right: str) -> str:
    return "" if not left or not right or CJK_CHAR.match(left) or CJK_CHAR.match(right) else " "


def collapse_text(text: str, before: str, after: str) -> str:
    if text.isspace() and text.lstrip(" \t")[:1] == "\n":  # the common case: one break, nothing else
        return break_becomes(before, after)

    def replace(match: re.Match) -> str:
        left = text[match.start() - 1] if match.start() > 0 else before
        right = text[match.end()] if match.end() < len(text) else after
        return break_becomes(left, right)

    return WHITESPACE_WITH_NEWLINE.sub(replace, text)


def unwrap_noscript(source: str) -> str:
    # Lazy-loading pages repeat each image inside <noscript>; unwrapped, the copies are
    # ordinary images that `collect_images` drops as duplicates. (`>?`: an unclosed tag
    # runs to the end, and the scan stays linear.)
    return re.sub(r"</?noscript\b[^>]*>?", "", source, flags=re.I)


def flatten_deep_nesting(source: str, limit: int) -> str:
    """Elements nested more than `limit` deep lose their tags and keep their text, as in
    a browser (Chromium stops nesting at 512 levels).

    HTML parsers and sanitizers take time that grows with the square of the depth, so this
    runs on the tags alone, in one linear pass, before they see the page. A close tag
    closes up to the open element of its name, as a parser would; stray ones stay.
    """
    if source.count("<") - source.count("</") <= limit:
        return source  # not enough open tags to get that deep: the common case
    stack: list[str] = []
    open_count: dict[str, int] = {}
    dropped: dict[str, int] = {}  # tags left out, by name, whose close tag must go too
    kept, position = [], 0
    for match in TAG_TOKEN.finditer(source):
        closing, name, self_closing = match.groups()
        if not name or self_closing or name.lower() in FLAT_TAGS:
            continue
        name = name.lower()
        if closing and dropped.get(name):
            dropped[name] -= 1
        elif closing:
            close_up_to(name, stack, open_count)
            continue
        elif len(stack) >= limit:
            dropped[name] = dropped.get(name, 0) + 1
        else:
            stack.append(name)
            open_count[name] = open_count.get(name, 0) + 1
            continue
        kept.append(source[position : match.start()])
        position = match.end()
    kept.append(source[position:])
    return "".join(kept)


def close_up_to(name: str, stack: list[str], open_count: dict[str, int]) -> None:
    if not open_count.get(name):
        return  # a stray close tag changes nothing
    while True:
        top = stack.pop()
        open_count[top] -= 1
        if top == name:
            return


# --- images and links ---------------------------------------------------------


def absolute_url(raw: str | None, base: str) -> str | None:
    """An absolute http(s) URL, or None for anything that is not one."""
    if not raw:
        return None
    url = "".join(raw.split()).replace("#038;", "&")  # WordPress's half-escaped `&#038;`
    url = re.sub(r"^(?:https?:/+)+(https?://)", r"\1", url, flags=re.I)
    url = re.sub(r"^ttps?://", lambda m: "h" + m.group(0), url, flags=re.I)
    if url.startswith("#") or url.lower().startswith("data:"):
        return None
    try:
        joined = urljoin(base, url)
        parts = urlsplit(joined)
        parts.port  # raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return joined


def collect_images(root, base_url: str) -> list[Image]:
    images, seen = [], set()
    for node in root.css("img"):
        src = absolute_url(image_source(node.attributes), base_url)
        key = image_key(src)
        if src is None or key in seen or is_tracking_pixel(node.attributes):
            node.decompose()
            continue
        seen.add(key)
        node.attrs["src"] = src
        node.attrs["loading"] = "lazy"
        node.attrs["referrerpolicy"] = "no-referrer"
        attrs = node.attributes
        images.append(
            Image(
                src=src,
                alt=clean_attr(attrs.get("alt")),
                title=clean_attr(attrs.get("title")),
                caption=figure_caption(node),
                width=as_int(attrs.get("width")),
                height=as_int(attrs.get("height")),
                position=len(images),
            )
        )
    return images


def is_tracking_pixel(attrs: dict) -> bool:
    """A 1×1 beacon (medium.com/_/stat?event=…) counts a view; it is not a picture."""
    width, height = as_int(attrs.get("width")), as_int(attrs.get("height"))
    return width is not None and height is not None and width <= 1 and height <= 1


def image_key(src: str | None) -> str | None:
    """Lazy-loaded copies of one image differ in scheme and query (`?resize=…`), not path."""
    if src is None:
        return None
    parts = urlsplit(src)
    return f"{parts.hostname}{parts.path}"


def image_source(attrs: dict) -> str | None:
    for name in LAZY_SRC_ATTRIBUTES:
        value = (attrs.get(name) or "").strip()
        if value and not value.lower().startswith("data:"):
            return value
    for candidate in (attrs.get("srcset") or attrs.get("data-srcset") or "").split(","):
        value = candidate.strip().split(" ")[0]
        if value and not value.lower().startswith("data:"):
            return value
    return None


def figure_caption(node) -> str | None:
    parent, depth = node.parent, 0
    while parent is not None and depth < 5:
        if parent.tag == "figure":
            caption = parent.css_first("figcaption")
            return clean_attr(caption.text(deep=True)) if caption is not None else None
        parent, depth = parent.parent, depth + 1
    return None


def collect_links(root, base_url: str) -> list[Link]:
    links = []
    home = site_of(base_url)
    for node in root.css("a"):
        href = absolute_url(node.attributes.get("href"), base_url)
        if href is None:
            if "href" in node.attributes:
                del node.attrs["href"]
            continue
        node.attrs["href"] = href
        domain = site_of(href)
        internal = domain == home or domain.endswith("." + home) or home.endswith("." + domain)
        text = " ".join(node.text(deep=True).split())
        links.append(Link(href=href, text=text, domain=domain, internal=internal, position=len(links)))
    return links


def embeds_to_links(root, base_url: str) -> None:
    """An embedded video is kept as a plain link to it: nothing third-party loads."""
    for node in root.css("iframe, video, audio"):
        src = absolute_url(image_source(node.attributes), base_url)
        if src:
            node.replace_with(LexborHTMLParser(f'<p><a href="{escape_attr(src)}">{escape_attr(src)}</a></p>').body.child)
        else:
            node.decompose()


def site_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def clean_attr(value: str | None) -> str | None:
    text = " ".join((value or "").split())
    return text or None


def escape_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def as_int(value: str | None) -> int | None:
    match = re.fullmatch(r"(\d{1,6})(?:\.\d*)?\s*(?:px)?", (value or "").strip())
    return int(match.group(1)) if match else None


# --- sanitizing and text ------------------------------------------------------


def sanitize(fragment: str) -> str:
    """The allow-list: see SECURITY.md. Anything not listed is dropped."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        # Set on every kept <img> by collect_images; only these values may pass. (nh3's
        # set_tag_attribute_values would add them in a random order, so builds would differ.)
        tag_attribute_values={"img": {"referrerpolicy": {"no-referrer"}, "loading": {"lazy"}}},
        strip_comments=True,
    ).strip()


def html_to_text(clean_html: str) -> str:
    if not clean_html:
        return ""
    tree = LexborHTMLParser(clean_html)
    for node in tree.css(",".join(sorted(BLOCK_TAGS))):
        node.insert_after("\n")
    text = tree.body.text(deep=True) if tree.body is not None else ""
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def count_words(text: str) -> int:
    """Words for alphabetic text, characters for CJK, punctuation not at all: 'Hi 大家好！' counts 4."""
    return len(CJK_LETTER.findall(text)) + len(WORDS.findall(text))
