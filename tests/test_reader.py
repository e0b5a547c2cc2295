"""A reader's way in, through the real Datasette app on the real sample: search that shows
why it matched and ranks by relevance, related articles, canned queries that link their
articles, and feeds whose entries a feed reader renders as HTML."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

from postsdb.build import build
from postsdb.parse import article_id as id_of_url
from postsdb.related import related_ids
from postsdb.search import MAX_QUERY_CHARS, MAX_QUERY_TERMS
from postsdb.snippet import highlight, snippet
from test_serve import QUERIES, get_html, get_json, make_datasette, write_post

ATOM = {"a": "http://www.w3.org/2005/Atom"}
SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"


@pytest.fixture(scope="module")
def sample(corpus_db, data_inspect):
    return corpus_db, data_inspect


@pytest.fixture
def ds(sample):
    return make_datasette(*sample)


def titles(db) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select id, title from articles order by id").fetchall()


# --- snippets ------------------------------------------------------------------------


def test_snippet_marks_across_scripts_and_escapes_everything_else():
    text = "前文<b>粗体</b>。中国互联网巨头騰訊公司宣布……全角ＶＰＮ服务&用户"
    got = snippet(text, "腾讯 vpn")
    assert "<mark>騰訊</mark>" in got and "<mark>ＶＰＮ</mark>" in got
    assert "&lt;b&gt;粗体&lt;/b&gt;" in got and "&amp;用户" in got
    assert re.sub(r"</?mark>", "", got).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_snippet_is_about_100_characters_around_the_first_match():
    text = "甲" * 500 + "香港" + "乙" * 500
    got = snippet(text, "香港")
    assert got.startswith("…") and got.endswith("…")
    plain = re.sub(r"</?mark>|…", "", got)
    assert len(plain) == 100 and "香港" in plain
    assert plain.index("香港") == 33  # a third of the window before the match


def test_offsets_stay_honest_when_normal_forms_change_length():
    # "…" is "..." and "ﬁ" is "fi" in NFKC: what follows them must still be marked exactly.
    text = "……ﬁ……騰訊……微信"
    assert highlight(text, "腾讯 微信") == "……ﬁ……<mark>騰訊</mark>……<mark>微信</mark>"


# --- search by relevance ---------------------------------------------------------------


async def test_searching_an_exact_title_puts_that_article_first(ds, corpus_db):
    checked = 0
    for article_id, title in titles(corpus_db):
        if len(title.split()) > MAX_QUERY_TERMS or len(title) > MAX_QUERY_CHARS:
            continue
        rows = await get_json(ds, f"/posts/search.json?_shape=array&q={quote(title)}")
        assert rows and rows[0]["id"] == article_id, (title, [r["title"] for r in rows[:3]])
        checked += 1
    assert checked > 140


async def test_every_search_hit_says_why_it_matched(ds):
    rows = await get_json(ds, "/posts/search.json?_shape=array&q=%E9%A8%B0%E8%A8%8A")  # 騰訊
    assert rows and rows[0]["title"] == SEED_TITLE
    assert rows[0]["title_html"].startswith("<mark>腾讯</mark>")
    for row in rows:
        assert "<mark>" in row["snippet"] or "<mark>" in row["title_html"], row
    page = await get_html(ds, "/posts/search?q=%E9%A8%B0%E8%A8%8A")
    assert page.count('<li class="article-item" lang="') == len(rows)
    assert f'href="/posts/articles/{rows[0]["id"]}"><mark>腾讯</mark>' in page
    assert 'href="/posts/articles?_search=%E9%A8%B0%E8%A8%8A"' in page  # newest first, one click away


async def test_several_terms_are_each_marked(ds):
    rows = await get_json(ds, "/posts/search.json?_shape=array&q=%E9%A8%B0%E8%A8%8A%20%E6%94%B6%E8%B4%B9")  # 騰訊 收费
    assert rows[0]["title"] == SEED_TITLE
    assert "<mark>腾讯</mark>" in rows[0]["title_html"] and "<mark>收费</mark>" in rows[0]["title_html"]


async def test_table_search_shows_snippets_and_marked_titles(ds):
    page = await get_html(ds, "/posts/articles?_search=%E9%A6%99%E6%B8%AF")  # 香港
    items = page.count('<li class="article-item" lang="')
    lines = re.findall(r'<p class="article-item-line">(.*?)</p>', page, re.S)
    assert items > 5 and len(lines) == items
    assert all("<mark>" in line for line in lines[:items]), [l for l in lines if "<mark>" not in l][:2]


async def test_no_cell_merges_the_metadata(ds, monkeypatch):
    # A page of 50 articles is 800 cells, and datasette-render-html asks for its settings on
    # each; each merge of the metadata costs, so they are remembered (plugins/metadata_memo.py).
    await get_html(ds, "/posts/articles?_size=50")  # the first page's look-ups are remembered
    merges = []
    original = ds.metadata
    monkeypatch.setattr(ds, "metadata", lambda *args, **kwargs: merges.append(args) or original(*args, **kwargs))
    page = await get_html(ds, "/posts/articles?_size=50&_sort=title")
    assert page.count('<li class="article-item" lang="') == 50
    assert len(merges) < 50, sorted({args[0] for args in merges})


async def test_a_plugin_that_writes_into_its_settings_gets_them_fresh(ds):
    # datasette-dashboards adds its filters to the config it is given: a remembered answer
    # would carry one request's changes into the next (plugins/metadata_memo.py).
    assert (await ds.client.get("/-/dashboards/archive")).status_code == 200
    first = ds.plugin_config("datasette-dashboards")
    first["archive"]["title"] = "changed by a request"
    first["archive"]["filters"] = {"x": {}}
    again = ds.plugin_config("datasette-dashboards")
    assert again["archive"]["title"] != "changed by a request" and "x" not in (again["archive"].get("filters") or {})
    assert ds.plugin_config("datasette-render-html", database="posts", table="article_bodies") is ds.plugin_config(
        "datasette-render-html", database="posts", table="article_bodies"
    )  # the cell renderers' settings, read on every cell, are remembered


async def test_made_up_table_names_do_not_grow_the_remembered_answers(ds):
    # Each URL below asks for the permission of a table that does not exist: the answers kept
    # stay bounded (plugins/metadata_memo.py KEPT), and the real pages keep theirs.
    for n in range(300):
        assert (await ds.client.get(f"/posts/no_such_table_{n}/1")).status_code in (400, 404)
    kept = {name: len(answers) for name, answers in vars(ds).items() if name.startswith("_remembered_")}
    assert kept and max(kept.values()) <= 256, kept
    await get_html(ds, "/posts/articles?_size=50")
    assert ("posts", "articles") in {key[1] for key in ds._remembered__table_permission_allows}


# --- related articles --------------------------------------------------------------------


async def test_article_pages_list_related_articles_never_themselves(ds, corpus_db):
    with sqlite3.connect(corpus_db) as conn:
        sample = conn.execute("select id from articles order by id limit 20").fetchall()
        neist = conn.execute("select id from articles where path like 'posts/2020-03-21-%'").fetchone()[0]
    for (article_id,) in sample + [(neist,)]:
        page = await get_html(ds, f"/posts/articles/{article_id}")
        section = page.split('<section class="article-related">', 1)[1].split("</section>", 1)[0]
        linked = [int(i) for i in re.findall(r'class="article-item-title" href="/posts/articles/(\d+)"', section)]
        # Up to five: an article whose text is a line (a link and a title) relates to fewer.
        assert 1 <= len(linked) <= 5 and article_id not in linked and len(set(linked)) == len(linked), (article_id, linked)


async def test_related_articles_share_topics_first(ds, corpus_db):
    # An iYouPort article about surveillance: its first neighbours carry its topics too.
    with sqlite3.connect(corpus_db) as conn:
        article_id, tags = conn.execute("select id, tags from articles where path like 'posts/2018-06-26-%'").fetchone()
        page = await get_html(ds, f"/posts/articles/{article_id}")
        section = page.split('<section class="article-related">', 1)[1]
        first = int(re.search(r'href="/posts/articles/(\d+)"', section).group(1))
        (their_tags,) = conn.execute("select tags from articles where id = ?", (first,)).fetchone()
    assert set(json.loads(tags)) & set(json.loads(their_tags))


def test_related_articles_come_from_the_whole_texts_when_the_leads_share_nothing(corpus_db, tmp_path):
    # An English piece among Chinese ones; then the same from a database built before the
    # lead index existed (or with it dropped): still five neighbours, never itself.
    english = "A Border Town’s Second Gamble"
    copy = tmp_path / "posts.db"
    shutil.copyfile(corpus_db, copy)
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        (article_id,) = conn.execute("select id from articles where title = ?", (english,)).fetchone()
        found = related_ids(conn, article_id, english)
        conn.execute("drop table related_fts")
        without_leads = related_ids(conn, article_id, english)
    for ids in (found, without_leads):
        assert len(set(ids)) == 5 and article_id not in ids, ids


def test_rarer_topics_count_more(tmp_path):
    # The article has two common topics and a rare one. Four others share both common
    # topics (2 of them, each on 5 articles: 2/5); one shares only the rare topic (on 2
    # articles: 1/2). The rare one comes first, though it shares fewer topics.
    folder = tmp_path / "posts"
    folder.mkdir()
    common, rare = ["常见甲", "常见乙"], "稀有"
    posts = {"main": common + [rare], "rare": [rare], **{f"common-{n}": common for n in range(4)}}
    for n, (name, tags) in enumerate(posts.items()):
        write_post(
            folder, f"2021-01-0{n + 1}-{name}.md", title=f"文章{n}", date=f"2021-01-0{n + 1}T00:00:00Z",
            url=f"https://example.com/{name}", author="作者", tags=tags, categories=["样例"], body=f"<div><p>第{n}篇。</p></div>\n",
        )  # fmt: skip
    db = tmp_path / "posts.db"
    build([folder], db)
    ids = {name: id_of_url(f"https://example.com/{name}") for name in posts}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        found = related_ids(conn, ids["main"], "文章0")
    assert found[0] == ids["rare"], found
    assert set(found[1:]) == {ids[f"common-{n}"] for n in range(4)}


# --- canned queries and feeds ----------------------------------------------------------


async def test_canned_queries_that_list_articles_link_each_title(ds, corpus_db):
    ids = {i for i, _ in titles(corpus_db)}
    for name, params in (("most_images", ""), ("latest_by_source", "source=Matters"), ("feed", ""), ("search", "q=%E5%BE%AE%E4%BF%A1")):
        page = await get_html(ds, f"/posts/{name}?{params}")
        linked = [int(i) for i in re.findall(r'class="article-item-title" href="/posts/articles/(\d+)"', page)]
        rows = await get_json(ds, f"/posts/{name}.json?_shape=array&{params}")
        assert linked and linked == [row["id"] for row in rows] and set(linked) <= ids, name
        assert "<table" not in page, name  # a list a reader can read, not a grid


class TextAndTags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def feed_entries(body: bytes) -> list[str]:
    """Each entry's content, as a feed reader reads it: XML first, then the content as HTML."""
    feed = ET.fromstring(body)
    contents = []
    for entry in feed.findall("a:entry", ATOM):
        content = entry.find("a:content", ATOM)
        assert content is not None and content.get("type") == "html"
        contents.append(content.text or "")
    return contents


@pytest.mark.parametrize("path", ["/posts/feed.atom", "/posts/latest_by_source.atom?source=Nei.st"])
async def test_every_feed_entry_is_html_a_reader_renders(ds, path):
    response = await ds.client.get(path)
    assert response.status_code == 200
    entries = feed_entries(response.content)
    assert len(entries) >= 20
    tags = set()
    for content in entries:
        parser = TextAndTags()
        parser.feed(content)
        text = "".join(parser.text)
        assert not re.search(r"</?(div|p|figure|figcaption|img|a)\b", text), text[:300]  # no markup shown as text
        tags.update(parser.tags)
        assert "script" not in parser.tags and "onerror" not in content
    assert {"p", "figure", "img"} <= tags, tags


def test_every_atom_query_is_tested():
    atom = {name for name, query in QUERIES.items() if "atom_content_html" in query["sql"]}
    assert atom == {"feed", "latest_by_source"}
