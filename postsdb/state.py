"""The state of the previous build: which file had which hash, and what must be parsed again."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from postsdb import search
from postsdb.load import delete_articles
from postsdb.scan import SourceFile
from postsdb.schema import SCHEMA_VERSION, schema_version


@dataclass
class State:
    files: dict[str, tuple[str, int]]  # path -> (sha256, article_id)
    problems: dict[str, str | None]  # path -> sha256
    articles: dict[int, str]  # article id -> sha256 of its kept file
    has_search: bool = False


EMPTY_STATE = State({}, {}, {})


def read_state(db_path: Path) -> State | None:
    """None when there is no usable database, which means: build from scratch."""
    if not db_path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
            if schema_version(conn) != SCHEMA_VERSION:
                return None
            files = {p: (h, a) for p, h, a in conn.execute("select path, sha256, article_id from article_files")}
            problems = dict(conn.execute("select path, sha256 from problems").fetchall())
            articles = dict(conn.execute("select id, sha256 from articles").fetchall())
            has_search = search.has_index(conn)
    except sqlite3.DatabaseError:
        return None
    return State(files, problems, articles, has_search)



def differs(state: State, hashes: dict) -> bool:
    known = {**{p: h for p, (h, _) in state.files.items()}, **state.problems}
    now = {rel: digest for rel, (_, digest, _) in hashes.items()}
    return known != now


def forget_changed(conn: sqlite3.Connection, before: State, hashes: dict) -> list[SourceFile]:
    """Delete what changed or went away; return the files to (re)parse.

    An article whose files changed is rebuilt from all of its files, so its unchanged
    revisions are parsed again too: that is how the newest-revision rule stays exact.
    """
    changed = {rel for rel, (_, digest, _) in hashes.items() if not seen_before(before, rel, digest)}
    gone = (set(before.files) | set(before.problems)) - set(hashes)
    touched = changed | gone
    affected = {before.files[rel][1] for rel in touched if rel in before.files}
    reparse = {rel for rel, (_, article) in before.files.items() if article in affected and rel in hashes}
    delete_articles(conn, affected)
    conn.executemany("delete from article_revisions where article_id = ?", [(a,) for a in affected])
    conn.executemany("delete from article_files where path = ?", [(p,) for p in touched | reparse])
    conn.executemany("delete from problems where path = ?", [(p,) for p in touched])
    return [hashes[rel][0] for rel in sorted(changed | reparse) if rel in hashes]


def seen_before(before: State, rel: str, digest: str | None) -> bool:
    """Whether the previous build recorded this file with these contents, as an article's
    file or as a problem. (A file refused unread has no digest: it is new if unrecorded.)"""
    if rel in before.files:
        return before.files[rel][0] == digest
    return rel in before.problems and before.problems[rel] == digest
