"""The articles page (/posts/articles) as a reader reads it, through the real Datasette app
on the real sample: facets titled in words, years in year order, authors who are people,
active filters as removable chips, a heading in words, and list lines that start at the
text. tests/test_articles_page_browser.py checks the same in Chromium."""

from __future__ import annotations

import re
import shutil
import sqlite3
from urllib.parse import quote

import pytest
from selectolax.lexbor import LexborHTMLParser

from postsdb.sites import SITES
from test_serve import METADATA_DICT, get_html, get_json, make_datasette

FACET_TITLES = ["主题 Topics", "作者 Author", "年份 Year", "来源 Source", "原载 Publication"]
MIRRORED = {site.name.casefold() for site in SITES if not site.personal}
FILTERED = "/posts/articles?tags__arraycontains=Newsletters&source=iYouPort"


@pytest.fixture
def ds(data_db, data_inspect):
    return make_datasette(data_db, data_inspect)


def parsed(page: str) -> LexborHTMLParser:
    return LexborHTMLParser(page)


def words(node) -> str:
    return " ".join(node.text(deep=True).split())


def facet(tree, column: str) -> tuple[str, list[tuple[str, int]]]:
    """A facet's title and its (value, count) pairs, as shown."""
    box = tree.css_first(f'.articles-facets .facet-info[data-column="{column}"]')
    title = words(box.css_first("h3").css_first("span").parent).rsplit(" ", 1)[0]
    values = []
    for item in box.css("li:not(.facet-truncated)"):
        value, count = re.match(r"(.*?) ([\d,]+)(?: ✖)?$", words(item)).groups()
        values.append((value, int(count.replace(",", ""))))
    return title, values


def count_of(db, sql: str, *params) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


# --- facets ----------------------------------------------------------------------------


async def test_facets_are_titled_in_the_sites_words(ds):
    page = await get_html(ds, "/posts/articles")
    tree = parsed(page)
    titles = [words(h).rsplit(" ", 1)[0] for h in tree.css(".articles-facets h3.facet-info-name")]
    assert titles == FACET_TITLES
    assert "(array)" not in page and "tags (" not in page


async def test_the_year_facet_is_in_year_order(ds, data_db):
    _, years = facet(parsed(await get_html(ds, "/posts/articles")), "year")
    shown = [int(year) for year, _ in years]
    assert shown == sorted(shown, reverse=True) and len(shown) == count_of(data_db, "select count(distinct year) from articles")
    assert [count for _, count in years] != sorted((count for _, count in years), reverse=True)  # not by count


async def test_the_author_facet_lists_people_not_sites(ds, data_db):
    data = await get_json(ds, "/posts/articles.json?_facet=author&_facet_size=max&_size=0")
    authors = {value["value"]: value["count"] for value in data["facet_results"]["author"]["results"]}
    assert not {name.casefold() for name in authors} & MIRRORED
    assert authors["McCaffrey"] == 24 and authors["Huli"] == 15  # Huli's own feed and medium.com
    assert sum(authors.values()) == count_of(data_db, "select count(author) from articles")
    _, shown = facet(parsed(await get_html(ds, "/posts/articles")), "author")
    assert "Nei.st" not in dict(shown) and shown[0] == ("McCaffrey", 24)


def test_the_timelines_authors_are_people(data_db):
    chart = METADATA_DICT["plugins"]["datasette-dashboards"]["archive"]["charts"]["top-authors"]
    with sqlite3.connect(data_db) as conn:
        authors = [author for author, _ in conn.execute(chart["query"])]
    assert len(authors) == 15 and None not in authors
    assert not {a.casefold() for a in authors} & MIRRORED
    assert "Huli" in authors  # a person, though Huli is also a source's name


# --- filters in words ----------------------------------------------------------------------


async def test_active_filters_are_chips_in_words_that_remove_themselves(ds, data_db):
    tree = parsed(await get_html(ds, FILTERED))
    chips = tree.css("ul.filter-chips li:not(.chip-clear)")
    assert sorted(words(chip.css_first(".chip-words")) for chip in chips) == ["主题 Topics：Newsletters", "来源 Source：iYouPort"]
    removes = {words(chip.css_first(".chip-words")): chip.css_first("a.chip-remove").attributes["href"] for chip in chips}
    assert removes["主题 Topics：Newsletters"] == "/posts/articles?source=iYouPort"
    assert removes["来源 Source：iYouPort"] == "/posts/articles?tags__arraycontains=Newsletters"
    without_topic = parsed(await get_html(ds, removes["主题 Topics：Newsletters"]))
    assert words(without_topic.css_first(".articles-status h2")) == "30 篇 articles"
    assert tree.css_first("ul.filter-chips li.chip-clear a").attributes["href"] == "/posts/articles"


