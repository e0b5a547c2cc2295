"""What the speed work changed in what readers and data users get: feeds sanitize bodies
themselves (the queries return them as stored), and the stored HTML column is rendered by
datasette-render-html."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from postsdb.serve import PLUGINS, write_inspect_file
from test_serve import make_datasette

ATOM = {"a": "http://www.w3.org/2005/Atom"}
HOSTILE = '<p>正文</p><script>alert(1)</script><div onclick="alert(2)"><figure><img src="https://example.com/a.png"></figure></div>'


@pytest.fixture(scope="module")
def hostile_db(corpus_db, tmp_path_factory):
    """The sample, with its newest article's body replaced by HTML the build never writes."""
    folder = tmp_path_factory.mktemp("hostile-feed")
    db = folder / "posts.db"
    shutil.copy(corpus_db, db)
    with sqlite3.connect(db) as conn:
        (newest,) = conn.execute("select id from articles order by published desc limit 1").fetchone()
        conn.execute("update article_bodies set body_html = ? where article_id = ?", (HOSTILE, newest))
    return db, write_inspect_file(db, folder / "inspect.json"), newest


@pytest.fixture
def ds(hostile_db):
    db, inspect, _ = hostile_db
    return make_datasette(db, inspect)


async def newest_entry(ds, path: str) -> str:
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text[:500]
    entries = ET.fromstring(response.content).findall("a:entry", ATOM)
    assert entries
    newest = max(entries, key=lambda e: e.find("a:updated", ATOM).text)
    return newest.find("a:content", ATOM).text


@pytest.mark.parametrize("path", ["/posts/feed.atom", "/posts/latest_by_source.atom?source={source}"])
async def test_a_feed_puts_a_body_through_the_allow_list_and_keeps_its_figures(ds, hostile_db, path):
    db, _, newest = hostile_db
    with sqlite3.connect(db) as conn:
        (source,) = conn.execute("select source from articles where id = ?", (newest,)).fetchone()
    for _ in range(2):  # the second time, the kept sanitized body
        content = await newest_entry(ds, path.format(source=source))
        assert "<script" not in content and "onclick" not in content and "alert(1)" not in content
        assert re.search(r"<figure><img [^>]*src=\"https://example.com/a.png\"", content), content
        assert "<p>正文</p>" in content


async def test_the_feed_query_json_gives_the_body_as_stored(ds, hostile_db):
    _, _, newest = hostile_db
    rows = (await ds.client.get("/posts/feed.json?_shape=array")).json()
    by_id = {row["id"]: row for row in rows}
    assert by_id[newest]["atom_content_html"] == HOSTILE  # data, as /posts/article_bodies.json gives it


def test_kept_bodies_are_bounded_and_right():
    spec = importlib.util.spec_from_file_location("atom_feeds_under_test", PLUGINS / "atom_feeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    kept = module.Sanitized(size=2)
    bodies = [f"<p>{n}</p><script>x</script>" for n in range(3)]
    assert [kept(b) for b in bodies] == [f"<p>{n}</p>" for n in range(3)]
    assert len(kept.kept) == 2
    assert kept(bodies[0]) == "<p>0</p>" and kept(None) == ""
