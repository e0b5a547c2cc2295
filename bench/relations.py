"""Benchmark the relations between texts (postsdb/relations.py) on the sample scaled up N times.

    python bench/relations.py                         # N=30: about 4,500 posts
    python bench/relations.py --baseline CODE_DIR     # also a build by other code, e.g. before relations
    python bench/relations.py --copies 5
    python bench/relations.py --repeat 3            # the fastest of 3 runs each: steadier on a shared machine

The corpus is bench/benchlib.py's, whose copies differ in their text (see there). Reports:

- the full build (with the search index, as `build` runs by default) against the naive
  pipeline (bench/naive.py with its FTS), in work seconds as bench/build.py compares them:
  target <= 0.45x; the CPU seconds too (the build uses every core, the naive pipeline one);
- what relations add: the CPU seconds of computing every article's features (done by the
  parse workers, so spread over the cores; from the title and body as the search index
  normalized them, which the workers share; normalizing is shown apart, a --no-search
  build pays it for the relations alone) and of `relations.update` (every pair: in the
  writing process and the processes it forks to score the pairs on every core), and their
  share of the build's CPU seconds; with --baseline, the same build by that code
  (`git archive <commit> build_db.py postsdb | tar -x -C CODE_DIR`);
- the candidate pairs the build scores (each article's TOP_TERMS heaviest terms looked up
  in posting lists cut at POSTINGS), per article against the bound TOP_TERMS x POSTINGS,
  and the built lists against those of every pair scored (the whole matrix times its
  transpose, a chunk of rows at a time: quadratic, so up to --all-pairs-up-to articles):
  the share of (article, rank, related) entries that are the same;
- one changed file's rebuild, which recomputes every candidate pair;
- the article page's related look-up (`relations.RELATED_SQL`, one indexed read) against
  the request-time one it replaced (postsdb/related.py), p50 and p99 over 1,000 articles:
  target <= 1 ms;
- the relation tables' size next to the database's.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, append_paragraph, build_command, run_measured, snapshot_code
from build import Builder, Corpus, naive_build, prepare

sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402

from postsdb import related, relations, search  # noqa: E402

NAIVE_TARGET = 0.45
LOOKUP_TARGET_MS = 1.0
TABLES = ("article_copies", "article_revisions", "related_articles", "article_features")
LOOKUPS = 1000
BUSY = 0.85  # the naive pipeline got less CPU than this share of its wall time: the machine was busy


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=30, metavar="N", help="copies of each corpus post (default 30)")
    parser.add_argument("--baseline", type=Path, help="a folder holding build_db.py and postsdb/ of other code to compare")
    parser.add_argument("--repeat", type=int, default=1, help="full builds and naive runs, in turns; the fastest of each is shown (default 1)")
    parser.add_argument("--all-pairs-up-to", type=int, default=20_000, metavar="N", help="compare with every pair scored up to N articles (default 20,000)")
    return parser.parse_args()


def best(runs: list):
    """The fastest run: on a shared machine, the least disturbed by other work."""
    return min(runs, key=lambda run: run.wall)


def features_cpu(db: Path) -> tuple[float, float]:
    """CPU seconds of computing every article's features from its normalized title and
    body, as the parse workers do, and of normalizing them; one process (the build spreads
    this over its workers)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select title, body_text from articles join article_bodies on article_id = id").fetchall()
    relations.features("", "")  # imports and the permutations, as a worker has them after its first article
    started = time.process_time()
    normal = [(search.normalize(title or ""), search.normalize(body or "")) for title, body in rows]
    normalizing = time.process_time() - started
    started = time.process_time()
    for (title, body), texts in zip(rows, normal):
        relations.features(title, body, texts)
    return time.process_time() - started, normalizing


def update_cpu(db: Path) -> float:
    """CPU seconds of `relations.update`: this process's and its forked processes'."""
    with sqlite3.connect(db) as conn:
        relations.lsh_bands()  # datasketch's import, done by a build while its workers parse
        started = cpu_with_children()
        relations.update(conn)
        spent = cpu_with_children() - started
        conn.rollback()
    return spent


