"""A bad URL parameter gets a 400 that names it, never a 500.

Datasette 0.65 answers many bad parameters with a 500 (a JSON parse of `_through`, `int()`
of `_timelimit`, "Cannot sort table by …") or silently ignores them. Two hooks:

- `asgi_wrapper` checks a table, row or query page's parameters before Datasette sees them
  (postsdb/params.py: column names against the table's columns, numbers, shapes, page
  tokens, filters and their values; `_where` compiled by SQLite, not run) and answers a bad
  one with a 400 naming it: JSON for `.json` URLs, the site's error page otherwise.
- `handle_exception` is the net behind it: an exception Datasette raises because of a
  parameter (recognised by what it says about a value the client sent) becomes a 400 naming
  that parameter, and a SQL error on a table page names the parameters that put SQL into
  the query. Anything else stays Datasette's: a real fault is a 500, and logged.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import traceback
from urllib.parse import parse_qsl

from datasette import hookimpl
from datasette.plugins import pm
from datasette.utils import escape_sqlite, tilde_decode
from datasette.views.base import DatasetteError

from postsdb.errors import error_response
from postsdb.params import BadParameter, Table, check_no_nul, check_query, check_row, check_table, shown

TITLE = "参数错误 · Bad parameter"
# Datasette's routes for a database, a table or canned query, and a row (datasette/app.py).
DATABASE_PAGE = re.compile(r"^/(?P<database>[^/.]+)(\.(?P<format>\w+))?$")
TABLE_PAGE = re.compile(r"^/(?P<database>[^/.]+)/(?P<table>[^/.]+)(\.(?P<format>\w+))?$")
ROW_PAGE = re.compile(r"^/(?P<database>[^/.]+)/(?P<table>[^/]+?)/(?P<pks>[^/]+?)(\.(?P<format>\w+))?$")
NOT_DATA = {"db"}  # /posts.db is the download


@hookimpl(tryfirst=True)  # inside the security headers and the cache: see plugins/security_headers.py
def asgi_wrapper(datasette):
    def wrap(app):
        tables = TableInfo(datasette)

        async def check_parameters(scope, receive, send):
            if scope["type"] == "http" and scope.get("query_string"):
                try:
                    await check_request(datasette, tables, scope)
                except BadParameter as bad:
                    response = await error_response(datasette, scope["path"], 400, str(bad), TITLE, parameter=bad.parameter)
                    return await response.asgi_send(send)
                except Exception:  # our check failed, not the request: let Datasette answer it
                    print("bad_params: checking the parameters failed; passing the request on", file=sys.stderr)
                    traceback.print_exc()
            return await app(scope, receive, send)

        return check_parameters

    return wrap


def query_pairs(scope) -> list[tuple[str, str]]:
    """The parameters as Datasette's `request.args` reads them."""
    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def route_path(datasette, scope) -> str:
    """The path Datasette routes on: the raw path (so %2F stays apart from /), without base_url."""
    raw = scope.get("raw_path")
    path = raw.decode("ascii", "replace") if raw else scope.get("path", "")
    path = path.partition("?")[0]
    base_url = datasette.setting("base_url")
    if base_url != "/" and path.startswith(base_url):
        path = "/" + path[len(base_url) :]
    return path


async def check_request(datasette, tables: "TableInfo", scope) -> None:
    pairs = query_pairs(scope)
    check_no_nul(pairs)  # on every page, Datasette's own and plugins' (/-/…) too
    path = route_path(datasette, scope)
    max_rows = datasette.setting("max_returned_rows")
    if path.startswith("/-/"):
        return
    for pattern in (DATABASE_PAGE, TABLE_PAGE, ROW_PAGE):
        if match := pattern.match(path):
            break
    else:
        return
    if match["format"] in NOT_DATA:
        return
    try:
        db = datasette.get_database(route=tilde_decode(match["database"]))
    except KeyError:
        return  # Datasette answers 404
    name = tilde_decode(match.groupdict().get("table") or "")
    if not name or await datasette.get_canned_query(db.name, name, None):
        return check_query(pairs, max_rows)
    table = await tables.get(db, name)
    if table is None:
        return  # no such table: Datasette answers 404
    if pattern is ROW_PAGE:
        return check_row(table, pairs, max_rows)
    check_table(table, pairs, max_rows, facet_types=tables.facet_types)
    await check_where(datasette, db, table, pairs)


