"""The article page of real posts in headless Chromium: who wrote it, where it first
appeared, its topics, each a link to its facet; readable on a phone and on a desktop."""

from __future__ import annotations

import sqlite3
from urllib.parse import unquote

import pytest


PHONE, DESKTOP = (390, 844), (1400, 900)


def article(db, path_start: str) -> tuple[int, str]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select id, url from articles where path like ?", (f"posts/{path_start}%",)).fetchone()


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_translated_article_shows_its_publication_and_topics(data_site, data_db, page, size, tmp_path):
    article_id, url = article(data_db, "2020-02-25-翻箱倒柜")
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(f"{data_site}/posts/articles/{article_id}", wait_until="load")
    meta = page.locator(".article-meta")
    assert meta.locator(".article-publication a").inner_text() == "The Economist"
    assert meta.locator(".article-publication a").get_attribute("href") == "/posts/articles?publication=The%20Economist"
    assert meta.locator(".article-tags a").all_inner_texts() == ["Free exchange"]
    assert meta.locator(".article-url a").get_attribute("href") == url
    assert no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / f"article-{size[0]}.png"), full_page=True)
    page.locator(".article-publication a").click()
    page.wait_for_load_state("load")
    publications = page.locator(".article-item-publication").all_inner_texts()
    assert len(publications) == 7 and set(publications) == {"The Economist"}


def test_byline_and_topics_on_a_phone(data_site, data_db, page):
    article_id, url = article(data_db, "2016-07-19-警惕微妙的劝导术")
    page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    page.goto(f"{data_site}/posts/articles/{article_id}", wait_until="load")
    assert page.locator("article h1").inner_text() == "警惕微妙的劝导术：互联网上的认知吝啬鬼和理性化怪圈"
    assert page.locator(".article-author a").inner_text() == "McCaffrey"
    topics = page.locator(".article-tags a").all_inner_texts()
    assert topics[:2] == ["Knowledge Node", "关于公民社会和反抗"] and "Psychology" in topics
    shown = page.locator(".article-url a").inner_text()
    assert shown == unquote(url) and "%" not in shown  # readable, and it wraps
    assert no_sideways_scroll(page)
