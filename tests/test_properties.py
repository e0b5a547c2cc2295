"""Property tests: whatever the front matter and HTML, the parser gives an article or
raises `PostError`, never anything else; and what it keeps is sanitized."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import active_content
from postsdb.body import extract_body
from postsdb.parse import Post, PostError, parse_bytes

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# --- front matter -----------------------------------------------------------------

# Any text but NUL (a NUL anywhere makes the whole file "binary": see the bytes test).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
ZONES = st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5))])
# (st.timezones() as well: PyYAML writes some of those as `!!timestamp`s it cannot read back.)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    TEXT,
    st.dates(),
    st.datetimes(timezones=ZONES),
    st.datetimes(timezones=st.timezones()),
    st.sampled_from(["", "-", "~", "NaN", "yes", "2021-02-30", "0000-01-01", "9999-12-31T23:59:59-01:00"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
URLS = st.one_of(
    st.sampled_from(
        [
            "https://example.com/a",
            "http://http://example.com/b?utm_source=x&id=1",
            "https://例子.测试/路径/%25E6%2596%2587",
            "HTTPS://Example.COM:443/x#frag",
            "http://[::1",
            "https://example.com:99999/",
            "javascript:alert(1)",
            "//example.com/no-scheme",
        ]
    ),
    st.builds(lambda path: "https://example.com/" + path, TEXT),
    TEXT,
)
DATES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    TEXT,
)
# The keys that decide whether a post is an article are usually plausible (so that many
# examples are articles), sometimes anything.
PLAUSIBLE_TITLES = st.sampled_from(["标题", "A title", "[括号] title", " 标题\u200b "])
PLAUSIBLE_DATES = st.one_of(st.datetimes(timezones=ZONES), st.dates(), st.datetimes().map(lambda d: d.isoformat() + "Z"))
PLAUSIBLE_URLS = st.sampled_from(["https://example.com/a", "http://例子.测试/路径?utm_source=x&id=1", "https://example.com/%25E6%2596%2587"])
PLAUSIBLE = {
    "title": PLAUSIBLE_TITLES,
    "date": PLAUSIBLE_DATES,
    "from": PLAUSIBLE_URLS,
    "author": TEXT,
    "tags": st.lists(TEXT, max_size=5) | TEXT,
    "categories": st.lists(TEXT, max_size=3),
    "layout": st.just("post"),
}
ANYTHING = {"title": TEXT | VALUES, "date": DATES | VALUES, "from": URLS | VALUES}


@st.composite
def front_matters(draw) -> str:
    """YAML text: a mapping with some of the usual keys (each plausible or anything), or
    arbitrary text that may not be YAML at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.text(max_size=200).map(lambda t: t.replace("\x00", "")))
    meta = {}
    for key, plausible in PLAUSIBLE.items():
        choice = draw(st.integers(0, 5))
        if choice < 4:
            meta[key] = draw(plausible)
        elif choice == 4:
            meta[key] = draw(ANYTHING.get(key, VALUES))
    meta.update(draw(st.dictionaries(TEXT, VALUES, max_size=3)))
    try:
        return yaml.safe_dump(meta, allow_unicode=True)
    except (yaml.YAMLError, ValueError, TypeError):
        return "title: [unrepresentable\n"


# --- HTML ------------------------------------------------------------------------

TAGS = [
    "div", "p", "span", "a", "img", "b", "i", "pre", "table", "tr", "td", "ul", "li", "h1", "title",
    "script", "style", "iframe", "form", "input", "button", "svg", "math", "noscript", "template",
    "link", "meta", "base", "object", "embed", "video", "source", "article", "main", "nav", "figure",
    "figcaption", "select", "textarea", "html", "head", "body",
]  # fmt: skip
ATTRIBUTES = ["href", "src", "data-src", "srcset", "onerror", "onclick", "style", "width", "alt", "title", "class", "rel", "target", "xlink:href"]
ATTRIBUTE_VALUES = st.one_of(
    st.sampled_from(
        [
            "javascript:alert(1)",
            " JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "&#106;avascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "//cdn.example.com/a.png",
            "/root/relative.png",
            "https://example.com/ok.png",
            "http://http://example.com/x",
            "http://[::1",
            "alert(1)",
            "100px",
            "#anchor",
        ]
    ),
    TEXT,
)
RAW_TEXT = st.one_of(
    TEXT,
    st.sampled_from(["<", ">", "&", "<!--", "-->", "</", "<!", "<?", "]]>", "{{ x }}", "\n", "  \n  ", "中文", "&#0;", "&#x110000;"]),
)


