"""The articles page's facets, every one counted in one query (postsdb/facets.py).

Datasette's column facet runs one query per facet, each selecting the page's rows again:
on a search, each repeats the full-text match and reads every hit's row. With five facets
that was most of a search page's SQL, and it grew with the hits. This facet type counts all
the facets configured for it in one query (`counts_sql`): on the sample ×30 that took a
search's facet SQL from 9–21 ms to 2–7; on a page filtered through an index it costs what
the separate queries did. The whole table's counts, for the unfiltered page, the build
keeps in `facet_counts`. Topics are counted from `article_tags`, not from the JSON column.

What a page gets is what Datasette's own facets give: the same values, counts, order,
`truncated`, and links (`source=…`, or `tags__arraycontains=…` for the array), reported as
type `column` or `array` (tests/test_articles_page.py compares them with Datasette's).
The configured facets share one query and one time limit (`facet_time_limit_ms`); the
columns a URL asks for (`_facet_counts=`) are counted in a query of their own, so a slow
one times out alone. A column that the URL also asks of Datasette's own facets
(`_facet=source`, `_facet_array=tags`) is left to them: one facet each, no `source_2`.

In metadata.yml: `facets: [{counts: source}, {counts: tags}, …]`; in a URL:
`?_facet_counts=month`.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet, load_facet_configs
from datasette.utils import escape_sqlite, path_with_removed_args

from postsdb.facets import JOINED_ARRAYS, STORED_FACETS_SQL, STORED_SQL, counts_sql




class CountsFacet(Facet):
    type = "counts"

    async def facet_results(self):
        ours = self.get_configs()  # metadata's first, then the URL's
        if not ours:
            return [], []
        # What the URL asks of Datasette's own facets (`_facet=source`, `_facet_array=tags`,
        # or as JSON), parsed by Datasette: those columns are left to them.
        theirs = {kind: {self.column(c["config"]) for c in configs} for kind, configs in load_facet_configs(self.request, {}).items()}
        configs, columns = [], []
        for config in ours:
            column = self.column(config["config"])
            if column not in columns and column not in theirs.get(self.kind(column), ()):  # each column once
                configs.append(config)
                columns.append(column)
        if not configs:
            return [], []
        size = self.get_facet_size()
        stored = await self.stored_columns()
        asked = {column for column, config in zip(columns, configs) if config["source"] != "metadata"}
        # Three queries at most, each with its own time limit: what the build counted, the
        # configured facets, the URL's. A slow column asked in the URL costs only itself.
        batches = [
            (True, [c for c in columns if c in stored]),
            (False, [c for c in columns if c not in stored and c not in asked]),
            (False, [c for c in columns if c not in stored and c in asked]),
        ]
        found, timed_out = {}, []
        for from_build, batch in batches:
            if batch:
                try:
                    found.update(await self.count(batch, from_build, size + 1))
                except QueryInterrupted:
                    timed_out.extend(batch)
        links = Links(self.ds, self.request)
        keyed = {key["column"] for key in await self.ds.get_database(self.database).foreign_keys_for_table(self.table)}
        results = []
        for config, column in zip(configs, columns):
            if column not in found:
                continue
            values = found[column]
            kind = self.kind(column)
            labels = await self.labels(column, [value for value, _ in values[:size]], keyed) if kind == "column" else {}
            argument = f"{column}__arraycontains" if kind == "array" else (f"{column}__exact" if column.startswith("_") else column)
            results.append(
                {
                    "name": column,
                    "type": kind,
                    "hideable": config["source"] != "metadata",
                    "toggle_url": self.ds.urls.path(path_with_removed_args(self.request, {f"_facet_{self.type}": column})),
                    "results": [links.value(kind, argument, value, n, labels.get((column, value), value)) for value, n in values[:size]],
                    "truncated": len(values) > size,
                }
            )
        return results, timed_out

    async def count(self, columns: list[str], from_build: bool, limit: int) -> dict[str, list]:
        """Each column's first `limit` (value, count) pairs, from the build's counts or counted now."""
        if from_build:
            sql, params = STORED_SQL, {"columns": json.dumps(columns), "limit": limit}
        else:
            sql, params = counts_sql(self.table, self.sql, columns, limit), self.params
        rows = await self.ds.execute(self.database, sql, params, truncate=False, custom_time_limit=self.ds.setting("facet_time_limit_ms"))
        found = {column: [] for column in columns}
        for facet, value, n in rows.rows:
            found[facet if from_build else columns[facet]].append((value, n))
        return found

    async def stored_columns(self) -> set[str]:
        """The columns whose counts the build kept, if this page is the whole articles table
        (its SQL exactly Datasette's with no filter, no search, no `_where`, no `_next`);
        else none. A database built before `facet_counts` has none."""
        if self.table != "articles" or self.params:
            return set()
        whole, names = await self.whole_table()
        return names if self.sql == whole else set()

    async def whole_table(self) -> tuple[str, set[str]]:
        """The SQL Datasette selects the whole articles table with, and the columns whose
        counts the build kept: read once for a database that never changes while served."""
        known = self.ds.__dict__.setdefault("_facet_counts_stored", {})
        if self.database in known:
            return known[self.database]
        db = self.ds.get_database(self.database)
        whole = "select " + ", ".join(escape_sqlite(c) for c in await db.table_columns(self.table)) + f" from {escape_sqlite(self.table)} "
        names = {row[0] for row in await db.execute(STORED_FACETS_SQL)} if await db.table_exists("facet_counts") else set()
        if not db.is_mutable:
            known[self.database] = (whole, names)
        return whole, names

    @staticmethod
    def column(config: dict) -> str:
        return config.get("column") or config["simple"]

    async def labels(self, column: str, values: list, keyed: set) -> dict:
        """Labels of a foreign key's values, as Datasette's column facet gives them."""
        if column not in keyed:
            return {}
        return await self.ds.expand_foreign_keys(self.database, self.table, column, values)

    def kind(self, column: str) -> str:
        """Which of Datasette's facets counts what this one counts for the column."""
        return "array" if (self.table, column) in JOINED_ARRAYS else "column"


class Links:
    """Each value's link, as Datasette's facets write it (`path_with_added_args`, then
    `absolute_url`), with the page's own query parsed and encoded once rather than once a
    value: the page's URL, then `&column=value`. Datasette's column facet passes the path
    through `urls.path` (under a `base_url`, the prefix twice) and its array facet does not;
    each kind's links are written as its own facet writes them."""

    def __init__(self, ds, request):
        self.ds, self.request = ds, request
        self.pairs = parse_qsl(request.query_string, keep_blank_values=True)
        self.stem = urlencode(parse_qsl(request.query_string))  # what path_with_added_args keeps
        self.pages = {"column": ds.absolute_url(request, ds.urls.path(request.path)), "array": ds.absolute_url(request, request.path)}

    def value(self, kind: str, argument: str, value, count: int, label) -> dict:
        selected = (argument, str(value)) in self.pairs
        if selected:
            path = path_with_removed_args(self.request, {argument: str(value)})
            url = self.ds.absolute_url(self.request, self.ds.urls.path(path) if kind == "column" else path)
        else:
            added = urlencode([(argument, value)])
            url = f"{self.pages[kind]}?{self.stem}&{added}" if self.stem else f"{self.pages[kind]}?{added}"
        return {"value": value, "label": label, "count": count, "toggle_url": url, "selected": selected}


@hookimpl
def register_facet_classes():
    return [CountsFacet]
