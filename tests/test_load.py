"""Serving under load and abuse: the real `build_db.py serve` on 127.0.0.1, on the real sample
in data/.

- 20 s of `wrk` at 16 connections, rotating the table page, search JSON and an article
  page, half of it answered by the response cache and half rendered by Datasette (a Cookie
  header bypasses the cache): 0 errors.
- A runaway recursive CTE in `?sql=` is stopped by the time limit with a clear error, while
  other requests are answered; error responses do not hold up anyone else; a query that
  would allocate gigabytes in one function call is refused. (How soon: bench/limits.py.)
- No request can write: every kind of write in `?sql=` is refused and the database file is
  byte-identical afterwards.

Every request loop is bounded in count, and every request by the client's timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest


CONNECTIONS = 16
LOAD_SECONDS = 10  # per cache mode: 20 s of load in all
RUNAWAY = "with recursive r(i) as (select 1 union all select i+1 from r) select count(*) from r"
BYPASS_CACHE = {"Cookie": "load-test=bypass-cache"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Site:
    base: str
    db: Path
    digest: str
    paths: dict[str, str]


@pytest.fixture(scope="module")
def site(data_db, data_site) -> Site:
    """The session's server of data/ (conftest.py); it must not change the database."""
    db = data_db
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        article, title = conn.execute(
            "select id, title from articles join article_bodies on article_id = id "
            "order by length(body_html) desc limit 1 offset (select count(*) / 2 from articles)"
        ).fetchone()
    term = "".join(re.findall(r"[\u4e00-\u9fff]", title)[:2]) or title.split()[0]
    paths = {
        "table page": "/posts/articles",
        "search JSON": f"/posts/articles.json?_search={quote(term)}&_shape=array",
        "article page": f"/posts/articles/{article}",
    }
    digest = sha256(db)
    with httpx.Client(base_url=data_site, trust_env=False, timeout=30) as client:
        for name, path in paths.items():  # each URL works before any load
            response = client.get(path)
            assert response.status_code == 200, (name, path, response.status_code)
        assert client.get(paths["search JSON"]).json(), f"the search for {term!r} found nothing"
    yield Site(data_site, db, digest, paths)
    assert sha256(db) == digest, "the served database changed"


# --- load -----------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {%s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = 0; statuses = {} end
function request()
  i = i %% #paths + 1
  return wrk.format(nil, paths[i])
end
function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end
function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do totals[status] = (totals[status] or 0) + count end
  end
  for status, count in pairs(totals) do io.write(string.format("status %%s: %%d\\n", status, count)) end
