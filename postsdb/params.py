"""What the URL parameters of Datasette 0.65's table, row and query pages may be.

Datasette reads many of its parameters without checking them, and a bad value becomes a
500: `int()` of `_timelimit`, a JSON parse of `_through` or of a `_facet` configuration,
"Cannot sort table by …" raised as a server error, an `__in` list holding a value SQLite
cannot bind. Others are silently ignored (`title__nope=1`; a filter on a column that does
not exist, which SQLite reads as a string; a `_next` token of the wrong shape), so a
mistyped URL returns rows it did not ask for. `check_table`, `check_row` and `check_query`
raise `BadParameter`, naming the parameter and what it may be, for the values Datasette
would fail on or quietly ignore; plugins/bad_params.py answers those with a 400 before
Datasette sees them. Parameters nobody knows (`_foo`, a name a canned query does not use)
are left alone, as Datasette leaves them.

`_where` (ad-hoc SQL, allowed here) needs SQLite to judge it: the plugin compiles it.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field

from datasette.filters import Filters

# Filters as Datasette knows them: exact, not, contains, …, in, notin, arraycontains, date, isnull, …
LOOKUPS = tuple(key for key, _, _ in Filters([]).lookups())
# The lookups whose value Datasette turns into a number when `value.isdigit()`: gt, gte, lt, lte.
NUMERIC_LOOKUPS = frozenset(f.key for f in Filters._filters if getattr(f, "numeric", False))
SHAPES = ("arrays", "objects", "array", "object")
BOOLEANS = ("on", "off", "true", "false", "1", "0")
SEARCH_MODES = ("raw", "escaped")
WHOLE_NUMBER = re.compile(r"[0-9]{1,100}")  # ASCII only: Datasette's isdigit() lets '²' reach int()
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
SQLITE_INTEGER = range(-(2**63), 2**63)
# Datasette reads these as "not given" when empty; its own forms send `_sort=` that way.
EMPTY_IS_ABSENT = {"_sort", "_sort_desc", "_size", "_timelimit", "_facet_size", "_next", "_ttl", "_searchmode", "_json"}
SHOWN_CHARS = 60


class BadParameter(ValueError):
    """`parameter` in the URL has a value (or a name) the page cannot take."""

    def __init__(self, parameter: str, value: str, reason: str):
        name = shown(parameter)
        super().__init__(f"{name}={shown(value)}: {reason}" if value else f"{name}: {reason}")
        self.parameter = parameter


def shown(value: str) -> str:
    """The value as a reader can see it: control characters escaped, long values cut."""
    text = json.dumps(value, ensure_ascii=False)[1:-1]
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


@dataclass(frozen=True)
class Table:
    """What the checks need to know about a table or view."""

    name: str
    columns: tuple[str, ...]
    primary_keys: tuple[str, ...] = ()
    is_view: bool = False
    sortable: frozenset[str] | None = None  # None: every column (metadata's sortable_columns narrows it)
    sorted_by_default: bool = False  # metadata gives a sort or sort_desc
    fts_table: str | None = None  # the full-text index `_search` uses
    fts_tables: dict[str, frozenset[str]] = field(default_factory=dict)  # every FTS table → its columns
    referring: dict[str, frozenset[str]] = field(default_factory=dict)  # table with a foreign key to this one → its columns

    @property
    def uses_rowid(self) -> bool:
        return not self.primary_keys and not self.is_view

    @property
    def known_columns(self) -> set[str]:
        return set(self.columns) | ({"rowid"} if self.uses_rowid else set())


# --- the checks, one per parameter ------------------------------------------------


def check_no_nul(pairs) -> None:
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise BadParameter(key, value, "contains a NUL character (%00), which no parameter may")


def check_whole_number(key: str, value: str, smallest: int, largest: int | None = None, allow_max: bool = False) -> None:
    if allow_max and value == "max":
        return
    if WHOLE_NUMBER.fullmatch(value) and int(value) >= smallest and (largest is None or int(value) <= largest):
        return
    limits = f"from {smallest} to {largest}" if largest is not None else f"{smallest} or more"
    raise BadParameter(key, value, f"must be a whole number {limits}" + (", or max" if allow_max else ""))


def given(pairs) -> list[tuple[str, str]]:
    return [(key, value) for key, value in pairs if value or key not in EMPTY_IS_ABSENT]


def check_one_of(key: str, value: str, allowed, any_case: bool = False) -> None:
    if (value.lower() if any_case else value) not in allowed:
        raise BadParameter(key, value, f"must be one of {', '.join(allowed)}")


def check_column(table: Table, key: str, value: str, columns=None, what: str = "") -> None:
    columns = table.known_columns if columns is None else columns
    if value not in columns:
        raise BadParameter(key, value, f"{table.name} has no {what or 'column'} of that name; it has {', '.join(sorted(columns))}")


def check_shape(key: str, value: str, table: Table | None) -> None:
    check_one_of(key, value, SHAPES)
    if value == "object" and (table is None or table.is_view):
        raise BadParameter(key, value, "is only available on tables (rows keyed by their primary key); use objects")


def check_common(pairs, max_rows: int, table: Table | None) -> None:
    """Parameters every data page reads: the JSON shape, the time limit, the page size."""
    for key, value in given(pairs):
        if key == "_shape":
            check_shape(key, value, table)
        elif key == "_timelimit":
            check_whole_number(key, value, 1)
        elif key == "_size":
            check_whole_number(key, value, 0, max_rows, allow_max=True)
        elif key == "_ttl":
            check_whole_number(key, value, 0)
        elif key in ("_json_infinity", "_labels"):
            check_one_of(key, value, BOOLEANS, any_case=True)
        elif key == "_json" and table is not None:
            check_column(table, key, value)


def check_query(pairs, max_rows: int) -> None:
    """A canned query or `?sql=`: named parameters may be anything (they are bound as text)."""
    check_no_nul(pairs)
    check_common(pairs, max_rows, None)


def check_row(table: Table, pairs, max_rows: int) -> None:
    check_no_nul(pairs)
    check_common(pairs, max_rows, table)


def check_table(table: Table, pairs, max_rows: int, facet_types=("column", "array", "date")) -> None:
    check_no_nul(pairs)
    check_common(pairs, max_rows, table)
    pairs = given(pairs)
    keys = {key for key, _ in pairs}
    first = {}
    for key, value in pairs:
        first.setdefault(key, value)  # Datasette reads the first of repeated parameters
    if "_sort" in keys and "_sort_desc" in keys:
        raise BadParameter("_sort_desc", "", "cannot be used with _sort: sort by one column, one way")
    for key, value in pairs:
        if key in ("_sort", "_sort_desc"):
            sortable = table.known_columns if table.sortable is None else table.sortable
            check_column(table, key, value, sortable, "sortable column")
        elif key in ("_col", "_label"):
            check_column(table, key, value)
        elif key == "_nocol":
            check_column(table, key, value, set(table.columns) - set(table.primary_keys), "column that can be hidden")
        elif key.startswith("_facet"):
            check_facet(table, key, value, max_rows, facet_types)
        elif key == "_next":
            check_next(table, key, value, sorted_by=table.sorted_by_default or bool(keys & {"_sort", "_sort_desc"}))
        elif key == "_through":
            check_through(table, key, value)
        elif key.startswith("_search") or key in ("_fts_table", "_fts_pk"):
            check_search(table, key, value, first.get("_fts_table"))
        elif not key.startswith("_") or "__" in key:  # as Datasette tells a filter from the rest
            check_filter(table, key, value)


def check_facet(table: Table, key: str, value: str, max_rows: int, facet_types) -> None:
    if key == "_facet_size":
        return check_whole_number(key, value, 0, max_rows, allow_max=True)
    kind = "column" if key == "_facet" else key[len("_facet_") :] if key.startswith("_facet_") else None
    if kind not in facet_types:
        kinds = ", ".join(["_facet", *(f"_facet_{kind}" for kind in facet_types if kind != "column"), "_facet_size"])
        raise BadParameter(key, value, f"is not a facet parameter; they are {kinds}")
    if not value.startswith("{"):
        return check_column(table, key, value)
    config = json_value(key, value, dict)  # Datasette reads a facet's configuration as JSON
    column = config.get("column") or config.get("simple")
    if not isinstance(column, str) or column not in table.known_columns:
        raise BadParameter(key, value, f'as JSON must name a column of {table.name}: {{"simple": "column"}}')


def check_next(table: Table, key: str, value: str, sorted_by: bool) -> None:
    """`_next` is Datasette's own token from a page's "next" link: an offset for a view;
    otherwise the last row's sort value (when sorted) and its primary key, comma-separated."""
    if table.is_view:
        return check_whole_number(key, value, 0)
    keys = max(len(table.primary_keys), 1)  # a rowid table's key is its rowid
    parts = len(value.split(","))
    # Sorted: the sort value, then the key (a one-column key may come alone: a null sort value).
    allowed = {keys + 1, 1 if keys == 1 else keys + 1} if sorted_by else {keys}
    if parts in allowed:
        return
    expected = f"{'the sort value and ' if sorted_by else ''}{keys} primary key value{'s' if keys > 1 else ''}"
    raise BadParameter(key, value, f"is not a page token of this table ({expected}): use the page's next link")


