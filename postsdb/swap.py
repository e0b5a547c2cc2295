"""The atomic file swap: a build writes into a private copy and renames it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator

from postsdb import search
from postsdb.schema import ensure_schema

TEMP_MARKER = ".building-"


def open_for_build(path: Path, with_search: bool, fresh: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    # The file is a private copy until it is renamed into place: no journal is needed,
    # and a crash only ever loses the copy.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    if fresh:  # a copy of the last build already has this schema, search index or not
        create_tables(conn, with_search)
    return conn


def create_tables(conn: sqlite3.Connection, with_search: bool) -> None:
    import sqlite_utils  # here, not at the top: its imports cost 0.2 s, and only new files need it

    ensure_schema(sqlite_utils.Database(conn))
    if with_search:
        search.ensure_index(conn)


@contextlib.contextmanager
def temporary_copy(db_path: Path, fresh: bool) -> Iterator[Path]:
    temp_path = db_path.with_name(f".{db_path.name}{TEMP_MARKER}{os.getpid()}")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not fresh:
            shutil.copyfile(db_path, temp_path)
        yield temp_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()


def commit_file(temp_path: Path, db_path: Path) -> None:
    with open(temp_path, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp_path, db_path)
    directory = os.open(db_path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_stale_temp_files(db_path: Path) -> None:
    """Copies left by builds that were killed: their process is gone."""
    if not db_path.parent.exists():
        return
    for leftover in db_path.parent.glob(f".{db_path.name}{TEMP_MARKER}*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not process_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
