"""Safe bodies, checked in a real browser: every article of the hostile suite (tests/hostile.py,
with its attack posts, `write_attack_posts`; built once per session, conftest.py) and a
sample of the real posts in data/, rendered by the real `build_db.py serve` on 127.0.0.1 in
headless Chromium.

For each page: no script runs (no canary global in any frame, no dialog, no popup, the page
stays where it was loaded), nothing but images is fetched from another host (every request
is recorded; the browser may only reach 127.0.0.1, so nothing actually leaves the machine),
third-party images go without a Referer, and the rendered body carries
`referrerpolicy="no-referrer"` and `loading="lazy"` on every image and
`rel="noopener noreferrer nofollow"` on every link. The stored bodies are checked too, with
no browser at all.
"""

from __future__ import annotations

import re
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selectolax.lexbor import LexborHTMLParser

from conftest import local_context
from hostile import ARTICLE, EVIL
from postsdb.parse import article_id
from postsdb.serve import running_server

LOCAL = "127.0.0.1"
CORPUS_SAMPLE = 20

# --- what stored HTML may hold --------------------------------------------------------

FORBIDDEN_TAGS = frozenset(
    "script style link iframe frame frameset form input button textarea select object embed applet "
    "svg math meta base template noscript portal video audio source picture".split()
)
FORBIDDEN_TEXT = ("<script", "<iframe", "<style", "<link", "<form", "<object", "<embed", "<svg", "<base", "<meta")


def stored_body_problems(db: Path) -> list[str]:
    """Every body_html, read as a browser reads it: forbidden elements, `on…` attributes,
    URLs with a scheme other than http(s)/mailto, and the raw markers of active content."""
    problems = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("select article_id, body_html from article_bodies").fetchall()
    finally:
        conn.close()
    for article, html in rows:
        html = html or ""
        lower = html.lower()
        problems += [f"{article}: {marker}" for marker in FORBIDDEN_TEXT if marker in lower]
        for marker in ("javascript:", "vbscript:", "data:text/html"):
            for match in re.finditer(re.escape(marker), lower):
                # Only in text (escaped) is it harmless: never inside a tag.
                if lower.rfind("<", 0, match.start()) > lower.rfind(">", 0, match.start()):
                    problems.append(f"{article}: {marker} inside a tag")
        tree = LexborHTMLParser(f"<body>{html}</body>")
        for node in tree.root.traverse() if tree.root is not None else []:
            if node.tag in FORBIDDEN_TAGS:
                problems.append(f"{article}: <{node.tag}>")
            for name, value in (node.attributes or {}).items():
                if name.lower().startswith("on"):
                    problems.append(f"{article}: <{node.tag} {name}=…>")
                elif name in ("href", "src", "srcset", "action", "formaction", "poster", "background", "xlink:href"):
                    if not re.match(r"(https?:|mailto:)", "".join((value or "").split()), re.I):
                        problems.append(f"{article}: <{node.tag} {name}={value!r}>")
                elif name == "style":
                    problems.append(f"{article}: <{node.tag} style>")
    return problems


# --- the browser ----------------------------------------------------------------------