def check_through(table: Table, key: str, value: str) -> None:
    through = json_value(key, value, dict)
    shape = '{"table": …, "column": …, "value": …}'
    if not {"table", "column", "value"} <= through.keys():
        raise BadParameter(key, value, f"must be JSON of the form {shape}")
    other, column = through["table"], through["column"]
    if other not in table.referring:
        tables = ", ".join(sorted(table.referring)) or "none"
        raise BadParameter(key, value, f"table must be one with a foreign key to {table.name} ({tables})")
    if column not in table.referring[other]:
        raise BadParameter(key, value, f"{other} has no column {shown(str(column))}")
    bindable(key, value, through["value"])


def check_search(table: Table, key: str, value: str, fts_override: str | None) -> None:
    if key == "_searchmode":
        return check_one_of(key, value, SEARCH_MODES)
    if key == "_fts_table":
        return check_column(table, key, value, set(table.fts_tables), "full-text table")
    if key == "_fts_pk":
        return check_column(table, key, value, table.known_columns)
    fts = fts_override if fts_override in table.fts_tables else table.fts_table
    if key != "_search" and not key.startswith("_search_"):
        raise BadParameter(key, value, "is not a search parameter; they are _search, _search_<column> and _searchmode")
    if fts is None:
        if value:
            raise BadParameter(key, value, f"{table.name} has no full-text index to search")
        return
    column = key[len("_search_") :]
    if key.startswith("_search_") and column not in table.fts_tables.get(fts, ()):
        columns = ", ".join(sorted(table.fts_tables.get(fts, ())))
        raise BadParameter(key, value, f"{shown(column)} is not a column of the full-text index {fts} ({columns})")


