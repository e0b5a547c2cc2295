"""A reader types Traditional Chinese into Datasette's search box and finds Simplified text."""

from __future__ import annotations


SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"


def test_traditional_query_in_the_search_box_finds_the_simplified_article(data_site, page, tmp_path):
    page.goto(f"{data_site}/posts/articles")
    box = page.locator('input#_search')
    box.fill("騰訊")
    box.press("Enter")
    page.wait_for_url("**_search=*")
    page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
    assert SEED_TITLE in page.locator("ol.article-list").inner_text()
    assert page.locator("ul.filter-chips li").first.inner_text().startswith("搜索 Search：騰訊")  # the search, in words
    assert page.dialogs == []


def test_quotes_and_brackets_are_ignored_not_an_error(data_site, page):
    page.goto(f"{data_site}/posts/articles")
    box = page.locator('input#_search')
    box.fill('"騰訊 (')
    box.press("Enter")
    page.wait_for_url("**_search=*")
    assert SEED_TITLE in page.locator("ol.article-list").inner_text()
    box = page.locator('input#_search')
    box.fill('"龘龘 (')
    box.press("Enter")
    page.wait_for_url("**_search=*")
    # No rows, and still the table page with the query in its box: not an error page.
    assert page.locator(".article-item").count() == 0
    assert page.locator("input#_search").input_value() == '"龘龘 ('
