"""Turn one Jekyll post file into a `Post`: pure functions, no database.

Every way a file can be unusable raises `PostError` with a reason a person can act on;
`parse_post` adds the file's path to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import yaml

from postsdb.body import Body, extract_body, flatten_deep_nesting
from postsdb.meta import PageMeta, unique
from postsdb.lead import lead_text
from postsdb.sites import Site, names_a_site, site_for, stands_for_a_site, strip_title_suffix

try:  # the C loader is several times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader

MAX_FRONT_MATTER = 64 * 1024
MAX_YAML_ALIASES = 50
MAX_YAML_DEPTH = 50  # the C loader recurses per level and crashes the process at ~30,000
DEEP_YAML = f"front matter is nested deeper than {MAX_YAML_DEPTH} levels"
MAX_HTML_DEPTH = 512  # as in Chromium; real posts nest under 30, parsing time grows with the square
MAX_DATE_TEXT = 64  # an ISO 8601 date is about 30 characters
MAX_FILE_BYTES = 32 * 1024 * 1024

# Zero-width characters and C0/C1 controls (but tab and newline) seen in titles.
INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f]")
EPOCH_COMMENT = re.compile(r"\A\s*<!--\s*(\d{9,14}|NaN)\s*-->[ \t]*\n?")
# `[title](url)` followed by a `------` underline: the RSS mirror's heading.
LINK_HEADING = re.compile(r"\A\s*\[(?P<title>.*)\]\((?P<url>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\)[ \t]*\n-{3,}[ \t]*\n")
TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|spm|from|isappinstalled)$", re.I)


class PostError(ValueError):
    """A file that cannot become an article; the message says why."""


# --- YAML, with its failures told in our words ---------------------------------------

YAML_TAG_PREFIX = "tag:yaml.org,2002:"


class FrontMatterLoader(SafeLoader):
    """The safe loader, saying in our words what PyYAML and Python would otherwise say in
    theirs ("could not determine a constructor for the tag …", "invalid literal for int()
    with base 10"): a tag it does not load, and a value that does not fit its type."""


def refuse_tag(loader, node):
    raise PostError(
        f"invalid YAML in front matter: the tag `{short_tag(node.tag)}` is not allowed "
        "(only plain text, numbers, dates, lists and mappings are read)"
    )


def short_tag(tag: str) -> str:
    """`!!python/name:os.system` as it was written, not as PyYAML spells it inside."""
    tag = "!!" + tag[len(YAML_TAG_PREFIX) :] if tag.startswith(YAML_TAG_PREFIX) else tag
    return one_line(tag)[:80]


def checked(construct, tag: str):
    """`construct`, failing with a PostError that names the value and what it should be."""

    def construct_or_say_why(loader, node):
        try:
            return construct(loader, node)
        except (ValueError, TypeError, OverflowError, AttributeError, LookupError) as error:
            value = repr(one_line(node.value)[:60])
            if tag != "timestamp":
                raise PostError(f"invalid value in front matter: {value} does not fit its `!!{tag}` tag") from None
            # Python's reason ("day is out of range for month") is kept: it says which part.
            detail = f" ({one_line(error)})" if isinstance(error, (ValueError, OverflowError)) else ""
            raise PostError(f"invalid value in front matter: {value} is not a real date or time{detail}") from None

    return construct_or_say_why


def register_constructors(loader: type) -> None:
    loader.add_constructor(None, refuse_tag)  # None: any tag the safe loader does not know
    for name in ("bool", "int", "float", "binary", "timestamp"):
        tag = YAML_TAG_PREFIX + name
        loader.add_constructor(tag, checked(SafeLoader.yaml_constructors[tag], name))


register_constructors(FrontMatterLoader)


@dataclass
class Post:
    path: str
    sha256: str
    url: str
    id: int
    title: str
    published: str
    author: str | None
    source: str | None
    tags: list[str]  # the topics' names, for `articles.tags`
    layout: str | None
    feed_published: str | None
    body: Body = field(repr=False)
    publication: str | None = None
    topics: list[tuple[str, str]] = field(default_factory=list)  # (kind, name): category or tag
    search_fields: tuple[str, str] | None = field(default=None, repr=False)  # set by the build
    lead: str = ""  # the start of the text, without photo credits and captions (postsdb.lead)
    relation_features: object | None = field(default=None, repr=False)  # set by the build: relations.Features


def parse_post(path: Path, rel_path: str) -> Post:
    """Parse the file at `path`; `rel_path` is how the database will name it."""
    data = path.read_bytes()
    try:
        return parse_bytes(data, rel_path)
    except PostError as error:
        raise PostError(f"{rel_path}: {error}") from None


def parse_bytes(data: bytes, rel_path: str) -> Post:
    text = decode(data)
    meta, body_source = split_front_matter(text)
    url = canonical_url(require_str(meta, "from"))
    body_source, epoch = take_epoch_comment(body_source)
    body_source, heading_title = take_link_heading(body_source)
    published = parse_date(meta.get("date"), epoch)
    body_source = flatten_deep_nesting(body_source, MAX_HTML_DEPTH)
    body = extract_body(body_source, url, scraped=False if heading_title is not None else None)
    tags = as_list(meta.get("tags"), "tags")
    categories = as_list(meta.get("categories"), "categories")
    source = (categories or tags or [urlsplit(url).hostname])[0]
    site = site_for(source, url)
    title = clean_line(as_text(meta.get("title"), "title")) or clean_line(heading_title or "") or body.page_title
    if not title:
        raise PostError("missing title (front matter `title` is empty and the body has none)")
    author = clean_line(html.unescape(as_text(meta.get("author"), "author"))) or None
    if not body.text and not body.images:
        raise PostError("not an article: no text and no image after extraction (an index, category or empty page)")
    slug = site.publication.slug(url) if site.publication else None
    topics = page_topics(body.page, site, slug) + mirror_topics(categories, tags, source)
    topics = unique(topics, name=lambda topic: topic[1], limit=None)
    title = strip_title_suffix(title, site)
    return Post(
        path=rel_path,
        sha256=hashlib.sha256(data).hexdigest(),
        url=url,
        id=article_id(url),
        title=title,
        published=published,
        author=choose_author(author, body.page.authors, site, source, body.text),
        source=source,
        tags=[name for _, name in topics],
        layout=as_text(meta.get("layout"), "layout") or None,
        feed_published=iso(epoch) if epoch else None,
        body=body,
        publication=publication_of(slug, body.page, site),
        topics=topics,
        lead=lead_text(body.text, title, body.captions),
    )


# --- what the article is: author, topics, publication ---------------------------


def choose_author(front_matter: str | None, bylines: list[str], site: Site, source: str | None, text: str) -> str | None:
    """The person (or the organisation) that signs the article: a byline in the front
    matter, else the page's bylines (several joined with ", "), else the byline the site
    writes into the text. Never a mirrored site's name: None when the page names no one."""
    if front_matter and not stands_for_a_site(front_matter, source):
        return front_matter
    named = [name for name in bylines if not stands_for_a_site(name, source)]
    if named:
        return ", ".join(named)
    found = site.text_author(text)
    return found if found and not stands_for_a_site(found, source) else None


def page_topics(page: PageMeta, site: Site, slug: str | None) -> list[tuple[str, str]]:
    """The page's own categories and tags. A republisher's category that only names the
    publication is the publication, not a topic."""
    publication_link = publication_category_path(site, slug)
    categories = [c.name for c in page.categories if not (publication_link and link_path(c.href) == publication_link)]
    return [("category", name) for name in categories] + [("tag", t.name) for t in page.tags]


def mirror_topics(categories: list[str], tags: list[str], source: str | None) -> list[tuple[str, str]]:
    """Front-matter categories and tags, less the site names the mirror writes there."""
    return [("category", c) for c in categories if not names_a_site(c, source)] + [
        ("tag", t) for t in tags if not names_a_site(t, source)
    ]


def publication_of(slug: str | None, page: PageMeta, site: Site) -> str | None:
    """Where a republished or translated piece first appeared (its URL's `slug`, see
    sites.Publication); None for an original."""
    if slug is None:
        return None
    if slug in site.publication.names:
        return site.publication.names[slug]
    category = publication_category_path(site, slug)
    named = [c.name for c in page.categories if link_path(c.href) == category]
    return named[0] if named else slug


def publication_category_path(site: Site, slug: str | None) -> str | None:
    """The path of the category page that names the publication, as `link_path` spells it."""
    rule = site.publication
    return rule.category_path.format(slug=slug).rstrip("/").lower() if slug and rule.category_path else None


def link_path(href: str | None) -> str:
    return unquote(urlsplit(href or "").path).rstrip("/").lower()


def decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise PostError(f"file is {len(data):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
    if not data.strip():
        raise PostError("file is empty")
    if b"\x00" in data:
        raise PostError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PostError(f"not UTF-8 (invalid byte at offset {error.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(text: str) -> tuple[dict, str]:
    if not text.startswith("---\n"):
        raise PostError("no front matter (file does not start with a `---` line)")
    end = re.search(r"^---[ \t]*$", text[4:], re.M)
    if end is None:
        raise PostError("front matter is not closed by a `---` line")
    raw = text[4 : 4 + end.start()]
    if len(raw) > MAX_FRONT_MATTER:
        raise PostError(f"front matter is over {MAX_FRONT_MATTER:,} characters")
    meta = load_yaml(raw)
    return meta, text[4 + end.end() :].lstrip("\n")


def load_yaml(raw: str) -> dict:
    """Safe YAML: no Python tags (SafeLoader), few aliases (no alias bombs), and shallow
    nesting (the C loader recurses once per level, and deep enough it crashes)."""
    try:
        check_yaml_shape(raw)
        meta = yaml.load(raw, Loader=FrontMatterLoader)
    except yaml.YAMLError as error:
        if nesting_depth(raw) > MAX_YAML_DEPTH:  # the parser may give up first, in its own words
            raise PostError(DEEP_YAML) from None
        raise PostError(f"invalid YAML in front matter: {yaml_problem(error, raw)}") from None
    except (ValueError, TypeError, OverflowError) as error:  # e.g. `date: 2021-02-30`
        if isinstance(error, PostError):
            raise
        raise PostError(f"invalid value in front matter: {one_line(error)}") from None
    except (AttributeError, LookupError):  # what PyYAML raises for `!!timestamp nonsense`, `!!bool maybe`
        raise PostError("invalid value in front matter: a value does not fit its `!!` tag") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise PostError(f"front matter is a {type(meta).__name__}, not a mapping of keys")
    return meta


def yaml_problem(error: yaml.YAMLError, raw: str) -> str:
    """Where in the file, in our words, then PyYAML's description of the problem; and what
    it leaves unsaid when the culprit is a tab."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is None or not problem:
        return one_line(error)
    context = getattr(error, "context", None)
    detail = one_line(f"{problem}, {context}" if context else problem)
    # The front matter starts on the file's second line, after `---`.
    where = f"line {mark.line + 2}, column {mark.column + 1}"
    lines = raw.split("\n")
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        return f"{where}: a tab: YAML indents with spaces only ({detail})"
    return f"{where}: {detail}"


def nesting_depth(raw: str) -> int:
    """How deep the YAML nests, estimated without a YAML parser: open brackets outside
    quotes (flow style), or indentation steps plus `- ` items on a line (block style)."""
    deepest = flow = 0
    indents: list[int] = []
    for line in raw.split("\n"):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        while indents and indents[-1] >= indent:
            indents.pop()
        indents.append(indent)
        dashes = len(re.match(r"(?:-[ ]+)*", stripped).group(0).replace(" ", ""))
        deepest = max(deepest, len(indents) + dashes)
        for char in re.sub(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"", "", stripped):  # quotes hold no structure
            if char in "[{":
                flow += 1
                deepest = max(deepest, flow)
            elif char in "]}":
                flow = max(0, flow - 1)
    return deepest


def check_yaml_shape(raw: str) -> None:
    # Parsing events neither expands aliases nor recurses: linear in the input, and it
    # stops at the first alias or level too many.
    depth = aliases = 0
    for event in yaml.parse(raw, Loader=SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise PostError(DEEP_YAML)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise PostError(f"front matter uses more than {MAX_YAML_ALIASES} YAML aliases")


def require_str(meta: dict, key: str) -> str:
    value = as_text(meta.get(key), key).strip()
    if not value:
        raise PostError(f"missing `{key}` in front matter")
    return value


def as_text(value, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise PostError(f"`{key}` should be text, got a {type(value).__name__}: {preview(value)}")
    return str(value)


def as_list(value, key: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.split()  # Jekyll allows `tags: a b c`
    if not isinstance(value, list):
        value = [value]
    items = []
    for item in value:
        if isinstance(item, (dict, list)):
            raise PostError(f"`{key}` holds a {type(item).__name__}, expected plain names")
        name = clean_line(str(item)) if item is not None else ""
        if name and name not in items:
            items.append(name)
    return items


def clean_line(text: str) -> str:
    return " ".join(INVISIBLE.sub("", text).split())


def one_line(value) -> str:
    return " ".join(str(value).split())


_preview = reprlib.Repr()
_preview.maxlevel, _preview.maxlist, _preview.maxdict, _preview.maxstring, _preview.maxother = 3, 4, 4, 60, 60


def preview(value) -> str:
    """A short look at any YAML value. Never `str()` one whole: a few aliases can make a
    list of millions of strings (or a list that contains itself)."""
    return one_line(_preview.repr(value))[:80]


# --- dates ------------------------------------------------------------------


def take_epoch_comment(body: str) -> tuple[str, dt.datetime | None]:
    match = EPOCH_COMMENT.match(body)
    if not match:
        return body, None
    rest = body[match.end() :]
    if match.group(1) == "NaN":
        return rest, None
    try:
        return rest, dt.datetime.fromtimestamp(int(match.group(1)) / 1000, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return rest, None


def take_link_heading(body: str) -> tuple[str, str | None]:
    """Drop the RSS mirror's `[title](url)` + `------` heading; return its title."""
    head = body[:4096]
    match = LINK_HEADING.match(head)
    if not match:
        return body, None
    return body[match.end() :], match.group("title").strip()


def parse_date(value, epoch: dt.datetime | None) -> str:
    """The front matter date wins; the feed's epoch comment is the fallback."""
    if value is None or value == "":
        if epoch is None:
            raise PostError("missing `date` in front matter (and no <!--epoch--> comment)")
        return iso(epoch)
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = parse_date_text(value.strip())
    else:
        raise PostError(f"`date` is not a date: {preview(value)}")
    if moment.tzinfo is None:  # a bare date or a naive time means UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    try:
        return iso(moment.astimezone(dt.timezone.utc))
    except (OverflowError, ValueError):
        raise PostError(f"`date` is out of range: {value}") from None


def parse_date_text(text: str) -> dt.datetime:
    if len(text) > MAX_DATE_TEXT:  # also keeps the regular expression below fast
        raise PostError(f"`date` is not an ISO 8601 date: {text[:80]!r}")
    candidate = re.sub(r"\s+([+-]\d\d:?\d\d|Z)$", r"\1", text).replace(" ", "T", 1)
    try:
        return dt.datetime.fromisoformat(candidate)
    except ValueError:
        raise PostError(f"`date` is not an ISO 8601 date: {text[:80]!r}") from None


def iso(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.timezone.utc)
    if moment.year < 1 or moment.year > 9999:
        raise PostError("`date` is out of range")
    # Not strftime("%Y"): it writes the year 999 as "999", not "0999".
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


# --- URLs -------------------------------------------------------------------


def canonical_url(raw: str) -> str:
    """One spelling per article: see README, "Canonical URLs"."""
    text = clean_line(raw)
    text = re.sub(r"^(https?://)+(https?://)", r"\2", text, flags=re.I)
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as error:
        raise PostError(f"`from` is not a URL: {text[:120]!r} ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host or " " in host:
        raise PostError(f"`from` is not an http(s) URL: {text[:120]!r}")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    path = normalize_escapes(parts.path or "/")
    raw_query = undo_double_encoding(parts.query)
    query = [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True) if not is_tracking(k, host)]
    return urlunsplit((scheme, netloc, path, urlencode(query, quote_via=quote), ""))


def is_tracking(key: str, host: str) -> bool:
    if TRACKING_PARAMS.match(key):
        return True
    return key == "source" and (host == "medium.com" or host.endswith(".medium.com"))


def normalize_escapes(path: str) -> str:
    """Undo double percent-encoding, then spell every escape the same way. An escaped
    `/` stays escaped: `a%2Fb` and `a/b` are different paths."""
    path = undo_double_encoding(path)
    segments = re.split(r"%2[Ff]", path)
    decoded = [unquote(segment, errors="replace") for segment in segments]
    if any("\ufffd" in d and "\ufffd" not in s for d, s in zip(decoded, segments)):
        return path  # escapes that are not UTF-8: leave them as they are
    return "%2F".join(quote(d, safe="/:@!$&'()*+,;=-._~") for d in decoded)


def undo_double_encoding(text: str) -> str:
    for _ in range(3):  # %25E6 → %E6, for each layer of encoding
        text, layers = re.subn(r"%25([0-9A-Fa-f]{2})", r"%\1", text)
        if not layers:
            break
    return text


def article_id(url: str) -> int:
    """A stable id that fits in 53 bits, so JavaScript clients read it exactly."""
    digest = hashlib.sha256(url.encode("utf-8")).digest()
    return int.from_bytes(digest[:7], "big") >> 3 or 1
