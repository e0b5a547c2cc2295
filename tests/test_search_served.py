"""Chinese search through the served site: the search box, its .json twin, the canned query."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

from postsdb.search import normalize
from test_serve import get_html, get_json, make_datasette


@pytest.fixture(scope="module")
def corpus_site(corpus_ds_files):
    db, _ = corpus_ds_files
    with sqlite3.connect(db) as conn:
        texts = {
            i: normalize(f"{title}\n{text}")
            for i, title, text in conn.execute(
                "select id, title, body_text from articles join article_bodies on article_id = id"
            )
        }
        seed = conn.execute("select id, title from articles where title like '腾讯捐%'").fetchone()
    return corpus_ds_files, texts, seed


@pytest.fixture(scope="module")
def corpus_ds_files(corpus_db, tmp_path_factory):
    from postsdb.serve import write_inspect_file

    return corpus_db, write_inspect_file(corpus_db, tmp_path_factory.mktemp("search-inspect") / "inspect.json")


async def searched_ids(ds, query: str) -> set[int]:
    rows = await get_json(ds, f"/posts/articles.json?_search={quote(query)}&_shape=array&_col=id&_size=max")
    return {row["id"] for row in rows}


@pytest.mark.parametrize("query", ["微信", "的", "香港", "互联网", "應用程序", "騰訊", "vpn", "香港 微信"])
async def test_search_json_means_contains(corpus_site, query):
    files, texts, _ = corpus_site
    ds = make_datasette(*files)
    truth = {i for i, text in texts.items() if all(normalize(t) in text for t in query.split())}
    assert truth, "pick a query the corpus contains"
    assert await searched_ids(ds, query) == truth


async def test_traditional_query_finds_simplified_article(corpus_site):
    files, _, (seed_id, seed_title) = corpus_site
    ds = make_datasette(*files)
    assert seed_id in await searched_ids(ds, "騰訊")
    page = await get_html(ds, f"/posts/articles?_search={quote('騰訊')}")
    assert seed_title in page
    assert 'name="_search"' in page and 'value="騰訊"' in page


@pytest.mark.parametrize("query", ['"', "(", ")", "*", "AND", "NOT", 'a"b', "NEAR(x", "：", "-", "^微信"])
async def test_punctuation_never_errors(corpus_site, query):
    files, _, _ = corpus_site
    ds = make_datasette(*files)
    response = await ds.client.get(f"/posts/articles.json?_search={quote(query)}&_shape=array")
    assert response.status_code == 200, response.text[:300]
    page = await ds.client.get(f"/posts/articles?_search={quote(query)}")
    assert page.status_code == 200


async def test_canned_search_query(corpus_site):
    files, texts, _ = corpus_site
    ds = make_datasette(*files)
    rows = await get_json(ds, f"/posts/search.json?q={quote('騰訊')}&_shape=array")
    truth = {i for i, text in texts.items() if normalize("騰訊") in text}
    assert {row["id"] for row in rows} == truth
    assert {"id", "title", "published", "source"} <= set(rows[0])
    nothing = await get_json(ds, f"/posts/search.json?q={quote('“”')}&_shape=array")
    assert nothing == []


async def test_search_plugin_is_loaded(corpus_site):
    files, _, _ = corpus_site
    ds = make_datasette(*files)
    names = {plugin["name"] for plugin in await get_json(ds, "/-/plugins.json")}
    assert "cjk_search.py" in names
