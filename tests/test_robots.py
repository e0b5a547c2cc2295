"""/robots.txt, through the real Datasette app: crawlers may reach the home page and every
article page, never the endless facet, sort, search and SQL URLs, the download or /-/.

Two readings of the same file: Python's `urllib.robotparser` (plain prefixes, the first
matching rule wins, no wildcards) and Google's (the longest matching rule wins, Allow on a
tie, `*` and `$` wildcards), implemented below from Google's robots.txt specification.
"""

from __future__ import annotations

import re
import urllib.robotparser

import pytest

from test_serve import RICH_ID, make_datasette

ARTICLE = f"/posts/articles/{RICH_ID}"
ALLOWED = [
    "/",
    "/posts",
    "/posts/articles",
    ARTICLE,
    "/posts/feed",
    "/posts/feed.atom",
    "/-/static/app.css",
]
# Every one of these is disallowed by a plain prefix too, so robotparser can check them.
DISALLOWED_BY_PREFIX = [
    "/posts/articles?_facet=author",
    "/posts/articles?_search=%E8%85%BE%E8%AE%AF",
    "/posts/articles?_sort=title",
    "/posts/articles?_next=abc",
    "/posts?sql=select+1",
    "/posts.db",
    "/-/versions",
    "/-/metadata.json",
    "/-/dashboards/archive",
    "/posts/article_bodies",
    f"/posts/images?article_id={RICH_ID}",
    "/posts/links",
    "/posts/tags/123",
    "/posts/article_files",
]
# These need Google's wildcards.
DISALLOWED_BY_WILDCARD = [
    "/posts/articles?source=Matters&_next=abc",
    "/posts?_hide_sql=1",
    f"{ARTICLE}?_labels=on",
    f"{ARTICLE}.json",
    "/posts/articles.json",
    "/posts/articles.csv",
    "/posts/search?q=%E8%85%BE%E8%AE%AF",
    "/posts/latest_by_source.atom?source=Matters",
    "/posts.json",
]


@pytest.fixture
async def robots_txt(site_db, site_inspect) -> str:  # noqa: F811
    response = await make_datasette(site_db, site_inspect).client.get("/robots.txt")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


def rules(robots_txt: str) -> list[tuple[str, str]]:
    found = []
    for line in robots_txt.splitlines():
        field, _, value = line.partition(":")
        if field.strip().lower() in {"allow", "disallow"}:
            found.append((field.strip().lower(), value.strip()))
    return found


def google_allows(robots_txt: str, path: str) -> bool:
    """Google's matching: among the rules whose pattern matches the path from its start, the
    longest pattern decides; on a tie Allow wins; no match allows. `*` matches any run of
    characters and a final `$` the end of the URL."""
    best: tuple[int, bool] | None = None
    for kind, pattern in rules(robots_txt):
        if not pattern:
            continue
        body, anchored = (pattern[:-1], True) if pattern.endswith("$") else (pattern, False)
        regex = ".*".join(re.escape(part) for part in body.split("*")) + ("$" if anchored else "")
        if re.match(regex, path):
            candidate = (len(pattern), kind == "allow")
            best = max(best, candidate) if best else candidate
    return best is None or best[1]


def test_the_matcher_reads_wildcards_as_google_does():
    text = "User-agent: *\nDisallow: /*?\nAllow: /a?ok\nDisallow: /*.json$\nDisallow: /p\nAllow: /p"
    assert not google_allows(text, "/x?y") and google_allows(text, "/a?ok=1")
    assert not google_allows(text, "/t.json") and google_allows(text, "/t.json/x")
    assert google_allows(text, "/p/q")  # a tie: Allow wins
    assert google_allows(text, "/")


async def test_robots_txt_is_ours_for_every_crawler(robots_txt):
    assert robots_txt.splitlines()[0] == "User-agent: *"
    assert "Disallow: /*?" in robots_txt.splitlines()
    assert "Disallow: /\n" not in robots_txt + "\n"  # not the plugin's default: block everything


async def test_a_crawler_without_wildcards_may_read_articles_but_no_facets(robots_txt):
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(robots_txt.splitlines())
    for path in ALLOWED:
        assert parser.can_fetch("SomeBot", f"https://example.org{path}"), path
    for path in DISALLOWED_BY_PREFIX:
        assert not parser.can_fetch("SomeBot", f"https://example.org{path}"), path


async def test_google_may_read_articles_but_no_query_json_or_download(robots_txt):
    for path in ALLOWED:
        assert google_allows(robots_txt, path), path
    for path in DISALLOWED_BY_PREFIX + DISALLOWED_BY_WILDCARD:
        assert not google_allows(robots_txt, path), path


async def test_the_pages_crawlers_may_read_link_to_article_pages(site_db, site_inspect, robots_txt):  # noqa: F811
    ds = make_datasette(site_db, site_inspect)
    page = (await ds.client.get("/posts/articles")).text
    links = set(re.findall(r'href="(/posts/articles/\d+)"', page))
    assert ARTICLE in links and all(google_allows(robots_txt, link) for link in links)
