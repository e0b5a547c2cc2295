"""The articles page for readers: `article_cards(rows, search)` for
templates/_table-posts-articles.html; `facet_label`, `facet_values` and `filter_chips` for
templates/table-posts-articles.html.

For each article on the page: its title (matches marked when searching), date, source,
publication, author and topics, the language of its text (zh-Hans, zh-Hant or en, by
postsdb.script.language), and one line of its text: its lead (`articles.lead`, computed at
build time without photo credits and captions), or, when searching, the text around the
first match, fetched from `article_bodies` in one query for the page.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from markupsafe import Markup, escape

from postsdb.reader import LANGUAGE_CHARS, LINE_CHARS
from postsdb.schema import tag_names
from postsdb.script import language
from postsdb.snippet import highlight, shortened, snippet

# Each facet and filterable column, as the site names it to readers: Chinese, then English.
# Facets are shown in this order, not in Datasette's (by how many values each has).
LABELS = {
    "tags": "主题 Topics",
    "author": "作者 Author",
    "year": "年份 Year",
    "month": "月份 Month",
    "source": "来源 Source",
    "publication": "原载 Publication",
    "title": "标题 Title",
    "published": "时间 Published",
    "published_date": "日期 Date",
    "url": "原文 URL",
}
IN_TIME_ORDER = {"year", "month", "published_date"}  # facets listed newest first, not by count
# A filter's lookup in words (`None`: its value alone says it). Others show as they are.
LOOKUP_WORDS = {
    "exact": None,
    "arraycontains": None,
    "not": "不是 not",
    "arraynotcontains": "不含 without",
    "contains": "含 contains",
    "startswith": "开头 starts with",
    "endswith": "结尾 ends with",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "之一 one of",
    "notin": "不是其一 none of",
    "date": "日期 date",
    "like": "like",
    "glob": "glob",
}
NO_VALUE_WORDS = {"isnull": "空 empty", "notnull": "非空 not empty", "isblank": "空白 blank", "notblank": "非空白 not blank"}
BODIES_SQL = "select article_id, body_text from article_bodies where article_id in (select value from json_each(:ids))"


@hookimpl
def extra_template_vars(view_name, database, table, request, datasette):
    if view_name != "table" or table != "articles":
        return {}

    async def article_cards(rows, search: str | None = None) -> list[dict]:
        rows = list(rows)
        ids = [int(row["id"]) for row in rows]  # a table page gives its key as text
        bodies = {}
        if search:
            db = datasette.get_database(database)
            bodies = dict((await db.execute(BODIES_SQL, {"ids": json.dumps(ids)})).rows)
        return [card(row, bodies.get(key), search) for row, key in zip(rows, ids)]

    def filter_chips(selections, search: str | None = None) -> list[dict]:
        return chips(request.query_string if request else "", request.path if request else "", selections, search)

    return {
        "article_cards": article_cards,
        "facet_label": facet_label,
        "facet_values": facet_values,
        "facets_in_order": facets_in_order,
        "filter_chips": filter_chips,
    }


def card(row, body_text: str | None, search: str | None) -> dict:
    title = row["title"] or ""
    return {
        "id": int(row["id"]),
        "title": title,
        "title_html": Markup(highlight(title, search)) if search else None,
        "line_html": line_html(row, body_text, search),
        "published_date": row["published_date"],
        "source": row["source"],
        "publication": row["publication"],
        "author": row["author"],
        "topics": tag_names(row["tags"]),
        "lang": language(f"{title}\n{(body_text or lead_of(row))[:LANGUAGE_CHARS]}"),
    }


def line_html(row, body_text: str | None, search: str | None) -> Markup:
    """Why a search hit matched; else, and for a hit matched only in its title, the lead."""
    if search and body_text:
        return Markup(snippet(body_text, search, LINE_CHARS, unmatched=lead_of(row)))
    return Markup(escape(shortened(lead_of(row), LINE_CHARS)))


def lead_of(row) -> str:
    try:
        return row["lead"] or ""
    except KeyError:  # a page that leaves the column out (_nocol=lead)
        return ""


# --- facets and filters in words ---------------------------------------------------


def facet_label(name: str) -> str:
    return LABELS.get(name, name)


def facets_in_order(facet_results) -> list[dict]:
    """The facets that have values, in `LABELS`' order; others after them, as they came."""
    order = list(LABELS)
    shown = [info for info in facet_results if info["results"]]
    return sorted(shown, key=lambda info: order.index(info["name"]) if info["name"] in order else len(order))


def facet_values(facet_info: dict) -> list[dict]:
    """A facet's values: dates newest first, everything else as Datasette counts them."""
    results = facet_info["results"]
    if facet_info["name"] in IN_TIME_ORDER:
        return sorted(results, key=lambda value: str(value["value"]), reverse=True)
    return results


def chips(query_string: str, path: str, selections, search: str | None) -> list[dict]:
    """Each active filter as a reader reads it, with the URL that removes it (the page's
    other parameters kept, paging restarted)."""
    found = []
    if search:
        found.append({"label": "搜索 Search", "words": search, "remove_url": without(query_string, path, {"_search"})})
    for column, lookup, value in selections:
        keys = {f"{column}__{lookup}"} | ({column} if lookup == "exact" else set())
        found.append(
            {
                "label": facet_label(column),
                "words": filter_words(lookup, value),
                "remove_url": without(query_string, path, keys, value),
            }
        )
    return found


def filter_words(lookup: str, value: str) -> str:
    if lookup in NO_VALUE_WORDS:
        return NO_VALUE_WORDS[lookup]
    words = LOOKUP_WORDS.get(lookup, lookup)
    return f"{words} {value}" if words else str(value)


def without(query_string: str, path: str, keys: set[str], value: str | None = None) -> str:
    kept = [
        (key, item)
        for key, item in parse_qsl(query_string, keep_blank_values=True)
        if key != "_next" and not (key in keys and (value is None or item == str(value)))
    ]
    return path + ("?" + urlencode(kept) if kept else "")
