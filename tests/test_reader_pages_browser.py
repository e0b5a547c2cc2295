"""The reader's pages of our own in headless Chromium, on the real sample, at a phone's and
a desktop's size: the front page (search first), the article page and its 简/繁 view, the
language each declares, the feed and share data they carry, the sitemap's links, all under
the site's Content-Security-Policy and without sideways scrolling."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import VIOLATIONS_JS

PHONE, DESKTOP = (390, 844), (1400, 900)
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def first_id(db, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def open_page(page, url: str, size) -> list[str]:
    """Go to `url` at `size`; returns the policy violations the page reported
    (`securitypolicyviolation` events, the browser's own report in no particular wording)."""
    page.add_init_script(VIOLATIONS_JS)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    response = page.goto(url, wait_until="load")
    assert response.status == 200, url
    return page.evaluate("window.__csp || []")


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def above_the_fold(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] + box["height"] <= page.viewport_size["height"]


def screenshot(page, tmp_path, name: str) -> None:
    shot = tmp_path / f"{name}.png"  # kept in the test's tmp dir, to look at
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@SIZES
def test_front_page_search_comes_first_and_finds(data_site, page, size, tmp_path):
    complaints = open_page(page, f"{data_site}/", size)
    assert page.evaluate("document.documentElement.lang") == "zh-Hans"
    assert above_the_fold(page, "#front-q") and above_the_fold(page, ".front-newest .article-item-title")
    assert no_sideways_scroll(page)
    screenshot(page, tmp_path, f"front-{size[0]}")
    langs = set(page.locator(".front-newest .article-item").evaluate_all("items => items.map(i => i.lang)"))
    assert {"zh-Hant", "en"} <= langs and langs <= {"zh-Hans", "zh-Hant", "en"}
    page.fill("#front-q", "腾讯")
    page.press("#front-q", "Enter")
    page.wait_for_load_state("load")
    assert urlsplit(page.url).path == "/posts/search" and parse_qs(urlsplit(page.url).query)["q"] == ["腾讯"]
    assert page.locator(".article-item-title").count() >= 1
    assert complaints == []


def test_front_page_ways_in_lead_somewhere(data_site, page):
    open_page(page, f"{data_site}/", DESKTOP)
    page.locator(".front-sources a", has_text="Matters").click()
    page.wait_for_load_state("load")
    sources = page.locator(".article-item-source").all_inner_texts()
    assert sources and set(sources) == {"Matters"}
    open_page(page, f"{data_site}/", DESKTOP)
    page.locator(".front-data a[href='/posts']").click()
    page.wait_for_load_state("load")
    assert urlsplit(page.url).path == "/posts" and page.locator("h1").first.is_visible()  # Datasette's own index of the database


@SIZES
def test_article_page_switches_between_simplified_and_traditional(data_site, data_db, page, size, tmp_path):
    article = first_id(data_db, "select id from articles where source = 'Matters' order by published desc limit 1")
    complaints = open_page(page, f"{data_site}/posts/articles/{article}", size)
    assert page.evaluate("document.documentElement.lang") == "zh-Hant"
    original_title = page.locator("article h1").inner_text()
    current = page.locator(".article-script a[aria-current]")
    assert current.inner_text() == "繁體" and "原文" in page.locator(".article-script").inner_text()
    assert no_sideways_scroll(page)
    screenshot(page, tmp_path, f"article-{size[0]}")
    page.locator(".article-script a", has_text="简体").click()
    page.wait_for_load_state("load")
    assert parse_qs(urlsplit(page.url).query)["script"] == ["hans"]
    assert page.evaluate("document.documentElement.lang") == "zh-Hans"
    assert page.locator("article h1").inner_text() != original_title
    assert page.locator(".article-script a[aria-current]").inner_text() == "简体"
    assert no_sideways_scroll(page)
    screenshot(page, tmp_path, f"article-hans-{size[0]}")
    page.locator(".article-script a", has_text="繁體").click()
    page.wait_for_load_state("load")
    assert page.locator("article h1").inner_text() == original_title
    assert complaints == []


def test_article_page_carries_share_data_and_ends_with_a_line_for_data_users(data_site, data_db, page):
    article = first_id(data_db, "select id from articles where path like 'posts/2020-02-25-翻箱倒柜%'")
    complaints = open_page(page, f"{data_site}/posts/articles/{article}", DESKTOP)
    data = json.loads(page.locator('script[type="application/ld+json"]').text_content())
    assert data["@type"] == "NewsArticle" and data["headline"] == page.locator("article h1").inner_text()
    og = page.locator('meta[property="og:title"]').get_attribute("content")
    assert og == data["headline"] and page.locator('meta[property="og:type"]').get_attribute("content") == "article"
    assert page.locator("table").count() == 0  # no raw row
    data_line = page.locator(".article-data")
    assert data_line.is_visible() and data_line.locator("a").count() == 4
    data_line.locator("a", has_text="JSON").click()
    body = json.loads(page.locator("body").inner_text())
    assert article in [row[0] for row in body["rows"]]
    assert complaints == []


def test_every_reader_page_advertises_the_feed_and_the_feed_leads_back(data_site, data_db, page):
    article = first_id(data_db, "select id from articles order by published desc limit 1")
    for path in ("/", f"/posts/articles/{article}", "/posts/articles"):
        open_page(page, data_site + path, DESKTOP)
        feed = page.locator('link[rel="alternate"][type="application/atom+xml"]')
        assert feed.count() == 1, path
    response = page.request.get(page.evaluate("document.querySelector('link[type=\"application/atom+xml\"]').href"))
    assert response.status == 200
    entry_link = ET.fromstring(response.body()).find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}link")
    open_page(page, f"{data_site}/posts/feed.atom", DESKTOP)  # a feed reader resolves the link against the feed's URL
    assert page.evaluate("href => new URL(href, location.href).pathname", entry_link.get("href")) == f"/posts/articles/{article}"
    open_page(page, f"{data_site}{entry_link.get('href')}", DESKTOP)
    assert page.locator("article h1").is_visible()


def test_the_sitemap_leads_to_article_pages_that_a_cache_may_keep(data_site, data_db, page):
    robots = page.request.get(f"{data_site}/robots.txt").text()
    (sitemap,) = [line.split(": ", 1)[1] for line in robots.splitlines() if line.startswith("Sitemap: ")]
    index = ET.fromstring(page.request.get(sitemap).body())
    (first_file,) = [loc.text for loc in index.findall("s:sitemap/s:loc", SITEMAP)]
    urls = [loc.text for loc in ET.fromstring(page.request.get(first_file).body()).findall("s:url/s:loc", SITEMAP)]
    assert len(urls) == first_id(data_db, "select count(*) from articles")
    response = page.goto(urls[0], wait_until="load")
    assert response.status == 200 and page.locator("article h1").is_visible()
    assert "s-maxage=" in response.headers["cache-control"]
