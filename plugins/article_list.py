"""The articles page as a list: `article_cards(rows, search)` for templates/_table-posts-articles.html.

For each article on the page: its title (matches marked when searching), date, source,
publication, author and topics, the language of its text (zh-Hans, zh-Hant or en, by
postsdb.script.language), and one line of its text, or, when searching, the text
around the first match. The lines come from `article_bodies` in one query for the page.
"""

from __future__ import annotations

import json

from datasette import hookimpl
from markupsafe import Markup

from postsdb.reader import LANGUAGE_CHARS
from postsdb.schema import tag_names
from postsdb.script import language
from postsdb.snippet import highlight, snippet

LINE_CHARS = 110
BODIES_SQL = "select article_id, {text} from article_bodies where article_id in (select value from json_each(:ids))"


@hookimpl
def extra_template_vars(view_name, database, table, datasette):
    if view_name != "table" or table != "articles":
        return {}

    async def article_cards(rows, search: str | None = None) -> list[dict]:
        rows = list(rows)
        ids = [int(row["id"]) for row in rows]  # a table page gives its key as text
        # Without a search only the start of each body is needed: don't fetch whole bodies.
        text = "body_text" if search else f"substr(body_text, 1, {LINE_CHARS * 3})"
        db = datasette.get_database(database)
        bodies = dict((await db.execute(BODIES_SQL.format(text=text), {"ids": json.dumps(ids)})).rows)
        return [card(row, bodies.get(key), search) for row, key in zip(rows, ids)]

    return {"article_cards": article_cards}


def card(row, body_text: str | None, search: str | None) -> dict:
    title = row["title"] or ""
    if not search and body_text and body_text.startswith(title):
        body_text = body_text[len(title) :]  # many bodies repeat the title: show what follows
    return {
        "id": int(row["id"]),
        "title": title,
        "title_html": Markup(highlight(title, search)) if search else None,
        "line_html": Markup(snippet(body_text, search, LINE_CHARS) if search else snippet(body_text, "", LINE_CHARS)),
        "published_date": row["published_date"],
        "source": row["source"],
        "publication": row["publication"],
        "author": row["author"],
        "topics": tag_names(row["tags"]),
        "lang": language(f"{title}\n{(body_text or '')[:LANGUAGE_CHARS]}"),
    }
