"""Crash safety: a real build, killed with SIGKILL at points spread over its run, never
harms the previous database, and a later build completes.

The corpus is copied three times (with altered URLs, so each copy is new articles) to
make the build long enough to hit: the previous database holds the first copy, and the
build that gets killed adds the other two. Kill points are read from the build's own
progress (its temporary copy growing on disk), not from a clock, so a slow or busy
machine moves them in time but not in the build.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "build_db.py"
COPIES = 3
TEMP_MARKER = ".building-"  # postsdb.swap.TEMP_MARKER: `.posts.db.building-<pid>`
GROWTH_POINTS = (0.2, 0.4, 0.6, 0.8)  # how far the temporary copy has grown towards its final size
TIMEOUT = 120


@dataclass
class Scaled:
    sources: Path  # the folder the killed builds read: every copy
    db: Path  # the previous database: the first copy only
    previous: bytes  # its exact contents
    final_size: int  # the size of the database an uninterrupted build makes
    final_articles: set  # and its (id, sha256) pairs
    build_seconds: float


def copy_with_new_urls(sources: list[Path], target: Path, copy: int) -> None:
    """The corpus as new articles: each `from:` host gets a `c<copy>.` prefix."""
    for source in sources:
        for path in sorted(source.iterdir()):
            data = re.sub(rb"^from: https://", f"from: https://c{copy}.".encode(), path.read_bytes(), count=1, flags=re.M)
            out = target / f"copy-{copy}" / source.name / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)


def start_build(sources: Path, db: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, str(CLI), "build", str(sources), "--db", str(db)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def run_build(sources: Path, db: Path, log: Path) -> float:
    started = time.perf_counter()
    process = start_build(sources, db, log)
    assert process.wait(timeout=TIMEOUT) == 0, log.read_text(errors="replace")
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
    return time.perf_counter() - started


def temp_path(db: Path, pid: int) -> Path:
    return db.with_name(f".{db.name}{TEMP_MARKER}{pid}")


def file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def query(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def articles(db: Path) -> set:
    return set(query(db, "select id, sha256 from articles"))


def integrity(db: Path) -> str:
    return query(db, "PRAGMA integrity_check")[0][0]


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, corpus_sources) -> Scaled:
    base = tmp_path_factory.mktemp("crash")
    sources = base / "sources"
    for copy in range(COPIES):
        copy_with_new_urls(corpus_sources, sources / "all", copy)
    first_only = sources / "first"
    shutil.copytree(sources / "all" / "copy-0", first_only / "copy-0")
    # The previous database: built from the first copy, under the same relative paths.
    db = base / "db" / "posts.db"
    run_build(first_only, db, base / "previous.log")
    # An uninterrupted build of everything, on a copy, to learn where the build ends.
    timed = base / "timed" / "posts.db"
    timed.parent.mkdir()
    shutil.copyfile(db, timed)
    seconds = run_build(sources / "all", timed, base / "timed.log")
    return Scaled(sources / "all", db, db.read_bytes(), timed.stat().st_size, articles(timed), seconds)


def kill_when(process: subprocess.Popen, ready, what: str) -> tuple[float, int | None]:
    """SIGKILL the build as soon as `ready(temp_size)` holds; return (seconds, temp size)."""
    started = time.perf_counter()
    temp = temp_path(Path(process.args[-1]), process.pid)
    while process.poll() is None:
        size = file_size(temp)
        if ready(time.perf_counter() - started, size):
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=TIMEOUT)
            return time.perf_counter() - started, size
        time.sleep(0.002)
    pytest.fail(f"the build finished (exit {process.returncode}) before the kill point: {what}")


def kill_points(scaled: Scaled) -> list[tuple[str, callable]]:
    start = len(scaled.previous)
    points = [
        ("0.3 s after start (imports, scanning)", lambda seconds, size: seconds >= 0.3),
        ("the temporary copy appears", lambda seconds, size: size is not None),
    ]
    for share in GROWTH_POINTS:
        goal = start + share * (scaled.final_size - start)
        points.append((f"temporary copy {share:.0%} grown", lambda seconds, size, goal=goal: (size or 0) >= goal))
    return points


def surviving_workers(db: Path, wait: float = 2.0) -> list[int]:
    """Processes still building `db` (the killed build's parser workers), after a grace period."""
    deadline = time.monotonic() + wait
    while True:
        pids = [
            int(proc.name)
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit() and str(db).encode() in read_cmdline(proc)
        ]
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def read_cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_killed_builds_leave_the_previous_database_intact(scaled, tmp_path):
    folder = scaled.db.parent
    report = []
    for number, (what, ready) in enumerate(kill_points(scaled)):
        process = start_build(scaled.sources, scaled.db, tmp_path / f"kill-{number}.log")
        seconds, size = kill_when(process, ready, what)
        report.append(f"{what}: killed at {seconds:.2f} s, temporary copy {size or 0:,} bytes")
        assert process.returncode == -signal.SIGKILL, report
        assert scaled.db.read_bytes() == scaled.previous, f"database changed after: {report[-1]}"
        assert integrity(scaled.db) == "ok", report
        leftovers = {p.name for p in folder.iterdir()} - {scaled.db.name}
        # Only the killed builds' own copies, named by their (dead) process: the next
        # build removes them. No journal beside the database.
        assert all(re.fullmatch(rf"\.{re.escape(scaled.db.name)}{TEMP_MARKER}\d+", name) for name in leftovers), leftovers
        assert not any(name.endswith(("-journal", "-wal", "-shm")) for name in leftovers)
        assert surviving_workers(scaled.db) == [], f"parser processes outlived the build: {report[-1]}"
    print("\n" + "\n".join(report) + f"\n(uninterrupted build: {scaled.build_seconds:.2f} s, {scaled.final_size:,} bytes)")

    run_build(scaled.sources, scaled.db, tmp_path / "later.log")
    assert sorted(p.name for p in folder.iterdir()) == [scaled.db.name]
    assert integrity(scaled.db) == "ok"
    assert articles(scaled.db) == scaled.final_articles
    assert query(scaled.db, "select count(*) from builds") == [(2,)]  # the killed builds left no trace


def test_a_killed_first_build_leaves_no_database(scaled, tmp_path):
    db = tmp_path / "db" / "posts.db"
    process = start_build(scaled.sources, db, tmp_path / "kill.log")
    kill_when(process, lambda seconds, size: (size or 0) > 4 * 1024 * 1024, "4 MB written")
    assert not db.exists()
    assert [p.name for p in db.parent.iterdir()] == [temp_path(db, process.pid).name]  # removed by the next build