def element(children: st.SearchStrategy) -> st.SearchStrategy:
    attribute = st.tuples(st.sampled_from(ATTRIBUTES), ATTRIBUTE_VALUES).map(
        lambda pair: f' {pair[0]}="{pair[1].replace(chr(34), "&quot;")}"'
    )
    return st.builds(
        lambda tag, attrs, inner, closed: f"<{tag}{''.join(attrs)}>{''.join(inner)}" + (f"</{tag}>" if closed else ""),
        st.sampled_from(TAGS),
        st.lists(attribute, max_size=3),
        st.lists(children, max_size=4),
        st.booleans(),
    )


HTML = st.recursive(RAW_TEXT, element, max_leaves=30).map(str)
BODIES = st.lists(HTML, max_size=6).map("".join)


@st.composite
def posts(draw) -> bytes:
    """A whole post file: front matter, then maybe an epoch comment and a link heading,
    then HTML; sometimes with a BOM, CRLF line ends or a broken delimiter."""
    parts = ["---\n", draw(front_matters()), "---\n"]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["<!--1630923780000-->\n", "<!--NaN-->\n", "<!--99999999999999-->\n"])))
    if draw(st.booleans()):
        parts.append(f"[{draw(TEXT)}]({draw(URLS)})\n------\n\n")
    # A page with nothing to read is refused, so most get a sentence before and after the
    # random HTML (which may swallow what follows it, or hold the `<article>` extracted).
    text = "<p>正文</p>" if draw(st.integers(0, 3)) else ""
    parts += [text, draw(BODIES), text]
    text = "".join(parts)
    shape = draw(st.sampled_from(["plain"] * 5 + ["bom", "crlf", "no-close", "no-open"]))
    if shape == "bom":
        text = "\ufeff" + text
    elif shape == "crlf":
        text = text.replace("\n", "\r\n")
    elif shape == "no-close":
        text = text.replace("---\n", "--\n")
    elif shape == "no-open":
        text = text[4:]
    return text.encode("utf-8", "surrogatepass")


def parse_or_error(data: bytes) -> Post | None:
    try:
        return parse_bytes(data, "post.md")
    except PostError as error:
        assert str(error), "a PostError must say why"
        return None


def assert_sound(post: Post) -> None:
    assert post.url.startswith(("http://", "https://"))
    assert ISO_UTC.fullmatch(post.published), post.published
    assert post.title and post.title == post.title.strip()
    assert 0 < post.id < 2**53
    assert all(isinstance(tag, str) and tag for tag in post.tags)
    assert active_content(post.body.html) == [], post.body.html


# --- the properties ----------------------------------------------------------------


def test_any_post_is_an_article_or_a_post_error():
    outcomes = Counter()

    @SETTINGS
    @given(posts())
    def check(data):
        post = parse_or_error(data)
        outcomes["article" if post is not None else "PostError"] += 1
        if post is not None:
            assert_sound(post)

    check()
    # Otherwise "every example raised PostError" would pass without testing articles. (About
    # one in nine is an article: random HTML often holds an empty `<article>` to extract.)
    assert outcomes["article"] >= 5, outcomes


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_are_an_article_or_a_post_error(data):
    parse_or_error(b"---\ntitle: t\ndate: 2021-01-01\nfrom: https://example.com/x\n---\n" + data)
    parse_or_error(data)


@SETTINGS
@given(BODIES, st.sampled_from(["https://example.com/a/b", "http://例子.测试/"]), st.sampled_from([None, True, False]))
def test_any_html_is_sanitized(source, base_url, scraped):
    body = extract_body(source, base_url, scraped=scraped)
    assert active_content(body.html) == [], body.html
    for image in re.findall(r"<img\b[^>]*>", body.html):
        assert 'referrerpolicy="no-referrer"' in image and 'loading="lazy"' in image, image
    for anchor in re.findall(r"<a\b[^>]*>", body.html):
        assert 'rel="noopener noreferrer nofollow"' in anchor, anchor
    assert all(image.src.startswith(("http://", "https://")) for image in body.images)
    assert all(link.href.startswith(("http://", "https://")) for link in body.links)
