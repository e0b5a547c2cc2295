"""The Content-Security-Policy and the other security headers (plugins/security_headers.py),
checked on the responses themselves; tests/test_csp_browser.py checks them in Chromium.

Every HTML page carries a policy whose script-src has a fresh nonce and no 'unsafe-inline',
and every inline script on the page carries that nonce; a cached page carries its own; the
template copies that add the nonce still match Datasette's and datasette-dashboards' own.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import datasette
import datasette_dashboards
import pytest
from selectolax.lexbor import LexborHTMLParser

from postsdb.serve import TEMPLATES
from test_serve import METADATA_DICT, RICH_ID, make_datasette

DATASETTE_TEMPLATES = Path(datasette.__file__).parent / "templates"
DASHBOARDS_TEMPLATES = Path(datasette_dashboards.__file__).parent / "templates"
NONCE_ATTRIBUTE = ' nonce="{{ csp_nonce() }}"'
# base.html's other changes: the page's language, and the feed advertised on every page.
BASE_ADDITIONS = {
    '<html lang="{% block html_lang %}zh-Hans{% endblock %}">': "<html>",
    """    <link rel="alternate" type="application/atom+xml" title="最新文章 · Newest articles" href="{{ urls.path('/posts/feed.atom') }}">\n""": "",
}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>")

HTML_PAGES = [
    "/",
    "/posts",
    "/posts/articles",
    "/posts/articles?_search=" + quote("富文本"),
    "/posts/links",
    "/posts/images?_facet=article_id",
    f"/posts/articles/{RICH_ID}",
    f"/posts/article_bodies?article_id={RICH_ID}",
    "/posts?sql=select+1",
    "/posts/search?q=" + quote("富文本"),
    "/posts/feed",
    "/-/dashboards",
    "/-/dashboards/archive",
    "/-/dashboards/archive/per-month",
    "/posts/nope",  # Datasette's 404 page
    "/posts/articles?_sort=nope",  # our 400 page
    "/posts/articles?_search=" + "+".join(["词"] * 20),  # the search limit's 400 page
]


@pytest.fixture
def ds(site_db, site_inspect):
    return make_datasette(site_db, site_inspect)


def policy(response) -> dict[str, list[str]]:
    header = response.headers["content-security-policy"]
    return {name: sources for name, *sources in (part.split() for part in header.split(";") if part.strip())}


def nonce_of(response) -> str:
    nonces = [s[len("'nonce-") : -1] for s in policy(response)["script-src"] if s.startswith("'nonce-")]
    assert len(nonces) == 1, response.headers["content-security-policy"]
    return nonces[0]


@pytest.mark.parametrize("path", HTML_PAGES)
async def test_every_html_page_has_the_policy_and_its_inline_scripts_the_nonce(ds, path):
    response = await ds.client.get(path)
    assert response.headers["content-type"].startswith("text/html"), path
    rules = policy(response)
    assert rules["default-src"] == ["'self'"]
    assert "'self'" in rules["script-src"] and "'unsafe-inline'" not in rules["script-src"]
    assert "'unsafe-eval'" not in rules["script-src"]  # not even for Vega: see metadata.yml
    assert rules["style-src"] == ["'self'", "'unsafe-inline'"]
    assert rules["img-src"] == ["'self'", "https:", "http:", "data:"]
    for name in ("object-src", "base-uri", "frame-ancestors"):
        assert rules[name] == ["'none'"], name
    assert rules["form-action"] == ["'self'"]
    nonce = nonce_of(response)
    assert len(nonce) >= 22  # 128 bits or more
    scripts = LexborHTMLParser(response.text).css("script")
    assert scripts, path  # at least base.html's own
    for script in scripts:
        src = script.attributes.get("src")
        if src is None:
            assert script.attributes.get("nonce") == nonce, (path, script.html[:200])
        else:
            assert src.startswith("/") and not src.startswith("//"), (path, src)  # this site's own


async def test_each_response_gets_a_fresh_nonce_and_a_cached_page_keeps_its_own(ds):
    first = await ds.client.get("/posts/articles")
    again = await ds.client.get("/posts/articles")
    assert again.headers["x-cache"] == "hit"
    assert nonce_of(again) == nonce_of(first) and f'nonce="{nonce_of(again)}"' in again.text
    personal = await ds.client.get("/posts/articles", headers={"cookie": "x=1"})  # never cached
    other = await ds.client.get("/posts/links")
    assert len({nonce_of(first), nonce_of(personal), nonce_of(other)}) == 3
    assert f'nonce="{nonce_of(personal)}"' in personal.text


@pytest.mark.parametrize(
    "path",
    ["/posts/articles.json", "/posts/articles.csv", "/posts/feed.atom", "/-/static/app.css", "/posts.db",
     "/posts/nope.json", "/posts/articles.json?_sort=nope", "/posts/articles", "/-/versions.json"],
)
async def test_every_response_is_nosniff_and_sends_no_referrer(ds, path):
    response = await ds.client.get(path)
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], path
    assert response.headers.get_list("referrer-policy") == ["no-referrer"], path  # once, not twice
    is_html = response.headers["content-type"].startswith("text/html")
    assert ("content-security-policy" in response.headers) == is_html, path


def test_every_chart_runs_vega_without_eval():
    """vega-embed's interpreter instead of `new Function`: no chart needs 'unsafe-eval'."""
    dashboards = METADATA_DICT["plugins"]["datasette-dashboards"]
    charts = [chart for board in dashboards.values() for chart in board["charts"].values()]
    assert charts
    for chart in charts:
        if chart["library"] in ("vega", "vega-lite"):
            assert chart["display"]["usermeta"]["embedOptions"]["ast"] is True, chart["title"]