@dataclass
class Visit:
    url: str
    status: int | None = None
    requests: list[dict] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    final_url: str = ""
    frames: int = 0
    dom: dict = field(default_factory=dict)

    def third_party(self, *types: str) -> list[str]:
        return [
            f"{r['type']} {r['url']}"
            for r in self.requests
            if urlsplit(r["url"]).hostname != LOCAL and urlsplit(r["url"]).scheme in ("http", "https", "ws", "wss")
            and (not types or r["type"] in types)
        ]

    def script_problems(self) -> list[str]:
        found = [f"canary {c!r}" for c in self.canaries]
        found += [f"dialog {d!r}" for d in self.dialogs] + [f"popup {p}" for p in self.popups]
        if self.final_url != self.url:
            found.append(f"navigated to {self.final_url}")
        if self.frames != 1:
            found.append(f"{self.frames} frames")
        found += [f"{kind}: {item}" for kind in ("handlers", "active", "bad_hrefs", "foreign_sheets", "foreign_scripts") for item in self.dom.get(kind, [])]
        if self.dom.get("base_uri") != self.url:
            found.append(f"base URI {self.dom.get('base_uri')}")
        return found

    def request_problems(self) -> list[str]:
        """Nothing but images from another host; those without a Referer."""
        found = [f"third-party {r}" for r in self.third_party() if not r.startswith("image ")]
        found += [
            f"Referer {r['referer']!r} sent with {r['url']}"
            for r in self.requests
            if r["type"] == "image" and urlsplit(r["url"]).hostname != LOCAL and r["referer"]
        ]
        return found

    def leak_problems(self) -> list[str]:
        return [f"{kind}: {item}" for kind in ("images_without_policy", "links_without_rel") for item in self.dom.get(kind, [])]


# Run in the page once it has loaded: poke every element of the body the way a reader
# might (links with an href excepted: following one is not running script), then read
# the DOM. `container` is the element that holds the rendered body.
POKE_JS = """
container => {
  const elements = Array.from(document.querySelectorAll(`${container} *`)).slice(0, 3000);
  for (const el of elements) {
    for (const type of ['mouseover', 'mouseenter', 'mousemove', 'mousedown', 'mouseup', 'pointerover', 'focus', 'focusin', 'animationstart', 'load', 'error', 'toggle'])
      el.dispatchEvent(new Event(type, {bubbles: true}));
    if (typeof el.click === 'function' && !el.closest('a[href], area[href]')) el.click();
  }
  window.scrollTo(0, document.body.scrollHeight);
  return elements.length;
}
"""
DOM_JS = """
container => {
  const local = location.origin;
  const roots = Array.from(document.querySelectorAll(container));
  const inBody = sel => roots.flatMap(root => Array.from(root.querySelectorAll(sel)));
  const describe = el => el.outerHTML.slice(0, 160);
  const handlers = [];  // every on… attribute in the document (XPath: 25x faster than a loop)
  const onAttributes = document.evaluate(
    "//@*[starts-with(translate(name(), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), 'on')]",
    document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
  for (let k = 0; k < onAttributes.snapshotLength; k++) {
    const attr = onAttributes.snapshotItem(k);
    handlers.push(`<${attr.ownerElement.tagName.toLowerCase()} ${attr.name}>`);
  }
  const active = inBody('script, style, link, meta, base, iframe, frame, object, embed, form, input, button, textarea, select, svg, math, template, video, audio, source, picture')
    .map(describe)
    .concat(Array.from(document.querySelectorAll('iframe, frame, object, embed, base, meta[http-equiv], portal')).map(describe));
  const badHrefs = Array.from(document.querySelectorAll('a[href], area[href]'))
    .filter(a => !['http:', 'https:', 'mailto:'].includes(a.protocol)).map(describe);
  const foreignSheets = Array.from(document.styleSheets).map(s => s.href).filter(h => h && !h.startsWith(local));
  const foreignScripts = Array.from(document.scripts).map(s => s.src).filter(s => s && !s.startsWith(local));
  const images = inBody('img');
  return {
    handlers, active, bad_hrefs: badHrefs, foreign_sheets: foreignSheets, foreign_scripts: foreignScripts,
    base_uri: document.baseURI,
    images: images.length,
    images_without_policy: images.filter(i => i.getAttribute('referrerpolicy') !== 'no-referrer' || i.getAttribute('loading') !== 'lazy').map(describe),
    links: inBody('a[href]').length,
    links_without_rel: inBody('a[href]').filter(a => a.getAttribute('rel') !== 'noopener noreferrer nofollow').map(describe),
    text_length: roots.reduce((sum, root) => sum + root.textContent.trim().length, 0),
  };
}
"""
CANARY_JS = "() => window.__canary === undefined ? null : String(window.__canary)"


