"""Precision@5 of related articles on a judged set: the request-time method against the built one.

    python bench/related_quality.py

Builds data/ into a temporary database, then for each article of bench/related_judged.json
takes the first five related articles of each method: the request-time lookup
(postsdb/related.py: shared topics, then an FTS OR-query of the lead's rare words) and the
build's `related_articles` (postsdb/relations.py: TF-IDF cosine of the whole texts). A
listed article counts when the judged set has it on the same subject; a missing place (a
list shorter than five) or an article the set does not judge counts as not. Prints each
article's two scores and the means.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from postsdb import related  # noqa: E402
from postsdb.build import build  # noqa: E402
from postsdb.relations import RELATED_SQL  # noqa: E402

JUDGED = Path(__file__).resolve().parent / "related_judged.json"
K = 5


def lists(conn: sqlite3.Connection, article_id: int, title: str) -> dict[str, list[int]]:
    return {
        "request time": related.related_ids(conn, article_id, title, K),
        "built (TF-IDF)": [row[0] for row in conn.execute(RELATED_SQL, {"id": article_id})][:K],
    }


def main() -> None:
    judged = json.loads(JUDGED.read_text(encoding="utf-8"))["articles"]
    with tempfile.TemporaryDirectory() as temp:
        db = Path(temp) / "posts.db"
        build([ROOT / "data"], db)
        with sqlite3.connect(db) as conn:
            paths = dict(conn.execute("select id, path from articles"))
            ids = {path: i for i, path in paths.items()}
            titles = dict(conn.execute("select id, title from articles"))
            scores: dict[str, list[float]] = {}
            unjudged = {}
            print(f"{'article':52}{'request':>9}{'built':>7}")
            for entry in judged:
                article = ids[entry["article"]]
                good, bad = set(entry["same_subject"]), set(entry["other_subject"])
                row = []
                for method, listed in lists(conn, article, titles[article]).items():
                    found = [paths[i] for i in listed]
                    unjudged[method] = unjudged.get(method, 0) + sum(1 for p in found if p not in good | bad)
                    precision = sum(1 for p in found if p in good) / K
                    scores.setdefault(method, []).append(precision)
                    row.append(precision)
                print(f"{entry['title'][:26]:{52 - sum(1 for c in entry['title'][:26] if ord(c) > 0x2E80)}}{row[0]:9.1f}{row[1]:7.1f}")
    print()
    # No list can do better than the articles judged on the subject (a lower bound: only
    # what some method listed was judged); in a sample of 151, several have fewer than five.
    ceiling = sum(min(K, len(entry["same_subject"])) / K for entry in judged) / len(judged)
    print(f"precision@{K}, at best         {ceiling:.2f}   (the judged same-subject articles, at most {K} an article)")
    for method, values in scores.items():
        print(f"precision@{K}, {method:16} {sum(values) / len(values):.2f}   ({len(values)} articles; {unjudged[method]} listed articles unjudged, counted as off subject)")


if __name__ == "__main__":
    main()
