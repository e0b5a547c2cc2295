"""Bounds on what one query may allocate: the time limit cannot stop a single function call.

`sql_time_limit_ms` interrupts a query between steps of SQLite's virtual machine, but one
call of `randomblob(400000000)` or of `hex()` on it is a single step. Measured on data/:
`select length(hex(randomblob(400000000)))` ran for 5 s, past the 2 s limit, and took the
server to 2 GB; `select randomblob(100000000), …` (12 columns) took it to 8.8 GB and 47 s,
most of it spent encoding the row on the event loop. So, on every connection:

- no string or blob may be longer than MAX_VALUE (SQLite's default is 1 GB). Stored values
  are far below it: post files are at most 32 MiB, and a body grows at most 4x when every
  `<` in it is escaped to `&lt;`. A longer value fails its query: "string or blob too big";
- SQLite's memory, across every connection of the process, is capped at MAX_HEAP
  (`PRAGMA hard_heap_limit`). A query that would need more fails, answered by the
  `handle_exception` below with a 400 that says so (Datasette would send an empty 500).

Honest queries are nowhere near: the costliest, a LIKE over every body, streams its rows.
"""

from __future__ import annotations

import sqlite3

from datasette import hookimpl

from postsdb.errors import error_response

MAX_VALUE = 160 * 1024 * 1024
MAX_HEAP = 768 * 1024 * 1024
TOO_MUCH_MEMORY = (
    f"This query needs more memory than the server allows ({MAX_HEAP // 2**20} MB for all queries "
    f"at once, {MAX_VALUE // 2**20} MB for one value): ask for fewer or smaller values."
)


@hookimpl
def prepare_connection(conn):
    if hasattr(conn, "setlimit"):  # Python 3.11+; on 3.10 the heap cap still holds
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE)
    conn.execute(f"pragma hard_heap_limit = {MAX_HEAP}")


@hookimpl
def handle_exception(datasette, request, exception):
    if not isinstance(exception, MemoryError):
        return None

    async def too_much_memory():
        return await error_response(datasette, request.path, 400, TOO_MUCH_MEMORY, "SQL query used too much memory")

    return too_much_memory
