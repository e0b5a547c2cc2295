"""What the speed work changed in what readers and data users get: feeds sanitize bodies
themselves (the queries return them as stored), the stored HTML column is rendered by
datasette-render-html, and the queries of the reader's pages and the feeds read indexes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from postsdb import reader
from postsdb.serve import PLUGINS, write_inspect_file
from test_serve import METADATA_DICT, load_plugin, make_datasette

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
    # Data, as /posts/article_bodies.json gives it, after the line that links to the original.
    content = by_id[newest]["atom_content_html"]
    assert content.startswith('<p>原文 · Original: <a href="') and content.endswith("</p>" + HOSTILE)


def test_kept_bodies_are_bounded_and_right():
    spec = importlib.util.spec_from_file_location("atom_feeds_under_test", PLUGINS / "atom_feeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    kept = module.Sanitized(size=2)
    bodies = [f"<p>{n}</p><script>x</script>" for n in range(3)]
    assert [kept(b) for b in bodies] == [f"<p>{n}</p>" for n in range(3)]
    assert len(kept.kept) == 2
    assert kept(bodies[0]) == "<p>0</p>" and kept(None) == ""


# --- datasette-render-html, and its settings looked up once --------------------------


async def test_body_html_is_rendered_by_datasette_render_html_on_its_table_only(ds, hostile_db):
    _, _, newest = hostile_db
    names = {plugin["name"] for plugin in (await ds.client.get("/-/plugins.json")).json()}
    assert "datasette-render-html" in names and "datasette-render-markdown" not in names
    page = (await ds.client.get(f"/posts/article_bodies?article_id={newest}")).text
    cell = re.search(r'<td class="col-body_html[^"]*">(.*?)</td>', page, re.S)[1]
    assert cell.strip().startswith("<p>正文</p>")  # rendered as stored, not escaped
    sql = "select '<p>不是正文</p>' as body_html"
    adhoc = (await ds.client.get("/posts", params={"sql": sql})).text
    assert "&lt;p&gt;不是正文&lt;/p&gt;" in adhoc and "<p>不是正文</p>" not in adhoc


def test_plugin_settings_are_remembered_and_follow_new_metadata(ds):
    remembered = type(ds).plugin_config
    original = remembered.remembers  # plugins/metadata_memo.py wraps Datasette's own
    for table in ("article_bodies", "articles", None):
        assert remembered(ds, "datasette-render-html", database="posts", table=table) == original(
            ds, "datasette-render-html", database="posts", table=table
        )
    assert ds.plugin_config("datasette-render-html", database="posts", table="article_bodies") == {"columns": ["body_html"]}
    ds._metadata_local = {"databases": {"posts": {"tables": {"articles": {"plugins": {"datasette-render-html": {"columns": ["title"]}}}}}}}
    assert ds.plugin_config("datasette-render-html", database="posts", table="articles") == {"columns": ["title"]}
    assert ds.plugin_config("datasette-render-html", database="posts", table="article_bodies") is None


async def test_a_table_permission_follows_new_metadata(ds):
    assert (await ds.client.get("/posts/tags.json")).status_code == 200
    ds._metadata_local = {"databases": {"posts": {"tables": {"tags": {"allow": False}}}}}
    assert (await ds.client.get("/posts/tags.json?_size=1")).status_code == 403  # a new URL: not the response cache's
    assert (await ds.client.get("/posts/links.json?_size=1")).status_code == 200


# --- snippets read only the part of a body around the match --------------------------


def snippet_cases(corpus_db):
    with sqlite3.connect(corpus_db) as conn:
        bodies = [row[0] for row in conn.execute("select body_text from article_bodies order by article_id")]
    queries = ["", "香港", "騰訊", "vpn", "的", "中国 美国", "xyz不在"]
    cases = [(body, query) for body in bodies for query in queries]
    cases += [(body, pair) for body in bodies for pair in re.findall(r"[\u4e00-\u9fff]{2}", body)[-1:]]  # late matches
    spaced = "x" + " \n" * 3000 + "香港" + "\t " * 3000 + "y"
    return cases + [(spaced, "香港"), ("  香港  ", "香港"), (" \n ", "香港"), ("", "香港"), (None, None), ("香" * 50 + " 港", "港")]


def test_a_snippet_is_the_snippet_of_the_whole_text_with_its_white_space_collapsed(corpus_db):
    from postsdb.snippet import query_pieces, snippet, whole_text_snippet

    cases = snippet_cases(corpus_db)
    assert len(cases) > 1000
    for text, query in cases:
        expected = whole_text_snippet(" ".join((text or "").split()), query_pieces(query or ""), 100)
        assert snippet(text, query) == expected, (text[:80] if text else text, query)


# --- the benchmark's bare Datasette is asked for the same work ----------------------------


def test_bare_datasette_in_the_benchmark_has_no_plugins_and_finds_the_same_rows(data_db, tmp_path):
    import sys

    import httpx

    sys.path.insert(0, str(PLUGINS.parent / "bench"))
    import cpu

    db = tmp_path / "posts.db"
    shutil.copy(data_db, db)
    inspect = write_inspect_file(db, tmp_path / "inspect.json")
    vocabulary = cpu.vocabulary(db)
    kinds = {label: cpu.paired_paths(vocabulary, base, make, 3, seed) for seed, (label, base, make) in enumerate(cpu.KINDS)}
    answers = {}
    for bare in (True, False):
        with cpu.server(db, inspect, bare) as (base, _pid), httpx.Client(base_url=base, trust_env=False, timeout=60) as client:
            plugins = {p["name"] for p in client.get("/-/plugins.json").json()}
            assert (plugins == set()) if bare else ("cjk_search.py" in plugins)
            for label, pairs in kinds.items():
                for ours, bare_path in pairs:
                    if not label.startswith(("table search", "search JSON", "facet JSON")):
                        continue
                    json_path = (bare_path if bare else ours).replace("/posts/articles?", "/posts/articles.json?")
                    data = client.get(json_path).json()
                    answers.setdefault((label, ours), []).append(
                        (data["filtered_table_rows_count"], [r[0] for r in data["rows"]], sorted(data["facet_results"]))
                    )
    differ = {key: both for key, both in answers.items() if len(both) != 2 or both[0] != both[1]}
    assert answers and not differ, differ


# --- the queries that must not grow with the archive -------------------------------------

CANNED = METADATA_DICT["databases"]["posts"]["queries"]
INDEX_USED = re.compile(r"USING (?:COVERING )?INDEX (\w+)")


def query_plan(conn, sql: str, params: dict) -> list[str]:
    return [row[3] for row in conn.execute("explain query plan " + sql, params)]


def index_columns(conn, name: str) -> list[str]:
    return [row[2] for row in conn.execute("select * from pragma_index_info(?) order by seqno", (name,))]


def indexes_read(conn, plan: list[str], table: str) -> list[list[str]]:
    """The columns of each index the plan reads `table` through."""
    return [index_columns(conn, m.group(1)) for line in plan if f" {table} " in f" {line} " and (m := INDEX_USED.search(line))]


# (what, SQL, parameters, table, the index's leading columns, whether rows come in the index's order)
INDEXED_QUERIES = [
    ("latest_by_source", CANNED["latest_by_source"]["sql"], {"source": "x"}, "articles", ["source", "published"], True),
    ("feed", CANNED["feed"]["sql"], {}, "articles", ["published"], True),
    ("front page: newest", reader.NEWEST_ARTICLES, {"limit": 20}, "articles", ["published"], True),
    ("front page: sources", reader.SOURCES, {}, "articles", ["source"], False),
    ("front page: years", reader.YEARS, {}, "articles", ["year"], False),
    ("front page: topics", reader.TOPICS, {"limit": 24}, "article_tags", ["tag_id"], False),
]


@pytest.mark.parametrize("what, sql, params, table, columns, in_order", INDEXED_QUERIES, ids=[q[0] for q in INDEXED_QUERIES])
def test_reader_and_feed_queries_read_an_index_not_the_table(corpus_db, what, sql, params, table, columns, in_order):
    with sqlite3.connect(f"file:{corpus_db}?mode=ro", uri=True) as conn:
        conn.create_function("feed_html", 2, lambda body, url: body)  # planned, never run
        plan = query_plan(conn, sql, params)
        used = indexes_read(conn, plan, table)
    assert any(index[: len(columns)] == columns for index in used), (what, plan)
    assert not any(line.startswith(f"SCAN {table}") and "INDEX" not in line for line in plan), (what, plan)
    if in_order:  # the newest come first from the index: no sort of every matching row
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), (what, plan)


FACETS = ["source", "publication", "author", "tags", "year"]  # metadata.yml's, counted in one pass


@pytest.fixture(scope="module")
def analyzed_db(corpus_db, tmp_path_factory):
    """The sample with SQLite's statistics (ANALYZE), which change what the planner picks."""
    path = tmp_path_factory.mktemp("analyzed") / "posts.db"
    shutil.copyfile(corpus_db, path)
    with sqlite3.connect(path) as conn:
        conn.execute("analyze")
    return path


