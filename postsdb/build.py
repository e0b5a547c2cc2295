"""Load parsed posts into SQLite: incremental, idempotent and atomic.

A build reads the state of the existing database (which file had which hash), hashes every
source file, and re-parses only what changed. It writes into a copy of the database and
swaps it in with one `os.replace`, so a build that fails or is killed leaves the previous
database exactly as it was.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import stat
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from postsdb import search
from postsdb.parse import Post, PostError, article_id, parse_post
from postsdb.schema import SCHEMA_VERSION, ensure_schema, schema_version

POST_SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})
TEMP_MARKER = ".building-"


@dataclass
class SourceFile:
    path: Path  # where it is on disk
    rel: str  # how the database names it: relative to its SOURCE folder
    problem: str | None = None  # set when the file must not be read at all


@dataclass
class Scan:
    files: list[SourceFile]
    skipped: int


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


# --- finding files ------------------------------------------------------------


def scan_sources(sources: Iterable[Path]) -> Scan:
    """Every post file below the sources. Hidden folders are not entered; symlinks that
    lead outside their source folder, or nowhere, are reported, never followed; nor is
    anything that is not a regular file read."""
    sources = list(sources)
    base = common_base(sources)
    files, skipped, seen = [], 0, set()

    def add(path: Path, problem: str | None, folder_rel: str | None = None) -> None:
        if folder_rel is None:
            folder_rel = os.path.relpath(os.path.abspath(path.parent), base)
        rel = display_path(path.name if folder_rel == "." else f"{folder_rel}/{path.name}".replace(os.sep, "/"))
        if rel not in seen:  # a file reached twice (a folder and its subfolder both named)
            seen.add(rel)
            files.append(SourceFile(path, rel, problem))

    for source in sources:
        if source.exists() and not source.is_dir():  # a file named on the command line
            add(source, irregular_problem(source))
            continue
        if not source.is_dir():
            raise FileNotFoundError(f"{source}: no such folder")
        root = source.resolve()
        for folder, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            folder_rel = os.path.relpath(os.path.abspath(folder), base)  # once per folder
            for name in sorted(filenames):
                path = Path(folder) / name
                if path.suffix.lower() not in POST_SUFFIXES:
                    skipped += 1
                    continue
                add(path, unreadable_problem(path, root), folder_rel)
    return Scan(files, skipped)


def common_base(sources: list[Path]) -> str:
    """Paths are stored relative to this: the one source folder, or the folder that holds
    all of them, so `a/_posts/x.md` and `b/_posts/x.md` stay two files."""
    base = os.path.commonpath([os.path.abspath(source) for source in sources])
    return base if os.path.isdir(base) else os.path.dirname(base)


def unreadable_problem(path: Path, root: Path) -> str | None:
    """Why the file must not be opened, or None. A FIFO would block the build forever."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            return None  # the common case, in one system call: a plain file, not a link
        problem = outside_problem(path, root)
        if problem:
            return problem
        return irregular_problem(path)
    except RuntimeError:  # what Path.resolve raises for a symlink loop before Python 3.13
        return "symlink loop (not followed)"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop (not followed)"
        return f"cannot read: {error.strerror or error}"


def irregular_problem(path: Path) -> str | None:
    if not stat.S_ISREG(path.stat().st_mode):
        return "not a regular file (a FIFO, socket or device): not read"
    return None


