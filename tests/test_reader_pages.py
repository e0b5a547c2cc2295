"""The reader's pages of our own, through the real Datasette app: the front page, the article
page (简/繁, language, share cards, copies, revisions, related), the feeds and the sitemaps.
Pages are read with an HTML parser, feeds and sitemaps with an XML parser."""

from __future__ import annotations

import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
from datasette.plugins import pm
from selectolax.lexbor import LexborHTMLParser

from postsdb.script import language
from postsdb.serve import write_inspect_file
from test_robots import google_allows
from test_serve import HOSTILE_ID, RICH_ID, RICH_SENTENCE, SECOND_ID, get_html, make_datasette

ATOM = {"a": "http://www.w3.org/2005/Atom"}
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


@pytest.fixture
def corpus_ds(corpus_db, data_inspect):
    return make_datasette(corpus_db, data_inspect)


@pytest.fixture
def ds(site_db, site_inspect):  # noqa: F811
    return make_datasette(site_db, site_inspect)


def parse(html: str):
    return LexborHTMLParser(html)


def meta_properties(tree) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for node in tree.css("meta[property], meta[name]"):
        key = node.attributes.get("property") or node.attributes.get("name")
        found.setdefault(key, []).append(node.attributes.get("content"))
    return found


def json_ld(tree) -> dict:
    (script,) = tree.css('script[type="application/ld+json"]')
    return json.loads(script.text())


