"""Benchmark `build_db.py build` on the shared corpus scaled up N times.

    python bench/build.py                 # N=30: about 4,500 posts, several minutes
    python bench/build.py --copies 5 --no-rss-scaling

Every build runs as its own `python build_db.py build ...` process, from a copy of the
code taken when the benchmark starts (so edits made meanwhile change nothing). Its wall
time includes interpreter start-up and imports, and its peak RSS is its own. "work s" is
the time the program reports for its own work (the build's summary line); files/s and
MB/s are computed from it. The naive pipeline (bench/naive.py) runs on the same files in
the same way; the floor (read + one HTML parse per file) runs in this process.

Targets: the full build as `build` runs it by default, with the Chinese search index, at
most 0.45x the time of the naive pipeline with its default full-text index (aim: 0.3x);
and, for information, the build without the index against the naive pipeline without one
(it was 6x faster). No-op rebuild <= 1 s and one changed file <= 2 s, with the index; the
index at most 0.8x the size of the text it indexes; peak RSS flat as N grows.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    ROOT,
    Run,
    append_paragraph,
    build_command,
    floor_seconds,
    make_corpus,
    original_posts,
    post_files,
    run_measured,
    snapshot_code,
)

sys.path.insert(0, str(ROOT))
from postsdb import search  # noqa: E402

NAIVE_TARGET = 0.45  # build with the index / naive with its FTS
NAIVE_AIM = 0.30
INDEX_SIZE_TARGET = 0.8  # the index's pages / the rest of the database
NOOP_TARGET = 1.0
CHANGED_TARGET = 2.0
RSS_FLAT = 1.25  # "flat": peak RSS at the largest N within 25% of the smallest
BUSY = 0.85  # a full build that got less CPU than this share of its wall time was slowed by other work
NAIVE = str(Path(__file__).resolve().parent / "naive.py")
COUNTED_TABLES = ("articles", "images", "links", "tags", "article_tags", "article_files")


@dataclass
class Corpus:
    folder: Path
    files: list[Path]
    size: int

    @property
    def megabytes(self) -> float:
        return self.size / 1e6


@dataclass
class Builder:
    """Runs `build_db.py build` from one snapshot of the code."""

    code: Path

    def run(self, corpus: Corpus, db: Path, search: bool) -> Run:
        return run_measured(build_command(self.code, corpus.folder, db, search))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=30, metavar="N", help="copies of each corpus post (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each rebuild; the fastest is shown (default 3)")
    parser.add_argument(
        "--rss-scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also build at N/6 and N/2 copies to show peak RSS against N (default: on)",
    )
    return parser.parse_args()


# --- measurements ---------------------------------------------------------------


def prepare(folder: Path, copies: int) -> Corpus:
    make_corpus(folder, copies, original_posts())
    files = post_files(folder)
    return Corpus(folder, files, sum(p.stat().st_size for p in files))


def full_build(builder: Builder, corpus: Corpus, db: Path, search: bool) -> Run:
    run = builder.run(corpus, db, search)
    expect(run, rf"^{len(corpus.files)} added, 0 changed", "a full build adds every file")
    return run


def noop_rebuilds(builder: Builder, corpus: Corpus, db: Path, search: bool, repeat: int) -> list[Run]:
    runs = [builder.run(corpus, db, search) for _ in range(repeat)]
    for run in runs:
        expect(run, r"^0 added, 0 changed, \d+ unchanged.*; left ", "a no-op rebuild writes nothing")
    return runs


def changed_rebuilds(builder: Builder, corpus: Corpus, db: Path, search: bool, target: Path, repeat: int) -> list[Run]:
    """Each run first appends a paragraph to `target`. All edits go to that one file, so
    every rebuild, of either database, sees exactly one changed file."""
    runs = []
    for _ in range(repeat):
        append_paragraph(target, len(runs) + 1)
        run = builder.run(corpus, db, search)
        expect(run, r"^0 added, 1 changed, \d+ unchanged.*; wrote ", "one changed file is one changed article")
        runs.append(run)
    return runs


def naive_build(corpus: Corpus, db: Path, fts: bool = True) -> Run:
    run = run_measured([NAIVE, "--db", str(db), str(corpus.folder), "--fts" if fts else "--no-fts"])
    expect(run, rf"^naive: {len(corpus.files)} files", "the naive pipeline reads every file")
    return run


def rss_scaling(builder: Builder, base: Path, points: list[int], largest: tuple) -> list[tuple[int, int, Run]]:
    """Peak RSS of a full --no-search build at several N; the largest N's run is reused."""
    results = []
    for copies in points:
        corpus = prepare(base / f"corpus-{copies}", copies)
        run = full_build(builder, corpus, base / f"rss-{copies}.db", search=False)
        results.append((copies, len(corpus.files), run))
    return results + [largest]