@pytest.fixture(scope="module")
def context(browser):
    """One context for the module's visits (the session's Chromium, conftest.py), which may
    only reach 127.0.0.1."""
    context = local_context(browser)
    yield context
    context.close()


class Lane:
    """One browser page, reused for visit after visit; its events go to the current visit."""

    def __init__(self, context):
        self.page = context.new_page()
        self.seen: Visit | None = None
        self.page.on("request", self.on_request)
        self.page.on("dialog", self.on_dialog)
        self.page.on("popup", lambda popup: self.seen.popups.append(popup.url))

    def on_request(self, request):
        self.seen.requests.append(
            {"url": request.url, "type": request.resource_type, "referer": request.headers.get("referer")}
        )

    def on_dialog(self, dialog):
        self.seen.dialogs.append(dialog.message)
        dialog.dismiss()

    def start(self, url: str) -> None:
        self.seen = Visit(url)
        response = self.page.goto(url, wait_until="commit", timeout=60_000)
        self.seen.status = response.status if response else None

    def finish(self, container: str, settle_ms: int) -> Visit:
        """Wait for the load, poke the body, and read what happened."""
        page, seen = self.page, self.seen
        page.wait_for_load_state("load", timeout=90_000)
        page.evaluate(POKE_JS, container)
        page.wait_for_timeout(settle_ms)  # onerror of failed images, meta refresh, animations
        for frame in page.frames:
            try:
                value = frame.evaluate(CANARY_JS)
            except Exception as error:  # a frame that went away: itself a finding
                value = f"unreadable frame {frame.url}: {error}"
            if value is not None:
                seen.canaries.append(value)
        seen.final_url = page.url
        seen.frames = len(page.frames)
        seen.dom = page.evaluate(DOM_JS, container)
        return seen


def visit_all(context, urls: list[str], container: str = ".article-body", slow: int = 0, lanes: int = 2, settle_ms: int = 50) -> list[Visit]:
    """Visit every URL, `lanes` pages at a time, so that one page's load overlaps another's
    checks. The first `slow` URLs load in pages of their own meanwhile, checked last."""
    background = [Lane(context) for _ in urls[:slow]]
    pool = [Lane(context) for _ in range(min(lanes, len(urls) - slow))]
    queue, busy, visits = list(urls[slow:]), deque(), []
    try:
        for lane, url in zip(background, urls):
            lane.start(url)
        for lane in pool:
            lane.start(queue.pop(0))
            busy.append(lane)
        while busy:
            lane = busy.popleft()
            visits.append(lane.finish(container, settle_ms))
            if queue:
                lane.start(queue.pop(0))
                busy.append(lane)
        slow_visits = [lane.finish(container, settle_ms) for lane in background]
    finally:
        for lane in background + pool:
            lane.page.close()
    return slow_visits + visits


def visit(context, url: str, container: str = ".article-body", settle_ms: int = 50) -> Visit:
    return visit_all(context, [url], container, lanes=1, settle_ms=settle_ms)[0]


def report(visits: list[Visit], check) -> str:
    lines = [f"{v.url}: {problem}" for v in visits for problem in check(v)]
    return "\n".join(lines[:80]) + (f"\n… {len(lines) - 80} more" if len(lines) > 80 else "")


# --- the real sample in data/ -----------------------------------------------------


