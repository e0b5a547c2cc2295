"""The articles page's facets, every one counted in one pass over the page's rows.

Datasette's column facet runs one query per facet, each selecting the page's rows again:
on a search, each repeats the full-text match and reads every hit's row. With five facets
that was most of a search page's SQL, and it grew with the hits. This facet type counts all
the facets configured for it in one query: the rows are selected once (a materialized CTE
of the few columns counted), then each column is grouped, and `row_number()` keeps each
facet's first `facet_size + 1` values. On the sample ×30 that took a search's facet SQL
from 9–21 ms to 2–7; on a page filtered through an index it costs what the separate queries
did.

A JSON array column whose values the build also writes as rows of a join table
(`articles.tags` → `article_tags` → `tags`, postsdb/schema.py) is counted from those rows
through their indexes, not by expanding every row's JSON as Datasette's array facet does.

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

from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.utils import escape_sqlite, path_with_removed_args


class JoinedArray(NamedTuple):  # (a dataclass cannot live in a plugins-dir module: it is not in sys.modules)
    """A JSON array column whose values the build also wrote as rows of a join table."""

    key: str  # articles.id
    through: str  # article_tags
    row_key: str  # article_tags.article_id → the faceted table's `key`
    value_key: str  # article_tags.tag_id → values.id
    values: str  # tags
    value_column: str  # tags.name


# (table, JSON array column) → where its values live as rows (postsdb/schema.py).
JOINED_ARRAYS = {("articles", "tags"): JoinedArray("id", "article_tags", "article_id", "tag_id", "tags", "name")}
# Datasette's facet types that count the same thing, for a column the URL asks of them.
THEIR_TYPES = {"column": "_facet", "array": "_facet_array"}


def counts_sql(table: str, table_sql: str, columns: list[str], limit: int) -> str:
    """(facet, value, count) rows: each column's `limit` most frequent values among the rows
    `table_sql` selects, most first, then by value, as Datasette's facets order them. The
    i-th column's rows have facet = i. A value can be both a category and a tag of one
    article, hence count(distinct …) for a joined array, whose rows are read article by
    article (`cross join` keeps that order: with ANALYZE's statistics, SQLite preferred to
    read every value's rows of the join table and look each up among the hits)."""
    joined = {column: JOINED_ARRAYS.get((table, column)) for column in columns}
    keys = sorted({array.key for array in joined.values() if array})
    selected = ", ".join(escape_sqlite(name) for name in dict.fromkeys(keys + [c for c in columns if not joined[c]]))
    parts = []
    for facet, column in enumerate(columns):
        if array := joined[column]:
            parts.append(
                f"select {facet} as facet, v.[{array.value_column}] as value, count(distinct t.[{array.row_key}]) as count"
                f" from hits cross join [{array.through}] t on t.[{array.row_key}] = hits.[{array.key}]"
                f" join [{array.values}] v on v.id = t.[{array.value_key}] group by v.[{array.value_column}]"
            )
        else:
            name = escape_sqlite(column)
            parts.append(f"select {facet} as facet, {name} as value, count(*) as count from hits where {name} is not null group by {name}")
    union = "\n union all ".join(parts)
    return f"""
        with hits as materialized (select {selected} from ({table_sql})),
        counted as ({union})
        select facet, value, count from (
            select *, row_number() over (partition by facet order by count desc, value) as place from counted
        ) where place <= {int(limit)} order by facet, place
    """


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
        try:
            rows = await self.ds.execute(
                self.database,
                counts_sql(self.table, self.sql, columns, size + 1),
                self.params,
                truncate=False,
                custom_time_limit=self.ds.setting("facet_time_limit_ms"),
            )
        except QueryInterrupted:
            return [], columns
        counted = [[] for _ in columns]
        for facet, value, count in rows.rows:
            counted[facet].append((value, count))
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