def check_filter(table: Table, key: str, value: str) -> None:
    column, lookup = key.rsplit("__", 1) if "__" in key else (key, "exact")
    if lookup not in LOOKUPS:
        raise BadParameter(key, value, f"{shown(lookup)} is not a filter; filters are {', '.join(LOOKUPS)}")
    if column not in table.known_columns:
        raise BadParameter(key, value, f"{table.name} has no column {shown(column)} to filter on")
    if lookup in ("in", "notin") and value.startswith("["):
        for item in json_value(key, value, list):
            bindable(key, value, item)
    elif lookup == "date" and not is_date(value):
        raise BadParameter(key, value, "must be a date, YYYY-MM-DD")
    elif lookup in NUMERIC_LOOKUPS and value.isdigit() and not value.isdecimal():
        # '²' or '①' are digits to isdigit() but no number to int(): Datasette's 500.
        raise BadParameter(key, value, "must be a number written in digits, such as 12")


# --- values -------------------------------------------------------------------------


def json_value(key: str, value: str, kind: type):
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, kind):
        raise BadParameter(key, value, f"must be a JSON {'object' if kind is dict else 'list'}")
    return parsed


def bindable(key: str, value: str, item) -> None:
    """A JSON value SQLite can compare a column with: text, a number, true/false or null."""
    if isinstance(item, bool) or item is None or isinstance(item, (str, float)):
        return
    if isinstance(item, int) and item in SQLITE_INTEGER:
        return
    raise BadParameter(key, value, "values must be text, numbers (64-bit integers), true, false or null")


def is_date(value: str) -> bool:
    if not DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True
