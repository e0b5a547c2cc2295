"""The reader's pages in headless Chromium, at a desktop's 1400×900 and a phone's 390×844:
the articles list, search results, the timeline; nothing loads from a third party."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest


SIZES = {"desktop": (1400, 900), "phone": (390, 844)}


@pytest.fixture
def requests_seen(page):
    seen = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def third_party(urls: list[str]) -> list[str]:
    return [url for url in urls if urlsplit(url).hostname not in ("127.0.0.1", None) and not url.startswith("data:")]


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_articles_page_is_a_list_of_articles(data_site, page, requests_seen, size, tmp_path):
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{data_site}/posts/articles", wait_until="load")
    page.screenshot(path=str(tmp_path / f"articles-{size}.png"))
    titles = page.locator(".article-item-title")
    assert titles.count() == 50
    above_fold = page.evaluate(
        "[...document.querySelectorAll('.article-item-title')].filter(a => a.getBoundingClientRect().bottom <= innerHeight).length"
    )
    assert above_fold >= (5 if size == "desktop" else 2), above_fold
    assert no_sideways_scroll(page)
    assert page.locator(".article-item-line").first.inner_text().strip()  # a line of the text
    assert not page.locator("dl.column-descriptions").is_visible()  # the glossary is folded away
    assert third_party(requests_seen) == []
    titles.first.click()
    page.wait_for_load_state("load")
    assert page.locator("article .article-body p").count() > 0


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_search_results_show_why_they_matched(data_site, page, size):
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{data_site}/posts/articles", wait_until="load")
    box = page.locator("input#_search")
    box.fill("騰訊")
    box.press("Enter")
    page.wait_for_url("**_search=*")
    marks = page.locator(".article-item mark")
    assert marks.count() >= 5 and set(marks.all_inner_texts()) <= {"腾讯", "騰訊"}
    assert no_sideways_scroll(page)
    page.locator(".sort-links a", has_text="relevance").click()
    page.wait_for_load_state("load")
    first = page.locator(".article-item-title").first
    assert first.inner_text() == "腾讯捐五百亿元后立即增用户收费作补偿"
    assert first.locator("mark").inner_text() == "腾讯"
    assert no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES, ids=list(SIZES))
def test_the_timeline_is_drawn_from_local_scripts(data_site, page, requests_seen, size, tmp_path):
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{data_site}/posts", wait_until="load")
    page.locator("a", has_text="Timeline").first.click()
    page.wait_for_load_state("networkidle")
    chart = page.locator("#card-per-month svg.marks")
    chart.wait_for(timeout=15000)
    box = chart.bounding_box()
    assert box["width"] > 250 and box["height"] > 150, box
    page.screenshot(path=str(tmp_path / f"timeline-{size}.png"), full_page=True)
    # One bar per month and source that has articles: the sample has more than 100.
    assert page.locator("#card-per-month svg path[aria-roledescription='bar']").count() > 100
    assert no_sideways_scroll(page)
    assert third_party(requests_seen) == []
