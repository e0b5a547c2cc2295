"""CPU time per request of the reader's pages, in process (Datasette's test client, no
network): the front page, article pages and their 简/繁 views, on distinct URLs, with the
response cache bypassed (a Cookie header makes each request personal).

    python bench/reader.py --db /tmp/x30/posts.db   # e.g. kept by bench/serve.py --keep

CPU time is `time.process_time()` around each batch (every thread of the process: the
event loop and Datasette's SQL threads), so other load on the machine hardly moves it.
Targets: article page <= 5 ms, front page <= 5 ms, 简/繁 view <= 8 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datasette.app import Datasette  # noqa: E402

from postsdb.script import convert_html, language  # noqa: E402
from postsdb.serve import METADATA, PLUGINS, SETTINGS, TEMPLATES, write_inspect_file  # noqa: E402

TARGETS_MS = {"front page": 5, "article page": 5, "简/繁 view": 8}
BYPASS = {"cookie": "bench=bypass-cache"}


def datasette(db: Path, inspect_file: Path) -> Datasette:
    import yaml

    return Datasette(
        immutables=[str(db)],
        inspect_data=json.loads(inspect_file.read_text()),
        metadata=yaml.safe_load(METADATA.read_text(encoding="utf-8")),
        plugins_dir=str(PLUGINS),
        template_dir=str(TEMPLATES),
        settings=SETTINGS,
    )


async def cpu_ms(ds: Datasette, paths: list[str]) -> float:
    started = time.process_time()
    for path in paths:
        response = await ds.client.get(path, headers=BYPASS)
        assert response.status_code == 200, (path, response.status_code)
    return (time.process_time() - started) * 1000 / len(paths)


def kinds(db: Path, count: int) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select id, title from articles order by id").fetchall()
        leads = dict(conn.execute("select article_id, substr(body_text, 1, 120) from article_bodies"))
    step = max(1, len(rows) // count)
    sample = rows[::step][:count]
    articles = [f"/posts/articles/{i}" for i, _ in sample]
    # Each Chinese article in the script it is not written in.
    converted = []
    for i, title in sample:
        lang = language(f"{title}\n{leads.get(i) or ''}")
        if lang != "en":
            converted.append(f"/posts/articles/{i}?script={'hant' if lang == 'zh-Hans' else 'hans'}")
    return {"front page": ["/"] * count, "article page": articles, "简/繁 view": converted}


def largest_body(db: Path) -> tuple[int, float, float]:
    """The largest Chinese body: its length and the CPU ms of converting it each way."""
    with sqlite3.connect(db) as conn:
        (html,) = conn.execute(
            "select body_html from article_bodies where body_text glob '*[一-龥]*' order by length(body_html) desc limit 1"
        ).fetchone()
    times = []
    for script in ("hans", "hant"):
        started = time.process_time()
        for _ in range(20):
            convert_html(html, script)
        times.append((time.process_time() - started) * 1000 / 20)
    return len(html), times[0], times[1]


async def run(db: Path, count: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="posts-bench-reader-") as temp:
        ds = datasette(db, write_inspect_file(db, Path(temp) / "inspect.json"))
        paths = kinds(db, count)
        for some in paths.values():  # warm up: templates compiled, OpenCC loaded, pages of SQLite read once
            await cpu_ms(ds, some[:3])
        results = {kind: await cpu_ms(ds, some) for kind, some in paths.items()}
    size, to_hans, to_hant = largest_body(db)
    with sqlite3.connect(db) as conn:
        (articles,) = conn.execute("select count(*) from articles").fetchone()
    print(f"database: {articles:,} articles; {count} distinct URLs per kind (the front page {count} times), response cache bypassed")
    ok = True
    for kind, ms in results.items():
        met = ms <= TARGETS_MS[kind]
        ok &= met
        print(f"{kind:<14} {ms:6.2f} ms CPU per request (target <= {TARGETS_MS[kind]} ms): {'PASS' if met else 'FAIL'}")
    print(f"largest Chinese body ({size:,} bytes of HTML): to Simplified {to_hans:.2f} ms, to Traditional {to_hant:.2f} ms CPU")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a built posts.db, e.g. the x30 corpus")
    parser.add_argument("--count", type=int, default=300, help="distinct URLs per kind (default 300)")
    args = parser.parse_args()
    return 0 if asyncio.run(run(args.db, args.count)) else 1


if __name__ == "__main__":
    sys.exit(main())