def query(db, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def assert_reader_headers(response) -> None:
    control = {part.strip() for part in response.headers["cache-control"].split(",")}
    assert "public" in control and any(part.startswith("s-maxage=") and int(part[9:]) > 0 for part in control), control
    assert response.headers["content-type"].startswith("text/html")


# --- the front page -------------------------------------------------------------------


async def test_front_page_puts_search_first_then_the_newest(corpus_ds, corpus_db):
    response = await corpus_ds.client.get("/")
    assert response.status_code == 200
    assert_reader_headers(response)
    tree = parse(response.text)
    content = tree.css_first("section.content > div")
    first_block = next(node for node in content.traverse() if node.tag in {"form", "ol", "nav", "section"})
    assert first_block.tag == "form" and first_block.attributes["action"] == "/posts/search"
    assert first_block.css_first("input[type=search]").attributes["name"] == "q"
    newest = [int(a.attributes["href"].rsplit("/", 1)[1]) for a in tree.css(".front-newest .article-item-title")]
    expected = [row[0] for row in query(corpus_db, "select id from articles order by published desc limit 20")]
    assert newest == expected
    first = tree.css_first(".front-newest .article-item")
    assert first.css_first("time") is not None and first.css_first(".article-item-source") is not None
    assert first.css_first(".article-item-line").text().strip()


async def test_front_page_offers_ways_in_and_a_block_for_data_users(corpus_ds, corpus_db):
    tree = parse(await get_html(corpus_ds, "/"))
    sources = {a.text(): a.attributes["href"] for a in tree.css(".front-sources a")}
    assert set(sources) == {row[0] for row in query(corpus_db, "select distinct source from articles")}
    assert sources["Matters"] == "/posts/articles?source=Matters"
    topics = [a.text() for a in tree.css(".front-topics a")]
    top = query(corpus_db, "select tags.name from article_tags join tags on tags.id = tag_id group by tags.id order by count(*) desc, tags.name limit 3")
    assert topics[:3] == [row[0] for row in top]
    years = [int(a.text()) for a in tree.css(".front-years a")]
    assert years == sorted({row[0] for row in query(corpus_db, "select year from articles")}, reverse=True)
    links = {a.attributes["href"] for a in tree.css(".front-links a")}
    assert {"/-/dashboards/archive", "/posts/feed", "/posts/feed.atom", "/posts.db"} <= links
    data = {urlsplit(a.attributes["href"]).path for a in tree.css(".front-data a")}
    assert {"/posts", "/posts/articles.json", "/posts.db"} <= data
    for path in ("/posts", "/posts/articles.json?_shape=array&_size=10"):  # what they link to works
        assert (await corpus_ds.client.get(path)).status_code == 200
    assert (await corpus_ds.client.get("/.json")).status_code == 200  # Datasette's index, as JSON, stays


async def test_front_page_lines_carry_their_language(corpus_ds, corpus_db):
    tree = parse(await get_html(corpus_ds, "/"))
    assert tree.css_first("html").attributes["lang"] == "zh-Hans"
    for item in tree.css(".front-newest .article-item"):
        item_id = int(item.css_first(".article-item-title").attributes["href"].rsplit("/", 1)[1])
        ((title, lead),) = query(corpus_db, "select title, substr(body_text, 1, 120) from articles join article_bodies on article_id = id where id = ?", (item_id,))
        assert item.attributes["lang"] == language(f"{title}\n{lead}"), title
    assert {item.attributes["lang"] for item in tree.css(".front-newest .article-item")} >= {"zh-Hant", "en"}


# --- the article page -----------------------------------------------------------------


async def test_article_page_is_the_article_and_one_line_for_data_users(ds):
    response = await ds.client.get(f"/posts/articles/{RICH_ID}")
    assert response.status_code == 200
    assert_reader_headers(response)
    tree = parse(response.text)
    assert tree.css_first("article h1").text() == "富文本测试：图片与链接"
    assert tree.css_first(".article-body p").text() == RICH_SENTENCE
    assert tree.css("table") == [] and "Links from other tables" not in response.text  # no raw row
    data = {a.attributes["href"] for a in tree.css(".article-data a")}
    assert data == {
        f"/posts/articles/{RICH_ID}.json",
        f"/posts/images?article_id={RICH_ID}",
        f"/posts/links?article_id={RICH_ID}",
        f"/posts/articles?id={RICH_ID}",
    }
    for path in data:
        assert (await ds.client.get(path)).status_code == 200, path
    row = (await ds.client.get(f"/posts/articles/{RICH_ID}.json?_shape=array")).json()  # still Datasette's
    assert row[0]["id"] == RICH_ID and row[0]["title"] == "富文本测试：图片与链接"


@pytest.mark.parametrize("missing", ["1", "99999999999999999999999", "-5", "9" * 5000])
async def test_an_unknown_article_is_a_404_page(ds, missing):
    response = await ds.client.get(f"/posts/articles/{missing}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert f"No article has the id {missing}" in response.text


async def test_a_bad_script_is_a_400_naming_it(ds):
    response = await ds.client.get(f"/posts/articles/{RICH_ID}?script=latin")
    assert response.status_code == 400 and "script must be one of hans, hant" in response.text


async def test_share_cards_and_json_ld_describe_the_article(ds):
    tree = parse(await get_html(ds, f"/posts/articles/{RICH_ID}"))
    meta = meta_properties(tree)
    assert meta["og:type"] == ["article"] and meta["og:title"] == ["富文本测试：图片与链接"]
    assert meta["og:description"][0].startswith(RICH_SENTENCE)
    assert meta["article:published_time"] == ["2023-05-06T07:08:09Z"]
    assert meta["og:url"] == [f"http://localhost/posts/articles/{RICH_ID}"]
    data = json_ld(tree)
    assert data["@type"] == "NewsArticle" and data["headline"] == "富文本测试：图片与链接"
    assert data["datePublished"] == "2023-05-06T07:08:09Z"
    assert data["author"] == {"@type": "Person", "name": "测试作者"}
    assert data["publisher"]["name"] == "样例新闻"
    assert data["isBasedOn"] == "https://news.example.com/2023/05/rich"
    assert tree.css_first('link[rel="canonical"]').attributes["href"] == f"http://localhost/posts/articles/{RICH_ID}"


async def test_a_hostile_title_cannot_break_out_of_the_json_ld(ds):
    page = await get_html(ds, f"/posts/articles/{HOSTILE_ID}")
    data = json_ld(parse(page))
    assert data["headline"] == "<script>window.__canary='title'</script>恶意标题"  # whole, as text
    assert "<script>window.__canary" not in page


async def test_simplified_or_traditional_on_demand(corpus_ds, corpus_db):
    ((matters,),) = query(corpus_db, "select id from articles where source = 'Matters' order by published desc limit 1")
    original = parse(await get_html(corpus_ds, f"/posts/articles/{matters}"))
    response = await corpus_ds.client.get(f"/posts/articles/{matters}?script=hans")
    assert response.status_code == 200
    assert_reader_headers(response)
    converted = parse(response.text)
    assert original.css_first("html").attributes["lang"] == "zh-Hant"
    assert converted.css_first("html").attributes["lang"] == "zh-Hans"
    assert converted.css_first("article").attributes["lang"] == "zh-Hans"
    title, title_hans = original.css_first("h1").text(), converted.css_first("h1").text()
    assert title != title_hans and language(title_hans) != "zh-Hant"
    body, body_hans = original.css_first(".article-body"), converted.css_first(".article-body")
    assert body.text() != body_hans.text() and len(body.text()) == len(body_hans.text())
    shape = [(n.tag, n.attributes) for n in body.traverse() if n.tag != "-text"]
    assert shape == [(n.tag, n.attributes) for n in body_hans.traverse() if n.tag != "-text"]  # markup, URLs as they were
    # The original is the default, and marked as such; each choice is a plain link.
    choices = original.css(".article-script a")
    assert [(a.text(), a.attributes["href"]) for a in choices] == [
        ("繁體", f"/posts/articles/{matters}"),
        ("简体", f"/posts/articles/{matters}?script=hans"),
    ]
    assert "aria-current" in choices[0].attributes and "原文" in original.css_first(".article-script").text()
    assert "aria-current" in converted.css(".article-script a")[1].attributes
    canonical = converted.css_first('link[rel="canonical"]').attributes["href"]
    assert canonical == f"http://localhost/posts/articles/{matters}"


async def test_an_english_article_says_so_and_offers_no_conversion(corpus_ds, corpus_db):
    ((english,),) = query(corpus_db, "select id from articles where title = 'How Will China Shape Global Governance?'")
    tree = parse(await get_html(corpus_ds, f"/posts/articles/{english}"))
    assert tree.css_first("html").attributes["lang"] == "en" and tree.css_first("article").attributes["lang"] == "en"
    assert tree.css(".article-script a") == []


RELATION_TABLES = ("article_copies", "article_revisions", "related_articles")


def with_relations(db, tmp_path, drop: bool = False):
    """A copy of `db` whose relation tables say what the test needs: RICH and SECOND copies
    of each other, RICH with three revisions, and HOSTILE as RICH's one related article.
    With `drop`, a copy without those tables, as a database built before them."""
    copy = tmp_path / "posts.db"
    shutil.copy(db, copy)
    with sqlite3.connect(copy) as conn:
        for table in RELATION_TABLES:
            conn.execute(f"{'drop table' if drop else 'delete from'} {table}")
        if not drop:
            conn.executemany("insert into article_copies values (?, ?, 0.9)", [(RICH_ID, SECOND_ID), (SECOND_ID, RICH_ID)])
            conn.executemany(
                "insert into article_revisions select id, ?, path, published, title, '', '', sha256 from articles where id = ?",
                [(n, RICH_ID) for n in (1, 2, 3)],
            )
            conn.execute("insert into related_articles values (?, 1, ?, 1.0)", (RICH_ID, HOSTILE_ID))
    conn.close()
    return copy, write_inspect_file(copy, tmp_path / "inspect.json")


async def test_copies_revisions_and_related_come_from_their_tables(site_db, tmp_path):  # noqa: F811
    ds = make_datasette(*with_relations(site_db, tmp_path))
    tree = parse(await get_html(ds, f"/posts/articles/{RICH_ID}"))
    copies = tree.css(".article-copies li")
    assert len(copies) == 1 and copies[0].css_first("a").attributes["href"] == f"/posts/articles/{SECOND_ID}"
    assert "亦见于 · Also published at" in tree.css_first(".article-copies h2").text()
    revisions = tree.css_first(".article-revisions a")
    assert revisions.attributes["href"] == f"/posts/articles/{RICH_ID}/revisions" and revisions.text() == "版本 · Revisions (3)"
    related = [a.attributes["href"] for a in tree.css(".article-related .article-item-title")]
    assert related == [f"/posts/articles/{HOSTILE_ID}"]
    second = parse(await get_html(ds, f"/posts/articles/{SECOND_ID}"))
    assert second.css_first(".article-revisions") is None  # one version: no link
    assert second.css(".article-related .article-item-title") == []  # the table has none for it


async def test_without_the_relation_tables_related_articles_are_found_at_request_time(site_db, tmp_path):
    ds = make_datasette(*with_relations(site_db, tmp_path, drop=True))
    tree = parse(await get_html(ds, f"/posts/articles/{RICH_ID}"))
    assert tree.css_first(".article-copies") is None and tree.css_first(".article-revisions") is None
    related = [a.attributes["href"] for a in tree.css(".article-related .article-item-title")]
    assert f"/posts/articles/{SECOND_ID}" in related and f"/posts/articles/{RICH_ID}" not in related


# --- feeds, languages, discovery ------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/posts/articles/{RICH_ID}", f"/posts/articles/{RICH_ID}?script=hant", "/posts/articles", "/posts/search?q=样例", "/posts"])
async def test_every_reader_page_declares_its_language_and_advertises_the_feed(ds, path):
    tree = parse(await get_html(ds, path))
    assert tree.css_first("html").attributes.get("lang") in {"zh-Hans", "zh-Hant", "en"}
    feeds = [link.attributes["href"] for link in tree.css('head link[rel="alternate"][type="application/atom+xml"]')]
    assert feeds == ["/posts/feed.atom"]


async def test_feed_entries_link_to_their_page_here_and_then_to_the_original(ds, site_db):  # noqa: F811
    response = await ds.client.get("/posts/feed.atom")
    feed = ET.fromstring(response.content)
    urls = dict(query(site_db, "select id, url from articles"))
    entries = feed.findall("a:entry", ATOM)
    assert len(entries) == len(urls)
    for entry in entries:
        (link,) = entry.findall("a:link", ATOM)
        page_id = int(link.get("href").removeprefix("/posts/articles/"))
        assert link.get("href") == f"/posts/articles/{page_id}" and link.get("rel", "alternate") == "alternate"
        assert entry.find("a:id", ATOM).text == urls[page_id]  # ids never change for subscribers
        content = parse(entry.find("a:content", ATOM).text)
        first_link = content.css_first("a")
        assert first_link.attributes["href"] == urls[page_id] and "原文 · Original" in content.css_first("p").text()
        assert (await ds.client.get(link.get("href"))).status_code == 200


async def test_sitemap_names_every_article_page_and_robots_txt_names_it(corpus_ds, corpus_db):
    robots = (await corpus_ds.client.get("/robots.txt")).text
    assert "Sitemap: http://localhost/sitemap.xml" in robots.splitlines()
    index = await corpus_ds.client.get("/sitemap.xml")
    assert index.status_code == 200 and index.headers["content-type"].startswith("application/xml")
    files = [loc.text for loc in ET.fromstring(index.content).findall("s:sitemap/s:loc", SITEMAP)]
    assert files == ["http://localhost/sitemap-articles-1.xml"]
    urlset = ET.fromstring((await corpus_ds.client.get("/sitemap-articles-1.xml")).content)
    locs = [url.find("s:loc", SITEMAP).text for url in urlset.findall("s:url", SITEMAP)]
    ids = {row[0] for row in query(corpus_db, "select id from articles")}
    assert len(locs) == len(ids) and {int(loc.rsplit("/", 1)[1]) for loc in locs} == ids
    assert all(loc.startswith("http://localhost/posts/articles/") for loc in locs)
    assert (await corpus_ds.client.get("/sitemap-articles-2.xml")).status_code == 404
    for url in [*files, *locs[:5]]:  # crawlers may read what the sitemap names, and the sitemaps
        assert google_allows(robots, urlsplit(url).path), url
    assert google_allows(robots, "/sitemap.xml")


async def test_sitemaps_split_when_there_are_more_urls_than_a_file_holds(corpus_ds, corpus_db, monkeypatch):
    await corpus_ds.invoke_startup()
    monkeypatch.setattr(pm.get_plugin("sitemap.py"), "URLS_PER_FILE", 40)
    ids = {row[0] for row in query(corpus_db, "select id from articles")}
    files = [loc.text for loc in ET.fromstring((await corpus_ds.client.get("/sitemap.xml")).content).findall("s:sitemap/s:loc", SITEMAP)]
    assert len(files) == -(-len(ids) // 40)
    seen = []
    for url in files:
        urlset = ET.fromstring((await corpus_ds.client.get(urlsplit(url).path)).content)
        locs = [int(url.find("s:loc", SITEMAP).text.rsplit("/", 1)[1]) for url in urlset.findall("s:url", SITEMAP)]
        assert 0 < len(locs) <= 40
        seen += locs
    assert len(seen) == len(ids) and set(seen) == ids



READER_PAGES = [
    "/",
    f"/posts/articles/{RICH_ID}",
    f"/posts/articles/{RICH_ID}?script=hant",
    "/sitemap.xml",
    "/posts/feed.atom",
    "/posts/latest_by_source.atom?source=样例新闻",
    f"/posts/articles/{RICH_ID}/revisions",
    f"/posts/articles/{RICH_ID}/revisions.json",
]


@pytest.mark.parametrize("path", READER_PAGES)
async def test_a_shared_cache_may_keep_the_reader_pages(ds, path):
    first = await ds.client.get(path)
    control = {part.strip().partition("=")[0]: part.strip().partition("=")[2] for part in first.headers["cache-control"].split(",")}
    assert "public" in control and int(control["s-maxage"]) >= int(control["max-age"]) > 0
    again = await ds.client.get(path)  # the response cache (a CDN's stand-in) answers it
    assert again.headers.get("x-cache") == "hit" and again.text == first.text


@pytest.mark.parametrize("path", ["/posts/feed.json", "/posts/latest_by_source?source=样例新闻", "/posts/articles.json", "/posts/feed.atom?_ttl=0"])
async def test_datasette_pages_and_an_uncached_feed_keep_datasettes_header(ds, path):
    response = await ds.client.get(path)
    assert response.status_code == 200, response.text[:300]
    control = response.headers["cache-control"]
    assert "s-maxage" not in control and "public" not in control, control
