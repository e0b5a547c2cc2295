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

Besides one URL at a time, a mix of distinct URLs (article pages and their 简/繁 views, searches of the table and
by relevance as pages and JSON, filtered and faceted table pages, facet JSON, a canned
query: DISTINCT_URLS of them, shuffled, each load thread starting at a different point)
measures what a repeated URL hides: every request is new to the response cache and to
SQLite's page cache for its rows.

Targets: the faceted articles table page, as served, at 100 requests/s or more; the distinct
mix at 150 requests/s or more with p99 <= 250 ms; the table's search page at 60 requests/s
or more uncached; 0 errors.

The other parts (`--only urls,cpu,curve,workers,hold`; all by default):

- cpu: CPU per request by kind, this site against bare Datasette on the same URLs, in one
  run (bench/cpu.py); `--before DIR` adds another checkout of the project, same run.
- curve: the uncached mix at 1 to 64 connections: requests/s, p50, p99 and CPU per request,
  the fly.toml concurrency limits they imply, and what each Fly size holds at that CPU.
- workers: the mix under `build_db.py serve --workers 1` and `--workers 2` (datasette-gunicorn);
  `--cores 1` holds the server to one CPU (`taskset`), as on a 1-vCPU machine.
- hold: the mix at saturation for `--hold-seconds` (300) while a client streams the CSV of
  every body and 500 idle keep-alive connections stay open: 0 errors, p99 <= 1 s, and RSS
  growing at most 10% after warm-up.

Requests/s move with whatever else runs on the machine; CPU per request hardly does.
`--copies 300` (ten times the full archive) runs the same lines on a 1.8 GB database; it
takes minutes to build and is not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
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
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postsdb.build import build  # noqa: E402
from postsdb.scan import POST_SUFFIXES  # noqa: E402
from postsdb.serve import running_server, write_inspect_file  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import cpu  # noqa: E402  (bench/cpu.py: this site against bare Datasette)

CORPUS = ROOT / "data"  # the real sample the project ships
CORPUS_SOURCES = (CORPUS / "seed", CORPUS / "posts")
TARGET_RPS = 100
DISTINCT_TARGET_RPS = 150
DISTINCT_TARGET_P99_MS = 250
SEARCH_TARGET_RPS = 60  # the table's search page, uncached
DISTINCT_URLS = 4000
CJK_PAIR = re.compile(r"(?=([\u4e00-\u9fff]{2}))")
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


def measure(
    url: str, seconds: int, headers: dict | None, label: str, cache: str, paths: list[str] | None = None, connections: int = CONNECTIONS
) -> Result:
    """Load `url`, or, given `paths`, the server at `url` with each of those paths in turn."""
    if shutil.which("wrk"):
        return measure_wrk(url, seconds, headers or {}, label, cache, paths, connections)
    urls = [url + path for path in paths] if paths else [url]
    return asyncio.run(measure_async(urls, seconds, headers or {}, label, cache, connections))


WRK_WALK = """
local paths = {%s}
local threads = 0
function setup(thread)
  thread:set("start", threads * math.floor(#paths / 2))
  threads = threads + 1
end
function init(args)
  position = start or 0
end
function request()
  position = position %% #paths + 1
  return wrk.format("GET", paths[position])
end
"""


def measure_wrk(url: str, seconds: int, headers: dict, label: str, cache: str, paths: list[str] | None, connections: int = CONNECTIONS) -> Result:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory(prefix="posts-bench-wrk-") as temp:
        if paths:  # every path is ASCII (percent-encoded) and has no quote or backslash
            script = Path(temp) / "walk.lua"
            script.write_text(WRK_WALK % ", ".join(f'"{path}"' for path in paths), encoding="utf-8")
            command += ["-s", str(script)]
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


async def measure_async(urls: list[str], seconds: int, headers: dict, label: str, cache: str, connections: int = CONNECTIONS) -> Result:
    import httpx

    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    walk = itertools.cycle(urls)

    async def worker(client):
        nonlocal errors
        while time.monotonic() < deadline and len(latencies) < MAX_REQUESTS:
            started = time.perf_counter()
            try:
                response = await client.get(next(walk), headers=headers)
                ok = response.status_code < 400
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    began = time.monotonic()
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(trust_env=False, timeout=5, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
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
        ("front page", "/"),
        ("article page", f"/posts/articles/{article}"),
        ("article page, 简/繁", f"/posts/articles/{article}?script=hant"),
        ("facet JSON", "/posts/articles.json?_facet=month&_size=0"),
        ("canned query", "/posts/articles_per_month.json?_shape=array"),
        ("table search page (香港)", "/posts/articles?_search=%E9%A6%99%E6%B8%AF"),
        ("search page, relevance (香港)", "/posts/search?q=%E9%A6%99%E6%B8%AF"),
        ("search JSON, relevance (香港)", "/posts/search.json?q=%E9%A6%99%E6%B8%AF&_shape=array"),
        ("feed page", "/posts/feed"),
        ("Atom feed", "/posts/feed.atom"),
        ("timeline", "/-/dashboards/archive"),
    ]


