"""The revisions page, `/posts/articles/<id>/revisions` and `.json`, on real posts of data/
with edited versions at the same URL, and what the article page shows of relations (copies,
versions, related articles): served by the real Datasette app, and in Chromium."""

from __future__ import annotations

import re
import shutil
import sqlite3

import pytest

from postsdb.build import build
from postsdb.serve import running_server, write_inspect_file
from test_relations import DATE_LINE, PARAGRAPH, edited_revision, front_and_body, real_posts, retitled, traditional_copy
from test_serve import get_html, get_json, make_datasette

HOSTILE_TITLE = "<script>alert(1)</script> 标题 & 更多"


@pytest.fixture(scope="module")
def revised_db(tmp_path_factory):
    """Six real posts; the first has three versions: the original, one paragraph edited a
    year later, and a third with a hostile title and one more paragraph; the second has a
    copy in Traditional script at another URL."""
    folder = tmp_path_factory.mktemp("revised") / "posts"
    folder.mkdir()
    for path in real_posts(6):
        shutil.copy(path, folder / path.name)
    original = folder / real_posts(1)[0].name
    second = edited_revision(original, folder)
    text = second.read_text(encoding="utf-8")
    date = DATE_LINE.search(text).group(0).split(":", 1)[1].strip()
    third = retitled(text, title=HOSTILE_TITLE.replace('"', ""), date=str(int(date[:4]) + 1) + date[4:])
    last = max(PARAGRAPH.findall(front_and_body(third)[1]), key=len)
    added = last + "\n<p>新增的一段：&lt;img src=x onerror=alert(2)&gt;</p>"
    (folder / "zzz-third.md").write_text(third.replace(last, added, 1), encoding="utf-8")
    traditional_copy(folder / real_posts(2)[1].name, folder)
    db_path = folder.parent / "posts.db"
    build([folder], db_path)
    with sqlite3.connect(db_path) as conn:
        revised, single = (
            conn.execute("select article_id from article_revisions group by article_id having count(*) = 3").fetchone()[0],
            conn.execute("select id from articles where id not in (select article_id from article_revisions)").fetchone()[0],
        )
    return db_path, revised, single


@pytest.fixture(scope="module")
def ds(revised_db, tmp_path_factory):
    db_path = revised_db[0]
    return make_datasette(db_path, write_inspect_file(db_path, tmp_path_factory.mktemp("inspect") / "inspect.json"))


def texts(db_path, article):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(
            "select title, body_text from article_revisions where article_id = ? order by revision", (article,)
        ).fetchall()


def side(pieces, keep: str) -> str:
    return "".join(text for op, text in pieces if op in ("equal", keep))


async def test_the_json_twin_gives_each_consecutive_diff_that_rebuilds_both_versions(ds, revised_db):
    db_path, revised, _ = revised_db
    data = await get_json(ds, f"/posts/articles/{revised}/revisions.json")
    assert [r["revision"] for r in data["revisions"]] == [1, 2, 3]
    assert [(c["from"], c["to"]) for c in data["changes"]] == [(1, 2), (2, 3)]
    versions = texts(db_path, revised)
    for change, older, newer in zip(data["changes"], versions, versions[1:]):
        assert side(change["body"], "delete") == older[1] and side(change["body"], "insert") == newer[1]
        assert side(change["title"], "delete") == older[0] and side(change["title"], "insert") == newer[0]
        assert change["body_changed"]
    # A paragraph rewritten is a few pieces, not the whole text deleted and inserted again.
    edits = [text for op, text in data["changes"][0]["body"] if op != "equal"]
    assert sum(map(len, edits)) < len(versions[0][1]) / 2
    assert "此段已被编辑删改，原文不再可见" in edits  # as a whole: not cut into characters


async def test_the_page_marks_insertions_and_deletions_and_escapes_the_text(ds, revised_db):
    _, revised, _ = revised_db
    html = await get_html(ds, f"/posts/articles/{revised}/revisions")
    assert html.count('<section class="change"') == 2
    assert "<ins>此段已被编辑删改，原文不再可见</ins>" in html
    assert "<del>" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert f'href="/posts/articles/{revised}"' in html and f'href="/posts/articles/{revised}/revisions.json"' in html


async def test_one_version_is_said_and_unknown_ids_are_404(ds, revised_db):
    _, _, single = revised_db
    html = await get_html(ds, f"/posts/articles/{single}/revisions")
    assert "This article has one version only" in html
    data = await get_json(ds, f"/posts/articles/{single}/revisions.json")
    assert data["changes"] == [] and [version["revision"] for version in data["revisions"]] == [1]
    for path in (
        "/posts/articles/12345/revisions",
        "/posts/articles/12345/revisions.json",
        "/posts/articles/9999999999999999999/revisions.json",  # beyond 64 bits
        "/nope/articles/1/revisions",
    ):
        assert (await ds.client.get(path)).status_code == 404, path


def column(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute(sql, params)]


async def test_the_article_page_links_its_versions_and_its_copy_and_reads_related_articles(ds, revised_db):
    db_path, revised, single = revised_db
    html = await get_html(ds, f"/posts/articles/{revised}")
    assert f'<a href="/posts/articles/{revised}/revisions">版本 · Revisions (3)</a>' in html
    assert "/revisions" not in await get_html(ds, f"/posts/articles/{single}")

    with sqlite3.connect(db_path) as conn:
        article, copy = conn.execute("select article_id, copy_id from article_copies order by 1").fetchone()
    html = await get_html(ds, f"/posts/articles/{article}")
    copies = html[html.index("亦见于 · Also published at") :]
    assert f'href="/posts/articles/{copy}"' in copies.split("</section>")[0]
    related = html[html.index("相关文章 · Related articles") :].split("</section>")[0]
    listed = [int(i) for i in re.findall(r'href="/posts/articles/(\d+)"', related)]
    stored = column(db_path, "select related_id from related_articles where article_id = ? order by rank", (article,))
    assert listed == stored and copy not in listed and article not in listed


async def test_the_cross_posted_query_lists_each_pair_once_earlier_first(ds, revised_db):
    db_path = revised_db[0]
    rows = await get_json(ds, "/posts/cross_posted.json?_shape=array")
    with sqlite3.connect(db_path) as conn:
        pairs = conn.execute("select article_id, copy_id, overlap from article_copies").fetchall()
        published = dict(conn.execute("select id, published from articles"))
    assert len(rows) == len(pairs) // 2 == 1
    (row,) = rows
    assert (row["article_id"], row["copy_id"], row["overlap"]) in pairs
    assert published[row["article_id"]] <= published[row["copy_id"]]
    assert row["copy_title"] == "轉載：另一個標題"
    both = await get_json(ds, f"/posts/article_copies.json?_shape=array&article_id={row['copy_id']}")
    assert [(r["article_id"], r["copy_id"]) for r in both] == [(row["copy_id"], row["article_id"])]


@pytest.fixture(scope="module")
def revised_site(revised_db):
    with running_server(revised_db[0]) as base:
        yield base


def test_the_diff_reads_on_a_phone(revised_site, revised_db, page, tmp_path):
    _, revised, _ = revised_db
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{revised_site}/posts/articles/{revised}/revisions", wait_until="load")
    inserted = page.locator(".diff-body ins", has_text="此段已被编辑删改")
    inserted.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "revisions-phone.png"))
    assert inserted.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("getComputedStyle(document.querySelector('.diff-body del')).textDecorationLine") == "line-through"
    assert errors == []  # no script or style refused by the page's policy