def corpus_sample(db: Path, size: int = CORPUS_SAMPLE) -> list[tuple[str, int]]:
    """`size` articles spread over the sources: round-robin, oldest first within each."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("select coalesce(source, ''), id from articles order by source, published, id").fetchall()
    by_source: dict[str, list[int]] = {}
    for source, article in rows:
        by_source.setdefault(source, []).append(article)
    queues = sorted(by_source.items(), key=lambda item: -len(item[1]))
    sample = []
    while len(sample) < size and any(ids for _, ids in queues):
        for source, ids in queues:
            if ids and len(sample) < size:
                sample.append((source, ids.pop(len(ids) // 2)))  # from the middle: not all edge cases
    return sample


@pytest.fixture(scope="module")
def corpus_visits(corpus_db, data_site, context) -> list[tuple[str, Visit]]:
    sample = corpus_sample(corpus_db)
    visits = visit_all(context, [f"{data_site}/posts/articles/{article}" for _, article in sample])
    return [(source, seen) for (source, _), seen in zip(sample, visits)]


def test_stored_corpus_bodies_hold_no_active_content(corpus_db):
    problems = stored_body_problems(corpus_db)
    assert not problems, "\n".join(problems[:50])


def test_corpus_sample_renders_safely(corpus_visits):
    visits = [v for _, v in corpus_visits]
    sources = {source for source, _ in corpus_visits}
    assert len(visits) == CORPUS_SAMPLE and len(sources) >= 3, sources
    assert all(v.status == 200 and v.dom["text_length"] > 50 for v in visits), [(v.url, v.status) for v in visits]
    for check in (Visit.script_problems, Visit.request_problems, Visit.leak_problems):
        problems = report(visits, check)
        assert not problems, problems
    assert sum(v.dom["images"] for v in visits) > 0 and sum(v.dom["links"] for v in visits) > 0


def test_the_checks_catch_what_they_look_for(context):
    """A page that does everything the article pages must not: every check must fire."""
    page_html = f"""<!doctype html><html><head>
<link rel="stylesheet" href="{EVIL}/x.css"><style>@font-face {{ font-family: e; src: url({EVIL}/f.woff2) }} body {{ font-family: e }}</style>
</head><body><div class="article-body"><p>x</p><script>window.__canary = 'control'</script>
<img src="{EVIL}/leak.png"><img src="x" onerror="alert('control')"><a href="javascript:void(0)">js</a>
<a href="https://example.org/">no rel</a><iframe src="{EVIL}/frame"></iframe><script src="{EVIL}/x.js"></script></div></body></html>"""
    url = f"http://{LOCAL}:9/control"  # never reached: the route below answers it

    def fulfil(route):
        route.fulfill(status=200, content_type="text/html", body=page_html)

    context.route(url, fulfil)
    try:
        seen = visit(context, url, settle_ms=300)
    finally:
        context.unroute(url, fulfil)
    script = "\n".join(seen.script_problems())
    assert "canary 'control'" in script and "dialog 'control'" in script and "handlers: <img onerror>" in script
    assert "javascript:void(0)" in script and "<iframe" in script and "2 frames" in script
    requests = "\n".join(seen.request_problems())
    for kind in ("stylesheet", "font", "script", "document"):
        assert f"third-party {kind} {EVIL}" in requests, (kind, requests)
    assert f"sent with {EVIL}/leak.png" in requests, requests  # an image without the policy sends a Referer
    leaks = "\n".join(seen.leak_problems())
    assert "leak.png" in leaks and "no rel" in leaks


# --- the hostile site -------------------------------------------------------------------


@dataclass
class Site:
    db: Path
    port: int
    attack_urls: dict[str, str]  # url -> post path
    ids: list[int]
    big_ids: list[int]


@pytest.fixture(scope="module")
def hostile_site(hostile_build) -> Site:
    """The session's one hostile build (conftest.py; test_hostile.py checks each outcome)."""
    built = hostile_build
    assert built.run.returncode == 0, built.run.stderr[-3000:]
    with sqlite3.connect(f"file:{built.db}?mode=ro", uri=True) as conn:
        ids = [row[0] for row in conn.execute("select id from articles order by path")]
        big_ids = [row[0] for row in conn.execute("select article_id from article_bodies where length(body_html) > 500000")]
        files = {path for (path,) in conn.execute("select path from article_files")}
    assert {name for name, outcome in built.expected.items() if outcome == ARTICLE} <= files
    assert set(built.attacks.values()) <= files
    return Site(built.db, built.port, {url: path for url, path in built.attacks.items()}, ids, big_ids)