async def test_the_heading_and_title_say_the_filters_in_words(ds, data_db):
    page = await get_html(ds, FILTERED)
    tree = parsed(page)
    newsletters = count_of(
        data_db, "select count(*) from articles, json_each(tags) where source = 'iYouPort' and json_each.value = 'Newsletters'"
    )
    assert words(tree.css_first(".articles-status h2")) == f"{newsletters} 篇 articles"
    title = words(tree.css_first("title"))
    assert title.startswith("文章 · Articles · ") and "主题 Topics：Newsletters" in title and "来源 Source：iYouPort" in title
    for technical in ("where tags contains", "sorted by published", "descending"):
        assert technical not in page


@pytest.mark.parametrize(
    "query, chip, remaining",
    [
        ("year__gt=2019", "年份 Year：> 2019", "/posts/articles"),
        ("author__isnull=1&source=Nei.st", "作者 Author：空 empty", "/posts/articles?source=Nei.st"),
        ("_search=" + quote("腾讯") + "&_next=2", "搜索 Search：腾讯", "/posts/articles"),
        ("source__exact=" + quote("泡泡") + "&_sort=published", "来源 Source：泡泡", "/posts/articles?_sort=published"),
    ],
)
async def test_other_filters_in_words(ds, query, chip, remaining):
    tree = parsed(await get_html(ds, f"/posts/articles?{query}"))
    [shown] = [c for c in tree.css("ul.filter-chips li:not(.chip-clear)") if words(c.css_first(".chip-words")) == chip]
    assert shown.css_first("a.chip-remove").attributes["href"] == remaining


async def test_no_chips_without_filters(ds):
    tree = parsed(await get_html(ds, "/posts/articles?_sort=published"))
    assert tree.css_first("ul.filter-chips") is None


# --- list lines ------------------------------------------------------------------------------


async def test_list_lines_start_at_the_text(ds, data_db):
    tree = parsed(await get_html(ds, "/posts/articles?source=" + quote("中参馆")))
    lines = [words(line) for line in tree.css(".article-item-line")]
    assert len(lines) == count_of(data_db, "select count(*) from articles where source = '中参馆' and lead != ''") >= 18
    for line in lines:
        assert not re.search(r"Getty Images|Unsplash|^https?://", line), line
    with sqlite3.connect(data_db) as conn:
        [lead] = conn.execute("select lead from articles where title = 'Planting the Flag in Mosques and Monasteries'").fetchone()
    assert any(line.startswith(lead[:100]) for line in lines)


async def test_a_hit_matched_only_in_its_title_shows_its_lead(ds):
    tree = parsed(await get_html(ds, "/posts/articles?_search=Planting"))
    [item] = tree.css("li.article-item")
    assert "<mark>Planting</mark>" in item.css_first(".article-item-title").html
    assert words(item.css_first(".article-item-line")).startswith("Over the last few years, the Chinese Communist Party")


# The same questions asked of the one-pass facets (plugins/facet_counts.py: one query for
# all, topics from article_tags) and of Datasette's own column and array facets, one query
# each, topics from the JSON column: every page's facets agree, value by value, link by link.
FACET_PAGES = [
    "/posts/articles.json?_facet_size=max",
    "/posts/articles.json?_search=%E9%A6%99%E6%B8%AF&_facet_size=max",  # 香港
    "/posts/articles.json?_search=%E9%A6%99%E6%B8%AF&source=iYouPort",  # a search, filtered: a value selected
    "/posts/articles.json?source=iYouPort&_facet_size=max",
    "/posts/articles.json?tags__arraycontains=Newsletters&_facet_size=max",
    "/posts/articles.json?year=2021&_facet_size=3",  # truncated
    "/posts/articles.json?author__isnull=1",
    "/posts/articles.json?_search=%E6%B2%A1%E6%9C%89%E8%BF%99%E4%B8%AA%E8%AF%8D%E8%AF%AD",  # no hit: empty facets
]
THEIR_FACETS = ["source", "publication", "author", {"array": "tags"}, "year"]
OURS = [{"counts": c} for c in ["source", "publication", "author", "tags", "year"]]


def datasette_with_facets(db, inspect_file, facets: list):
    """The site, with the articles table's facets replaced by `facets`."""
    site = make_datasette(db, inspect_file)
    site._metadata_local["databases"]["posts"]["tables"]["articles"]["facets"] = facets
    return site


def facet_values(facet: dict) -> list[tuple]:
    return [(r["value"], r["label"], r["count"], r["selected"], r["toggle_url"]) for r in facet["results"]]