def cpu_with_children() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def candidates(db: Path, all_pairs_up_to: int) -> tuple[int, int, float | None]:
    """The candidate pairs the build scores, the most an article proposes, and the share
    of the built lists' entries that every pair scored would list too (None above
    `all_pairs_up_to` articles)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = relations.read_stored(conn)
        copies = np.array(conn.execute("select article_id, copy_id from article_copies").fetchall(), dtype=np.int64).reshape(-1, 2)
        built = set(conn.execute("select article_id, rank, related_id from related_articles"))
    matrix = relations.tfidf_matrix(list(stored.term_blobs))
    keys = relations.copy_keys(stored.ids, copies)
    size = len(stored.ids)
    pairs = len(relations.candidate_pairs(matrix, keys))
    proposed = [np.unique(article * size + other) for article, other in relations.proposals(matrix, keys)]
    most = int(np.bincount(np.concatenate(proposed) // size, minlength=size).max()) if proposed else 0
    if size > all_pairs_up_to:
        return pairs, most, None
    every = all_pairs_rows(matrix, stored, keys)
    return pairs, most, len(built & every) / max(1, len(every))


def all_pairs_rows(matrix, stored, copy_keys: np.ndarray) -> set[tuple]:
    """(article, rank, related) of every article's RELATED best with every pair scored, as
    the build did before it scored candidates only."""
    size, rows = len(stored.ids), set()
    subjects = relations.topic_matrix(stored.ids, stored.topics)
    known = np.asarray(stored.ids, dtype=np.int64)
    for start in range(0, size, 512):
        stop = min(start + 512, size)
        block = (matrix[start:stop] @ matrix.T).toarray()
        block[block < relations.MIN_SCORE] = 0.0
        if subjects is not None:
            block *= 1.0 + relations.TOPIC_BOOST * (subjects[start:stop] @ subjects.T).toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        inside = copy_keys[(copy_keys >= start * size) & (copy_keys < stop * size)]
        block[inside // size - start, inside % size] = 0.0
        rounded = np.round(block, 6)
        for offset, scores in enumerate(rounded):
            order = np.lexsort((known, -scores))[: relations.RELATED]
            article = stored.ids[start + offset]
            rows.update((article, rank, int(known[j])) for rank, j in enumerate(order, 1) if scores[j] > 0)
    return rows


def lookups(db: Path, clock=time.process_time) -> dict[str, list[float]]:
    """Milliseconds per look-up, for the table read and the request-time method, in CPU
    time by default (steadier than wall time on a machine doing other work)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        articles = conn.execute("select id, title from articles").fetchall()
        sample = random.Random(1).sample(articles, min(LOOKUPS, len(articles)))
        times = {"related_articles table": [], "request time (postsdb/related.py)": []}
        for article_id, title in sample:
            started = clock()
            conn.execute(relations.RELATED_SQL, {"id": article_id}).fetchall()
            times["related_articles table"].append((clock() - started) * 1000)
            started = clock()
            related.related_articles(conn, article_id, title)
            times["request time (postsdb/related.py)"].append((clock() - started) * 1000)
    return times


