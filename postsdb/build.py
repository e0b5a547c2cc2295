"""Load parsed posts into SQLite: incremental, idempotent and atomic.

A build reads the state of the existing database (which file had which hash), hashes every
source file, and re-parses only what changed. It writes into a copy of the database and
swaps it in with one `os.replace`, so a build that fails or is killed leaves the previous
database exactly as it was.

Each concern has its module: `scan` finds and hashes the files, `state` reads the previous
build and forgets what changed, `workers` parses on every core, `load` writes the rows,
`relations` derives copies, revisions' order and related articles from the loaded texts,
`facets` counts the articles page's facets over the whole table, and `swap` does the
atomic file swap. This module runs them in order.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from postsdb import facets, relations
from postsdb.load import Loader
from postsdb.scan import hash_files, scan_sources
from postsdb.state import EMPTY_STATE, differs, forget_changed, read_state
from postsdb.swap import commit_file, open_for_build, remove_stale_temp_files, temporary_copy
from postsdb.workers import parse_all


@dataclass
class Summary:
    scanned: int = 0
    skipped: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    wrote: bool = False


def build(
    sources: list[Path],
    db_path: Path,
    force: bool = False,
    with_search: bool = True,
    keep_if_problems: bool = False,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> Summary:
    """Bring `db_path` up to date with `sources`. `keep_if_problems` (for --strict)
    leaves the database untouched when any file is a problem."""
    started = time.perf_counter()
    scan = scan_sources(sources)
    summary = Summary(scanned=len(scan.files) + scan.skipped, skipped=scan.skipped)
    remove_stale_temp_files(db_path)
    previous = read_state(db_path)
    state = previous
    if force or (state is not None and state.has_search != with_search):
        state = None  # parse everything; adding or dropping the search index means that too
    hashes = hash_files(scan.files)
    if state is not None and not differs(state, hashes):
        summary.unchanged = len(state.articles)
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
            summary.problems = problem_lines(conn)
        summary.seconds = time.perf_counter() - started
        return summary
    before = state or EMPTY_STATE
    with temporary_copy(db_path, fresh=state is None) as temp_path:
        conn = open_for_build(temp_path, with_search, fresh=state is None)
        with contextlib.closing(conn), conn:
            to_parse = forget_changed(conn, before, hashes)
            loader = Loader(conn, with_search)
            tick = progress(len(to_parse)) if progress else (lambda: None)
            for source_file, parsed in parse_all(to_parse, with_search):
                loader.add(source_file, hashes[source_file.rel], parsed)
                tick()
            loader.finish()
            relations.update(conn)
            facets.store_counts(conn)
            check_foreign_keys(conn)
            after = dict(conn.execute("select id, sha256 from articles").fetchall())
            count_changes(summary, (previous or EMPTY_STATE).articles, after)
            summary.problems = problem_lines(conn)
            summary.seconds = time.perf_counter() - started
            record_build(conn, summary)
        if keep_if_problems and summary.problems:
            return summary  # the temporary copy is thrown away
        commit_file(temp_path, db_path)
        summary.wrote = True
    return summary


def check_foreign_keys(conn: sqlite3.Connection) -> None:
    # Not enforced row by row (a replaced revision briefly orphans its files), so checked
    # once, before the new database can replace the old one.
    broken = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
    if broken:
        raise RuntimeError(f"build bug: rows with dangling foreign keys: {broken}")


def count_changes(summary: Summary, before: dict[int, str], after: dict[int, str]) -> None:
    summary.added = len(after.keys() - before.keys())
    summary.removed = len(before.keys() - after.keys())
    summary.changed = sum(1 for i in after.keys() & before.keys() if after[i] != before[i])
    summary.unchanged = len(after.keys() & before.keys()) - summary.changed


def record_build(conn: sqlite3.Connection, summary: Summary) -> None:
    conn.execute(
        """insert into builds (finished, seconds, files_scanned, files_skipped, added, changed,
        unchanged, removed, problems) values (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            round(summary.seconds, 3),
            summary.scanned,
            summary.skipped,
            summary.added,
            summary.changed,
            summary.unchanged,
            summary.removed,
            len(summary.problems),
        ),
    )


def problem_lines(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("select path, reason from problems order by path").fetchall()