@pytest.mark.parametrize("statistics", [False, True])
@pytest.mark.parametrize("where", ["year = :year", "month = :month", "year = :year and source = :source"])
def test_the_facets_counts_of_one_year_or_month_come_from_indexes_alone(corpus_db, analyzed_db, where, statistics):
    """The facets' one query on the filtered articles page (plugins/facet_counts.py): the
    rows are found, and what is counted read, in the index that finds them (no row is
    read); the topics come from article_tags' key, article by article, with or without
    statistics (with them, a plain join read every topic's rows instead)."""
    facet_counts = load_plugin("facet_counts")
    sql = facet_counts.counts_sql("articles", f"select * from articles where {where}", FACETS + ["month"], 31)
    with sqlite3.connect(f"file:{analyzed_db if statistics else corpus_db}?mode=ro", uri=True) as conn:
        plan = query_plan(conn, sql, {"year": 2020, "month": "2020-01", "source": "x"})
    assert len(plan) >= 1 and all("SCAN articles" not in line for line in plan), plan
    assert any(line.startswith("SEARCH articles USING COVERING INDEX") for line in plan), plan
    # Each matching article's topics through article_tags' key, never every topic's rows.
    assert any(line.startswith("SEARCH t USING COVERING INDEX") and "(article_id=?)" in line for line in plan), plan
    assert not any(line.startswith(("SCAN v", "SCAN t")) for line in plan), plan


def test_a_count_over_a_range_of_bodies_reads_the_narrow_index(corpus_db):
    """Datasette's count of a filtered article_bodies page: the keys' own index, not every body."""
    with sqlite3.connect(f"file:{corpus_db}?mode=ro", uri=True) as conn:
        plan = query_plan(conn, "select count(*) from article_bodies where article_id >= :id", {"id": 1})
        assert [index_columns(conn, m.group(1)) for line in plan if (m := INDEX_USED.search(line))] == [["article_id"]], plan
    assert any("COVERING INDEX" in line for line in plan), plan
