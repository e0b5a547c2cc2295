"""CPU of the server per request, by kind: this site against bare Datasette, in one run.

    python bench/cpu.py                    # build the sample x30 in a temp dir, measure both
    python bench/cpu.py --db /tmp/x30/posts.db --urls 120

Bare Datasette serves the same database (immutable, the same inspect file and settings)
with no plugins, templates or metadata: `sys._called_from_test` keeps Datasette from
loading the installed plugins. What this site's metadata.yml configures for the articles
table, bare Datasette is asked for in the URL: the same facets, sort, page size and
full-text table. Both get the same search terms: characters separated by spaces, which both
servers' `escape_fts` turn into the same query (every character, ANDed), so both find the
same rows.

For each kind, a walk of distinct URLs, one request at a time, with a Cookie so our
response cache passes every request through; the figure is the server process's CPU
(user + system, every thread: psutil) over the walk, divided by the requests. CPU time,
unlike requests/s, hardly moves when other processes share the machine.

Targets (the speed issue): each Datasette view of ours <= 1.3x bare on the same URLs; the
canned queries that return bodies <= 15 ms a request.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postsdb.search import normalize  # noqa: E402
from postsdb.serve import datasette_args, free_port, setting_flags, supervised, write_inspect_file  # noqa: E402

RATIO_TARGET = 1.3
CANNED_TARGET_MS = 15
CJK_PAIR = re.compile(r"(?=([\u4e00-\u9fff]{2}))")
BYPASS = {"Cookie": "bench=bypass-cache"}
# What metadata.yml gives the articles table, asked for in the URL for bare Datasette.
ARTICLES_FACETS = [("_facet", "source"), ("_facet", "publication"), ("_facet", "author"), ("_facet_array", "tags"), ("_facet", "year")]
ARTICLES_SORT = [("_sort_desc", "published"), ("_size", "50")]
ARTICLES_FTS = [("_fts_table", "articles_fts"), ("_fts_pk", "id")]
BARE_LAUNCHER = "import sys; sys._called_from_test = True; from datasette.cli import cli; cli()"


def before_launcher(project: Path) -> str:
    """Datasette without the plugins this checkout depends on and `project` does not."""
    blocked = sorted(dependency_names(ROOT) - dependency_names(project))
    return (
        "from datasette.plugins import pm\n"
        "for plugin, dist in list(pm.list_plugin_distinfo()):\n"
        f"    if dist.project_name.lower().replace('_', '-') in {blocked!r}:\n"
        "        pm.unregister(plugin)\n"
        "from datasette.cli import cli; cli()"
    )


def dependency_names(project: Path) -> set[str]:
    import tomllib

    from packaging.requirements import Requirement

    with open(project / "pyproject.toml", "rb") as file:
        dependencies = tomllib.load(file)["project"].get("dependencies", [])
    return {Requirement(text).name.lower().replace("_", "-") for text in dependencies}


@dataclass
class Sample:
    """What a walk of URLs on one server cost."""

    requests: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.requests


# --- the URLs -----------------------------------------------------------------------


@dataclass
class Vocabulary:
    sources: list[str]
    months: list[str]
    years: list[str]
    words: list[str]
    ids: list[int]


def vocabulary(db: Path) -> Vocabulary:
    with sqlite3.connect(db) as conn:
        sources = [r[0] for r in conn.execute("select distinct source from articles where source != '' order by 1")]
        months = [r[0] for r in conn.execute("select distinct month from articles order by 1")]
        titles = [r[0] for r in conn.execute("select title from articles order by id")]
        ids = [r[0] for r in conn.execute("select id from articles order by id")]
    # In the index's own spelling (Simplified): bare Datasette does not normalize a query.
    words = sorted({" ".join(pair) for title in titles for pair in CJK_PAIR.findall(normalize(title or ""))})
    return Vocabulary(sources, months, sorted({m[:4] for m in months}), words, ids)


def path(base: str, *pairs: list[tuple[str, str]]) -> str:
    query = urlencode([p for group in pairs for p in group], quote_via=quote)
    return f"{base}?{query}" if query else base


def table_page(v: Vocabulary, rng: random.Random) -> tuple[list, list]:
    filters = rng.choice(
        [
            [("month", rng.choice(v.months))],
            [("source", rng.choice(v.sources)), ("year", rng.choice(v.years))],
            [("year", rng.choice(v.years))],
        ]
    )
    return filters, ARTICLES_FACETS + ARTICLES_SORT


def search_page(v: Vocabulary, rng: random.Random) -> tuple[list, list]:
    return [("_search", rng.choice(v.words))], ARTICLES_FTS + ARTICLES_FACETS + ARTICLES_SORT


def facet_json(v: Vocabulary, rng: random.Random) -> tuple[list, list]:
    filters = [("year", rng.choice(v.years)), ("source", rng.choice(v.sources)), ("_facet", "month"), ("_size", "0")]
    return filters, ARTICLES_FACETS + [("_sort_desc", "published")]


def bodies_page(v: Vocabulary, rng: random.Random) -> tuple[list, list]:
    return [("article_id__gte", str(rng.choice(v.ids)))], [("_size", "10")]


# (label, path, what ours is asked, what bare is asked besides)
KINDS: list[tuple[str, str, Callable]] = [
    ("table page with facets", "/posts/articles", table_page),
    ("table search page", "/posts/articles", search_page),
    ("search JSON (table)", "/posts/articles.json", search_page),
    ("facet JSON", "/posts/articles.json", facet_json),
    ("bodies table page (HTML cells)", "/posts/article_bodies", bodies_page),
]


def paired_paths(v: Vocabulary, base: str, make: Callable, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` distinct (ours, bare) paths of one kind."""
    rng, seen = random.Random(seed), {}
    for _ in range(count * 50):
        if len(seen) == count:
            break
        ours, extra = make(v, rng)
        seen.setdefault(path(base, ours), path(base, ours, extra))
    return list(seen.items())


