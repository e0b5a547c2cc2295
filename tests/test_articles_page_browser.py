"""The articles page (/posts/articles) in headless Chromium, on the real sample, at a
phone's and a desktop's size: filters as chips above the list that remove themselves,
facets titled in words with the years in order, authors who are people, and list lines
that start at the text. Nothing scrolls sideways."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import pytest


PHONE, DESKTOP = (390, 844), (1400, 900)
SIZES = pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
FILTERED = "/posts/articles?tags__arraycontains=Newsletters&source=iYouPort"
CREDIT = re.compile(r"Getty Images|Unsplash|^Photo(graph)? by|^https?://", re.I)


def open_at(page, size, url: str) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(url, wait_until="load")


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@SIZES
def test_filters_are_chips_above_the_list_that_remove_themselves(data_site, page, size, tmp_path):
    open_at(page, size, data_site + FILTERED)
    chips = page.locator("ul.filter-chips li:not(.chip-clear)")
    assert sorted(chips.locator(".chip-words").all_inner_texts()) == ["主题 Topics：Newsletters", "来源 Source：iYouPort"]
    last_chip, first_item = chips.last.bounding_box(), page.locator("li.article-item").first.bounding_box()
    assert last_chip["y"] + last_chip["height"] <= first_item["y"]  # above the list
    assert last_chip["y"] + last_chip["height"] <= size[1]  # and on the first screen, a phone's too
    assert no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / f"filtered-{size[0]}.png"))
    chips.filter(has_text="Newsletters").locator("a.chip-remove").click()
    page.wait_for_load_state("load")
    assert "tags__arraycontains" not in unquote(page.url) and "source=iYouPort" in page.url
    assert page.locator("ul.filter-chips .chip-words").all_inner_texts() == ["来源 Source：iYouPort"]
    assert page.locator(".articles-status h2").inner_text() == "30 篇 articles"


@SIZES
def test_facets_are_titled_in_words_with_years_in_order(data_site, page, size, tmp_path):
    open_at(page, size, f"{data_site}/posts/articles")
    titles = [t.rsplit(" ", 1)[0] for t in page.locator(".articles-facets h3.facet-info-name").all_inner_texts()]
    assert titles == ["主题 Topics", "作者 Author", "年份 Year", "来源 Source", "原载 Publication"]
    years = [int(y) for y in page.locator('.facet-info[data-column="year"] li a').all_inner_texts()]
    assert years == sorted(years, reverse=True) and len(years) > 5
    authors = page.locator('.facet-info[data-column="author"] li a').all_inner_texts()
    assert authors[0] == "McCaffrey" and "Nei.st" not in authors and "iYouPort" not in authors
    assert no_sideways_scroll(page)
    page.locator('.facet-info[data-column="year"]').scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / f"facets-{size[0]}.png"))
    page.locator('.facet-info[data-column="year"] li a', has_text="2014").click()
    page.wait_for_load_state("load")
    assert page.locator("ul.filter-chips .chip-words").all_inner_texts() == ["年份 Year：2014"]
    assert page.locator(".articles-status h2").inner_text() == "11 篇 articles"


@SIZES
def test_list_lines_start_at_the_text(data_site, page, size, tmp_path):
    open_at(page, size, f"{data_site}/posts/articles?source={quote('中参馆')}")
    lines = page.locator(".article-item-line").all_inner_texts()
    assert len(lines) >= 18
    assert [line for line in lines if CREDIT.search(line)] == []
    assert no_sideways_scroll(page)
    page.screenshot(path=str(tmp_path / f"zhongcanguan-{size[0]}.png"))
    medium = f"{data_site}/posts/articles?source=medium&_size=50"
    page.goto(medium, wait_until="load")
    lines = page.locator(".article-item-line").all_inner_texts()
    assert len(lines) >= 14 and [line for line in lines if CREDIT.search(line) or line.startswith("圖片來源")] == []


@SIZES
def test_the_timelines_authors_are_people(data_site, page, size, tmp_path):
    open_at(page, size, f"{data_site}/-/dashboards/archive")
    labels = page.locator("#chart-top-authors svg g.role-axis-label text")
    labels.first.wait_for()
    authors = [text for text in labels.all_text_contents() if not text.isdigit()]  # less the count axis
    assert authors[:2] == ["McCaffrey", "Huli"] and len(authors) == 15  # Huli's own feed: a person
    assert not {"Nei.st", "iYouPort", "燕京书评", "中参馆", "自由亚洲电台"} & set(authors)
    assert no_sideways_scroll(page)
    page.locator("#card-top-authors").screenshot(path=str(tmp_path / f"timeline-authors-{size[0]}.png"))
