"""The articles page's topics facet, counted from the join table the build keeps.

`articles.tags` is a JSON array, and Datasette's array facet counts it by expanding every
matching row's JSON and de-duplicating whole rows (`select distinct j.value, inner.*`):
about 25 ms of a 43 ms search page's SQL on the sample ×30, and it grows with the rows a
page matches. The build also writes the same topics as rows (`article_tags` → `tags`), so
this facet counts those through their indexes instead: the same values and counts, and the
same `tags__arraycontains` links to filter by one.

In metadata.yml: `facets: [{topics: tags}]`; in a URL: `?_facet_topics=tags`.
"""

from __future__ import annotations

from typing import NamedTuple

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.utils import path_with_added_args, path_with_removed_args


class JoinedArray(NamedTuple):  # (a dataclass cannot live in a plugins-dir module: it is not in sys.modules)
    """A JSON array column whose values the build also wrote as rows of a join table."""

    through: str  # article_tags
    row_key: str  # article_tags.article_id → the faceted table's primary key
    value_key: str  # article_tags.tag_id → values.id
    values: str  # tags
    value_column: str  # tags.name


# (table, JSON array column) → where its values live as rows (postsdb/schema.py).
JOINED_ARRAYS = {("articles", "tags"): JoinedArray("article_tags", "article_id", "tag_id", "tags", "name")}


def counts_sql(joined: JoinedArray, table_sql: str, limit: int) -> str:
    """Each value's number of rows among those `table_sql` selects, most first. A value can
    be both a category and a tag of one article, hence count(distinct …)."""
    return f"""
        select v.[{joined.value_column}] as value, count(distinct t.[{joined.row_key}]) as count
        from [{joined.through}] t join [{joined.values}] v on v.id = t.[{joined.value_key}]
        where t.[{joined.row_key}] in (select id from ({table_sql}))
        group by v.[{joined.value_column}]
        order by count desc, value
        limit {int(limit)}
    """


class TopicFacet(Facet):
    type = "topics"

    async def facet_results(self):
        results, timed_out = [], []
        size = self.get_facet_size()
        pairs = self.get_querystring_pairs()
        for source_and_config in self.get_configs():
            config, source = source_and_config["config"], source_and_config["source"]
            column = config.get("column") or config.get("simple")
            joined = JOINED_ARRAYS.get((self.table, column))
            if joined is None:  # only the arrays the build also keeps as rows
                continue
            try:
                rows = await self.ds.execute(
                    self.database,
                    counts_sql(joined, self.sql, size + 1),
                    self.params,
                    truncate=False,
                    custom_time_limit=self.ds.setting("facet_time_limit_ms"),
                )
            except QueryInterrupted:
                timed_out.append(column)
                continue
            results.append(
                {
                    "name": column,
                    "type": "array",  # what it counts, as Datasette's array facet reports it
                    "results": [self.value(column, row, pairs) for row in rows.rows[:size]],
                    "hideable": source != "metadata",
                    "toggle_url": self.ds.urls.path(path_with_removed_args(self.request, {f"_facet_{self.type}": column})),
                    "truncated": len(rows) > size,
                }
            )
        return results, timed_out

    def value(self, column: str, row, pairs) -> dict:
        value = str(row["value"])
        argument = {f"{column}__arraycontains": value}
        selected = (f"{column}__arraycontains", value) in pairs
        toggle = path_with_removed_args(self.request, argument) if selected else path_with_added_args(self.request, argument)
        return {
            "value": value,
            "label": value,
            "count": row["count"],
            "toggle_url": self.ds.absolute_url(self.request, toggle),
            "selected": selected,
        }


@hookimpl
def register_facet_classes():
    return [TopicFacet]
