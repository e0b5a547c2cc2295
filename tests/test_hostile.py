"""The real CLI against a folder of hostile files (see hostile.py), a few good posts and the
attack posts of test_security_browser.py (one build for both: conftest.py, `hostile_build`).

One build covers everything: each file must end up as an article, a problem whose reason
says what is wrong, or a counted skip; no traceback; every good post still an article.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import make_post
from hostile import (
    ABSENT,
    ARTICLE,
    CANARY_ATTACKS,
    DUPLICATE_KEPT,
    DUPLICATE_URL,
    EPOCH_POST,
    HOSTILE_MARKUP,
    MARKUP_POST,
    MARKUP_SCRAPED_POST,
    MARKUP_URL,
    MUTATION_ATTACKS,
    PWNED_MARKER,
    SKIP,
    HostileBuild,
    active_content,
    run_cli,
)


@pytest.fixture(scope="module")
def built(hostile_build) -> HostileBuild:
    """The session's one hostile build (conftest.py): the hostile files, the good posts and
    the attack posts, which count as good posts here."""
    return hostile_build


def good_posts(built: HostileBuild) -> dict[str, str]:
    """path -> url of every post that must become an article whatever sits beside it."""
    return {**built.good, **{path: url for url, path in built.attacks.items()}}


def query(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def tables(db: Path) -> tuple[dict[str, str], dict[str, str]]:
    files = dict(query(db, "select path, status from article_files"))
    problems = dict(query(db, "select path, reason from problems"))
    return files, problems


def outcome_errors(expected: dict[str, str], files: dict, problems: dict) -> list[str]:
    errors = []
    for path, outcome in sorted(expected.items()):
        got = f"article ({files[path]})" if path in files else f"problem: {problems[path]}" if path in problems else "nothing"
        if outcome == ARTICLE:
            ok = path in files and path not in problems
        elif outcome in (SKIP, ABSENT):
            ok = path not in files and path not in problems
        else:
            wanted = outcome.removeprefix("problem: ")
            ok = path in problems and wanted in problems[path] and path not in files
        if not ok:
            errors.append(f"{path!r}: expected {outcome!r}, got {got!r}")
    return errors


# --- the build ---------------------------------------------------------------------


def test_build_succeeds_without_traceback(built):
    assert "Traceback" not in built.run.stdout + built.run.stderr, built.run.stderr[-3000:]
    assert built.run.returncode == 0, built.run.stderr[-3000:]
    assert built.db.is_file()


def test_every_hostile_file_has_its_expected_outcome(built):
    files, problems = tables(built.db)
    errors = outcome_errors(built.expected, files, problems)
    assert not errors, "\n".join(errors)


def test_deeply_nested_html_is_flattened_and_keeps_its_text(built):
    # As a browser does: past 512 levels the tags go and the text stays.
    for path in ("deep-nesting.md", "deep-nesting-inline.md", "deep-nesting-stray-ends.md"):
        (text,), = query(
            built.db, "select body_text from article_bodies join articles on articles.id = article_id where path = ?", path
        )
        assert text == "深", (path, text[:80])


def test_every_good_post_becomes_an_article(built):
    assert len(built.attacks) == 2 * len(CANARY_ATTACKS) + len(MUTATION_ATTACKS) + 1  # + front-matter-fields
    for path, url in good_posts(built).items():
        rows = query(built.db, "select path, title from articles where url = ?", url)
        assert rows and rows[0][0] == path and rows[0][1], (path, rows)


def test_no_row_is_unaccounted_for(built):
    files, problems = tables(built.db)
    known = set(built.expected) | set(good_posts(built))
    assert set(files) | set(problems) <= known, (set(files) | set(problems)) - known


def test_one_printed_line_per_problem(built):
    problems = query(built.db, "select path, reason from problems order by path")
    lines = built.run.problem_lines
    assert len(lines) == len(problems), "\n".join(lines)
    assert sorted(lines) == sorted(f"{path}: {reason}" for path, reason in problems)


def test_every_scanned_file_is_counted_once(built):
    (scanned, skipped, problem_count), = query(
        built.db, "select files_scanned, files_skipped, problems from builds order by id desc limit 1"
    )
    (file_rows,), = query(built.db, "select count(*) from article_files")
    (problem_rows,), = query(built.db, "select count(*) from problems")
    assert scanned == file_rows + problem_rows + skipped
    assert problem_count == problem_rows
    assert skipped == sum(outcome == SKIP for outcome in built.expected.values())
    assert file_rows == sum(o == ARTICLE for o in built.expected.values()) + len(good_posts(built))
    summary = built.run.summary
    assert f"{problem_rows} problem(s)" in summary, summary
    assert f"{scanned} files scanned ({skipped} skipped)" in summary, summary


def test_duplicate_urls_make_one_article_newest_kept(built):
    rows = query(built.db, "select path, title from articles where url = ?", DUPLICATE_URL)
    assert rows == [(DUPLICATE_KEPT, "新版本")]
    statuses = dict(query(built.db, "select path, status from article_files where url = ?", DUPLICATE_URL))
    assert statuses == {"dup-url-old.md": "superseded", DUPLICATE_KEPT: "kept"}


def test_front_matter_date_wins_over_epoch_comment(built):
    rows = query(built.db, "select published, feed_published from articles where path = ?", EPOCH_POST)
    assert rows == [("2021-03-04T05:06:07Z", "2021-09-06T10:23:00Z")]


def test_dates_before_the_year_1000_keep_four_digits(built):
    assert query(built.db, "select published, year from articles where path = 'date-year-999.md'") == [
        ("0999-01-01T00:00:00Z", 999)
    ]


def test_python_yaml_tags_never_run(built):
    assert not (built.folder.parent / PWNED_MARKER).exists()


def test_files_behind_links_to_outside_are_not_read(built):
    titles = [title for (title,) in query(built.db, "select title from articles")]
    assert "外面的秘密" not in titles
    assert not query(built.db, "select path from article_files where path like 'linked-folder%'")
    (bodies,), = query(built.db, "select count(*) from article_bodies where body_text like '%root:x:0:0%'")
    assert bodies == 0


def test_huge_body_is_kept_whole(built):
    (words, images, links), = query(
        built.db, "select word_count, image_count, link_count from articles where path = 'huge-body.md'"
    )
    assert words > 5_000_000 and images > 4_000 and links == images


# --- sanitized bodies --------------------------------------------------------------

def test_no_stored_body_holds_active_content(built):
    bad = {
        path: active_content(html)
        for path, html in query(
            built.db, "select a.path, b.body_html from articles a join article_bodies b on b.article_id = a.id"
        )
        if active_content(html)
    }
    assert not bad, bad


@pytest.mark.parametrize("path", [MARKUP_POST, MARKUP_SCRAPED_POST])
def test_hostile_markup_is_sanitized_but_article_kept(built, path):
    (html, text), = query(
        built.db, "select body_html, body_text from article_bodies b join articles a on a.id = b.article_id where a.path = ?", path
    )
    assert active_content(html) == []
    for words in ("点击", "这里", "好链接", "相对链接", "样式", "结尾"):
        assert words in text, (words, text)
    images = re.findall(r"<img\b[^>]*>", html)
    assert images, html
    for image in images:
        assert 'referrerpolicy="no-referrer"' in image and 'loading="lazy"' in image, image
        assert "unsafe-url" not in image and "eager" not in image, image
    anchors = re.findall(r"<a\b[^>]*>", html)
    assert anchors, html
    for anchor in anchors:
        assert 'rel="noopener noreferrer nofollow"' in anchor, anchor
        assert "target=" not in anchor, anchor
    assert 'href="https://good.example.com/page"' in html
    assert 'href="https://example.com/relative/path"' in html  # made absolute from the post's URL
    assert "https://img.example.com/a.png" in html


def test_hostile_markup_links_and_images_are_only_http(built):
    (article_id,), = query(built.db, "select id from articles where url = ?", MARKUP_URL)
    hrefs = [href for (href,) in query(built.db, "select href from links where article_id = ?", article_id)]
    srcs = [src for (src,) in query(built.db, "select src from images where article_id = ?", article_id)]
    assert hrefs and srcs
    assert all(url.startswith(("http://", "https://")) for url in hrefs + srcs), hrefs + srcs
    assert "https://img.example.com/lazy.png" in srcs


# --- --strict and check ----------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_build_finds_nothing_to_do(built):
    before = sha256(built.db)
    again = run_cli("build", built.folder, "--db", built.db)
    assert again.returncode == 0 and "Traceback" not in again.stdout + again.stderr
    assert sorted(again.problem_lines) == sorted(built.run.problem_lines)
    assert "0 added, 0 changed" in again.summary and "left" in again.summary, again.summary
    assert sha256(built.db) == before


def test_strict_exits_1_and_keeps_the_database(built):
    before = sha256(built.db)
    unchanged = run_cli("build", built.folder, "--db", built.db, "--strict")
    assert unchanged.returncode == 1 and "Traceback" not in unchanged.stdout + unchanged.stderr
    assert sorted(unchanged.problem_lines[:-1]) == sorted(built.run.problem_lines)
    assert "--strict" in unchanged.problem_lines[-1]
    assert sha256(built.db) == before

    added = built.folder / "2021-02-02-one-more-good-post.md"
    added.write_text(
        "---\ntitle: 又一篇\ndate: 2021-02-02\nfrom: https://example.com/good/more\n---\n<div><p>正文</p></div>\n",
        encoding="utf-8",
    )
    try:
        changed = run_cli("build", built.folder, "--db", built.db, "--strict")
    finally:
        added.unlink()
    assert changed.returncode == 1 and "Traceback" not in changed.stdout + changed.stderr
    assert "1 added" in changed.summary and "left" in changed.summary, changed.summary
    assert sha256(built.db) == before
    assert not [p for p in built.db.parent.iterdir() if p != built.db]


@pytest.mark.parametrize("db_existed", [True, False], ids=["database-kept", "no-database"])
def test_strict_says_whether_it_kept_a_database_or_wrote_none(tmp_path, db_existed):
    folder = tmp_path / "posts"
    make_post(folder, "good.md")
    db = tmp_path / "out" / "posts.db"
    if db_existed:
        assert run_cli("build", folder, "--db", db).returncode == 0
        before = sha256(db)
    (folder / "bad.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    done = run_cli("build", folder, "--db", db, "--strict")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.problem_lines[0].startswith("bad.md: ")
    if db_existed:
        assert done.problem_lines[-1] == f"--strict: 1 problem(s); {db} was left unchanged."
        assert done.summary.endswith(f"left {db}") and sha256(db) == before
    else:
        assert done.problem_lines[-1] == "--strict: 1 problem(s); no database was written."
        assert done.summary.endswith("no database written")
        assert not db.exists() and not list(db.parent.glob("*"))


def listing(folder: Path) -> dict[str, tuple]:
    return {
        str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in folder.rglob("*")
    }


def test_check_reports_the_same_problems_and_writes_nothing(built, tmp_path):
    source_before = listing(built.folder)
    db_before = sha256(built.db)
    checked = run_cli("check", built.folder, cwd=tmp_path)
    assert "Traceback" not in checked.stdout + checked.stderr, checked.stderr[-3000:]
    assert checked.returncode == 1
    assert sorted(checked.problem_lines) == sorted(built.run.problem_lines)
    posts = sum(o not in (SKIP, ABSENT) for o in built.expected.values()) + len(good_posts(built))
    skipped = sum(o == SKIP for o in built.expected.values())
    problems = len(built.run.problem_lines)
    assert f"{posts} post files checked, {problems} problem(s), {skipped} other files skipped." in checked.summary
    assert list(tmp_path.iterdir()) == []
    assert listing(built.folder) == source_before
    assert sha256(built.db) == db_before


def test_the_active_content_check_is_not_blind():
    found = " ".join(active_content(HOSTILE_MARKUP))
    for part in ("<script>", "<iframe>", "<form>", "<style>", "<link>", "onerror", "onclick", "style>", "javascript:"):
        assert part in found, part


@pytest.mark.parametrize("command", ["check", "build"])
def test_a_fifo_named_on_the_command_line_is_a_problem_not_a_hang(command, tmp_path):
    fifo = tmp_path / "fifo.md"
    os.mkfifo(fifo)
    extra = ["--db", tmp_path / "posts.db"] if command == "build" else []
    done = run_cli(command, fifo, *extra)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.problem_lines == ["fifo.md: not a regular file (a FIFO, socket or device): not read"]
    assert done.returncode == (1 if command == "check" else 0)