@pytest.fixture(scope="module")
def hostile_server(hostile_site) -> str:
    with running_server(hostile_site.db, port=hostile_site.port) as base:
        yield base


@pytest.fixture(scope="module")
def hostile_visits(hostile_site, hostile_server, context) -> dict[int, Visit]:
    # The biggest bodies load in the background (Chromium takes ~15 s to lay out the 20 MB
    # one) while the others are visited.
    order = hostile_site.big_ids + [a for a in hostile_site.ids if a not in hostile_site.big_ids]
    urls = [f"{hostile_server}/posts/articles/{article}" for article in order]
    visits = dict(zip(order, visit_all(context, urls, slow=len(hostile_site.big_ids))))
    # datasette-render-html shows the stored bodies, as they are, on this table page.
    attack_ids = ",".join(str(article_id(url)) for url in hostile_site.attack_urls)
    visits[0] = visit(context, f"{hostile_server}/posts/article_bodies?article_id__in={attack_ids}&_size=100", "td.col-body_html")
    return visits


def test_every_attack_became_an_article(hostile_site):
    with sqlite3.connect(f"file:{hostile_site.db}?mode=ro", uri=True) as conn:
        urls = {url for (url,) in conn.execute("select url from articles")}
        problems = conn.execute("select path, reason from problems where path like 'attacks/%'").fetchall()
    assert not problems
    assert set(hostile_site.attack_urls) <= urls
    assert len(hostile_site.ids) > 80


def test_stored_hostile_bodies_hold_no_active_content(hostile_site):
    problems = stored_body_problems(hostile_site.db)
    assert not problems, "\n".join(problems[:50])


def test_every_hostile_article_page_loads(hostile_visits, hostile_site):
    assert len(hostile_visits) == len(hostile_site.ids) + 1
    broken = [f"{v.url}: {v.status}" for v in hostile_visits.values() if v.status != 200]
    assert not broken, "\n".join(broken)
    assert hostile_visits[0].dom["text_length"] > 200  # the bodies table showed the attack posts


def test_no_script_runs_on_hostile_pages(hostile_visits):
    problems = report(list(hostile_visits.values()), Visit.script_problems)
    assert not problems, problems


def test_hostile_pages_fetch_no_third_party_stylesheet_font_frame_or_script(hostile_visits):
    problems = report(list(hostile_visits.values()), Visit.request_problems)
    assert not problems, problems
    # The recorder saw the article's own third-party images (a page without them would pass
    # vacuously), and they went without a Referer (request_problems).
    images = [r for v in hostile_visits.values() for r in v.third_party("image")]
    assert images, "no third-party image was requested: the check saw nothing"


def test_hostile_images_and_links_carry_referrer_and_rel_policies(hostile_visits):
    problems = report(list(hostile_visits.values()), Visit.leak_problems)
    assert not problems, problems
    assert sum(v.dom["images"] for v in hostile_visits.values()) > 20
    assert sum(v.dom["links"] for v in hostile_visits.values()) > 20


def test_images_keep_working(hostile_server, hostile_visits, context):
    """Two attack posts hold an image served by 127.0.0.1 itself: it loads, policies and all."""
    for name in ("handlers-rss", "media-and-images-scraped"):
        page = context.new_page()
        try:
            page.goto(f"{hostile_server}/posts/articles/{article_id(f'https://attacks.example.com/{name}')}", wait_until="load")
            image = page.locator(f'.article-body img[src^="http://{LOCAL}:"]')
            assert image.count() == 1, name
            image.scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=5000)
            assert image.get_attribute("referrerpolicy") == "no-referrer" and image.get_attribute("loading") == "lazy"
        finally:
            page.close()
    media = hostile_visits[article_id("https://attacks.example.com/media-and-images-scraped")]
    assert media.dom["images"] == 5 and not media.dom["images_without_policy"]  # the others kept too
