"""End to end in headless Chromium: the real `build_db.py serve` on 127.0.0.1, a reader's
browser, and posts that try to run script.

The browser (conftest.py: `browser`, `page`) may only talk to 127.0.0.1: every other
request is aborted, and host names do not resolve.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

import conftest
from conftest import CANARY
from postsdb.serve import free_port, running_server
from test_serve import HOSTILE_ID, RICH_ID, RICH_SENTENCE, build_site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    port = free_port()
    # The first figure's image is served by Datasette itself, so the test can see it load.
    db = build_site(tmp_path_factory.mktemp("browser-site"), image=f"http://127.0.0.1:{port}/-/static/favicon.png")
    with running_server(db, port=port) as base:
        yield base


def test_article_page_shows_the_body_as_rendered_html(site, page, tmp_path):
    page.goto(f"{site}/posts/articles/{RICH_ID}", wait_until="load")
    assert page.locator("article h1").inner_text() == "富文本测试：图片与链接"
    meta = page.locator(".article-meta").inner_text()
    for text in ("2023-05-06", "样例新闻", "测试作者", "测试", "图片", "样例"):
        assert text in meta, text
    data_line = page.locator(".article-data").inner_text()  # for data users, after the article
    assert "2 图片 images" in data_line and "2 链接 links" in data_line
    paragraphs = page.locator(".article-body p")
    assert paragraphs.count() >= 3
    assert paragraphs.first.inner_text() == RICH_SENTENCE
    figure_image = page.locator(".article-body figure img")
    figure_image.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=figure_image.element_handle(), timeout=5000
    )
    assert page.locator(".article-body img").count() == 2
    assert page.locator(".article-body figcaption").inner_text() == "图一：图片说明文字"
    body_text = page.locator(".article-body").inner_text()
    assert "<p>" not in body_text and "<img" not in body_text
    assert page.locator(f'.article-data a[href="/posts/images?article_id={RICH_ID}"]').is_visible()
    assert page.locator(f'.article-data a[href="/posts/links?article_id={RICH_ID}"]').is_visible()
    shot = tmp_path / "article.png"  # kept in the test's tmp dir, to look at
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_canary_would_catch_a_script(page):
    # The check below is only worth something if a script that runs is seen.
    page.set_content("<script>window.__canary = 'control'</script><img src=x onerror=\"alert('control')\">")
    page.wait_for_timeout(200)
    assert page.evaluate(CANARY) == "control" and page.dialogs == ["control"]


HOSTILE_SQL = "select '<img src=x onerror=\"window.__canary=1;alert(1)\"><script>window.__canary=2</script>' as body_html"


@pytest.mark.parametrize(
    "path",
    [
        f"/posts/articles/{HOSTILE_ID}",
        "/posts/articles",
        f"/posts/article_bodies?article_id={HOSTILE_ID}",
        "/posts/feed",
        "/posts?sql=" + quote(HOSTILE_SQL),
    ],
    ids=["article", "articles-table", "bodies-table", "canned-query", "adhoc-sql"],
)
def test_hostile_posts_and_sql_run_nothing(site, page, path):
    page.goto(site + path, wait_until="load")
    page.wait_for_timeout(300)  # onerror/onload of failed images fire after load
    for link in page.locator(".article-body a, td a").all()[:40]:
        href = link.get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript:"), href
        if not href:  # a sanitized link: clicking it must do nothing
            link.click()
    page.locator(".article-meta, table, .article-list").first.hover()
    assert page.evaluate(CANARY) is None
    assert page.dialogs == []
    if "article_bodies" in path:
        assert page.locator("td.col-body_html p").first.inner_text() == "第一段"  # rendered, not escaped
    if "sql=" in path:
        assert "<img src=x onerror" in page.locator("td.col-body_html").inner_text()  # shown as text


NO_CHROMIUM_PLUGIN = """
def pytest_configure(config):
    import conftest
    conftest.chromium_path = lambda: None
"""


def test_without_chromium_the_browser_tests_skip(tmp_path):
    """README: the browser tests skip when chromium is missing; they do not error."""
    (tmp_path / "no_chromium.py").write_text(NO_CHROMIUM_PLUGIN, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_chromium", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-rs",
         f"{__file__}::test_the_canary_would_catch_a_script"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 skipped" in done.stdout and "no chromium" in done.stdout, done.stdout[-2000:]


def test_chromium_is_found_at_usr_bin_or_on_the_path(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "CHROMIUM", tmp_path / "no-such-chromium")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert conftest.chromium_path() is None
    on_path = tmp_path / "chromium"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert conftest.chromium_path() == on_path
