"""Search latency on the scaled-up corpus, per query class, and the index's size.

    python bench/search.py [--copies 30] [--repeat 30]

Each query runs the two statements Datasette runs for `?_search=` on the articles table
page (the page of rows, and the count), with the project's `escape_fts`. Latency is
the time for both, from a warm connection, like a running server. Beside it, in the same
run: the canned `search` query (relevance by bm25, a snippet and a marked title for each
of its 50 hits), and the related-articles lookup of the article page, for 300 articles.
Target (reader's issue): the related lookup's p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

from benchlib import make_corpus, original_posts  # noqa: E402
from postsdb.build import build  # noqa: E402
from postsdb.search import FTS_TABLE, fts_query, index_pages_sql  # noqa: E402
from postsdb.related import related_articles  # noqa: E402
from postsdb.snippet import highlight, snippet  # noqa: E402
from test_search import QUERIES  # noqa: E402
import yaml  # noqa: E402

CANNED_SEARCH = yaml.safe_load((HERE.parent / "metadata.yml").read_text(encoding="utf-8"))["databases"]["posts"]["queries"]["search"]["sql"]
RELATED_SAMPLE = 300

WHERE = f"id in (select rowid from {FTS_TABLE} where {FTS_TABLE} match escape_fts(:search))"
PAGE_SQL = f"select id, title, published, source from articles where {WHERE} order by published desc limit 101"
COUNT_SQL = f"select count(*) from articles where {WHERE}"


def measure(conn: sqlite3.Connection, query: str, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(PAGE_SQL, {"search": query}).fetchall()
        conn.execute(COUNT_SQL, {"search": query}).fetchone()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def measure_canned(conn: sqlite3.Connection, query: str, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(CANNED_SEARCH, {"q": query}).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def related_timings(conn: sqlite3.Connection) -> list[float]:
    articles = conn.execute("select id, title from articles order by id limit ?", (RELATED_SAMPLE,)).fetchall()
    timings = []
    for article_id, title in articles:
        started = time.perf_counter()
        related_articles(conn, article_id, title)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def index_share(conn: sqlite3.Connection) -> tuple[int, int]:
    total = conn.execute("select sum(pgsize) from dbstat").fetchone()[0]
    fts = conn.execute(f"select sum(pgsize) from dbstat where {index_pages_sql()}").fetchone()[0]
    return fts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=30, help="copies of each corpus post (default 30)")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, db_path = Path(tmp) / "posts", Path(tmp) / "posts.db"
        files, size = make_corpus(folder, args.copies, original_posts())
        started = time.perf_counter()
        summary = build([folder], db_path)
        print(f"corpus ×{args.copies}: {files} files, {size / 1e6:.1f} MB; built {summary.added} articles "
              f"with the search index in {time.perf_counter() - started:.1f} s")
        conn = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
        conn.create_function("escape_fts", 1, fts_query, deterministic=True)
        conn.create_function("search_snippet", 2, snippet, deterministic=True)
        conn.create_function("search_highlight", 2, highlight, deterministic=True)
        report(conn, args.repeat)
        related = related_timings(conn)
        print(f"\nrelated articles, {len(related)} article pages: p50 {percentile(related, 0.5):.2f} ms, "
              f"p99 {percentile(related, 0.99):.2f} ms, max {max(related):.2f} ms (target p99 ≤ 20 ms): "
              f"{'met' if percentile(related, 0.99) <= 20 else 'MISSED'}")
        fts, total = index_share(conn)
        print(f"\nindex size: {fts / 1e6:.1f} MB of {total / 1e6:.1f} MB ({fts / total:.0%} of the database)")


def report(conn: sqlite3.Connection, repeat: int) -> None:
    print(f"\n{'':<37}{'table search':^26}  {'relevance + snippets':^20}")
    print(f"{'query class':<26} {'queries':>7} {'hits/query':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'p50 ms':>9} {'p99 ms':>9}")
    worst = 0.0
    for query_class, queries in QUERIES.items():
        timings, hits, canned = [], [], []
        for query in queries:
            measure(conn, query, 2)  # warm the page cache for this query
            timings += measure(conn, query, repeat)
            canned += measure_canned(conn, query, max(3, repeat // 5))
            hits.append(conn.execute(COUNT_SQL, {"search": query}).fetchone()[0])
        p99 = percentile(timings, 0.99)
        worst = max(worst, p99)
        print(f"{query_class:<26} {len(queries):>7} {statistics.mean(hits):>10.0f} "
              f"{percentile(timings, 0.5):>8.2f} {p99:>8.2f} {max(timings):>8.2f}"
              f" {percentile(canned, 0.5):>9.2f} {percentile(canned, 0.99):>9.2f}")
    print(f"\nworst p99: {worst:.2f} ms (target ≤ 20 ms): {'met' if worst <= 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