async def check_where(datasette, db, table: Table, pairs) -> None:
    """`_where` is SQL. SQLite compiles it (EXPLAIN, nothing runs) in the statement Datasette
    will put it in; if it would fail there, it fails here, with its name on it."""
    wheres = [value for key, value in pairs if key == "_where"]
    if not wheres or not await datasette.permission_allowed(None, "execute-sql", resource=db.name, default=True):
        return  # Datasette refuses `_where` itself to whoever may not run SQL
    for value in wheres:
        sql = f"explain select * from {escape_sqlite(table.name)} where {value} limit 0"

        def prepare(conn, sql=sql):
            conn.execute(sql)  # preparing the statement is the check; its rows (opcodes) are not needed

        try:
            await db.execute_fn(prepare)
        except (sqlite3.Error, sqlite3.Warning, OverflowError, ValueError) as error:
            raise BadParameter("_where", value, f"is not a condition SQLite can use on {table.name} ({error})") from None


class TableInfo:
    """What postsdb.params needs to know about a table, read through Datasette; kept for the
    tables of immutable databases (their schema cannot change while they are served), never
    for names that are not tables (a client could make up any number of those)."""

    def __init__(self, datasette):
        self.datasette = datasette
        self.known: dict[tuple[str, str], Table | None] = {}
        # column, array, date: `_facet`, `_facet_array`, `_facet_date`
        self.facet_types = tuple(kind.type for classes in pm.hook.register_facet_classes() for kind in classes)

    async def get(self, db, name: str) -> Table | None:
        key = (db.name, name)
        if key in self.known:
            return self.known[key]
        table = await self.read(db, name)
        if table is not None and not db.is_mutable:
            self.known[key] = table
        return table

    async def read(self, db, name: str) -> Table | None:
        is_view = name in await db.view_names()
        if not is_view and not await db.table_exists(name):
            return None
        metadata = self.datasette.table_metadata(db.name, name)
        fts_tables = {}
        for fts in await self.fts_table_names(db):
            fts_tables[fts] = frozenset(await db.table_columns(fts))
        referring = {}
        for other in await db.table_names():
            if any(fk["other_table"] == name for fk in await db.foreign_keys_for_table(other)):
                referring[other] = frozenset(await db.table_columns(other))
        sortable = metadata.get("sortable_columns")
        return Table(
            name=name,
            columns=tuple(await db.table_columns(name)),
            primary_keys=tuple(await db.primary_keys(name)),
            is_view=is_view,
            sortable=frozenset(sortable) if sortable is not None else None,
            sorted_by_default=bool(metadata.get("sort") or metadata.get("sort_desc")),
            fts_table=metadata.get("fts_table") or await db.fts_table(name),
            fts_tables=fts_tables,
            referring=referring,
        )

    @staticmethod
    async def fts_table_names(db) -> list[str]:
        rows = await db.execute(
            "select name from sqlite_master where type = 'table' and sql like 'create virtual table%using fts%'"
        )
        return [row[0] for row in rows]


# --- the net behind: exceptions that are about a parameter ------------------------

