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
One query means one time limit: if it passes `facet_time_limit_ms`, every facet of the
type is reported timed out. A column that the URL also asks of Datasette's own facets
(`_facet=source`, `_facet_array=tags`) is left to them: one facet each, no `source_2`.

In metadata.yml: `facets: [{counts: source}, {counts: tags}, …]`; in a URL:
`?_facet_counts=month`.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.utils import escape_sqlite, path_with_removed_args

from postsdb.facets import COUNTED, JOINED_ARRAYS, STORED_SQL, counts_sql


# Datasette's facet types that count the same thing, for a column the URL asks of them.
THEIR_TYPES = {"column": "_facet", "array": "_facet_array"}


class CountsFacet(Facet):
    type = "counts"

    async def facet_results(self):
        configs, columns = [], []
        for config in self.get_configs():  # metadata's first, then the URL's
            column = self.column(config["config"])
            if column not in columns and not self.asked_of_theirs(column):  # each column once
                configs.append(config)
                columns.append(column)
        if not configs:
            return [], []
        size = self.get_facet_size()
        if await self.whole_table_counted(columns):  # the build counted them: postsdb/facets.py
            sql, params = STORED_SQL, {"columns": json.dumps(columns), "limit": size + 1}
        else:
            sql, params = counts_sql(self.table, self.sql, columns, size + 1), self.params
        try:
            rows = await self.ds.execute(
                self.database, sql, params, truncate=False, custom_time_limit=self.ds.setting("facet_time_limit_ms")
            )
        except QueryInterrupted:
            return [], columns
        counted = [[] for _ in columns]
        for facet, value, count in rows.rows:
            counted[columns.index(facet) if isinstance(facet, str) else facet].append((value, count))
        links = Links(self.ds, self.request)
        keyed = {key["column"] for key in await self.ds.get_database(self.database).foreign_keys_for_table(self.table)}
        results = []
        for config, column, found in zip(configs, columns, counted):
            kind = "array" if (self.table, column) in JOINED_ARRAYS else "column"
            labels = await self.labels(column, [value for value, _ in found[:size]], keyed) if kind == "column" else {}
            argument = f"{column}__arraycontains" if kind == "array" else (f"{column}__exact" if column.startswith("_") else column)
            results.append(
                {
                    "name": column,
                    "type": kind,
                    "hideable": config["source"] != "metadata",
                    "toggle_url": self.ds.urls.path(path_with_removed_args(self.request, {f"_facet_{self.type}": column})),
                    "results": [links.value(argument, value, count, labels.get((column, value), value)) for value, count in found[:size]],
                    "truncated": len(found) > size,
                }
            )
        return results, []

    async def whole_table_counted(self, columns: list[str]) -> bool:
        """Whether the page is the whole articles table (no filter, no search) and the build
        kept the counts of all its columns (a database built before `facet_counts` has none)."""
        if self.table != "articles" or self.params or not set(columns) <= set(COUNTED):
            return False
        if not re.fullmatch(rf"select .+ from {re.escape(escape_sqlite(self.table))}\s*", self.sql, re.S):
            return False
        known = self.ds.__dict__.setdefault("_facet_counts_stored", {})  # the database never changes while served
        if self.database not in known:
            known[self.database] = await self.ds.get_database(self.database).table_exists("facet_counts")
        return known[self.database]

    @staticmethod
    def column(config: dict) -> str:
        return config.get("column") or config["simple"]

    async def labels(self, column: str, values: list, keyed: set) -> dict:
        """Labels of a foreign key's values, as Datasette's column facet gives them."""
        if column not in keyed:
            return {}
        return await self.ds.expand_foreign_keys(self.database, self.table, column, values)

    def asked_of_theirs(self, column: str) -> bool:
        kind = "array" if (self.table, column) in JOINED_ARRAYS else "column"
        return column in self.request.args.getlist(THEIR_TYPES[kind])


class Links:
    """Each value's link, as Datasette's facets write it (`path_with_added_args`, then
    `absolute_url`), with the page's own query parsed and encoded once rather than once a
    value: the page's URL, then `&column=value`."""

    def __init__(self, ds, request):
        self.ds, self.request = ds, request
        self.pairs = parse_qsl(request.query_string, keep_blank_values=True)
        self.stem = urlencode(parse_qsl(request.query_string))  # what path_with_added_args keeps
        self.page = ds.absolute_url(request, ds.urls.path(request.path))

    def value(self, argument: str, value, count: int, label) -> dict:
        selected = (argument, str(value)) in self.pairs
        if selected:
            url = self.ds.absolute_url(self.request, self.ds.urls.path(path_with_removed_args(self.request, {argument: str(value)})))
        else:
            added = urlencode([(argument, value)])
            url = f"{self.page}?{self.stem}&{added}" if self.stem else f"{self.page}?{added}"
        return {"value": value, "label": label, "count": count, "toggle_url": url, "selected": selected}


@hookimpl
def register_facet_classes():
    return [CountsFacet]
