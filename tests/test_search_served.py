"""Chinese search through the served site: the search box, its .json twin, the canned query."""

from __future__ import annotations

import re

import sqlite3
import time
from urllib.parse import quote, unquote

import httpx
import pytest

from postsdb.search import MAX_QUERY_CHARS, MAX_QUERY_TERMS, QUERY_LIMIT_MESSAGE, normalize
from test_serve import get_html, get_json, make_datasette

SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"


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
def corpus_ds_files(corpus_db, data_inspect):
    return corpus_db, data_inspect


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
    assert seed_title in re.sub(r"<[^>]+>", "", page)
    assert "<mark>腾讯</mark>" in page  # the Traditional query marks the Simplified title
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
    assert {"id", "title", "published_date", "source", "snippet", "title_html"} <= set(rows[0])
    nothing = await get_json(ds, f"/posts/search.json?q={quote('“”')}&_shape=array")
    assert nothing == []


@pytest.mark.parametrize("path", ["/posts/search?q=" + quote("騰訊"), "/posts/latest_by_source?source=iYouPort", "/posts/feed"])
async def test_a_reader_list_is_titled_by_what_was_asked_never_its_sql(corpus_site, path):
    files, _, _ = corpus_site
    page = await get_html(make_datasette(*files), path)
    title = re.search(r"<title>(.*?)</title>", page, re.S)[1]
    assert "select" not in title.lower() and len(title) < 80, title
    for value in re.findall(r"=([^&]+)", path):
        assert unquote(value) in title, (title, value)  # what was asked, as asked


async def test_search_plugin_is_loaded(corpus_site):
    files, _, _ = corpus_site
    ds = make_datasette(*files)
    names = {plugin["name"] for plugin in await get_json(ds, "/-/plugins.json")}
    assert "cjk_search.py" in names


# --- limits, on the real `build_db.py serve` of data/ ----------------------------------


@pytest.fixture(scope="module")
def data_client(data_site):
    with httpx.Client(base_url=data_site, trust_env=False, timeout=30) as client:
        yield client


def timed(client: httpx.Client, path: str, params: dict) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    return response, time.perf_counter() - started


@pytest.mark.parametrize(
    "path, params",
    [
        ("/posts/articles.json", {"_search": " ".join(["的"] * 300), "_shape": "array"}),
        ("/posts/articles", {"_search": " ".join(["的"] * 300)}),
        ("/posts/articles.json", {"_search": "腾讯" * (MAX_QUERY_CHARS // 2 + 1)}),
        ("/posts/articles.json", {"_search_title": " ".join(["的"] * (MAX_QUERY_TERMS + 1))}),
        ("/posts/search.json", {"q": " ".join(["的"] * 300), "_shape": "array"}),
        ("/posts/search", {"q": " ".join(["的"] * 300)}),
    ],
)
def test_an_over_long_search_is_refused_at_once_and_says_why(data_client, path, params):
    response, took = timed(data_client, path, params)
    print(f"\n{path} ({len(next(iter(params.values())))} characters): {response.status_code} in {took * 1000:.1f} ms")
    assert response.status_code == 400, response.text[:300]
    if path.endswith(".json"):
        error = response.json()
        assert (error["ok"], error["status"], error["error"]) == (False, 400, QUERY_LIMIT_MESSAGE)
        assert response.headers["access-control-allow-origin"] == "*"
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert QUERY_LIMIT_MESSAGE in response.text


def test_searches_within_the_limits_are_answered(data_client):
    at_the_limit = " ".join(["腾讯"] + ["的"] * (MAX_QUERY_TERMS - 1))
    found = {}
    for query in ("騰訊", at_the_limit, "腾" * MAX_QUERY_CHARS):
        response, took = timed(data_client, "/posts/articles.json", {"_search": query, "_shape": "array"})
        print(f"\n{len(query)} characters, {len(query.split())} words: {response.status_code} in {took * 1000:.1f} ms")
        assert response.status_code == 200, response.text[:300]
        found[query] = [row["title"] for row in response.json()]
    assert SEED_TITLE in found["騰訊"] and found[at_the_limit] == found["騰訊"]
    rows = data_client.get("/posts/search.json", params={"q": "騰訊 收费", "_shape": "array"}).json()
    assert [row["title"] for row in rows][0] == SEED_TITLE
    page = data_client.get("/posts/articles", params={"_search": "騰訊"})
    assert page.status_code == 200 and SEED_TITLE in re.sub(r"<[^>]+>", "", page.text)