# Datasette raises these as DatasetteError with its default status, 500 (views/table.py, filters.py).
DATASETTE_CLIENT_ERRORS = {
    re.compile(r"^Cannot use _sort and _sort_desc"): ("_sort_desc",),
    re.compile(r"^Cannot sort table by "): ("_sort", "_sort_desc"),
    re.compile(r"^Invalid _through"): ("_through",),
}
INT_LITERAL = re.compile(r"^invalid literal for int\(\) with base 10: (?P<value>'.*'|\".*\")$", re.S)
INT_PARAMETERS = ("_timelimit", "_size", "_facet_size", "_next", "_ttl")
BINDING_ERRORS = (sqlite3.InterfaceError, sqlite3.ProgrammingError)  # "Error binding parameter …"
JSON_PARAMETERS = re.compile(r"^(_through|_facet\w*|.+__in|.+__notin)$")
# On a table page, the parameters that put SQL, or values SQL functions parse, into the query.
SQL_PARAMETERS = re.compile(r"^(_where|_search\w*|_fts_table|_fts_pk|_facet_array|_next|.+__arraycontains|.+__arraynotcontains)$")


@hookimpl
def handle_exception(datasette, request, exception):
    found = about_a_parameter(exception, request.path, query_pairs(request.scope))
    if found is None:
        return None
    parameter, message = found

    async def bad_parameter():
        return await error_response(datasette, request.path, 400, message, TITLE, parameter=parameter)

    return bad_parameter


def about_a_parameter(exception, path: str, pairs) -> tuple[str, str] | None:
    """(parameter, message) when `exception` is Datasette failing on a parameter's value."""
    nul = next(((k, v) for k, v in pairs if "\x00" in k + v), None)
    if nul and isinstance(exception, (ValueError, sqlite3.Error, sqlite3.Warning)):
        return nul[0], str(BadParameter(nul[0], nul[1], "contains a NUL character (%00), which no parameter may"))
    if isinstance(exception, DatasetteError):
        return datasette_error(exception, path, pairs)
    if isinstance(exception, json.JSONDecodeError):
        return named(pairs, lambda k, v: JSON_PARAMETERS.match(k) and v == exception.doc, "is not valid JSON")
    if isinstance(exception, ValueError) and (literal := INT_LITERAL.match(str(exception))):
        value = literal["value"][1:-1]
        return named(pairs, lambda k, v: k in INT_PARAMETERS and v == value, "must be a whole number")
    if isinstance(exception, (sqlite3.ProgrammingError, sqlite3.Warning)) and "one statement" in str(exception):
        return named(pairs, lambda k, v: k == "_where", "must be one SQL condition, not several statements")
    if isinstance(exception, OverflowError) or (isinstance(exception, BINDING_ERRORS) and "binding" in str(exception)):
        return named(
            pairs, lambda k, v: JSON_PARAMETERS.match(k), "holds a value SQLite cannot compare a column with"
        ) or named(  # a filter's whole number, which Datasette passes to SQLite as a number
            pairs, lambda k, v: too_big_for_sqlite(v), "is a whole number too large for SQLite (64 bits)"
        )
    return None


def too_big_for_sqlite(value: str) -> bool:
    return bool(re.fullmatch(r"\s*[-+]?\d+\s*", value)) and not -(2**63) <= int(value) < 2**63


def datasette_error(exception: DatasetteError, path: str, pairs) -> tuple[str, str] | None:
    if exception.status == 500:
        for pattern, parameters in DATASETTE_CLIENT_ERRORS.items():
            if pattern.match(str(exception.message)):
                return named(pairs, lambda k, v: k in parameters, str(exception.message))
        return None
    # A SQL error on a table page comes from the parameters that brought SQL into the query.
    if exception.status == 400 and exception.title == "Invalid SQL" and TABLE_PAGE.match(path):
        suspects = list(dict.fromkeys(k for k, _ in pairs if SQL_PARAMETERS.match(k)))
        if suspects:
            return suspects[0], f"the query built from {', '.join(suspects)} failed: {exception.message}"
    return None


def named(pairs, matches, reason: str) -> tuple[str, str] | None:
    """The first parameter `matches` picks out, and `reason` with its name on it; None when no
    parameter explains the error (then it is not the client's)."""
    for key, value in pairs:
        if matches(key, value):
            return key, f"{key}={shown(value)}: {reason}"
    return None
