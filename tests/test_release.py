"""`build_db.py check-release`: a scheduled release refuses a build that lost articles or
gained a new kind of problem, and lets an ordinary day's build through."""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

import build_db
from conftest import copy_corpus, make_post
from postsdb.build import build
from postsdb.release import Build, judge, problem_kind

runner = CliRunner()


def check_release(db: Path, previous: Path | None, *extra: str):
    args = ["check-release", "--db", str(db)] + (["--previous", str(previous)] if previous else []) + list(extra)
    return runner.invoke(build_db.app, args)


def build_copy(tmp_path: Path, name: str, change=lambda sources: None) -> Path:
    """The sample, copied and changed by `change`, built into tmp_path/name.db."""
    sources = copy_corpus(tmp_path / name)
    change(sources)
    db = tmp_path / f"{name}.db"
    build(sources, db)
    return db


def remove_posts(count: int):
    def change(sources: list[Path]) -> None:
        posts = sorted(p for p in sources[-1].rglob("*") if p.is_file())
        for post in posts[:count]:
            post.unlink()

    return change


@pytest.fixture(scope="module")
def previous_db(data_db) -> Path:
    return data_db


def test_problem_kind_drops_what_is_particular_to_a_file():
    assert problem_kind("invalid YAML in front matter: mapping values are not allowed here, line 3") == (
        "invalid YAML in front matter"
    )
    assert problem_kind("`date` is not an ISO 8601 date: 'yesterday'") == "`date` is not an ISO N date"
    assert problem_kind("not UTF-8 (invalid byte at offset 1,234)") == "not UTF-8 (invalid byte at offset N)"
    assert problem_kind("file is 40,000,000 bytes, over the 33,554,432-byte limit") == (
        "file is N bytes, over the N-byte limit"
    )
    assert problem_kind("file is empty") == "file is empty"


def test_judge_allows_a_small_fall_and_known_problems():
    before = Build(1000, {"file is empty": 2})
    assert judge(Build(970, {"file is empty": 5}), before).ok  # exactly 3% fewer
    assert judge(Build(1200, {}), before).ok
    assert judge(Build(10, {"missing title (front matter `title` is empty and the body has none)": 1}), None).ok


def test_judge_refuses_a_large_fall_a_new_kind_and_an_empty_build():
    before = Build(1000, {"file is empty": 2})
    fell = judge(Build(969, {}), before)
    assert not fell.ok and fell.refusals == ["articles fell from 1,000 to 969 (3.1% fewer; at most 3% allowed)"]
    new_kind = judge(Build(1000, {"file is empty": 1, "binary file (contains NUL bytes)": 4}), before)
    assert new_kind.refusals == ["a new kind of problem (4 file(s)): binary file (contains NUL bytes)"]
    assert judge(Build(0, {}), None).refusals == ["the new build has no articles"]
    assert judge(Build(990, {}), before, max_drop=0.0).refusals[0].startswith("articles fell")


def test_the_same_build_again_is_fit_to_publish(previous_db, tmp_path):
    result = check_release(previous_db, previous_db)
    assert result.exit_code == 0, result.output
    assert "151 articles (151)" in result.output and "Fit to publish." in result.output


def test_a_first_release_has_nothing_to_compare_with(previous_db, tmp_path):
    for previous in (None, tmp_path / "never-built.db"):
        result = check_release(previous_db, previous)
        assert result.exit_code == 0, result.output
        assert "no previous build" in result.output


def test_a_few_posts_fewer_pass_but_many_fewer_are_refused(previous_db, tmp_path):
    few = build_copy(tmp_path, "few", remove_posts(3))  # 148 of 151: 2% fewer
    assert check_release(few, previous_db).exit_code == 0
    many = build_copy(tmp_path, "many", remove_posts(10))  # 141 of 151: 6.6% fewer
    result = check_release(many, previous_db)
    assert result.exit_code == 1
    assert "Refused: articles fell from 151 to 141 (6.6% fewer; at most 3% allowed)" in result.output
    assert check_release(many, previous_db, "--max-drop", "0.1").exit_code == 0


def test_a_new_kind_of_problem_is_refused(previous_db, tmp_path):
    def break_one(sources: list[Path]) -> None:
        (sources[-1] / "2024-01-01-broken.md").write_text("no front matter here\n", encoding="utf-8")

    broken = build_copy(tmp_path, "broken", break_one)
    result = check_release(broken, previous_db)
    assert result.exit_code == 1
    assert "Refused: a new kind of problem (1 file(s)): no front matter (file does not start with a `---` line)" in (
        result.output
    )

    # The same kind again the next day is known, so it passes.
    def break_another(sources: list[Path]) -> None:
        break_one(sources)
        make_post(sources[-1], "2024-01-02-fine.md", url="https://example.com/fine")
        (sources[-1] / "2024-01-03-broken.md").write_text("nor here\n", encoding="utf-8")

    next_day = build_copy(tmp_path, "next-day", break_another)
    assert check_release(next_day, broken).exit_code == 0


def test_an_unreadable_build_is_refused_and_a_missing_one_is_a_usage_error(previous_db, tmp_path):
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(previous_db.read_bytes()[: 64 * 1024])
    result = check_release(truncated, previous_db)
    assert result.exit_code == 1 and "Refused: cannot read a build" in result.output
    missing = check_release(tmp_path / "missing.db", previous_db)
    assert missing.exit_code == 2 and "no such database" in missing.output
    shutil.copyfile(previous_db, tmp_path / "copy.db")
    assert check_release(tmp_path / "copy.db", truncated).exit_code == 1  # the old one cannot be read either


def test_a_build_that_fails_quick_check_is_refused(previous_db, tmp_path):
    # The header's freelist count (bytes 36-39) says 3 pages more than there are: every
    # table still reads, and only SQLite's quick_check sees the damage.
    damaged = tmp_path / "damaged.db"
    data = bytearray(previous_db.read_bytes())
    (free_pages,) = struct.unpack(">I", data[36:40])
    data[36:40] = struct.pack(">I", free_pages + 3)
    damaged.write_bytes(data)
    with sqlite3.connect(f"file:{previous_db}?mode=ro", uri=True) as conn:
        articles = conn.execute("select count(*) from articles").fetchone()
    conn.close()
    conn = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    try:
        assert conn.execute("select count(*) from articles").fetchone() == articles
        assert conn.execute("pragma quick_check").fetchone() != ("ok",)
    finally:
        conn.close()
    result = check_release(damaged, previous_db)
    assert result.exit_code == 1 and "Refused: cannot read a build: quick_check:" in result.output, result.output
    assert check_release(damaged, None).exit_code == 1  # the first release is checked too
