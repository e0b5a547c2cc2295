"""The revisions of an article: `/<db>/articles/<id>/revisions` and its JSON twin `.json`.

Every file of an article's URL is a revision (`article_revisions`, oldest first); the page
shows each consecutive pair as a diff of the title and of the text, insertions in <ins> and
deletions in <del> (postsdb/revisions.py). A light page of our own: two queries, one
template, no script.
"""

from __future__ import annotations

import asyncio

from datasette import hookimpl
from datasette.utils.asgi import NotFound, Response

from postsdb import revisions
from postsdb.reader import reader_headers, url_article_id

ARTICLE = "select id, title, url, source, published_date from articles where id = :id"
REVISIONS = """
select revision, path, published, title, body_text, sha256 from article_revisions
where article_id = :id order by revision
"""
# An article with one file has no rows in article_revisions: its one version is itself.
ONLY_VERSION = """
select 1 as revision, articles.path, articles.published, articles.title, article_bodies.body_text, articles.sha256
from articles join article_bodies on article_bodies.article_id = articles.id where articles.id = :id
"""
ROUTE = r"^/(?P<database>[^/.]+)/articles/(?P<id>-?[0-9]{1,19})/revisions(?P<json>\.json)?$"


@hookimpl
def register_routes():
    return [(ROUTE, revisions_view)]


async def revisions_view(datasette, request):
    database = request.url_vars["database"]
    try:
        db = datasette.get_database(database)
    except KeyError:
        raise NotFound(f"no database {database}")
    if not await db.table_exists("article_revisions"):
        raise NotFound("this database keeps no revisions")
    article_id = url_article_id(request.url_vars["id"])
    if article_id is None:
        raise NotFound(f"no article {request.url_vars['id']}")
    found = (await db.execute(ARTICLE, {"id": article_id})).first()
    if found is None:
        raise NotFound(f"no article {article_id}")
    versions = [dict(row) for row in await db.execute(REVISIONS, {"id": article_id})]
    if not versions:
        versions = [dict(row) for row in await db.execute(ONLY_VERSION, {"id": article_id})]
    changes = await asyncio.to_thread(compare, versions)  # CPU work, off the event loop
    article = dict(found)
    headers = reader_headers(datasette)  # immutable while served
    if request.url_vars.get("json"):
        return Response.json(as_json(article, versions, changes), headers=headers)
    article_url = datasette.urls.row(database, "articles", str(article_id))
    context = {
        "database": database,
        "article": article,
        "article_url": article_url,
        "json_url": datasette.urls.path(f"{article_url}/revisions.json"),
        "versions": versions,
        "changes": [
            {**change, "title_html": revisions.to_html(change["title"]), "body_html": revisions.to_html(revisions.folded(change["body"]))}
            for change in changes
        ],
    }
    return Response.html(await datasette.render_template("revisions.html", context, request=request), headers=headers)


def compare(versions: list[dict]) -> list[dict]:
    """One entry per consecutive pair: the diff of the title and of the whole text."""
    changes = []
    for older, newer in zip(versions, versions[1:]):
        body = revisions.diff(older["body_text"], newer["body_text"])
        changes.append(
            {
                "from": older["revision"],
                "to": newer["revision"],
                "title": revisions.diff(older["title"], newer["title"]),
                "body": body,
                "body_changed": revisions.changed(body),
            }
        )
    return changes


def as_json(article: dict, versions: list[dict], changes: list[dict]) -> dict:
    return {
        "article": article,
        "revisions": [{k: v for k, v in version.items() if k != "body_text"} for version in versions],
        "changes": [
            {
                "from": change["from"],
                "to": change["to"],
                "title": [list(piece) for piece in change["title"]],
                "body": [list(piece) for piece in change["body"]],
                "body_changed": change["body_changed"],
            }
            for change in changes
        ],
    }