async def test_the_configured_facets_are_counted_in_one_pass(data_db, data_inspect):
    ds = make_datasette(data_db, data_inspect, trace_debug=True)  # ?_trace=1 lists every query a page runs
    assert ds._metadata_local["databases"]["posts"]["tables"]["articles"]["facets"] == OURS  # as the site asks
    page = await get_json(ds, "/posts/articles.json?_search=%E9%A6%99%E6%B8%AF&_trace=1")
    facet_sql = [t["sql"] for t in page["_trace"]["traces"] if "group by" in t["sql"]]
    assert len(facet_sql) == 1 and "with hits as materialized" in facet_sql[0]
    assert facet_sql[0].count("articles_fts match") == 1  # the search is matched once for all five


@pytest.mark.parametrize("path", FACET_PAGES)
async def test_facets_count_what_datasettes_own_facets_count(ds, data_db, data_inspect, path):
    ours = (await get_json(ds, path))["facet_results"]
    theirs = (await get_json(datasette_with_facets(data_db, data_inspect, THEIR_FACETS), path))["facet_results"]
    assert list(ours) == ["source", "publication", "author", "tags", "year"] and set(theirs) == set(ours)  # no tags_2
    if "%E6%B2%A1" not in path:
        assert all(ours[name]["results"] for name in ("source", "tags", "year")), path
    for name in ours:
        assert facet_values(ours[name]) == facet_values(theirs[name]), (path, name)
        for key in ("type", "truncated", "hideable"):
            assert ours[name][key] == theirs[name][key], (path, name, key)


async def test_a_facet_the_url_also_asks_of_datasette_is_shown_once(ds):
    page = await get_json(ds, "/posts/articles.json?_facet=source&_facet_array=tags&_search=%E9%A6%99%E6%B8%AF")
    assert {"source", "tags", "year"} <= set(page["facet_results"]) and not {"source_2", "tags_2"} & set(page["facet_results"])
    assert page["facet_results"]["source"]["hideable"]  # Datasette's, asked in the URL
    assert not page["facet_results"]["year"]["hideable"]  # ours, configured


async def test_a_configured_facet_asked_again_in_the_url_is_shown_once(ds):
    page = await get_json(ds, "/posts/articles.json?_facet_counts=source&_facet_counts=%7B%22simple%22%3A%22year%22%7D")
    assert list(page["facet_results"]) == ["source", "publication", "author", "tags", "year"]
    assert not page["facet_results"]["source"]["hideable"]  # the configured one


async def test_a_facet_asked_in_the_url_counts_as_datasettes(ds, data_db, data_inspect):
    path = "/posts/articles.json?_facet_counts=month&year=2021"
    ours = (await get_json(ds, path))["facet_results"]
    theirs = (await get_json(datasette_with_facets(data_db, data_inspect, []), "/posts/articles.json?_facet=month&year=2021"))["facet_results"]
    assert ours["month"]["hideable"] and "_facet_counts" not in ours["month"]["toggle_url"]
    assert [(r["value"], r["count"]) for r in ours["month"]["results"]] == [(r["value"], r["count"]) for r in theirs["month"]["results"]]


async def test_the_topics_facet_reads_the_join_table(data_db, data_inspect, tmp_path):
    changed = tmp_path / "posts.db"
    shutil.copyfile(data_db, changed)
    with sqlite3.connect(changed) as conn:  # one topic row gone; the JSON column keeps it
        (article, tag, name) = conn.execute(
            "select article_id, tag_id, name from article_tags join tags on tags.id = tag_id order by 1, 2 limit 1"
        ).fetchone()
        conn.execute("delete from article_tags where article_id = ? and tag_id = ?", (article, tag))
    path = "/posts/articles.json?_facet_size=max&id__gt=0"  # filtered: counted at request time
    before = await get_json(datasette_with_facets(data_db, data_inspect, OURS), path)
    after = await get_json(datasette_with_facets(changed, data_inspect, OURS), path)
    counts = lambda page: {r["value"]: r["count"] for r in page["facet_results"]["tags"]["results"]}  # noqa: E731
    assert counts(after).get(name, 0) == counts(before)[name] - 1
    assert {k: v for k, v in counts(after).items() if k != name} == {k: v for k, v in counts(before).items() if k != name}
    assert not before["facet_results"]["tags"]["hideable"]  # configured in metadata