def outside_problem(path: Path, root: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target != root and root not in target.parents:
        return "symlink to a file outside the source folder (not followed)"
    return None


def display_path(rel: str) -> str:
    # File names that are not UTF-8 still get a printable, storable name, and a distinct
    # one: each bad byte becomes `\xNN` (with "replace", two names could become one path).
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- the state of the previous build ------------------------------------------


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


# --- the build ----------------------------------------------------------------


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


def hash_files(files: list[SourceFile]) -> dict[str, tuple[SourceFile, str | None, int]]:
    hashes = {}
    for source_file in files:
        if source_file.problem:
            hashes[source_file.rel] = (source_file, None, 0)
            continue
        try:
            digest, size = file_hash(source_file.path)
        except OSError as error:
            source_file.problem = f"cannot read: {error.strerror or error}"
            digest, size = None, 0
        hashes[source_file.rel] = (source_file, digest, size)
    return hashes


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
    conn.executemany("delete from article_files where path = ?", [(p,) for p in touched | reparse])
    conn.executemany("delete from problems where path = ?", [(p,) for p in touched])
    return [hashes[rel][0] for rel in sorted(changed | reparse) if rel in hashes]


def seen_before(before: State, rel: str, digest: str | None) -> bool:
    """Whether the previous build recorded this file with these contents, as an article's
    file or as a problem. (A file refused unread has no digest: it is new if unrecorded.)"""
    if rel in before.files:
        return before.files[rel][0] == digest
    return rel in before.problems and before.problems[rel] == digest


def delete_articles(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    rows = [(i,) for i in ids]
    if not rows:
        return
    search.delete(conn, [i for (i,) in rows])
    for table in ("article_tags", "images", "links", "article_bodies"):
        conn.executemany(f"delete from {table} where article_id = ?", rows)
    conn.executemany("update article_files set status = 'superseded' where article_id = ?", rows)
    conn.executemany("delete from articles where id = ?", rows)


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


# --- writing articles -----------------------------------------------------------


def parse_or_reason(source_file: SourceFile) -> Post | str:
    """The file's Post, or the reason it cannot be one: what `build` stores and `check` prints."""
    if source_file.problem:
        return source_file.problem
    try:
        return parse_post(source_file.path, source_file.rel)
    except PostError as error:
        return str(error).removeprefix(f"{source_file.rel}: ")
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    except RecursionError:
        return "HTML is nested too deeply to parse"


# --- parsing, on every core ------------------------------------------------------

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARALLEL_FROM = 200  # fewer files than this are parsed in this process: no start-up cost
BATCH = 64
SEARCH_BATCH = 256  # rows for the search index held before they are written, in rowid order


def prepare(source_file: SourceFile, with_search: bool) -> Post | str:
    """Everything about one file that needs no database: run in a worker process."""
    post = parse_or_reason(source_file)
    if with_search and not isinstance(post, str):
        post.search_fields = search.index_fields(post.title, post.body.text)
    return post


def worker_pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=die_with, initargs=(os.getpid(),))


def die_with(parent: int) -> None:
    """A worker must not outlive a build that was killed: ask Linux to kill it too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the build died before the request was made
        os._exit(1)


def parse_all(files: list[SourceFile], with_search: bool) -> Iterator[tuple[SourceFile, Post | str]]:
    """Parsed files, in order. Parsing is pure and most of a build's time, so it runs in a
    process per core while this process writes; at most two batches are in flight, so memory
    stays flat however many files there are."""
    work = functools.partial(prepare, with_search=with_search)
    workers = os.cpu_count() or 1
    if workers < 2 or len(files) < PARALLEL_FROM:
        yield from ((f, work(f)) for f in files)
        return
    with worker_pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for start in range(0, len(files), BATCH):
            batch = files[start : start + BATCH]
            pending.append((batch, [pool.submit(work, f) for f in batch]))
            if len(pending) > 2:
                yield from batch_results(*pending.popleft(), work)
        while pending:
            yield from batch_results(*pending.popleft(), work)


def batch_results(batch, futures, work) -> Iterator[tuple[SourceFile, Post | str]]:
    for source_file, future in zip(batch, futures):
        try:
            yield source_file, future.result()
        except BrokenProcessPool:
            yield source_file, parse_alone(source_file, work)


def parse_alone(source_file: SourceFile, work) -> Post | str:
    # A worker died (a crash in a C parser): each file of the pool's work is tried again in
    # a process of its own, so only the file that kills its parser is lost, as a problem.
    with worker_pool(1) as pool:
        try:
            return pool.submit(work, source_file).result()
        except BrokenProcessPool:
            return "the parser crashed on this file"


class Loader:
    """Adds files one at a time. Of several files with one URL, the article keeps the
    newest by `published`, then by path (the later in sort order): a deterministic rule,
    whatever order the files arrive in."""

    def __init__(self, conn: sqlite3.Connection, with_search: bool):
        self.conn = conn
        self.with_search = with_search
        # Rows for the search index, written a batch at a time in rowid order: FTS5 writes
        # its pending terms out as a new segment whenever a rowid is lower than the last
        # one, and article ids are hashes, so one at a time made a segment per article.
        self.search_rows: list[tuple[int, tuple[str, str]]] = []
        self.kept = {
            article: (published, path)
            for path, article, published in self.conn.execute(
                "select path, article_id, published from article_files where status = 'kept'"
            )
        }

    def add(self, source_file: SourceFile, hashed: tuple, post: Post | str) -> None:
        _, digest, size = hashed
        if isinstance(post, str):
            return self.problem(source_file.rel, digest, size, post)
        self.article(post, size)

    def article(self, post: Post, size: int) -> None:
        current = self.kept.get(post.id)
        keep = current is None or (post.published, post.path) > current
        if keep:
            if current is not None:
                self.flush_search()  # the index must hold what is deleted from it
                delete_articles(self.conn, [post.id])
            self.write_article(post)
            self.kept[post.id] = (post.published, post.path)
        self.conn.execute(
            "insert into article_files (path, sha256, size, article_id, url, published, status) values (?, ?, ?, ?, ?, ?, ?)",
            (post.path, post.sha256, size, post.id, post.url, post.published, "kept" if keep else "superseded"),
        )

    def problem(self, rel: str, digest: str | None, size: int, reason: str) -> None:
        self.conn.execute(
            "insert or replace into problems (path, sha256, size, reason) values (?, ?, ?, ?)", (rel, digest, size, reason)
        )

    def write_article(self, post: Post) -> None:
        body = post.body
        self.conn.execute(
            """insert into articles (id, title, url, published, published_date, year, month, author,
            source, publication, tags, lead, word_count, image_count, link_count, path, sha256, feed_published)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                post.id,
                post.title,
                post.url,
                post.published,
                post.published[:10],
                int(post.published[:4]),
                post.published[:7],
                post.author,
                post.source,
                post.publication,
                json.dumps(post.tags, ensure_ascii=False),
                post.lead,
                body.word_count,
                len(body.images),
                len(body.links),
                post.path,
                post.sha256,
                post.feed_published,
            ),
        )
        self.conn.execute(
            "insert into article_bodies (article_id, body_html, body_text) values (?, ?, ?)",
            (post.id, body.html, body.text),
        )
        self.conn.executemany(
            "insert into images (article_id, position, src, alt, title, caption, width, height) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [(post.id, i.position, i.src, i.alt, i.title, i.caption, i.width, i.height) for i in body.images],
        )
        self.conn.executemany(
            "insert into links (article_id, position, href, text, domain, internal) values (?, ?, ?, ?, ?, ?)",
            [(post.id, k.position, k.href, k.text, k.domain, int(k.internal)) for k in body.links],
        )
        tags = [(topic_id(kind, name), name, kind) for kind, name in post.topics]
        self.conn.executemany("insert or ignore into tags (id, name, kind) values (?, ?, ?)", tags)
        self.conn.executemany(
            "insert or ignore into article_tags (article_id, tag_id) values (?, ?)", [(post.id, t[0]) for t in tags]
        )
        if self.with_search:
            self.search_rows.append((post.id, post.search_fields or search.index_fields(post.title, body.text)))
            if len(self.search_rows) >= SEARCH_BATCH:
                self.flush_search()

    def flush_search(self) -> None:
        if self.search_rows:
            search.insert_many(self.conn, sorted(self.search_rows))
            self.search_rows.clear()

    def finish(self) -> None:
        self.flush_search()
        self.conn.execute("delete from tags where id not in (select tag_id from article_tags)")


def topic_id(kind: str, name: str) -> int:
    """Stable across builds; the tag "China" and the category "China" are two rows."""
    return article_id(f"{kind}:{name}")


# --- the atomic swap ------------------------------------------------------------


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
