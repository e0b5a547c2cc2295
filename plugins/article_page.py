"""The article page: `/posts/articles/<id>` shows the article as a reader reads it.

Bodies live in `article_bodies`, so the row page of `articles` fetches its body here, with
what the build found about its relations to other texts (postsdb/relations.py): its related
articles (`related_articles`, one indexed read), its copies at other URLs (`article_copies`)
and how many versions it has (`article_revisions`). A database built before those tables
existed gets related articles from postsdb/related.py, at request time.
`templates/row-posts-articles.html` renders it. The stored HTML was sanitized at build time;
it is put through the same allow-list again before it is marked safe, so a database built by
anything else cannot bring scripts onto the page.
"""

from __future__ import annotations

from urllib.parse import unquote

from datasette import hookimpl
from datasette.utils import urlsafe_components
from markupsafe import Markup

from postsdb.body import sanitize
from postsdb.related import related_articles
from postsdb.relations import COPIES_SQL, RELATED_SQL
from postsdb.schema import tag_names

ARTICLE_SQL = """
select articles.id, articles.title, articles.url, articles.published, articles.published_date,
  articles.author, articles.source, articles.publication, articles.tags, articles.word_count,
  articles.image_count, articles.link_count, article_bodies.body_html
from articles left join article_bodies on article_bodies.article_id = articles.id
where articles.id = :id
"""
REVISIONS_SQL = "select count(*) from article_revisions where article_id = :id"


@hookimpl
def extra_template_vars(view_name, database, table, request, datasette):
    if view_name != "row" or table != "articles" or request is None:
        return {}

    async def article_vars():
        pks = urlsafe_components(request.url_vars.get("pks", ""))
        if len(pks) != 1:
            return {}
        db = datasette.get_database(database)
        if not await db.table_exists("article_bodies"):  # some other database's `articles`
            return {}
        rows = await db.execute(ARTICLE_SQL, {"id": pks[0]})
        row = rows.first()
        if not row:
            return {}
        return {"article": article(dict(row)), **await relations(db, row["id"], row["title"])}

    return article_vars


def article(row: dict) -> dict:
    body_html = row.pop("body_html") or ""
    return {
        **row,
        "tags": tag_names(row["tags"]),
        "body": Markup(sanitize(body_html)),
        # Readers read 數字, not %E6%95%B8%E5%AD%97; the link itself keeps the exact URL.
        "url_display": unquote(row["url"] or "", errors="replace"),
    }


async def relations(db, article_id: int, title: str) -> dict:
    """Related articles, copies and the number of versions, as the build stored them."""
    if not await db.table_exists("related_articles"):
        related = await db.execute_fn(lambda conn: related_articles(conn, article_id, title))
        return {"related": related, "copies": [], "revision_count": 1}
    related = [dict(r) for r in await db.execute(RELATED_SQL, {"id": article_id})]
    copies = [dict(r) for r in await db.execute(COPIES_SQL, {"id": article_id})]
    count = (await db.execute(REVISIONS_SQL, {"id": article_id})).single_value()
    return {"related": related, "copies": copies, "revision_count": count}
