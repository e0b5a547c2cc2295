"""What the reader's pages show, read from posts.db: plain SQL on a sqlite3 connection, a few
queries a page, so the plugins (plugins/article_page.py, plugins/front_page.py) and the
benchmark run the same look-ups.

The tables of copies, revisions and build-time related articles are read when the database
has them; a database built before them gets related articles at request time
(postsdb/related.py) and no copies or revisions.
"""

from __future__ import annotations

import json

from postsdb.related import related_articles as related_at_request_time
from postsdb.schema import tag_names
from postsdb.script import language
from postsdb.snippet import shortened

LINE_CHARS = 110  # a list line: the front page's and the articles page's
LANGUAGE_CHARS = 120  # of the text after the title: enough to tell the script
DESCRIPTION_CHARS = 160  # what a share card shows
NEWEST = 20
TOP_TOPICS = 24
OPTIONAL_TABLES = ("article_copies", "article_revisions", "related_articles")

ARTICLE = """
select articles.id, articles.title, articles.url, articles.published, articles.published_date,
  articles.author, articles.source, articles.publication, articles.tags, articles.word_count,
  articles.image_count, articles.link_count, article_bodies.body_html, articles.lead
from articles left join article_bodies on article_bodies.article_id = articles.id
where articles.id = :id
"""
TABLES = "select name from sqlite_master where type = 'table' and name in (select value from json_each(:names))"
COPIES = """
select articles.id, articles.title, articles.source, articles.published_date, articles.url
from article_copies join articles on articles.id = article_copies.copy_id
where article_copies.article_id = :id
order by articles.published, articles.id
"""
REVISIONS = "select count(*) from article_revisions where article_id = :id"
RELATED = """
select articles.id, articles.title, articles.published_date, articles.source, articles.publication, articles.author
from related_articles join articles on articles.id = related_articles.related_id
where related_articles.article_id = :id
order by related_articles.rank
"""
LEADS = "select id, lead from articles where id in (select value from json_each(:ids))"
NEWEST_ARTICLES = """
select articles.id, articles.title, articles.published_date, articles.source, articles.publication,
  articles.author, articles.tags, articles.lead
from articles
order by articles.published desc
limit :limit
"""
SOURCES = "select source, count(*) as articles from articles where source != '' group by source order by articles desc, source"
YEARS = "select year, count(*) as articles from articles where year is not null group by year order by year desc"
TOPICS = """
select tags.name, count(*) as articles
from article_tags join tags on tags.id = article_tags.tag_id
group by tags.id
order by articles desc, tags.name
limit :limit
"""
COUNT = "select count(*) from articles"


SHARED_CACHE_SECONDS = 86400


def cache_control(max_age: int) -> str:
    """A reader's page: browsers keep it for the site's cache TTL, a shared cache (a CDN) a
    day; the database is immutable while it is served."""
    return f"public, max-age={max_age}, s-maxage={SHARED_CACHE_SECONDS}"


def reader_headers(datasette) -> dict[str, str]:
    """The headers of a reader's page that Datasette does not render: `cache_control` at the
    site's `default_cache_ttl`."""
    return {"Cache-Control": cache_control(datasette.setting("default_cache_ttl"))}


def url_article_id(digits: str) -> int | None:
    """The article id a page's URL names, or None when no article can have it: beyond
    SQLite's 64-bit integers (and before int() is asked to read thousands of digits)."""
    if len(digits.lstrip("-")) > 19:
        return None
    number = int(digits)
    return number if -(2**63) <= number < 2**63 else None


def rows(conn, sql: str, params: dict | None = None) -> list[dict]:
    cursor = conn.execute(sql, params or {})
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row)) for row in cursor]


def existing_tables(conn, names=OPTIONAL_TABLES) -> set[str]:
    return {name for (name,) in conn.execute(TABLES, {"names": json.dumps(list(names))})}


def lead_line(lead: str | None, width: int) -> str:
    """The lead (`articles.lead`: the start of the text after the title, without photo
    credits and captions) on one line of about `width` characters, as the articles page's
    list shows it (templates escape it)."""
    return shortened(" ".join((lead or "").split()), width)


def with_language(item: dict, lead: str | None) -> dict:
    item["lang"] = language(f"{item.get('title') or ''}\n{(lead or '')[:LANGUAGE_CHARS]}")
    return item


def article(conn, article_id: int) -> dict | None:
    """Everything the article page shows, or None when there is no such article."""
    found = rows(conn, ARTICLE, {"id": article_id})
    if not found:
        return None
    row = found[0]
    lead = row.pop("lead")
    row["tags"] = tag_names(row["tags"])
    row["body_html"] = row["body_html"] or ""
    row["description"] = lead_line(lead, DESCRIPTION_CHARS)
    with_language(row, lead)
    tables = existing_tables(conn)
    row["copies"] = rows(conn, COPIES, {"id": article_id}) if "article_copies" in tables else []
    row["revisions"] = conn.execute(REVISIONS, {"id": article_id}).fetchone()[0] if "article_revisions" in tables else 0
    if "related_articles" in tables:
        related = rows(conn, RELATED, {"id": article_id})
    else:
        related = related_at_request_time(conn, article_id, row["title"])
    row["related"] = with_languages(conn, related)
    return row


def with_languages(conn, items: list[dict]) -> list[dict]:
    """Each item with the language of its title and first lines (one query for all)."""
    if not items:
        return items
    leads = dict(conn.execute(LEADS, {"ids": json.dumps([item["id"] for item in items])}))
    return [with_language(item, leads.get(item["id"])) for item in items]


def newest(conn, limit: int = NEWEST) -> list[dict]:
    """The newest articles as list items: title, date, source, author, topics, a line, language."""
    items = []
    for row in rows(conn, NEWEST_ARTICLES, {"limit": limit}):
        lead = row.pop("lead")
        row["topics"] = tag_names(row.pop("tags"))
        row["line"] = lead_line(lead, LINE_CHARS)
        items.append(with_language(row, lead))
    return items


def ways_in(conn, topics: int = TOP_TOPICS) -> dict:
    """What the front page offers besides the newest: sources, largest topics, years, the count.
    It depends only on the data, so a served (immutable) database computes it once."""
    return {
        "sources": rows(conn, SOURCES),
        "topics": rows(conn, TOPICS, {"limit": topics}),
        "years": rows(conn, YEARS),
        "count": conn.execute(COUNT).fetchone()[0],
    }