def distinct_paths(db: Path, count: int = DISTINCT_URLS) -> list[str]:
    """`count` different URLs a crowd of readers might ask for, shuffled (the same each run)."""
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("select id from articles order by id")]
        sources = [row[0] for row in conn.execute("select distinct source from articles where source != '' order by 1")]
        months = [row[0] for row in conn.execute("select distinct month from articles order by 1")]
        titles = [row[0] for row in conn.execute("select title from articles order by id")]
    words = sorted({pair for title in titles for pair in CJK_PAIR.findall(title or "")})
    rng = random.Random(20240601)
    # The kinds the speed issue names, equally likely: searches (pages and JSON), filtered
    # table pages, article pages (and their 简/繁 views), facet JSON and canned queries.
    makers = [
        lambda: f"/posts/articles/{rng.choice(ids)}",
        lambda: f"/posts/articles/{rng.choice(ids)}?script={rng.choice(['hans', 'hant'])}",
        lambda: "/posts/articles?" + urlencode({"_search": rng.choice(words)}, quote_via=quote),
        lambda: "/posts/search?" + urlencode({"q": rng.choice(words)}, quote_via=quote),
        lambda: "/posts/search.json?" + urlencode({"q": rng.choice(words), "_shape": "array"}, quote_via=quote),
        lambda: "/posts/articles?" + urlencode({"source": rng.choice(sources), "month": rng.choice(months)}, quote_via=quote),
        lambda: "/posts/articles?" + urlencode({"month": rng.choice(months), "_sort_desc": "published"}, quote_via=quote),
        lambda: "/posts/articles.json?" + urlencode({"year": rng.choice(months)[:4], "_facet": "month", "_size": 0}, quote_via=quote)
        + f"&source={quote(rng.choice(sources))}",
        lambda: "/posts/latest_by_source.json?" + urlencode({"source": rng.choice(sources), "_shape": "array"}, quote_via=quote)
        + f"&_size={rng.randint(5, 50)}",
    ]
    paths: dict[str, None] = {}
    for _ in range(count * 20):
        if len(paths) == count:
            break
        paths.setdefault(rng.choice(makers)(), None)
    walk = list(paths)
    rng.shuffle(walk)
    return walk