def sizes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        pages = dict(conn.execute("select name, sum(pgsize) from dbstat group by name").fetchall())
        indexes = dict(conn.execute("select name, tbl_name from sqlite_master where type = 'index'").fetchall())
    out = {table: 0 for table in TABLES}
    for name, size in pages.items():
        owner = indexes.get(name, name)
        if owner in out:
            out[owner] += size
    out["whole database"] = db.stat().st_size
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="posts-relations-") as temp:
        base = Path(temp)
        builder = Builder(snapshot_code(base / "code"))
        print(f"writing {args.copies} copies of the corpus ...", file=sys.stderr)
        corpus: Corpus = prepare(base / "corpus", args.copies)
        db = base / "posts.db"
        runs: dict[str, list] = {"full": [], "baseline": [], "naive": []}
        for turn in range(1, args.repeat + 1):  # in turns, so that a neighbour's load falls on each alike
            print(f"full build, run {turn} ...", file=sys.stderr)
            db.unlink(missing_ok=True)
            runs["full"].append(builder.run(corpus, db, search=True))
            if args.baseline:
                print(f"full build by the baseline code, run {turn} ...", file=sys.stderr)
                (base / "baseline.db").unlink(missing_ok=True)
                runs["baseline"].append(run_measured(build_command(args.baseline.resolve(), corpus.folder, base / "baseline.db", True)))
            print(f"naive pipeline, run {turn} ...", file=sys.stderr)
            runs["naive"].append(naive_build(corpus, base / "naive.db"))
        full, naive = best(runs["full"]), best(runs["naive"])
        baseline = best(runs["baseline"]) if args.baseline else None
        print("one changed file ...", file=sys.stderr)
        append_paragraph(corpus.files[len(corpus.files) // 2], 1)
        changed = builder.run(corpus, db, search=True)
        print("relations alone, in this process ...", file=sys.stderr)
        (features, normalizing), update = features_cpu(db), update_cpu(db)
        print("candidates, and every pair ...", file=sys.stderr)
        found = candidates(db, args.all_pairs_up_to)
        times = {f"{name}, cpu": values for name, values in lookups(db).items()}
        times.update({f"{name}, wall": values for name, values in lookups(db, time.perf_counter).items()})
        with sqlite3.connect(db) as conn:
            counts = {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in ("articles", *TABLES)}
        table_sizes = sizes(db)
    report(args, corpus, full, baseline, naive, changed, (features, normalizing, update), times, counts, table_sizes, found)


def report(args, corpus, full, baseline, naive, changed, costs, times, counts, table_sizes, found) -> None:
    features, normalizing, update = costs
    print(f"Corpus: {len(corpus.files):,} files, {corpus.megabytes:.1f} MB (x{args.copies}, copies perturbed)")
    print(f"Rows: {counts}")
    print()
    print(f"{'':44}{'wall s':>8}{'work s':>8}{'cpu s':>8}")
    rows = [("full build with relations (and search)", full), ("naive pipeline, default FTS", naive)]
    if baseline:
        rows.insert(1, ("full build by the baseline code", baseline))
    rows.append(("one changed file, rebuild", changed))
    for label, run in rows:
        print(f"{label:44}{run.wall:8.2f}{run.inner or 0:8.2f}{run.cpu:8.2f}")
    print()
    ratio = full.inner / naive.inner
    print(
        f"build / naive, work s: {ratio:.2f}x (cpu s: {full.cpu / naive.cpu:.2f}x)   target <= {NAIVE_TARGET}x   "
        f"{'ok' if ratio <= NAIVE_TARGET else 'MISSED'}"
    )
    if naive.cpu / naive.wall < BUSY:
        print(f"WARNING: the machine was busy (the naive pipeline got {naive.cpu / naive.wall:.0%} of a CPU): work s are inflated")
    added = features + update
    print(
        f"relations add {added:.2f} cpu s: features {features:.2f} (in the parse workers), copies and candidate pairs {update:.2f} "
        f"(in the writer and its forked processes); {added / full.cpu:.0%} of the build's {full.cpu:.2f} cpu s; "
        f"normalizing the texts {normalizing:.2f} more without the search index"
    )
    if baseline:
        print(f"with relations - baseline: {full.cpu - baseline.cpu:+.2f} cpu s, {full.inner - baseline.inner:+.2f} work s")
    pairs, most, same = found
    articles = counts["articles"]
    print(
        f"candidate pairs scored: {pairs:,} ({2 * pairs / max(1, articles):.0f} an article; at most {most} proposed by one, "
        f"bound {relations.TOP_TERMS} x {relations.POSTINGS} = {relations.TOP_TERMS * relations.POSTINGS}); "
        + (f"lists as every pair's: {same:.2%} of entries" if same is not None else "every pair not scored (too many articles)")
    )
    print()
    for name, values in times.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        verdict = f"   target <= {LOOKUP_TARGET_MS} ms   {'ok' if p99 <= LOOKUP_TARGET_MS else 'MISSED'}" if "table" in name else ""
        print(f"related look-up, {name:42} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms{verdict}")
    print()
    whole = table_sizes.pop("whole database")
    for table, size in table_sizes.items():
        print(f"{table:20} {size / 1e6:8.2f} MB  {size / whole:6.1%} of the database")
    print(f"{'whole database':20} {whole / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