# --- the template copies ------------------------------------------------------------

COPIES = {
    "base.html": DATASETTE_TEMPLATES,
    "_close_open_menus.html": DATASETTE_TEMPLATES,
    "_codemirror_foot.html": DATASETTE_TEMPLATES,
    "dashboard_view.html": DASHBOARDS_TEMPLATES,
    "dashboard_chart.html": DASHBOARDS_TEMPLATES,
}
LEADING_COMMENT = re.compile(r"\A\{#-.*?-#\}\n", re.S)


def extra_head_block(text: str) -> str:
    return re.search(r"\{% block extra_head %\}(.*?)\{% endblock %\}", text, re.S).group(1)


@pytest.mark.parametrize("name", COPIES)
def test_template_copies_differ_from_the_originals_only_by_the_nonce(name):
    """A Datasette or datasette-dashboards upgrade that changes one of these templates fails
    here: copy the new version, and add the nonce to its inline scripts again."""
    copy = (TEMPLATES / name).read_text(encoding="utf-8")
    assert LEADING_COMMENT.match(copy) and NONCE_ATTRIBUTE in copy, name
    original = (COPIES[name] / name).read_text(encoding="utf-8")
    copy = LEADING_COMMENT.sub("", copy).replace(NONCE_ATTRIBUTE, "")
    if name == "base.html":
        for ours, theirs in BASE_ADDITIONS.items():
            assert ours in copy, ours
            copy = copy.replace(ours, theirs)
    assert copy == original


def test_the_table_pages_head_differs_from_the_original_only_by_the_nonce():
    ours = extra_head_block((TEMPLATES / "table.html").read_text(encoding="utf-8"))
    original = extra_head_block((DATASETTE_TEMPLATES / "table.html").read_text(encoding="utf-8"))
    assert NONCE_ATTRIBUTE in ours
    assert ours.replace(NONCE_ATTRIBUTE, "").replace("super.super()", "super()") == original


def test_every_inline_script_in_the_templates_carries_the_nonce():
    """Ours, and every installed template with an inline script is overridden by ours."""
    for path in TEMPLATES.glob("*.html"):
        for tag in INLINE_SCRIPT.findall(path.read_text(encoding="utf-8")):
            assert NONCE_ATTRIBUTE.strip() in tag, (path.name, tag)
    overridden = {path.name for path in TEMPLATES.glob("*.html")}
    for folder in (DATASETTE_TEMPLATES, DASHBOARDS_TEMPLATES):
        for path in folder.rglob("*.html"):
            if INLINE_SCRIPT.search(path.read_text(encoding="utf-8")):
                assert path.name in overridden, f"{path} has an inline <script>: override it in templates/ with the nonce"