end
"""


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: dict[str, int]
    statuses: dict[str, int]
    output: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def run_wrk(base: str, paths: list[str], seconds: int, headers: dict, script: Path) -> Load:
    script.write_text(WRK_SCRIPT % ", ".join(f'"{path}"' for path in paths))
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(command + [base + "/"], capture_output=True, text=True, timeout=seconds + 30)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(
        requests=int(summary[1]),
        seconds=float(summary[2]) / (1000 if summary[3] == "ms" else 1),
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()))) if sockets else {},
        statuses={status: int(count) for status, count in re.findall(r"^status (\d+): (\d+)$", output, re.M)},
        output=output,
    )


@pytest.mark.parametrize("cache", ["cached", "uncached"])
def test_16_connections_for_10_seconds_get_no_errors(site, cache, tmp_path):
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    headers = BYPASS_CACHE if cache == "uncached" else {}
    load = run_wrk(site.base, list(site.paths.values()), LOAD_SECONDS, headers, tmp_path / "rotate.lua")
    print(f"\nwrk -c{CONNECTIONS} {LOAD_SECONDS}s, {cache}: {load.requests} requests, {load.rps:.1f} req/s, "
          f"{load.errors} errors, statuses {load.statuses}")  # fmt: skip
    assert load.errors == 0, load.output
    assert load.statuses == {"200": load.requests}, load.output
    assert load.requests >= 3 * CONNECTIONS, load.output  # every connection got each URL at least once


# --- a runaway query ------------------------------------------------------------------
#
# What these tests hold is that each limit exists: the query is stopped, not run to the end,
# and the server goes on answering. How soon it is stopped, and how long anyone else waits
# meanwhile, is a figure of bench/limits.py: a clock in a test turns a busy machine red.

# Ends only when it is stopped: an answer at all means the limit stopped it. The client's
# timeout (30 s, fifteen times the limit) fails the test if it is not.
FINITE = "with recursive r(i) as (select 1 union all select i+1 from r where i < cast(:rows as integer)) select count(*) from r"
FINITE_ROWS = 10_000  # milliseconds of work: well within any limit


async def test_runaway_query_is_stopped_and_others_are_answered_meanwhile(site):
    # A client can lower the limit for its query (_timelimit) but never raise it.
    runaway = f"/posts.json?{urlencode({'sql': RUNAWAY, '_timelimit': 600_000})}"
    others = [site.paths["article page"], "/posts/articles.json?_size=5&_shape=array", "/-/versions.json"]
    async with httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30, headers=BYPASS_CACHE) as client:
        stopped, *answered = await asyncio.gather(
            client.get(runaway), *(delayed_get(client, path, delay) for delay in (0.3, 1.0, 1.7) for path in others)
        )
        assert stopped.status_code == 400
        error = stopped.json()
        assert error["ok"] is False and error["error"], error
        assert [response.status_code for response in answered] == [200] * len(answered), [r.url for r in answered]

        # The same recursion with an end runs to that end: the limit stops runaways only.
        finite = await client.get("/posts.json", params={"sql": FINITE, "rows": FINITE_ROWS, "_shape": "arrays"})
        assert finite.status_code == 200 and finite.json()["rows"] == [[FINITE_ROWS]], finite.text[:300]

        # The HTML page says so too (with a lower limit), and the server answers as before
        # once it is over.
        page = await client.get("/posts?" + urlencode({"sql": RUNAWAY, "_timelimit": 500}))
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        after = await client.get(site.paths["search JSON"])
        assert after.status_code == 200 and after.json()


async def delayed_get(client: httpx.AsyncClient, path: str, delay: float = 0.0, **kwargs) -> httpx.Response:
    await asyncio.sleep(delay)
    return await client.get(path, **kwargs)


async def test_runaway_queries_on_every_sql_thread_are_all_stopped_and_another_is_answered(site):
    # More runaways than the 3 SQL threads: each is stopped in turn, and a request that
    # waited behind them is still answered.
    params = [{"sql": f"{RUNAWAY} -- {n}", "_timelimit": 1000} for n in range(4)]
    async with httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30, headers=BYPASS_CACHE) as client:
        runaways = [client.get("/posts.json", params=p) for p in params]
        *stopped, other = await asyncio.gather(*runaways, delayed_get(client, "/posts/articles.json?_size=1&_shape=array", 0.3))
    assert [response.status_code for response in stopped] == [400] * 4
    assert other.status_code == 200 and len(other.json()) == 1


async def test_error_responses_hold_up_no_one(site):
    """Refused SQL and unknown pages are answered, and so is everyone else meanwhile
    (plugins/quiet_errors.py: Datasette printed a traceback with every local for each error,
    on the event loop, 0.5-1.5 s apiece; bench/limits.py measures the wait)."""
    bad = [("/posts.json", {"sql": f"delete from articles -- {n}"}) for n in range(10)]
    bad += [(f"/posts/no-such-table-{n}", {}) for n in range(10)]
    async with httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30, headers=BYPASS_CACHE) as client:
        versions, search, *errors = await asyncio.gather(
            delayed_get(client, "/-/versions.json", 0.05),
            delayed_get(client, site.paths["search JSON"], 0.1),
            *(client.get(path, params=params) for path, params in bad),
        )
    assert [response.status_code for response in errors] == [400] * 10 + [404] * 10
    assert versions.status_code == 200 and "datasette" in versions.json()
    assert search.status_code == 200 and search.json()


# One function call is one step of SQLite's machine: the time limit cannot stop it, the
# limits of plugins/sql_limits.py do (before them, a row of twelve 100 MB blobs took the
# server to 8.8 GB of memory and 47 s). A value over the length limit is refused in SQLite's
# words; a query over the memory cap in ours (None: any message).
TOO_MUCH_MEMORY = "needs more memory than the server allows"  # plugins/sql_limits.py
MEMORY_BOMBS = {
    "select length(randomblob(999999999))": None,
    "select length(hex(randomblob(400000000)))": None,
    "select " + ", ".join(["randomblob(140000000)"] * 6): TOO_MUCH_MEMORY,
}


async def test_memory_bombs_are_refused_with_a_clear_error(site):
    # Bounded by the client's timeout, not timed: before the limits these ran for 47 s
    # (bench/limits.py has how long each takes now).
    async with httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30) as client:
        for sql, expected in MEMORY_BOMBS.items():
            response = await client.get("/posts.json", params={"sql": sql})
            error = response.json()
            assert response.status_code == 400 and error["ok"] is False and error["error"], (sql, response.text[:300])
            assert expected is None or expected in error["error"], (sql, error["error"])
        after = await client.get(site.paths["search JSON"], headers=BYPASS_CACHE)
        assert after.status_code == 200 and after.json()


# --- writes ---------------------------------------------------------------------------

# Every kind of write, each refused by Datasette (only one read-only `select` per query) or
# by SQLite (the database is opened immutable). Their messages are theirs; what the test
# asserts is ours: a 400, and afterwards the same database and no file written anywhere.
WRITES = [
    "insert into articles (id, title) values (1, 'x')",
    "replace into tags (id, name) values (1, 'x')",
    "update articles set title = 'x'",
    "delete from articles",
    "create table t (x)",
    "drop table articles",
    "attach database '{tmp}/attached.db' as x",
    "vacuum into '{tmp}/vacuumed.db'",
    "pragma writable_schema = 1",
    "pragma user_version = 5",
    "pragma query_only = 0",
    "begin immediate",
    "  /* a comment first */ insert into tags (id, name) values (1, 'x')",
    "select * from pragma_user_version",
    "select 1; delete from articles",
    "with x as (select 1) insert into tags (id, name) select 1, 'x' from x",
    "with x as (select 1) update articles set title = 'x'",
    "with x as (select 1) delete from articles",
    "select load_extension('{tmp}/evil')",
    "select writefile('{tmp}/written', 'x')",
]


async def test_no_request_can_write(site, tmp_path):
    async with httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30) as client:
        databases = (await client.get("/-/databases.json")).json()
        assert [(d["name"], d["is_mutable"]) for d in databases] == [("posts", False)]
        counts = (await client.get("/posts.json?sql=select count(*) from articles&_shape=array")).json()
        refusals = {}
        for sql in WRITES:
            sql = sql.format(tmp=tmp_path)
            response = await client.get("/posts.json", params={"sql": sql})
            body = response.json()
            assert response.status_code == 400 and body["ok"] is False and body["error"], (sql, response.status_code, body)
            refusals[sql] = body["error"][:80]
            page = await client.get("/posts", params={"sql": sql})  # the HTML form page
            assert page.status_code in (200, 400) and body["error"][:40] in html.unescape(page.text), (sql, page.status_code)
        # Neither the write API of later Datasettes nor a POST to a query gets anywhere.
        for path in ("/posts/articles/-/insert", "/posts/-/create", "/posts/articles/-/drop", "/posts"):
            response = await client.post(path, json={"row": {"id": 1}})
            assert response.status_code in (403, 404, 405), (path, response.status_code)
        assert (await client.get("/posts.json?sql=select count(*) from articles&_shape=array")).json() == counts
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())  # no file was attached, vacuumed into or written
    assert sha256(site.db) == site.digest
    print("\nrefusals:\n" + "\n".join(f"  {sql!r}: {error}" for sql, error in refusals.items()))
