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
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

from postsdb.build import POST_SUFFIXES, build  # noqa: E402
from postsdb.serve import running_server  # noqa: E402

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


def measure(url: str, seconds: int, headers: dict | None, label: str, cache: str, paths: list[str] | None = None) -> Result:
    """Load `url`, or, given `paths`, the server at `url` with each of those paths in turn."""
    if shutil.which("wrk"):
        return measure_wrk(url, seconds, headers or {}, label, cache, paths)
    urls = [url + path for path in paths] if paths else [url]
    return asyncio.run(measure_async(urls, seconds, headers or {}, label, cache))


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


def measure_wrk(url: str, seconds: int, headers: dict, label: str, cache: str, paths: list[str] | None) -> Result:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s", "--latency"]
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


async def measure_async(urls: list[str], seconds: int, headers: dict, label: str, cache: str) -> Result:
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
    with running_server(db) as base, httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
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
