"""README, "The download and its search index": the offline search snippet runs and finds
the seed article for 騰訊, the plain SQL recipe does too, and the sizes given for the sample
are what a build of data/ measures."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from postsdb.serve import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")
SEED_TITLE = "腾讯捐五百亿元后立即增用户收费作补偿"
SIZE_TOLERANCE = 0.3e6  # bytes: SQLite versions lay pages out a little differently


def snippet() -> str:
    after = README.split("<!-- offline-search -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def sample_sizes() -> tuple[float, float]:
    row = re.search(r"\| the sample in `data/`[^|]*\| ([\d.]+) MB \| ([\d.]+) MB \|", README)
    return float(row.group(1)) * 1e6, float(row.group(2)) * 1e6


def test_the_offline_search_snippet_finds_the_seed_article(data_db, tmp_path):
    assert data_db.name == "posts.db"  # the name the snippet opens
    result = subprocess.run(
        [sys.executable, "-c", snippet()],
        cwd=data_db.parent, env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SEED_TITLE in result.stdout


def test_the_plain_sql_recipe_finds_the_seed_article(data_db):
    recipe = re.search(r"`… where articles_fts match '(.*?)'`", README).group(1)
    assert recipe == '"腾 讯"'
    sql = "select articles.title from articles_fts join articles on articles.id = articles_fts.rowid where articles_fts match ?"
    with contextlib.closing(sqlite3.connect(data_db)) as conn:
        titles = [title for (title,) in conn.execute(sql, (recipe,))]
    assert SEED_TITLE in titles


def test_the_sample_sizes_are_measured(data_db, tmp_path):
    with_index, without_index = sample_sizes()
    assert abs(data_db.stat().st_size - with_index) < SIZE_TOLERANCE
    stripped = tmp_path / "noindex.db"
    shutil.copyfile(data_db, stripped)
    with contextlib.closing(sqlite3.connect(stripped)) as conn:
        conn.execute("drop table articles_fts")
        conn.execute("drop table related_fts")
        conn.commit()
        conn.execute("vacuum")
    assert abs(stripped.stat().st_size - without_index) < SIZE_TOLERANCE
