"""The build, end to end: real files in, a real SQLite database out."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import sqlite_utils
from typer.testing import CliRunner

import build_db
from conftest import SEED_PATH, SEED_URL, copy_corpus, make_post
from postsdb.build import build
from postsdb.load import Loader
from postsdb.schema import TABLES
from postsdb.search import INDEX_TABLES, fts_query

runner = CliRunner()


def rows(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def table_dump(db_path) -> dict:
    db = sqlite_utils.Database(db_path)
    skip = {"builds"}
    return {name: list(db[name].rows) for name in TABLES if name not in skip}


# --- the real sample in data/ -----------------------------------------------------


def test_every_corpus_file_is_accounted_for(corpus_db):
    files, problems = rows(corpus_db, "select (select count(*) from article_files), (select count(*) from problems)")[0]
    scanned, skipped = rows(corpus_db, "select files_scanned, files_skipped from builds")[0]
    assert scanned == 151
    assert files + problems + skipped == scanned
    assert rows(corpus_db, "select count(*) from articles")[0][0] == 151 - problems


def test_seed_article_row(corpus_db):
    db = sqlite_utils.Database(corpus_db)
    [seed] = db["articles"].rows_where("path = ?", [SEED_PATH])
    assert seed["title"] == "腾讯捐五百亿元后立即增用户收费作补偿"
    assert seed["published"] == "2021-09-06T10:23:00Z"
    assert (seed["published_date"], seed["year"], seed["month"]) == ("2021-09-06", 2021, "2021-09")
    assert seed["url"] == SEED_URL
    assert json.loads(seed["tags"]) == [] and seed["publication"] is None  # an original, no topics on its page
    assert seed["image_count"] == 3 and seed["link_count"] == 3
    assert len(seed["sha256"]) == 64


def test_seed_images_with_alt_and_captions(corpus_db):
    images = rows(
        corpus_db,
        "select position, alt, caption, src from images join articles on articles.id = images.article_id "
        "where articles.path = ? order by position",
        [SEED_PATH],
    )
    assert [r[0] for r in images] == [0, 1, 2]
    assert images[1][1] == images[1][2] == "网民议论微信拟推初收费服务。（Public Domain）"
    assert not any("icon-zoom" in r[3] for r in images)


def test_foreign_keys_are_declared_and_hold(corpus_db):
    db = sqlite_utils.Database(corpus_db)
    declared = {(fk.table, fk.column, fk.other_table, fk.other_column) for t in db.tables for fk in t.foreign_keys}
    assert declared == {
        ("article_bodies", "article_id", "articles", "id"),
        ("images", "article_id", "articles", "id"),
        ("links", "article_id", "articles", "id"),
        ("article_tags", "article_id", "articles", "id"),
        ("article_tags", "tag_id", "tags", "id"),
        ("article_files", "article_id", "articles", "id"),
        ("article_copies", "article_id", "articles", "id"),
        ("article_copies", "copy_id", "articles", "id"),
        ("article_revisions", "article_id", "articles", "id"),
        ("related_articles", "article_id", "articles", "id"),
        ("related_articles", "related_id", "articles", "id"),
        ("article_features", "article_id", "articles", "id"),
    }
    assert rows(corpus_db, "PRAGMA foreign_key_check") == []


def test_join_and_facet_columns_are_indexed(corpus_db):
    db = sqlite_utils.Database(corpus_db)
    indexed = {(t.name, tuple(i.columns)[0]) for t in db.tables for i in t.indexes}
    for table, column in [("articles", "source"), ("articles", "author"), ("articles", "year"), ("articles", "published"),
                          ("article_tags", "tag_id"), ("article_files", "article_id"), ("links", "domain")]:
        assert (table, column) in indexed, (table, column)


def test_ids_fit_in_53_bits(corpus_db):
    assert rows(corpus_db, "select max(id) < 9007199254740992, min(id) > 0 from articles")[0] == (1, 1)
    assert rows(corpus_db, "select max(id) < 9007199254740992 from tags")[0] == (1,)


def test_stored_bodies_have_no_active_content(corpus_db):
    bad = rows(
        corpus_db,
        """select count(*) from article_bodies where body_html like '%<script%' or body_html like '%<iframe%'
        or body_html like '%<style%' or body_html like '%<link%' or body_html like '%javascript:%'
        or body_html like '%<form%' or body_html like '% onerror=%' or body_html like '% onload=%'""",
    )
    assert bad == [(0,)]


def test_build_twice_gives_identical_rows_and_changes_nothing(tmp_path, corpus_sources):
    db_path = tmp_path / "posts.db"
    first = build(corpus_sources, db_path)
    before = table_dump(db_path)
    mtime = db_path.stat().st_mtime_ns
    second = build(corpus_sources, db_path)
    assert (second.added, second.changed, second.removed, second.unchanged) == (0, 0, 0, first.added)
    assert not second.wrote and db_path.stat().st_mtime_ns == mtime
    forced = build(corpus_sources, db_path, force=True)
    assert forced.wrote and table_dump(db_path) == before


def test_ids_are_the_same_on_another_machine(tmp_path, corpus_sources, corpus_db):
    # a different folder and a fresh build: ids depend on URLs only
    copy = copy_corpus(tmp_path / "elsewhere")
    build(copy, tmp_path / "posts.db")
    assert rows(tmp_path / "posts.db", "select id, url from articles order by id") == rows(
        corpus_db, "select id, url from articles order by id"
    )


# --- incremental builds on tiny folders -----------------------------------------


def test_changed_added_and_removed_files_touch_only_their_rows(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    a = make_post(post_folder, "a.md", title="甲", url="https://example.com/a")
    b = make_post(post_folder, "b.md", title="乙", url="https://example.com/b")
    assert build([post_folder], db_path).added == 2
    b_row = rows(db_path, "select * from articles where url = 'https://example.com/b'")

    make_post(post_folder, "a.md", title="甲二", url="https://example.com/a", body="<p>新的</p>")
    make_post(post_folder, "c.md", title="丙", url="https://example.com/c")
    summary = build([post_folder], db_path)
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (1, 1, 1, 0)
    assert rows(db_path, "select title from articles where url = 'https://example.com/a'") == [("甲二",)]
    assert rows(db_path, "select * from articles where url = 'https://example.com/b'") == b_row

    a.unlink()
    summary = build([post_folder], db_path)
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (0, 0, 2, 1)
    assert rows(db_path, "select count(*) from images where article_id not in (select id from articles)") == [(0,)]
    assert {r[0] for r in rows(db_path, "select path from article_files")} == {"b.md", "c.md"}
    assert b.exists()


def test_revisions_keep_the_newest_and_list_every_file(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    url = "https://example.com/same"
    make_post(post_folder, "old.md", title="旧版", date="2021-01-01T00:00:00Z", url=url)
    make_post(post_folder, "new.md", title="新版", date="2021-01-02T00:00:00Z", url=url + "?utm_source=x#frag")
    build([post_folder], db_path)
    assert rows(db_path, "select title, path from articles") == [("新版", "new.md")]
    assert sorted(rows(db_path, "select path, status from article_files")) == [("new.md", "kept"), ("old.md", "superseded")]

    (post_folder / "new.md").unlink()  # the older revision comes back
    build([post_folder], db_path)
    assert rows(db_path, "select title, path from articles") == [("旧版", "old.md")]
    assert rows(db_path, "select path, status from article_files") == [("old.md", "kept")]


def test_a_revision_replaced_in_one_build_leaves_only_the_newest_in_the_index(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    url = "https://example.com/same"
    make_post(post_folder, "a.md", title="旧版", date="2021-01-01T00:00:00Z", url=url)
    make_post(post_folder, "b.md", title="新版", date="2021-01-02T00:00:00Z", url=url)
    build([post_folder], db_path)
    match = "select rowid from articles_fts where articles_fts match ?"
    assert rows(db_path, match, (fts_query("旧版"),)) == []
    assert rows(db_path, match, (fts_query("新版"),)) == rows(db_path, "select id from articles")


def index_terms(db_path) -> dict[str, list]:
    """Every token of both search indexes, with its row, column and offset."""
    with sqlite3.connect(db_path) as conn:
        dumps = {}
        for table in INDEX_TABLES:
            conn.execute(f"create virtual table temp.vocab_{table} using fts5vocab(main, {table}, instance)")
            dumps[table] = conn.execute(f"select * from temp.vocab_{table} order by 1, 2, 3, 4").fetchall()
    return dumps


def test_an_incremental_build_leaves_the_indexes_as_a_fresh_build_would(post_folder, tmp_path):
    long_body = "<p>" + "香港新闻自由的故事" * 40 + "</p>"  # longer than the lead the related index keeps
    make_post(post_folder, "a.md", title="甲", url="https://example.com/a", body=long_body)
    make_post(post_folder, "b.md", title="乙", url="https://example.com/b")
    make_post(post_folder, "c.md", title="丙", url="https://example.com/c")
    incremental = tmp_path / "incremental.db"
    build([post_folder], incremental)

    make_post(post_folder, "a.md", title="甲二", url="https://example.com/a", body="<p>" + "台北天气晴朗" * 60 + "</p>")
    (post_folder / "b.md").unlink()
    make_post(post_folder, "d.md", title="丁", url="https://example.com/d")
    assert build([post_folder], incremental).wrote
    fresh = tmp_path / "fresh.db"
    build([post_folder], fresh)

    terms = index_terms(incremental)
    assert terms == index_terms(fresh)
    gone = set("乙香港新闻自由的故事")  # b's title and a's old text, the lead's end included
    assert all(terms.values()) and not gone & {row[0] for rows in terms.values() for row in rows}


def test_a_build_without_the_search_index_has_none_and_can_add_it(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    make_post(post_folder, "a.md", title="甲", url="https://example.com/a")
    assert build([post_folder], db_path, with_search=False).added == 1
    assert rows(db_path, "select count(*) from sqlite_master where name = 'articles_fts'") == [(0,)]
    assert build([post_folder], db_path).wrote
    assert rows(db_path, "select rowid from articles_fts where articles_fts match ?", (fts_query("甲"),)) == rows(
        db_path, "select id from articles"
    )


def test_tags_and_joins(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    path = make_post(post_folder, "a.md")
    path.write_text(path.read_text().replace("tags: [ 测试 ]", "tags: [ 香港, 微信, 香港 ]"))
    build([post_folder], db_path)
    assert rows(db_path, "select tags from articles") == [('["香港", "微信"]',)]
    assert sorted(rows(db_path, "select name from tags join article_tags on tag_id = tags.id")) == [("微信",), ("香港",)]
    path.unlink()
    build([post_folder], db_path)
    assert rows(db_path, "select count(*) from tags") == [(0,)]


def test_problem_files_are_recorded_and_the_rest_is_built(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    make_post(post_folder, "good.md")
    (post_folder / "bad.md").write_text("no front matter here")
    (post_folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    summary = build([post_folder], db_path)
    assert summary.added == 1 and summary.skipped == 1 and summary.scanned == 3
    assert rows(db_path, "select path, reason from problems") == [("bad.md", "no front matter (file does not start with a `---` line)")]
    (post_folder / "bad.md").unlink()
    build([post_folder], db_path)
    assert rows(db_path, "select count(*) from problems") == [(0,)]


def test_a_failed_build_leaves_the_old_database_untouched(post_folder, tmp_path, monkeypatch):
    db_path = tmp_path / "posts.db"
    make_post(post_folder, "a.md")
    build([post_folder], db_path)
    before = db_path.read_bytes()
    make_post(post_folder, "b.md", url="https://example.com/b")

    def explode(self, post):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Loader, "write_article", explode)
    with pytest.raises(RuntimeError):
        build([post_folder], db_path)
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts", "posts.db"]


# --- the command line -------------------------------------------------------------


def test_cli_build_prints_a_summary_and_problems(post_folder, tmp_path):
    make_post(post_folder, "good.md")
    (post_folder / "bad.md").write_text("---\ntitle: [\n---\n")
    db_path = tmp_path / "out" / "posts.db"
    result = runner.invoke(build_db.app, ["build", str(post_folder), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "bad.md: invalid YAML in front matter" in result.output
    assert "1 added, 0 changed, 0 unchanged, 0 removed; 1 problem(s); 2 files scanned" in result.output
    again = runner.invoke(build_db.app, ["build", str(post_folder), "--db", str(db_path)])
    assert "0 added, 0 changed, 1 unchanged, 0 removed; 1 problem(s)" in again.output


def cli_build(folder, db_path, *flags: str):
    result = runner.invoke(build_db.app, ["build", str(folder), "--db", str(db_path), *flags])
    assert result.exit_code == 0, result.output
    return result


def test_cli_force_parses_every_file_again(post_folder, tmp_path):
    make_post(post_folder, "a.md", title="甲", url="https://example.com/a")
    make_post(post_folder, "b.md", title="乙", url="https://example.com/b")
    db_path = tmp_path / "posts.db"
    cli_build(post_folder, db_path)
    with sqlite3.connect(db_path) as conn:  # a row that no longer says what its file says
        conn.execute("update articles set title = '改过' where url = 'https://example.com/a'")
    conn.close()
    again = cli_build(post_folder, db_path)
    assert "0 added, 0 changed, 2 unchanged" in again.output  # the file's hash is unchanged: not read
    assert rows(db_path, "select title from articles where url = 'https://example.com/a'") == [("改过",)]
    forced = cli_build(post_folder, db_path, "--force")
    assert f"wrote {db_path}" in forced.output, forced.output
    assert rows(db_path, "select title from articles order by url") == [("甲",), ("乙",)]


def search_tables(db_path) -> set[str]:
    return {name for (name,) in rows(db_path, "select name from sqlite_master where type = 'table'") if name in INDEX_TABLES}


def test_cli_no_search_builds_without_the_search_indexes(post_folder, tmp_path):
    make_post(post_folder, "a.md", title="甲", url="https://example.com/a")
    db_path = tmp_path / "posts.db"
    cli_build(post_folder, db_path, "--no-search")
    assert search_tables(db_path) == set() and rows(db_path, "select title from articles") == [("甲",)]
    cli_build(post_folder, db_path)
    assert search_tables(db_path) == set(INDEX_TABLES)
    assert rows(db_path, "select rowid from articles_fts where articles_fts match ?", (fts_query("甲"),)) == rows(
        db_path, "select id from articles"
    )


@pytest.mark.parametrize("names", [("a.md", "b.md"), ("z.md", "m.md")], ids=["written-in-order", "written-reversed"])
def test_revisions_with_the_same_date_keep_the_path_that_sorts_last(post_folder, tmp_path, names):
    url = "https://example.com/same"
    for name in names:  # the file written last is not what decides
        make_post(post_folder, f"2021/{name}", title=f"版本 {name}", date="2021-01-01T00:00:00Z", url=url)
    db_path = tmp_path / "posts.db"
    build([post_folder], db_path)
    last = max(f"2021/{name}" for name in names)
    assert rows(db_path, "select path, title from articles") == [(last, f"版本 {last[5:]}")]
    statuses = dict(rows(db_path, "select path, status from article_files"))
    assert statuses == {f"2021/{name}": "kept" if f"2021/{name}" == last else "superseded" for name in names}


def test_cli_strict_exits_1_and_keeps_the_old_database(post_folder, tmp_path):
    db_path = tmp_path / "posts.db"
    make_post(post_folder, "good.md")
    assert runner.invoke(build_db.app, ["build", str(post_folder), "--db", str(db_path), "--strict"]).exit_code == 0
    before = db_path.read_bytes()
    (post_folder / "bad.md").write_text("")
    result = runner.invoke(build_db.app, ["build", str(post_folder), "--db", str(db_path), "--strict"])
    assert result.exit_code == 1
    assert "bad.md: file is empty" in result.output
    assert db_path.read_bytes() == before


@pytest.mark.parametrize(
    "command, names",
    [([], []), (["build"], ["[SOURCE]...", "--db", "FILE"]), (["check"], ["[SOURCE]..."]), (["serve"], ["FILE", "ADDRESS", "PORT"])],
    ids=["main", "build", "check", "serve"],
)
def test_help_names_values_as_a_person_would(command, names):
    result = runner.invoke(build_db.app, [*command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output
    assert all(name in result.output for name in names), result.output
    # no Python type shows through: <list[Path]>, <path>, <bool>, <int>
    assert "list[" not in result.output and "Path]" not in result.output, result.output
    assert not re.findall(r"<[\w\[\], |]+>", result.output), result.output


def test_cli_check_writes_nothing_and_reports(post_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_post(post_folder, "good.md")
    result = runner.invoke(build_db.app, ["check", str(post_folder)])
    assert result.exit_code == 0, result.output
    (post_folder / "bad.md").write_text("---\ntitle: x\n---\n")
    result = runner.invoke(build_db.app, ["check", str(post_folder)])
    assert result.exit_code == 1
    assert "bad.md: missing `from` in front matter" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts"]


def test_cli_missing_source_is_a_clear_error(tmp_path):
    result = runner.invoke(build_db.app, ["build", str(tmp_path / "nope"), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


def test_data_folder_builds(data_db):
    assert rows(data_db, "select count(*) from articles")[0][0] >= 1
    assert rows(data_db, "select count(*) from problems") == [(0,)]


def test_problem_lines_escape_control_characters_in_file_names(post_folder, tmp_path):
    (post_folder / "evil\x1b[31mname\nsecond.md").write_text("not a post")
    result = runner.invoke(build_db.app, ["build", str(post_folder), "--db", str(tmp_path / "posts.db")])
    assert result.exit_code == 0, result.output
    line = "evil\\x1b[31mname\\x0asecond.md: no front matter (file does not start with a `---` line)"
    assert line in result.output.splitlines()
    assert "\x1b" not in result.output


def test_same_names_in_two_sources_stay_two_files(tmp_path):
    first = make_post(tmp_path / "a" / "_posts", "x.md", url="https://example.com/1")
    second = make_post(tmp_path / "b" / "_posts", "x.md", url="https://example.com/2")
    summary = build([first.parent, second.parent, first], tmp_path / "posts.db")
    assert (summary.added, summary.scanned) == (2, 2)
    assert sorted(r[0] for r in rows(tmp_path / "posts.db", "select path from article_files")) == [
        "a/_posts/x.md",
        "b/_posts/x.md",
    ]


def test_the_kept_facet_counts_follow_an_incremental_build(tmp_path):
    """facet_counts (postsdb/facets.py) after posts are added and removed: what a fresh
    build keeps, and what counting the articles now gives."""
    sources = copy_corpus(tmp_path / "corpus")
    db_path = tmp_path / "incremental.db"
    build(sources, db_path)
    posts = sorted(p for source in sources for p in source.rglob("*") if p.suffix in (".md", ".html"))
    for gone in posts[:5]:
        gone.unlink()
    make_post(sources[0], "new-post.md", date="1999-01-01T00:00:00Z", url="https://example.com/new")
    assert build(sources, db_path).wrote
    fresh = tmp_path / "fresh.db"
    build(sources, fresh)
    kept = rows(db_path, "select facet, value, count from facet_counts order by 1, 2")
    assert kept == rows(fresh, "select facet, value, count from facet_counts order by 1, 2")
    assert ("year", 1999, 1) in kept and ("author", "作者", 1) in kept  # the new post, its year a number
    with sqlite3.connect(db_path) as conn:
        years = conn.execute("select year, count(*) from articles group by year").fetchall()
        topics = conn.execute("select name, count(distinct article_id) from article_tags join tags on tags.id = tag_id group by name").fetchall()
    assert sorted((v, n) for f, v, n in kept if f == "year") == sorted(years)
    assert sorted((v, n) for f, v, n in kept if f == "tags") == sorted(topics)
