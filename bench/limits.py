"""Benchmark the limits on one query: how long each limited query ran before it was stopped,
and how long other readers waited meanwhile, on the real `build_db.py serve` of data/.

    python bench/limits.py              # build data/ in a temp dir, serve it, measure
    python bench/limits.py --repeat 5   # each measurement 5 times (default 3)
    python bench/limits.py --db posts.db

tests/test_load.py checks that each limit exists (the query is stopped, with a clear error,
and the server goes on answering); this says how soon. For each case: the wall time of the
limited request (median and slowest of the runs) and the server's CPU seconds meanwhile
(user + system, of `build_db.py serve` and its children), which a busy machine inflates
less than it does the wall time.

- a runaway recursive CTE asking for a 600 s limit (`_timelimit`): stopped at
  `sql_time_limit_ms`, since a client may lower the limit but never raise it; the HTML page
  of one with `_timelimit=500`;
- the slowest of 9 other requests made while the runaway ran;
- 4 runaways with a 1 s limit on the 3 SQL threads: how long another request waited;
- 20 refused queries and unknown pages at once: how long two ordinary requests waited
  (plugins/quiet_errors.py);
- queries that would allocate gigabytes in one function call (plugins/sql_limits.py).

Targets: the runaway stopped within the limit + 1 s; others answered within 1 s meanwhile;
behind 4 runaways, within 2 x 1 s + 1 s; beside 20 errors, within 0.5 s; each memory bomb
within the limit + 6 s (before the limits: 47 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postsdb.build import build  # noqa: E402
from postsdb.serve import SETTINGS, running_server  # noqa: E402

LIMIT = SETTINGS["sql_time_limit_ms"] / 1000
RUNAWAY = "with recursive r(i) as (select 1 union all select i+1 from r) select count(*) from r"
BYPASS_CACHE = {"Cookie": "bench=bypass-cache"}  # a personal request: never from the cache
MEMORY_BOMBS = [
    "select length(randomblob(999999999))",
    "select length(hex(randomblob(400000000)))",
    "select " + ", ".join(["randomblob(140000000)"] * 6),
]
OTHERS = ["/posts/articles.json?_size=5&_shape=array", "/-/versions.json", "/posts/articles?_size=5"]


@dataclass
class Figure:
    name: str
    target: float
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)

    def line(self) -> str:
        median, worst = statistics.median(self.seconds), max(self.seconds)
        cpu = f"{statistics.median(self.cpu):6.2f}" if self.cpu else "     -"
        verdict = "ok" if worst <= self.target else "OVER"
        statuses = ",".join(map(str, sorted(self.statuses)))
        runs = " ".join(f"{seconds:.2f}" for seconds in self.seconds)
        return f"{self.name:<52} {median:7.2f} {worst:7.2f} {cpu}   {self.target:5.1f}  {verdict:<4}  {statuses:<7}  {runs}"


def server_cpu(server: psutil.Process) -> float:
    """CPU seconds of the server process and its children so far."""
    total = 0.0
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def find_server(port: int) -> psutil.Process:
    """The `build_db.py serve` child of this process that listens on `port`."""
    for child in psutil.Process().children(recursive=True):
        if f"{port}" in child.cmdline() and "serve" in child.cmdline():
            return child
    sys.exit(f"no server on port {port} among this process's children")


async def timed_get(client: httpx.AsyncClient, path: str, delay: float = 0.0, **kwargs) -> tuple[httpx.Response, float]:
    await asyncio.sleep(delay)
    started = time.perf_counter()
    response = await client.get(path, **kwargs)
    return response, time.perf_counter() - started


async def measure_once(client: httpx.AsyncClient, server: psutil.Process, figures: dict[str, Figure]) -> None:
    def record(name: str, response: httpx.Response, seconds: float, cpu: float | None = None) -> None:
        figures[name].seconds.append(seconds)
        figures[name].statuses.add(response.status_code)
        if cpu is not None:
            figures[name].cpu.append(cpu)

    # A runaway, and others meanwhile.
    cpu = server_cpu(server)
    runaway = "/posts.json?" + urlencode({"sql": RUNAWAY, "_timelimit": 600_000})
    (stopped, seconds), *answered = await asyncio.gather(
        timed_get(client, runaway), *(timed_get(client, path, delay) for delay in (0.3, 1.0, 1.7) for path in OTHERS)
    )
    record("runaway CTE, stopped (JSON)", stopped, seconds, server_cpu(server) - cpu)
    slowest = max(answered, key=lambda pair: pair[1])
    record("slowest of 9 other requests meanwhile", *slowest)

    cpu = server_cpu(server)
    page, seconds = await timed_get(client, "/posts?" + urlencode({"sql": RUNAWAY, "_timelimit": 500}))
    record("runaway CTE, _timelimit=500, stopped (HTML page)", page, seconds, server_cpu(server) - cpu)

    # More runaways than SQL threads.
    params = [{"sql": f"{RUNAWAY} -- {n}", "_timelimit": 1000} for n in range(4)]
    *_, (other, seconds) = await asyncio.gather(
        *(timed_get(client, "/posts.json", params=p) for p in params),
        timed_get(client, "/posts/articles.json?_size=1", 0.3),
    )
    record("a request behind 4 runaways (1 s limit, 3 threads)", other, seconds)

    # Errors beside ordinary requests.
    bad = [("/posts.json", {"sql": f"delete from articles -- {n}"}) for n in range(10)]
    bad += [(f"/posts/no-such-table-{n}", {}) for n in range(10)]
    first, second, *_ = await asyncio.gather(
        timed_get(client, "/-/versions.json", 0.05),
        timed_get(client, OTHERS[0], 0.1),
        *(timed_get(client, path, params=params) for path, params in bad),
    )
    record("slowest of 2 requests beside 20 error responses", *max(first, second, key=lambda pair: pair[1]))

    for sql in MEMORY_BOMBS:
        cpu = server_cpu(server)
        response, seconds = await timed_get(client, "/posts.json", params={"sql": sql})
        record(f"memory bomb: {sql[:40]}", response, seconds, server_cpu(server) - cpu)


def targets() -> dict[str, Figure]:
    names = {
        "runaway CTE, stopped (JSON)": LIMIT + 1.0,
        "slowest of 9 other requests meanwhile": 1.0,
        "runaway CTE, _timelimit=500, stopped (HTML page)": 1.5,
        "a request behind 4 runaways (1 s limit, 3 threads)": 2 * 1.0 + 1.0,
        "slowest of 2 requests beside 20 error responses": 0.5,
        **{f"memory bomb: {sql[:40]}": LIMIT + 6.0 for sql in MEMORY_BOMBS},
    }
    return {name: Figure(name, target) for name, target in names.items()}


async def measure(base: str, repeat: int) -> dict[str, Figure]:
    server = find_server(int(base.rsplit(":", 1)[1]))
    figures = targets()
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=60, headers=BYPASS_CACHE) as client:
        for _ in range(repeat):
            await measure_once(client, server, figures)
    return figures


def report(figures: dict[str, Figure], repeat: int) -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"sql_time_limit_ms {SETTINGS['sql_time_limit_ms']}; {repeat} run(s); load average {load}; {os.cpu_count()} CPUs")
    print(f"{'case':<52} {'median':>7} {'slowest':>7} {'cpu s':>6}   {'target':>5}  {'':<4}  {'status':<7}  each run (s)")
    for figure in figures.values():
        print(figure.line())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="measure this database instead of building data/")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posts-bench-limits-") as temp:
        db = args.db
        if db is None:
            db = Path(temp) / "posts.db"
            build([ROOT / "data"], db)
        with running_server(db) as base:
            figures = asyncio.run(measure(base, max(1, args.repeat)))
    report(figures, max(1, args.repeat))
    return 0 if all(max(f.seconds) <= f.target for f in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