def index_size(db: Path) -> tuple[int, int]:
    """The search index's pages, and the pages of everything else: the data it indexes."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        index, total = conn.execute(
            f"select sum(case when {search.index_pages_sql()} then pgsize else 0 end), sum(pgsize) from dbstat"
        ).fetchone()
    return index or 0, (total or 0) - (index or 0) or 1


def expect(run: Run, pattern: str, what: str) -> None:
    if not re.search(pattern, run.stdout, re.M):
        sys.exit(f"unexpected build output ({what}):\n{run.stdout}\n{run.stderr}")


def row_counts(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in COUNTED_TABLES}


def code_version() -> str:
    """The commit measured, and whether the build's code has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "postsdb", "build_db.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes in postsdb/ or build_db.py" if dirty.stdout.strip() else "")


def step(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the report -------------------------------------------------------------------


def best_run(runs: list[Run]) -> Run:
    """The fastest run: on a shared machine, the least disturbed by other work."""
    return min(runs, key=lambda run: run.wall)


def spread(runs: list[Run]) -> str:
    walls = [run.wall for run in runs]
    return f"{len(runs)} runs (wall {min(walls):.2f}-{max(walls):.2f} s)" if len(runs) > 1 else "1 run"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def row(label: str, run: Run | None, work: float, corpus: Corpus, note: str = "") -> str:
    wall, cpu, rss = (f"{run.wall:8.2f}", f"{run.cpu:8.2f}", f"{run.peak_rss_mb:8.0f}") if run else (f"{'-':>8}",) * 3
    files_per_s, mb_per_s = len(corpus.files) / work, corpus.megabytes / work
    return f"{label:<32}{wall}{work:8.2f}{cpu}{files_per_s:9,.0f}{mb_per_s:7.1f}{rss}  {note}".rstrip()


def rebuild_row(label: str, runs: list[Run]) -> str:
    run = best_run(runs)
    return f"{label:<32}{run.wall:8.2f}{run.inner:8.2f}{run.cpu:8.2f}{'':16}{run.peak_rss_mb:8.0f}  best of {spread(runs)}"


def print_table(corpus: Corpus, runs: dict, floor: float, noop: dict, changed: dict, target: Path) -> None:
    build, search, naive = runs["build"], runs["search"], runs["naive"]
    print(f"{'':32}{'wall s':>8}{'work s':>8}{'cpu s':>8}{'files/s':>9}{'MB/s':>7}{'RSS MB':>8}")
    print(row("full build (with search index)", search, search.inner, corpus))
    print(row("naive pipeline, default FTS", naive, naive.inner, corpus))
    print(row("full build --no-search", build, build.inner, corpus))
    print(row("naive pipeline --no-fts", runs["naive_plain"], runs["naive_plain"].inner, corpus))
    print(row("floor: read + lexbor parse", None, floor, corpus, "in-process, best of 3"))
    print(rebuild_row("no-op rebuild --no-search", noop["build"]))
    print(rebuild_row("no-op rebuild with search", noop["search"]))
    print(rebuild_row("1 file changed, --no-search", changed["build"]))
    print(rebuild_row("1 file changed, with search", changed["search"]))
    print("work s: the time the program reports for its own work (files/s and MB/s use it); wall s: the")
    print("whole process, start-up and imports included; cpu s: user + system CPU time; RSS: peak RSS.")
    print(f"Changed file: {target.name}")


def print_targets(runs: dict, noop: dict, changed: dict, scaling: list, index: tuple[int, int]) -> None:
    build, search, naive, plain = runs["build"], runs["search"], runs["naive"], runs["naive_plain"]
    print("Targets")
    ratio = search.inner / naive.inner
    print(
        f"  build / naive, both indexed  {ratio:5.2f}x work ({search.wall / naive.wall:.2f}x wall, "
        f"{search.cpu / naive.cpu:.2f}x cpu)   target <= {NAIVE_TARGET}x, aim {NAIVE_AIM}x   {verdict(ratio <= NAIVE_TARGET)}"
    )
    print(
        f"  build / naive, no index      {build.inner / plain.inner:5.2f}x work ({build.wall / plain.wall:.2f}x wall, "
        f"{build.cpu / plain.cpu:.2f}x cpu)   (information)"
    )
    index_bytes, text_bytes = index
    print(
        f"  index / the data it indexes  {index_bytes / text_bytes:5.2f}x ({index_bytes / 1e6:.1f} MB / {text_bytes / 1e6:.1f} MB)"
        f"   target <= {INDEX_SIZE_TARGET}x   {verdict(index_bytes / text_bytes <= INDEX_SIZE_TARGET)}"
    )
    checks = (
        ("no-op rebuild, search", noop["search"], NOOP_TARGET),
        ("one changed file, search", changed["search"], CHANGED_TARGET),
        ("no-op rebuild --no-search", noop["build"], NOOP_TARGET),
        ("one changed file --no-search", changed["build"], CHANGED_TARGET),
    )
    for label, rebuilds, limit in checks:
        run = best_run(rebuilds)
        print(
            f"  {label:<28} {run.wall:5.2f} s wall ({run.inner:.2f} s work, {run.cpu:.2f} s cpu)"
            f"   target <= {limit:.0f} s   {verdict(run.wall <= limit)}"
        )
    if scaling:
        points = ", ".join(f"N={n} ({files:,} files) {run.peak_rss_mb:.0f} MB" for n, files, run in scaling)
        growth = scaling[-1][2].peak_rss_mb / scaling[0][2].peak_rss_mb
        print(f"  peak RSS --no-search         {points}")
        print(f"  {'':28} x{growth:.2f} from smallest to largest N   target flat (<= x{RSS_FLAT})   {verdict(growth <= RSS_FLAT)}")


def print_information(runs: dict, floor: float, counts: dict) -> None:
    build, search, naive = runs["build"], runs["search"], runs["naive"]
    print("For information")
    print(f"  build --no-search / floor    {build.inner / floor:5.1f}x work")
    print(f"  build with search / floor    {search.inner / floor:5.1f}x work")
    print(f"  search index costs           {search.inner - build.inner:5.1f} s work ({search.inner / build.inner:.2f}x the --no-search build)")
    print(f"  naive peak RSS               {naive.peak_rss_mb:5.0f} MB (it keeps every row in memory until the end)")
    rows = ", ".join(f"{t} {counts['build'][t]:,}/{counts['naive'][t]:,}" for t in COUNTED_TABLES)
    print(f"  rows written (build / naive): {rows}")
    shares = {name: run.cpu / run.wall for name, run in runs.items()}
    if min(shares.values()) < BUSY:
        got = ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
        print(f"  WARNING: the machine was busy: the full runs got {got} of a CPU (cpu s / wall s).")
        print("  Their wall and work times are inflated, and so are their ratios; for these single-process")
        print("  programs the cpu ratio is the steadier figure.")


# --- main -------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.copies < 1 or args.repeat < 1:
        sys.exit("--copies and --repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="posts-bench-") as temp:
        base = Path(temp)
        version, builder = code_version(), Builder(snapshot_code(base / "code"))
        step(f"writing {args.copies} copies of the corpus into {base} ...")
        corpus = prepare(base / "corpus", args.copies)
        dbs = {"build": base / "build.db", "search": base / "search.db"}
        step("full build --no-search ...")
        runs = {"build": full_build(builder, corpus, dbs["build"], search=False)}
        step("full build with search index ...")
        runs["search"] = full_build(builder, corpus, dbs["search"], search=True)
        step("naive pipeline, with its default FTS ...")
        runs["naive"] = naive_build(corpus, base / "naive.db")
        step("naive pipeline, no FTS ...")
        runs["naive_plain"] = naive_build(corpus, base / "naive-plain.db", fts=False)
        index = index_size(dbs["search"])
        counts = {"build": row_counts(dbs["build"]), "naive": row_counts(base / "naive.db")}
        step("floor ...")
        floor = floor_seconds(corpus.files)
        step("no-op rebuilds ...")
        noop = {key: noop_rebuilds(builder, corpus, db, key == "search", args.repeat) for key, db in dbs.items()}
        step("rebuilds after changing one file ...")
        target = corpus.files[len(corpus.files) // 2]
        changed = {key: changed_rebuilds(builder, corpus, db, key == "search", target, args.repeat) for key, db in dbs.items()}
        scaling = []
        if args.rss_scaling:
            points = sorted({max(1, args.copies // 6), max(1, args.copies // 2)} - {args.copies})
            step(f"peak RSS at N = {', '.join(map(str, points))} ...")
            scaling = rss_scaling(builder, base, points, (args.copies, len(corpus.files), runs["build"]))
    print()
    print(f"Code: {version}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    print(f"Corpus: {len(corpus.files):,} files, {corpus.megabytes:.1f} MB ({len(corpus.files) // args.copies} posts x {args.copies} copies)")
    print()
    print_table(corpus, runs, floor, noop, changed, target)
    print()
    print_targets(runs, noop, changed, scaling, index)
    print()
    print_information(runs, floor, counts)


if __name__ == "__main__":
    main()