def canned_paths(v: Vocabulary, count: int) -> dict[str, list[str]]:
    """Ours only: bare Datasette has no canned queries. `feed` has one URL: it is asked
    again and again, uncached (the Cookie)."""
    rng = random.Random(7)
    latest = {
        path("/posts/latest_by_source.json", [("source", rng.choice(v.sources)), ("_shape", "array"), ("_size", str(rng.randint(5, 50)))])
        for _ in range(count * 5)
    }
    latest_atom = [path("/posts/latest_by_source.atom", [("source", s)]) for s in v.sources]
    searches = [path("/posts/search.json", [("q", w.replace(" ", "")), ("_shape", "array")]) for w in rng.sample(v.words, count)]
    return {
        "feed page": ["/posts/feed"] * count,
        "feed.atom": ["/posts/feed.atom"] * count,
        "latest_by_source.json": sorted(latest)[:count],
        "latest_by_source.atom": (latest_atom * (count // len(latest_atom) + 1))[:count],
        "search JSON (canned, relevance)": searches,
    }


# --- the servers --------------------------------------------------------------------


@contextlib.contextmanager
def server(
    db: Path, inspect: Path, bare: bool, project: Path | None = None, workers: int = 1, cores: int | None = None
) -> Iterator[tuple[str, int]]:
    """Datasette on a free port; yields (base URL, pid). Stops that process (and so its
    workers). With `project`, another checkout of this project (`--before`) is served, with its
    own configuration and code, without the plugins that checkout's pyproject.toml does not
    list. This site may be served by `workers` processes (as `build_db.py serve --workers`),
    and held to `cores` CPUs (`taskset`), as on a smaller machine."""
    port = free_port()
    if bare:
        args = ["serve", "-i", str(db), "--inspect-file", str(inspect), *setting_flags(), "--host", "127.0.0.1", "--port", str(port)]
        command = [sys.executable, "-c", BARE_LAUNCHER, *args]
    elif project is not None:
        args = ["serve", "-i", str(db), "--inspect-file", str(inspect)]
        for flag, name in (("--metadata", "metadata.yml"), ("--plugins-dir", "plugins"), ("--template-dir", "templates")):
            args += [flag, str(project / name)]
        args += [*setting_flags(), "--cors", "--host", "127.0.0.1", "--port", str(port)]
        command = [sys.executable, "-c", before_launcher(project), *args]
    else:
        command = [sys.executable, "-m", "datasette", *datasette_args(db, inspect, "127.0.0.1", port, workers=workers)]
    command = (["taskset", "-c", f"0-{cores - 1}"] if cores else []) + command
    env = {**os.environ, "PYTHONPATH": str(project or ROOT)}
    with supervised(command, f"http://127.0.0.1:{port}/-/versions.json", 60, cwd=db.parent, env=env) as process:
        yield f"http://127.0.0.1:{port}", process.pid


def walk(base: str, pid: int, paths: list[str]) -> Sample:
    """Ask for every path once, one at a time; the server's CPU over the walk."""
    import httpx
    import psutil

    process = psutil.Process(pid)
    with httpx.Client(base_url=base, trust_env=False, timeout=60, headers=BYPASS) as client:
        for warm in paths[:2]:  # templates compiled, connections opened: not what a request costs
            client.get(warm)
        before, started = process.cpu_times(), time.perf_counter()
        for p in paths:
            response = client.get(p)
            if response.status_code != 200:
                raise SystemExit(f"{base}{p}: {response.status_code}\n{response.text[:500]}")
        after, wall = process.cpu_times(), time.perf_counter() - started
    cpu = (after.user - before.user) + (after.system - before.system)
    return Sample(len(paths), cpu, wall)


# --- the run ------------------------------------------------------------------------


ROUNDS = 4  # each kind's walk is cut in parts, ours and bare taking turns: drift hits both


def measure(db: Path, count: int, canned: bool = True, before: Path | None = None):
    """(compared, canned): for each kind (label, ours, bare, before or None); for each
    canned query (label, ours, before or None)."""
    v = vocabulary(db)
    inspect = write_inspect_file(db, db.parent / f"{db.stem}-bench-inspect.json")
    kinds = [(label, paired_paths(v, base, make, count, seed)) for seed, (label, base, make) in enumerate(KINDS)]
    compared = []
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(server(db, inspect, bare=False))
        bare = stack.enter_context(server(db, inspect, bare=True))
        old = stack.enter_context(server(db, inspect, bare=False, project=before)) if before else None
        for label, pairs in kinds:
            parts = [pairs[i::ROUNDS] for i in range(ROUNDS)]
            samples = {"ours": [], "bare": [], "before": []}
            for part in filter(None, parts):
                samples["ours"].append(walk(*ours, [o for o, _ in part]))
                samples["bare"].append(walk(*bare, [b for _, b in part]))
                if old:
                    samples["before"].append(walk(*old, [o for o, _ in part]))
            compared.append((label, total(samples["ours"]), total(samples["bare"]), total(samples["before"]) if old else None))
            print(f"  {label}", file=sys.stderr, flush=True)
        canned_samples = []
        for label, paths in (canned_paths(v, count).items() if canned else []):
            canned_samples.append((label, walk(*ours, paths), walk(*old, paths) if old else None))
    return compared, canned_samples


def total(samples: list[Sample]) -> Sample:
    return Sample(sum(s.requests for s in samples), sum(s.cpu_s for s in samples), sum(s.wall_s for s in samples))


def report(compared, canned) -> bool:
    before = any(b is not None for *_, b in compared)
    extra = f" {'before ms':>10} {'after/before':>12}" if before else ""
    print(f"{'kind':<34} {'ours ms CPU':>11} {'bare ms CPU':>11} {'ratio':>6} {'URLs':>5}{extra}")
    for label, ours, bare, old in compared:
        tail = f" {old.cpu_ms:>10.1f} {ours.cpu_ms / old.cpu_ms:>12.2f}" if old else ""
        print(f"{label:<34} {ours.cpu_ms:>11.1f} {bare.cpu_ms:>11.1f} {ours.cpu_ms / bare.cpu_ms:>6.2f} {ours.requests:>5}{tail}")
    for label, sample, old in canned:
        tail = f" {old.cpu_ms:>10.1f} {sample.cpu_ms / old.cpu_ms:>12.2f}" if old else ""
        print(f"{label:<34} {sample.cpu_ms:>11.1f} {'-':>11} {'':>6} {sample.requests:>5}{tail}")
    worst = max(ours.cpu_ms / bare.cpu_ms for _, ours, bare, _ in compared)
    met = worst <= RATIO_TARGET
    print(f"target: every Datasette view <= {RATIO_TARGET}x bare Datasette's CPU (worst {worst:.2f}x): {'PASS' if met else 'FAIL'}")
    bodies = [s for label, s, _ in canned if label.startswith(("feed", "latest_by_source"))]
    if bodies:
        slowest = max(s.cpu_ms for s in bodies)
        ok = slowest <= CANNED_TARGET_MS
        met &= ok
        print(f"target: canned queries with bodies <= {CANNED_TARGET_MS} ms CPU uncached ({slowest:.1f}): {'PASS' if ok else 'FAIL'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="measure this database instead of building the sample x--copies")
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--urls", type=int, default=150, help="distinct URLs per kind (default 150)")
    parser.add_argument(
        "--before", type=Path, help="also serve this other checkout of the project (e.g. `git archive` of an older commit), same run"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posts-bench-cpu-") as temp:
        db = args.db
        if db is None:
            from serve import scaled_corpus  # bench/serve.py, beside this file

            from postsdb.build import build

            scaled_corpus(Path(temp) / "corpus", args.copies)
            db = Path(temp) / "posts.db"
            build([Path(temp) / "corpus"], db)
        compared, canned = measure(db.resolve(), args.urls, before=args.before.resolve() if args.before else None)
        return 0 if report(compared, canned) else 1


if __name__ == "__main__":
    sys.exit(main())
