"""The front page, `/`: the search box first, then the newest articles, then ways in (sources,
the largest topics, years, the timeline, the feeds, the download), then a short block for
data users. Datasette's own index of the database stays at `/posts`.

A light page of our own (register_routes, which Datasette 0.65 tries before its own index
route): one thread hop reads the newest articles (postsdb/reader.py). The ways in depend only
on the data, so for an immutable database they are read once and kept.
"""

from __future__ import annotations

import weakref

from datasette import Response, hookimpl

from postsdb import reader
from postsdb.reader import reader_headers

DATABASE = "posts"
# Database -> its ways in, for immutable databases only (they cannot change while served).
KEPT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@hookimpl
def register_routes():
    return [(r"^/$", front_page)]


async def front_page(datasette, request):
    db = datasette.get_database(DATABASE)
    ways_in = KEPT.get(db) if not db.is_mutable else None

    def read(conn):
        return reader.newest(conn), ways_in or reader.ways_in(conn)

    newest, ways_in = await db.execute_fn(read)
    if not db.is_mutable:
        KEPT[db] = ways_in
    context = {"database": DATABASE, "newest": newest, **ways_in, "metadata": datasette.metadata()}
    html = await datasette.render_template("front.html", context, request=request, view_name="front")
    return Response.html(html, headers=reader_headers(datasette))
