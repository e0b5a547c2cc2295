"""Chinese search in Datasette's own search box: `escape_fts` means "contains".

Datasette runs `… match escape_fts(:search)` for `?_search=`; this replaces its SQL
function with `postsdb.search.fts_query`, which speaks the index's language (characters of
normalized text, see postsdb/search.py). `trylast=True` makes this registration run after
Datasette's built-in one, so it is the one that stays.

A search longer than postsdb.search allows (MAX_QUERY_TERMS words, MAX_QUERY_CHARS
characters) is answered with a 400 that says so before Datasette sees it. The check
cannot live in `escape_fts`: an exception inside a SQL function reaches the reader as
SQLite's "user-defined function raised exception", and shortening the query there would
quietly search for something else.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from datasette import hookimpl

from postsdb.errors import error_response
from postsdb.search import QUERY_LIMIT_MESSAGE, fts_query, within_limits

# A parameter of a canned query's SQL that goes through the search function.
SEARCHED_PARAMETER = re.compile(r"escape_fts\(\s*:(\w+)\s*\)")
# /database/table-or-query, with an optional format: /posts/search.json
QUERY_PATH = re.compile(r"^/(?P<database>[^/]+)/(?P<name>[^/.]+)(?:\.\w+)?$")


@hookimpl(trylast=True)
def prepare_connection(conn):
    conn.create_function("escape_fts", 1, fts_query, deterministic=True)


# tryfirst: inside the security headers and the cache (see plugins/security_headers.py), so
# the refusal page carries the Content-Security-Policy too.
@hookimpl(tryfirst=True)
def asgi_wrapper(datasette):
    def wrap(app):
        canned = canned_search_parameters(datasette)

        async def search_within_limits(scope, receive, send):
            if scope["type"] == "http" and not all(map(within_limits, searches(scope, canned))):
                return await refuse(datasette, scope, send)
            return await app(scope, receive, send)

        return search_within_limits

    return wrap


def canned_search_parameters(datasette) -> dict[tuple[str, str], set[str]]:
    """(database, canned query) → the parameters it passes to `escape_fts`: for this
    project, {("posts", "search"): {"q"}}."""
    found = {}
    for database in datasette.databases:
        queries = datasette.metadata("queries", database=database, fallback=False) or {}
        for name, query in queries.items():
            sql = query.get("sql", "") if isinstance(query, dict) else str(query)
            if parameters := set(SEARCHED_PARAMETER.findall(sql)):
                found[(database, name)] = parameters
    return found


def searches(scope, canned: dict[tuple[str, str], set[str]]) -> list[str]:
    """Every value in the request that Datasette will hand to `escape_fts`: the table
    search box's `_search` and `_search_<column>` (as Datasette reads them, all but
    `_searchmode`), and a canned search query's parameters."""
    query_string = scope.get("query_string") or b""
    if not query_string:
        return []
    match = QUERY_PATH.match(scope.get("path", ""))
    searched = canned.get((match["database"], match["name"]), set()) if match else set()
    pairs = parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    return [
        value
        for key, value in pairs
        if (key.startswith("_search") and key != "_searchmode") or key in searched
    ]


async def refuse(datasette, scope, send) -> None:
    """A 400 shaped like Datasette's own errors: JSON for .json URLs, the error page otherwise."""
    title = "搜索过长 · Search too long"
    response = await error_response(datasette, scope.get("path", ""), 400, QUERY_LIMIT_MESSAGE, title)
    await response.asgi_send(send)
