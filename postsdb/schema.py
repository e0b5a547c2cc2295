"""The database's shape, declared once. `ensure_schema(db)` makes any database match it."""

from __future__ import annotations

import json

# Bump when a table or an index changes: an older database is then rebuilt from scratch.
SCHEMA_VERSION = 7  # 2: articles.publication, tags.kind, topics read from the page; 3: the search index holds characters, not bigrams; 4: related_fts, the index of leads for related articles; 5: articles.lead, authors never a site's name; 6: article_copies, article_revisions, related_articles, article_features; 7: the index of article_bodies(article_id), facet_counts

TABLES = {
    "articles": {
        "columns": {
            "id": int,
            "title": str,
            "url": str,
            "published": str,
            "published_date": str,
            "year": int,
            "month": str,
            "author": str,
            "source": str,
            "publication": str,
            "tags": str,
            "lead": str,
            "word_count": int,
            "image_count": int,
            "link_count": int,
            "path": str,
            "sha256": str,
            "feed_published": str,
        },
        "pk": "id",
        "not_null": {"title", "url", "published", "path", "sha256"},
    },
    "article_bodies": {
        "columns": {"article_id": int, "body_html": str, "body_text": str},
        "pk": "article_id",
        "foreign_keys": [("article_id", "articles", "id")],
    },
    "images": {
        "columns": {
            "article_id": int,
            "position": int,
            "src": str,
            "alt": str,
            "title": str,
            "caption": str,
            "width": int,
            "height": int,
        },
        "pk": ("article_id", "position"),
        "foreign_keys": [("article_id", "articles", "id")],
        "not_null": {"src"},
    },
    "links": {
        "columns": {
            "article_id": int,
            "position": int,
            "href": str,
            "text": str,
            "domain": str,
            "internal": int,
        },
        "pk": ("article_id", "position"),
        "foreign_keys": [("article_id", "articles", "id")],
        "not_null": {"href"},
    },
    "tags": {
        "columns": {"id": int, "name": str, "kind": str},
        "pk": "id",
        "not_null": {"name", "kind"},
    },
    "article_tags": {
        "columns": {"article_id": int, "tag_id": int},
        "pk": ("article_id", "tag_id"),
        "foreign_keys": [("article_id", "articles", "id"), ("tag_id", "tags", "id")],
    },
    "article_files": {
        "columns": {
            "path": str,
            "sha256": str,
            "size": int,
            "article_id": int,
            "url": str,
            "published": str,
            "status": str,
        },
        "pk": "path",
        "foreign_keys": [("article_id", "articles", "id")],
        "not_null": {"sha256", "article_id", "status"},
    },
    "problems": {
        "columns": {"path": str, "sha256": str, "size": int, "reason": str},
        "pk": "path",
        "not_null": {"reason"},
    },
    # Relations between texts (postsdb/relations.py), derived from the loaded articles.
    "article_copies": {  # both directions: (A, B) and (B, A); never (A, A)
        "columns": {"article_id": int, "copy_id": int, "overlap": float},
        "pk": ("article_id", "copy_id"),
        "foreign_keys": [("article_id", "articles", "id"), ("copy_id", "articles", "id")],
        "not_null": {"overlap"},
    },
    "article_revisions": {  # one row per file of an article with several files; 1 is the oldest
        "columns": {
            "article_id": int,
            "revision": int,
            "path": str,
            "published": str,
            "title": str,
            "body_html": str,
            "body_text": str,
            "sha256": str,
        },
        "pk": ("article_id", "revision"),
        "foreign_keys": [("article_id", "articles", "id")],
        "not_null": {"path", "sha256"},
    },
    "related_articles": {  # rank 1..5, best first
        "columns": {"article_id": int, "rank": int, "related_id": int, "score": float},
        "pk": ("article_id", "rank"),
        "foreign_keys": [("article_id", "articles", "id"), ("related_id", "articles", "id")],
        "not_null": {"related_id", "score"},
    },
    "article_features": {  # what relations are computed from, kept so unchanged articles need no re-reading
        "columns": {"article_id": int, "signature": bytes, "terms": bytes},
        "pk": "article_id",
        "foreign_keys": [("article_id", "articles", "id")],
        "not_null": {"terms"},
    },
    # The facets' counts over the whole articles table (postsdb/facets.py), for its unfiltered
    # page. `value` is declared BLOB so that each value keeps its type: a year stays a number.
    "facet_counts": {
        "columns": {"facet": str, "value": bytes, "count": int},
        "pk": ("facet", "value"),
        "not_null": {"count"},
    },
    "builds": {
        "columns": {
            "id": int,
            "finished": str,
            "seconds": float,
            "files_scanned": int,
            "files_skipped": int,
            "added": int,
            "changed": int,
            "unchanged": int,
            "removed": int,
            "problems": int,
        },
        "pk": "id",
    },
}

INDEXES = {
    # (source, published): a source's newest articles (the canned query latest_by_source)
    # read in order from the index, with no sort of all the source's rows; it serves the
    # counts by source too (reader.SOURCES), as an index on source alone did.
    # (year, …) and (month, …) cover the articles page's facets: the counts by source,
    # publication, author, year and month of the rows of one year or one month are read
    # from the index alone, not from every matching row (plugins/facet_counts.py).
    "articles": [
        ["published"],
        ["published_date"],
        ["year", "month", "source", "publication", "author"],
        ["month", "year", "source", "publication", "author"],
        ["source", "published"],
        ["publication"],
        ["author"],
        ["url"],
    ],
    # article_bodies' own key again, alone: Datasette counts the rows of every filtered table
    # page (`?article_id__gte=…`), and a count over a range of the key read every body's
    # pages (38 ms for 25,000 rows on the sample ×300); this narrow index holds the keys
    # alone (0.05 ms on ×30, against 4.8).
    "article_bodies": [["article_id"]],
    "images": [["src"]],
    "links": [["domain"], ["href"]],
    "tags": [["kind", "name"], ["name"]],
    "article_tags": [["tag_id"]],
    "article_files": [["article_id"], ["status"]],
    "article_copies": [["copy_id"]],
    "related_articles": [["related_id"]],
}
UNIQUE_INDEXES = {("articles", "url"), ("tags", "kind", "name")}


def ensure_schema(db: "sqlite_utils.Database") -> None:
    """Create every table and index that is missing. Safe to run on any database, any time."""
    for name, spec in TABLES.items():
        db[name].create(
            spec["columns"],
            pk=spec["pk"],
            foreign_keys=spec.get("foreign_keys"),
            not_null=spec.get("not_null"),
            if_not_exists=True,
        )
    for table, indexes in INDEXES.items():
        for columns in indexes:
            unique = (table, *columns) in UNIQUE_INDEXES
            db[table].create_index(columns, unique=unique, if_not_exists=True)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def tag_names(raw: str | None) -> list[str]:
    """The names in an `articles.tags` value (a JSON array); [] for anything else."""
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return []
    return [str(name) for name in value] if isinstance(value, list) else []


def schema_version(conn) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]
