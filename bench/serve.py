"""Benchmark the served site: the shared corpus scaled x30, `build_db.py serve` on 127.0.0.1,
a bounded load per URL, requests/s and p50/p99 latency.

    python bench/serve.py                 # build x30 in a temp dir, serve, measure
    python bench/serve.py --keep /tmp/x30 # ... and keep the built database in /tmp/x30/
    python bench/serve.py --db big.db     # measure an existing database instead
    python bench/serve.py --seconds 5 --copies 10

Each URL is measured twice: as served (the response cache in plugins/response_cache.py
answers repeat anonymous GETs, as a CDN would) and with the cache bypassed (a Cookie header
makes the request personal, so Datasette renders the page every time). The load is `wrk`
(Debian's package) when it is installed, else an asyncio client; either way it stops after
`--seconds` (at most 20) and never leaves 127.0.0.1.

Target: the faceted articles table page, as served, at 100 requests/s or more, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postsdb.build import POST_SUFFIXES, build  # noqa: E402
from postsdb.serve import running_server  # noqa: E402

CORPUS = ROOT / "data"  # the real sample the project ships
CORPUS_SOURCES = (CORPUS / "seed", CORPUS / "posts")
TARGET_RPS = 100
MAX_SECONDS = 20
MAX_REQUESTS = 50_000  # the asyncio client's bound on one run, besides time
CONNECTIONS = 8
FROM_LINE = re.compile(r"^(from:[ \t]*)(\S+?)([ \t]*)$", re.M)
TITLE_LINE = re.compile(r'^(title:[ \t]*".*)("[ \t]*)$', re.M)
BYPASS = {"Cookie": "bench=bypass-cache"}


@dataclass
class Result:
    label: str
    cache: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


# --- the scaled corpus ------------------------------------------------------------


def scaled_corpus(target: Path, copies: int) -> int:
    """Copy k of each post gets `-copy-k` on its URL path (a different article) and ` #k`
    on its title; copy 0 is the post as it is."""
    posts = [p for s in CORPUS_SOURCES for p in sorted(s.rglob("*")) if p.suffix.lower() in POST_SUFFIXES]
    if not posts:
        sys.exit(f"no posts under {CORPUS}: the sample in data/ is needed for this benchmark")
    target.mkdir(parents=True)
    for k in range(copies):
        for number, post in enumerate(posts):
            text = post.read_text(encoding="utf-8", errors="surrogateescape")
            if k:
                text = FROM_LINE.sub(lambda m: f"{m[1]}{copy_url(m[2], k)}{m[3]}", text, count=1)
                text = TITLE_LINE.sub(lambda m: f"{m[1]} #{k}{m[2]}", text, count=1)
            (target / f"{k:02d}-{number:04d}{post.suffix}").write_text(text, encoding="utf-8", errors="surrogateescape")
    return len(posts) * copies


def copy_url(url: str, k: int) -> str:
    head, _, query = url.partition("?")  # query strings may be dropped as tracking: change the path
    if head.endswith("/"):
        return f"{head[:-1]}-copy-{k}/" + (f"?{query}" if query else "")
    return f"{head}-copy-{k}" + (f"?{query}" if query else "")


# --- load -------------------------------------------------------------------------


def measure(url: str, seconds: int, headers: dict | None, label: str, cache: str) -> Result:
    if shutil.which("wrk"):
        return measure_wrk(url, seconds, headers or {}, label, cache)
    return asyncio.run(measure_async(url, seconds, headers or {}, label, cache))


def measure_wrk(url: str, seconds: int, headers: dict, label: str, cache: str) -> Result:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output)[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Result(
        label,
        cache,
        float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
        wrk_ms(re.search(r"50%\s+([\d.]+\w+)", output)[1]),
        wrk_ms(re.search(r"99%\s+([\d.]+\w+)", output)[1]),
        requests,
        errors,
    )


def wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


async def measure_async(url: str, seconds: int, headers: dict, label: str, cache: str) -> Result:
    import httpx

    latencies, errors = [], 0
    deadline = time.monotonic() + seconds

    async def worker(client):
        nonlocal errors
        while time.monotonic() < deadline and len(latencies) < MAX_REQUESTS:
            started = time.perf_counter()
            try:
                response = await client.get(url, headers=headers)
                ok = response.status_code < 400
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    began = time.monotonic()
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(trust_env=False, timeout=5, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
    elapsed = time.monotonic() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Result(label, cache, len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, len(latencies), errors)


# --- the run ----------------------------------------------------------------------


def pages(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        (article,) = conn.execute(
            "select id from articles where image_count > 0 order by published desc limit 1"
        ).fetchone()
    return [
        ("table page, default facets", "/posts/articles"),
        ("article page", f"/posts/articles/{article}"),
        ("facet JSON", "/posts/articles.json?_facet=month&_size=0"),
        ("canned query", "/posts/articles_per_month.json?_shape=array"),
        ("table search page (香港)", "/posts/articles?_search=%E9%A6%99%E6%B8%AF"),
        ("search page, relevance (香港)", "/posts/search?q=%E9%A6%99%E6%B8%AF"),
        ("search JSON, relevance (香港)", "/posts/search.json?q=%E9%A6%99%E6%B8%AF&_shape=array"),
        ("feed page", "/posts/feed"),
        ("Atom feed", "/posts/feed.atom"),
        ("timeline", "/-/dashboards/archive"),
    ]


def run(db: Path, seconds: int) -> list[Result]:
    import httpx

    results = []
    with running_server(db) as base, httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        for label, path in pages(db):
            warm = client.get(path)
            assert warm.status_code == 200, (path, warm.status_code)
            results.append(measure(base + path, seconds, None, label, "on"))
            results.append(measure(base + path, seconds, BYPASS, label, "off"))
            print(f"  measured {label}", file=sys.stderr, flush=True)
    return results


def report(db: Path, articles: int, seconds: int, results: list[Result]) -> bool:
    tool = "wrk -t2 -c8" if shutil.which("wrk") else f"asyncio httpx client, {CONNECTIONS} connections"
    print(f"database: {db.stat().st_size / 2**20:.1f} MB, {articles:,} articles; load: {tool}, {seconds} s per URL and cache mode")
    print(f"{'URL':<32} {'cache':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>6}")
    for r in results:
        print(f"{r.label:<32} {r.cache:>5} {r.rps:>9.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.requests:>9,} {r.errors:>6}")
    table = next(r for r in results if r.label.startswith("table page") and r.cache == "on")
    errors = sum(r.errors for r in results)
    ok = table.rps >= TARGET_RPS and errors == 0
    print(
        f"target: table page >= {TARGET_RPS} req/s as served ({table.rps:.1f}), 0 errors ({errors}): "
        + ("PASS" if ok else "FAIL")
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="measure this database instead of building the scaled corpus")
    parser.add_argument("--keep", type=Path, help="build in this (new) folder and keep it, instead of a temp folder")
    parser.add_argument("--copies", type=int, default=30, help="copies of the corpus to build (default 30)")
    parser.add_argument("--seconds", type=int, default=10, help=f"load per URL and cache mode, at most {MAX_SECONDS}")
    args = parser.parse_args()
    seconds = max(1, min(args.seconds, MAX_SECONDS))
    with tempfile.TemporaryDirectory(prefix="posts-bench-serve-") as temp:
        db = args.db
        if db is None:
            work = args.keep or Path(temp)
            started = time.perf_counter()
            posts = scaled_corpus(work / "corpus", args.copies)
            db = work / "posts.db"
            summary = build([work / "corpus"], db)
            print(f"built {posts:,} posts (x{args.copies}) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            if summary.problems:
                print(f"  {len(summary.problems)} problem file(s)", file=sys.stderr)
        with sqlite3.connect(db) as conn:
            (articles,) = conn.execute("select count(*) from articles").fetchone()
        results = run(db, seconds)
        return 0 if report(db, articles, seconds, results) else 1


if __name__ == "__main__":
    sys.exit(main())