async def test_the_unfiltered_page_reads_the_counts_the_build_kept(data_db, data_inspect, tmp_path):
    changed, old = tmp_path / "changed" / "posts.db", tmp_path / "old" / "posts.db"
    changed.parent.mkdir()
    old.parent.mkdir()
    shutil.copyfile(data_db, changed)
    shutil.copyfile(data_db, old)
    with sqlite3.connect(changed) as conn:
        conn.execute("update facet_counts set count = count + 1000 where facet = 'source'")
    with sqlite3.connect(old) as conn:  # a database built before the build kept them
        conn.execute("drop table facet_counts")
    path = "/posts/articles.json?_facet_size=max"
    kept, unchanged, computed = [
        (await get_json(make_datasette(db, data_inspect), path))["facet_results"] for db in (changed, data_db, old)
    ]
    assert [r["count"] - 1000 for r in kept["source"]["results"]] == [r["count"] for r in unchanged["source"]["results"]]
    assert {name: facet_values(facet) for name, facet in computed.items()} == {name: facet_values(facet) for name, facet in unchanged.items()}
    filtered = (await get_json(make_datasette(changed, data_inspect), path + "&id__gt=0"))["facet_results"]
    assert facet_values(filtered["source"]) != facet_values(kept["source"])  # a filter is counted afresh


async def test_a_facet_asked_in_the_url_is_counted_in_a_query_of_its_own(data_db, data_inspect):
    # A slow column asked in the URL can then time out alone, the configured facets kept.
    ds = make_datasette(data_db, data_inspect, trace_debug=True)
    page = await get_json(ds, "/posts/articles.json?_search=%E9%A6%99%E6%B8%AF&_facet_counts=month&_trace=1")
    facet_sql = [t["sql"] for t in page["_trace"]["traces"] if "group by" in t["sql"]]
    assert len(facet_sql) == 2 and ["`month`" in sql for sql in facet_sql] == [False, True]
    assert {"source", "tags", "month"} <= set(page["facet_results"])


WHERE_PAGES = [
    "/posts/articles.json?_where=year%3D2021%20--%20from%20articles",  # looks like the whole table
    "/posts/articles.json?_where=year%3D2021%20/*%20from%20articles",
    "/posts/articles.json?_where=year%3D2021%20--%20x",
]


# Datasette leaves its other facets' coroutines unawaited when one facet's SQL fails (the /* case).
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("path", WHERE_PAGES)
async def test_a_where_clause_with_a_comment_is_counted_not_taken_for_the_whole_table(ds, path):
    response = await ds.client.get(path)
    if response.status_code == 400:  # an unclosed /* swallows the facets' SQL too, as it does Datasette's
        assert response.json()["parameter"] == "_where"
        return
    page = response.json()
    assert [r["value"] for r in page["facet_results"]["year"]["results"]] == [2021]
    assert sum(r["count"] for r in page["facet_results"]["source"]["results"]) == page["filtered_table_rows_count"] < 151


@pytest.mark.parametrize("path", ["/posts/articles.json?source=iYouPort", "/posts/articles.json?tags__arraycontains=Newsletters"])
async def test_facet_links_under_a_base_url_are_datasettes(data_db, data_inspect, path):
    ours = make_datasette(data_db, data_inspect, base_url="/pre/")
    theirs = make_datasette(data_db, data_inspect, base_url="/pre/")
    theirs._metadata_local["databases"]["posts"]["tables"]["articles"]["facets"] = THEIR_FACETS
    ours, theirs = [(await get_json(site, path))["facet_results"] for site in (ours, theirs)]
    for name in ("source", "tags"):
        assert facet_values(ours[name]) == facet_values(theirs[name]), name


async def test_a_facet_datasette_is_asked_for_as_json_is_left_to_it(ds):
    page = await get_json(ds, "/posts/articles.json?_facet=%7B%22simple%22%3A%22source%22%7D")
    assert "source" in page["facet_results"] and "source_2" not in page["facet_results"]
    assert page["facet_results"]["source"]["hideable"]


async def test_ties_are_ordered_by_each_columns_own_collation(data_db, data_inspect, tmp_path):
    db = tmp_path / "posts" / "posts.db"
    db.parent.mkdir()
    shutil.copyfile(data_db, db)
    with sqlite3.connect(db) as conn:  # B and a twice each, in a column that ignores case and one that does not
        conn.execute("create table cased (id integer primary key, ci text collate nocase, b text)")
        conn.executemany("insert into cased (ci, b) values (?, ?)", [("B", "B"), ("B", "B"), ("a", "a"), ("a", "a")])
    ds = make_datasette(db, data_inspect)
    for order in (["ci", "b"], ["b", "ci"]):
        ours = (await get_json(ds, "/posts/cased.json?" + "&".join(f"_facet_counts={c}" for c in order)))["facet_results"]
        theirs = (await get_json(ds, "/posts/cased.json?" + "&".join(f"_facet={c}" for c in order)))["facet_results"]
        for column in order:
            assert [r["value"] for r in ours[column]["results"]] == [r["value"] for r in theirs[column]["results"]], (order, column)
