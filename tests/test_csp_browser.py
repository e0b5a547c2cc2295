"""The Content-Security-Policy in headless Chromium (plugins/security_headers.py).

Every page still works under it (the articles list's search box and facets, a plain table's
column menus, an article, search results, the SQL editor, the timeline's charts) and the
browser reports no violation; an inline script written straight into the database, where
the site renders HTML unsanitized, runs nothing and is reported.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from conftest import CANARY, VIOLATIONS_JS, local_context
from postsdb.serve import running_server
from test_serve import RICH_ID, build_site

INJECTED_BODY = (
    "<p>注入的正文</p><script>window.__canary = 'inline-script'</script>"
    "<img src=\"/-/no-such-image.png\" onerror=\"window.__canary = 'onerror'\">"
)


@pytest.fixture(scope="module")
def injected_site(tmp_path_factory):
    """A site whose article_bodies row holds a script, as if the sanitizer had let it by:
    written straight into the built database. The article_bodies table page renders that
    column as HTML as it is stored (datasette-render-html, configured in metadata.yml)."""
    db = build_site(tmp_path_factory.mktemp("injected-site"))
    with sqlite3.connect(db) as conn:
        conn.execute("update article_bodies set body_html = ? where article_id = ?", (INJECTED_BODY, RICH_ID))
    conn.close()
    with running_server(db) as base:
        yield base


@pytest.fixture
def page(page):
    """conftest.py's page, recording the policy violation events of each document it loads."""
    page.add_init_script(VIOLATIONS_JS)
    return page


def violations(page) -> list[str]:
    """The policy violations the current document saw, from its `securitypolicyviolation`
    events: the browser's own report, in no particular wording."""
    return page.evaluate("window.__csp || []")


def goto(page, url: str) -> None:
    response = page.goto(url, wait_until="load")
    assert response.status == 200, url
    assert "content-security-policy" in response.headers, url


def test_articles_page_works_under_the_policy(data_site, page):
    goto(page, f"{data_site}/posts/articles")
    # The page's inline scripts ran: table.html's, datasette-leaflet's, base.html's menu closer.
    assert page.evaluate("window.DATASETTE_ALLOW_FACET") is True
    assert page.evaluate("window.datasette.leaflet.JAVASCRIPT_URL").startswith("/-/static-plugins/")
    more = page.locator("details.articles-more")
    more.locator("summary").click()
    assert more.get_attribute("open") is not None
    page.locator("h1").click()  # a click outside closes an open <details>: _close_open_menus.html
    page.wait_for_function("!document.querySelector('details.articles-more').open", timeout=5000)
    assert violations(page) == []
    # The search box submits.
    page.locator("input#_search").fill("騰訊")
    page.locator("input#_search").press("Enter")
    page.wait_for_url("**_search=*")
    assert page.locator(".article-item mark").count() > 0
    assert violations(page) == []
    # A facet link filters.
    facet = page.locator(".articles-facets .facet-info a[href*='source=']").first
    source = facet.get_attribute("href")
    facet.click()
    page.wait_for_load_state("load")
    assert "source=" in page.url and source.split("source=")[1].split("&")[0] in page.url
    assert page.locator(".article-item").count() > 0
    assert violations(page) == []


def test_a_plain_tables_column_menus_open(data_site, page):
    goto(page, f"{data_site}/posts/links")
    icon = page.locator("th .dropdown-menu-icon").first  # added by Datasette's table.js
    icon.click()
    menu = page.locator(".dropdown-menu")
    assert menu.is_visible()
    menu.locator("a.dropdown-sort-desc").click()
    page.wait_for_url("**_sort_desc=*")
    assert page.locator("table.rows-and-columns tbody tr").count() > 0
    assert violations(page) == []


def test_an_article_and_search_results_work_under_the_policy(data_site, page, data_db):
    with sqlite3.connect(f"file:{data_db}?mode=ro", uri=True) as conn:
        article = conn.execute("select article_id from article_bodies order by length(body_html) desc limit 1").fetchone()[0]
    goto(page, f"{data_site}/posts/articles/{article}")
    assert page.locator(".article-body p").count() > 0 and page.locator(".article-related .article-item").count() > 0
    assert violations(page) == []
    goto(page, f"{data_site}/posts/search?q=" + quote("腾讯"))
    assert page.locator(".article-item mark").count() > 0
    assert violations(page) == []


def test_the_sql_editor_loads(data_site, page):
    goto(page, f"{data_site}/posts?sql=select+1")
    # Datasette 0.65 ships CodeMirror 5 (class CodeMirror; CodeMirror 6's is cm-editor).
    page.locator(".CodeMirror").wait_for(timeout=5000)
    assert page.locator(".CodeMirror-code").inner_text().strip().endswith("select 1")
    assert violations(page) == []


@pytest.mark.parametrize("path", ["/-/dashboards/archive", "/-/dashboards/archive/top-topics"])
def test_the_timeline_draws_its_charts(data_site, page, path):
    goto(page, data_site + path)
    chart = page.locator("svg.marks").first
    chart.wait_for(timeout=15000)
    assert page.locator("svg.marks path[aria-roledescription='bar']").count() > 5
    assert violations(page) == []


def test_an_injected_script_runs_nothing_and_is_reported(injected_site, page):
    goto(page, f"{injected_site}/posts/article_bodies?article_id={RICH_ID}")
    assert page.locator("td.col-body_html p").first.inner_text() == "注入的正文"  # rendered as HTML
    page.wait_for_timeout(300)  # the broken image's onerror fires after load
    assert page.evaluate(CANARY) is None
    reported = violations(page)
    assert any(v.startswith("script-src-elem inline") for v in reported), reported
    assert any(v.startswith("script-src-attr inline") for v in reported), reported
    assert page.evaluate("window.DATASETTE_ALLOW_FACET") is True  # the page's own scripts ran


def test_without_the_policy_the_injected_script_would_run(injected_site, browser):
    """The check above is worth something: the same response minus its policy runs the script."""
    url = f"{injected_site}/posts/article_bodies?article_id={RICH_ID}"

    def without_policy(route):
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-security-policy"}
        route.fulfill(response=response, headers=headers)

    context = local_context(browser)
    try:
        page = context.new_page()
        page.route(url, without_policy)
        page.goto(url, wait_until="load")
        page.wait_for_timeout(300)
        assert page.evaluate(CANARY) in ("inline-script", "onerror")
    finally:
        context.close()
