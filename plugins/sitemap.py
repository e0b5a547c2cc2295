"""Sitemaps, so a crawler finds every article page: robots.txt closes the paginated lists.

- `/sitemap.xml`: a sitemap index naming one sitemap per 50,000 articles (the protocol's
  limit for one file);
- `/sitemap-articles-<n>.xml`: the article pages `/posts/articles/<id>`, in id order, each
  with its publication date as `lastmod`;
- robots.txt names `/sitemap.xml` (a line added through datasette-block-robots' hook).

Sitemaps need absolute URLs, so they are made from the request's own scheme and host.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from datasette import Response, hookimpl

from postsdb.reader import reader_headers

DATABASE, TABLE = "posts", "articles"
URLS_PER_FILE = 50_000
XMLNS = "http://www.sitemaps.org/schemas/sitemap/0.9"
COUNT = "select count(*) from articles"
# Keyset pages: file n holds the ids after file n-1's last, so no file needs an OFFSET scan.
BOUNDS = "select id from (select id, row_number() over (order by id) as n from articles) where n % :size = 1 order by id"
PAGE = "select id, published_date from articles where id >= :start order by id limit :size"


@hookimpl
def register_routes():
    return [(r"^/sitemap\.xml$", sitemap_index), (r"^/sitemap-articles-(?P<n>[0-9]{1,6})\.xml$", articles_sitemap)]


@hookimpl
def block_robots_extra_lines(datasette, request):
    return [f"Sitemap: {datasette.absolute_url(request, '/sitemap.xml')}"]


def xml_response(datasette, text: str, status: int = 200) -> Response:
    headers = reader_headers(datasette) if status == 200 else {}
    return Response(text, status=status, content_type="application/xml; charset=utf-8", headers=headers)


async def sitemap_index(datasette, request):
    db = datasette.get_database(DATABASE)
    count = (await db.execute(COUNT)).first()[0]
    files = max(1, -(-count // URLS_PER_FILE))
    entries = [f"/sitemap-articles-{n}.xml" for n in range(1, files + 1)]
    lines = [f"<sitemap><loc>{escape(datasette.absolute_url(request, path))}</loc></sitemap>" for path in entries]
    return xml_response(datasette, sitemap_xml("sitemapindex", lines))


async def articles_sitemap(datasette, request):
    n = int(request.url_vars["n"])
    db = datasette.get_database(DATABASE)

    def read(conn):
        starts = [row[0] for row in conn.execute(BOUNDS, {"size": URLS_PER_FILE})]
        if not 1 <= n <= len(starts):
            return None
        return conn.execute(PAGE, {"start": starts[n - 1], "size": URLS_PER_FILE}).fetchall()

    rows = await db.execute_fn(read)
    if rows is None:
        return xml_response(datasette, sitemap_xml("urlset", []), status=404)
    base = datasette.absolute_url(request, datasette.urls.table(DATABASE, TABLE))
    lines = [url_entry(f"{base}/{article_id}", published) for article_id, published in rows]
    return xml_response(datasette, sitemap_xml("urlset", lines))


def url_entry(loc: str, lastmod: str | None) -> str:
    modified = f"<lastmod>{escape(lastmod)}</lastmod>" if lastmod else ""
    return f"<url><loc>{escape(loc)}</loc>{modified}</url>"


def sitemap_xml(root: str, lines: list[str]) -> str:
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', f'<{root} xmlns="{XMLNS}">', *lines, f"</{root}>", ""])