def run(db: Path, seconds: int) -> list[Result]:
    import httpx

    results = []
    # As the image serves on this machine: one worker process per CPU (postsdb/serve.py).
    with running_server(db, workers=SERVED_WORKERS) as base, httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        for label, path in pages(db):
            warm = client.get(path)
            assert warm.status_code == 200, (path, warm.status_code)
            results.append(measure(base + path, seconds, None, label, "on"))
            results.append(measure(base + path, seconds, BYPASS, label, "off"))
            print(f"  measured {label}", file=sys.stderr, flush=True)
        walk = distinct_paths(db)
        label = f"distinct mix ({len(walk):,} URLs)"
        for path in walk[:: max(1, len(walk) // 50)]:  # a sample: the mix must be pages that exist
            status = client.get(path).status_code
            assert status == 200, (path, status)
        results.append(measure(base, seconds, None, label, "on", walk))
        results.append(measure(base, seconds, BYPASS, label, "off", walk[len(walk) // 3 :] + walk[: len(walk) // 3]))
        print(f"  measured {label}", file=sys.stderr, flush=True)
    return results


# --- the load curve, CPU per request, one worker or two --------------------------------

CURVE = (1, 2, 4, 8, 12, 16, 24, 32, 64)  # concurrent connections
KNEE_SHARE = 0.9  # the knee: the fewest connections that get this share of the most requests/s
HARD_P99_MS = 1000  # the hard limit: the most connections measured whose p99 stays under this
WORKER_CONNECTIONS = 16
SERVED_WORKERS = len(os.sched_getaffinity(0))  # the image runs one worker per CPU (`nproc`)
# Fly Machines' CPU: a shared vCPU's baseline is 1/16 of a core (bursts come from a
# balance); a performance vCPU is a whole core.
FLY_SIZES = (("shared-cpu-1x", 1 / 16), ("shared-cpu-2x", 2 / 16), ("performance-1x", 1.0))


@dataclass
class Point:
    connections: int
    result: Result
    cpu_ms: float  # CPU of the server's processes per request


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children (gunicorn's workers)."""
    import psutil

    parent = psutil.Process(pid)
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def loaded(base: str, pid: int, walk: list[str], seconds: int, connections: int, label: str) -> Point:
    before = server_cpu(pid)
    result = measure(base, seconds, BYPASS, label, "off", walk, connections)
    return Point(connections, result, 1000 * (server_cpu(pid) - before) / max(1, result.requests))


def load_curve(base: str, pid: int, walk: list[str], seconds: int, levels=CURVE) -> list[Point]:
    """The uncached mix at each concurrency, each level starting at a new place in the walk."""
    points = []
    for number, level in enumerate(levels):
        offset = number * len(walk) // len(levels)
        points.append(loaded(base, pid, walk[offset:] + walk[:offset], seconds, level, f"mix, {level} connections"))
        print(f"  curve: {level} connections", file=sys.stderr, flush=True)
    return points


def limits(points: list[Point]) -> tuple[int, int]:
    """(soft, hard): the knee of the curve, and the most connections whose p99 stays under
    HARD_P99_MS (at least twice the knee)."""
    best = max(p.result.rps for p in points)
    soft = min(p.connections for p in points if p.result.rps >= KNEE_SHARE * best)
    bearable = [p.connections for p in points if p.result.p99_ms <= HARD_P99_MS and not p.result.errors]
    return soft, max([2 * soft, *bearable])


def compare_workers(db: Path, walk: list[str], seconds: int, cores: int | None = None) -> list[tuple[int, Point]]:
    inspect = write_inspect_file(db, db.parent / f"{db.stem}-bench-inspect.json")
    compared = []
    for workers in (1, 2):
        with cpu.server(db, inspect, bare=False, workers=workers, cores=cores) as (base, pid):
            for path in walk[:20]:  # every worker warmed a little
                httpx_get(base + path)
            compared.append((workers, loaded(base, pid, walk, seconds, WORKER_CONNECTIONS, f"{workers} worker(s)")))
        print(f"  measured {workers} worker(s)", file=sys.stderr, flush=True)
    return compared


def httpx_get(url: str) -> None:
    import httpx

    httpx.get(url, headers=BYPASS, timeout=30, trust_env=False)


def report_capacity(points: list[Point], workers: list[tuple[int, Point]], cores: int | None = None) -> None:
    if points:
        report_curve(points)
    if workers:
        report_workers(workers, cores)


def report_curve(points: list[Point]) -> None:
    print("\nload curve: the distinct mix, uncached (a Cookie), one server process")
    print(f"{'connections':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU ms/req':>10}")
    for p in points:
        r = p.result
        print(f"{p.connections:>11} {r.rps:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>6} {p.cpu_ms:>10.1f}")
    soft, hard = limits(points)
    print(f"fly.toml [http_service.concurrency]: soft_limit = {soft}, hard_limit = {hard}"
          f" (the knee: {KNEE_SHARE:.0%} of the best req/s; hard: p99 <= {HARD_P99_MS} ms)")
    cpu_ms = statistics.median(p.cpu_ms for p in points)
    print(f"CPU per uncached request on the mix (median over the curve): {cpu_ms:.1f} ms")
    print(f"{'Fly size':<16} {'cores':>6} {'req/s sustained, 1 machine':>27} {'3 machines':>11}")
    for name, cores in FLY_SIZES:
        one = 1000 * cores / cpu_ms
        print(f"{name:<16} {cores:>6.3g} {one:>27.1f} {3 * one:>11.1f}")


def report_workers(workers: list[tuple[int, Point]], cores: int | None = None) -> None:
    if workers:
        where = f", on {cores} CPU(s)" if cores else ""
        print(f"\none worker or two, the mix at {WORKER_CONNECTIONS} connections (build_db.py serve --workers{where}):")
        for count, p in workers:
            print(f"  {count} worker(s): {p.result.rps:.1f} req/s, p99 {p.result.p99_ms:.0f} ms, {p.cpu_ms:.1f} ms CPU a request (all processes)")


# --- holding up under load ---------------------------------------------------------------

HOLD_CONNECTIONS = 8  # the mix at saturation: requests/s level off from 2 connections (the curve)
IDLE_CONNECTIONS = 500
CSV_STREAM = "/posts/article_bodies.csv?_stream=on"
HOLD_P99_MS = 1000
RSS_GROWTH = 0.10  # after warm-up: the first third of the run, by when the walk has been round once
RSS_EVERY = 2.0


@dataclass
class Hold:
    mix: Result
    streams: int  # CSV streams of every body read to the end
    stream_mb: float
    stream_errors: int
    idle_connections: int  # reconnects included: the server closes idle keep-alive after a while
    rss_mb: list[float]


def hold(db: Path, walk: list[str], seconds: int) -> Hold:
    """The mix as served at HOLD_CONNECTIONS (wrk) for `seconds`, while one client streams the
    CSV of every body again and again and IDLE_CONNECTIONS clients hold keep-alive
    connections open without asking anything more; the memory of the server's processes (PSS) every RSS_EVERY s."""
    import psutil

    inspect = write_inspect_file(db, db.parent / f"{db.stem}-bench-inspect.json")
    with cpu.server(db, inspect, bare=False, workers=SERVED_WORKERS) as (base, pid):
        process = psutil.Process(pid)
        rss: list[float] = []
        side = {}
        stop = time.monotonic() + seconds

        def sidelines():
            side.update(asyncio.run(side_load(base, stop, process, rss)))

        import threading

        thread = threading.Thread(target=sidelines)
        thread.start()
        mix = measure(base, seconds, None, "mix under load", "on", walk, HOLD_CONNECTIONS)
        thread.join(timeout=seconds + 60)
    return Hold(mix, side["streams"], side["bytes"] / 2**20, side["stream_errors"], side["idle"], rss)


async def side_load(base: str, stop: float, process, rss: list[float]) -> dict:
    import httpx

    host, port = base.removeprefix("http://").split(":")
    counts = {"streams": 0, "bytes": 0, "stream_errors": 0, "idle": 0}

    async def stream_csv():
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=60) as client:
            while time.monotonic() < stop:
                try:
                    async with client.stream("GET", CSV_STREAM) as response:
                        async for chunk in response.aiter_bytes():
                            counts["bytes"] += len(chunk)
                            if time.monotonic() >= stop:
                                return
                        counts["streams"] += response.status_code == 200
                        counts["stream_errors"] += response.status_code != 200
                except httpx.HTTPError:
                    counts["stream_errors"] += 1

    async def idle_client():
        # One request opens a keep-alive connection; then it stays idle. When the server
        # closes it (its keep-alive timeout), the client opens a new one and asks nothing.
        request = f"GET /-/versions.json HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                await asyncio.sleep(1)
                continue
            counts["idle"] += 1
            if request:
                writer.write(request)
                request = b""
            try:
                await writer.drain()
                while time.monotonic() < stop and await asyncio.wait_for(reader.read(65536), max(0.1, stop - time.monotonic())):
                    pass  # the answer, then nothing until the server closes the idle connection
            except (OSError, asyncio.TimeoutError):
                pass
            writer.close()

    async def sample_rss():
        while time.monotonic() < stop:
            # gunicorn and its workers: PSS counts the pages they share once, not once a process
            tree = [process, *process.children(recursive=True)]
            rss.append(sum(p.memory_full_info().pss for p in tree) / 2**20)
            await asyncio.sleep(RSS_EVERY)

    await asyncio.gather(stream_csv(), sample_rss(), *(idle_client() for _ in range(IDLE_CONNECTIONS)))
    return counts


def report_hold(held: Hold, seconds: int) -> bool:
    warm = held.rss_mb[len(held.rss_mb) // 3 :] or held.rss_mb
    growth = max(warm) / warm[0] - 1
    m = held.mix
    print(f"\nunder load for {seconds} s: the mix at {HOLD_CONNECTIONS} connections as served, one client streaming "
          f"{CSV_STREAM}, {IDLE_CONNECTIONS} idle keep-alive connections")
    print(f"  mix: {m.rps:.1f} req/s, p50 {m.p50_ms:.0f} ms, p99 {m.p99_ms:.0f} ms, {m.requests:,} requests, {m.errors} errors")
    print(f"  CSV: {held.streams} whole streams, {held.stream_mb:,.0f} MB, {held.stream_errors} errors; "
          f"idle connections opened: {held.idle_connections:,} (the server closes idle ones after its keep-alive timeout)")
    print(f"  memory MB (PSS of the server's processes): start {held.rss_mb[0]:.0f}, after warm-up {warm[0]:.0f}, "
          f"peak {max(held.rss_mb):.0f}, end {held.rss_mb[-1]:.0f}")
    checks = [
        (f"mix 0 errors ({m.errors}) and p99 <= {HOLD_P99_MS} ms ({m.p99_ms:.0f})", m.errors == 0 and m.p99_ms <= HOLD_P99_MS),
        (f"CSV streams without error ({held.stream_errors})", held.stream_errors == 0 and held.streams + held.stream_mb > 0),
        (f"memory (PSS) grows <= {RSS_GROWTH:.0%} after warm-up ({growth:.1%})", growth <= RSS_GROWTH),
    ]
    for text, met in checks:
        print(f"target: {text}: {'PASS' if met else 'FAIL'}")
    return all(met for _, met in checks)


def report(db: Path, articles: int, seconds: int, results: list[Result]) -> bool:
    tool = "wrk -t2 -c8" if shutil.which("wrk") else f"asyncio httpx client, {CONNECTIONS} connections"
    print(f"database: {db.stat().st_size / 2**20:.1f} MB, {articles:,} articles; load: {tool}, {seconds} s per URL and cache mode")
    print(f"{'URL':<32} {'cache':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>6}")
    for r in results:
        print(f"{r.label:<32} {r.cache:>5} {r.rps:>9.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.requests:>9,} {r.errors:>6}")
    table = next(r for r in results if r.label.startswith("table page") and r.cache == "on")
    searched = next(r for r in results if r.label.startswith("table search page") and r.cache == "off")
    mix = next(r for r in results if r.label.startswith("distinct mix") and r.cache == "on")
    errors = sum(r.errors for r in results)
    checks = [
        (f"table page >= {TARGET_RPS} req/s as served ({table.rps:.1f})", table.rps >= TARGET_RPS),
        (
            f"distinct mix >= {DISTINCT_TARGET_RPS} req/s ({mix.rps:.1f}) with p99 <= {DISTINCT_TARGET_P99_MS} ms ({mix.p99_ms:.0f})",
            mix.rps >= DISTINCT_TARGET_RPS and mix.p99_ms <= DISTINCT_TARGET_P99_MS,
        ),
        (f"table search page >= {SEARCH_TARGET_RPS} req/s uncached ({searched.rps:.1f})", searched.rps >= SEARCH_TARGET_RPS),
        (f"0 errors ({errors})", errors == 0),
    ]
    for text, met in checks:
        print(f"target: {text}: {'PASS' if met else 'FAIL'}")
    return all(met for _, met in checks)


PARTS = ("urls", "cpu", "curve", "workers", "hold")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="measure this database instead of building the scaled corpus")
    parser.add_argument("--keep", type=Path, help="build in this (new) folder and keep it, instead of a temp folder")
    parser.add_argument("--copies", type=int, default=30, help="copies of the corpus to build (default 30; 300 for ten times the archive)")
    parser.add_argument("--seconds", type=int, default=10, help=f"load per URL and cache mode, at most {MAX_SECONDS}")
    parser.add_argument("--only", default=",".join(PARTS), help=f"which parts to run, of {', '.join(PARTS)} (default all)")
    parser.add_argument("--cpu-urls", type=int, default=120, help="distinct URLs per kind for the CPU comparison")
    parser.add_argument("--before", type=Path, help="cpu part: also serve this other checkout of the project (e.g. `git archive` of an older commit)")
    parser.add_argument("--cores", type=int, help="workers part: hold the server to this many CPUs (taskset), as on a 1-vCPU machine")
    parser.add_argument("--hold-seconds", type=int, default=300, help="how long the hold part loads the server (default 300)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if parts - set(PARTS):
        parser.error(f"--only: unknown part(s) {', '.join(sorted(parts - set(PARTS)))}; the parts are {', '.join(PARTS)}")
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
        db = db.resolve()
        with sqlite3.connect(db) as conn:
            (articles,) = conn.execute("select count(*) from articles").fetchone()
        met = True
        if "urls" in parts:
            met &= report(db, articles, seconds, run(db, seconds))
        if "cpu" in parts:  # this site against bare Datasette: bench/cpu.py
            print(f"\nCPU per request, this site and bare Datasette on the same URLs ({db.stat().st_size / 2**20:.0f} MB, {articles:,} articles)")
            met &= cpu.report(*cpu.measure(db, args.cpu_urls, before=args.before.resolve() if args.before else None))
        walk = distinct_paths(db)
        points = workers = []
        if "curve" in parts:
            inspect = write_inspect_file(db, db.parent / f"{db.stem}-bench-inspect.json")
            with cpu.server(db, inspect, bare=False) as (base, pid):
                points = load_curve(base, pid, walk, seconds)
        if "workers" in parts:
            workers = compare_workers(db, walk, seconds, args.cores)
        if points or workers:
            report_capacity(points, workers, args.cores)
        if "hold" in parts:
            met &= report_hold(hold(db, walk, args.hold_seconds), args.hold_seconds)
        return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
