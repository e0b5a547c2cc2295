"""Writing parsed posts into the database, one file at a time."""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable

from postsdb import relations, search
from postsdb.parse import Post, article_id
from postsdb.scan import SourceFile

SEARCH_BATCH = 256  # rows for the search index held before they are written, in rowid order


def delete_articles(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    rows = [(i,) for i in ids]
    if not rows:
        return
    search.delete(conn, [i for (i,) in rows])
    for table in ("article_tags", "images", "links", "article_bodies", "article_features"):
        conn.executemany(f"delete from {table} where article_id = ?", rows)
    conn.executemany("update article_files set status = 'superseded' where article_id = ?", rows)
    conn.executemany("delete from articles where id = ?", rows)



class Loader:
    """Adds files one at a time. Of several files with one URL, the article keeps the
    newest by `published`, then by path (the later in sort order): a deterministic rule,
    whatever order the files arrive in."""

    def __init__(self, conn: sqlite3.Connection, with_search: bool):
        self.conn = conn
        self.with_search = with_search
        # Rows for the search index, written a batch at a time in rowid order: FTS5 writes
        # its pending terms out as a new segment whenever a rowid is lower than the last
        # one, and article ids are hashes, so one at a time made a segment per article.
        self.search_rows: list[tuple[int, tuple[str, str]]] = []
        self.placeholder = 0  # the last revision number handed out, counting down from -1
        self.kept = {
            article: (published, path)
            for path, article, published in self.conn.execute(
                "select path, article_id, published from article_files where status = 'kept'"
            )
        }

    def add(self, source_file: SourceFile, hashed: tuple, post: Post | str) -> None:
        _, digest, size = hashed
        if isinstance(post, str):
            return self.problem(source_file.rel, digest, size, post)
        self.article(post, size)

    def article(self, post: Post, size: int) -> None:
        current = self.kept.get(post.id)
        keep = current is None or (post.published, post.path) > current
        if current is not None:  # a second file of the URL: both are revisions
            self.keep_current_revision(post.id)
            self.revision(post)
        if keep:
            if current is not None:
                self.flush_search()  # the index must hold what is deleted from it
                delete_articles(self.conn, [post.id])
            self.write_article(post)
            self.kept[post.id] = (post.published, post.path)
        self.conn.execute(
            "insert into article_files (path, sha256, size, article_id, url, published, status) values (?, ?, ?, ?, ?, ?, ?)",
            (post.path, post.sha256, size, post.id, post.url, post.published, "kept" if keep else "superseded"),
        )

    def revision(self, post: Post) -> None:
        """A file of a URL that has several is a revision, numbered for now by a negative
        placeholder: `finish` numbers them 1..N, oldest first, once all of them are in. (An
        article with one file has no versions to compare, and no rows.)"""
        self.placeholder -= 1
        self.conn.execute(
            """insert into article_revisions (article_id, revision, path, published, title, body_html, body_text, sha256)
            values (?, ?, ?, ?, ?, ?, ?, ?)""",
            (post.id, self.placeholder, post.path, post.published, post.title, post.body.html, post.body.text, post.sha256),
        )

    def keep_current_revision(self, article: int) -> None:
        """A second file for an article loaded alone, by this build or an earlier one: the
        text it holds (in `articles` and `article_bodies`) becomes a revision too, before a
        newer file replaces it there."""
        self.placeholder -= 1
        self.conn.execute(
            """insert into article_revisions (article_id, revision, path, published, title, body_html, body_text, sha256)
            select articles.id, ?, articles.path, articles.published, articles.title, article_bodies.body_html,
              article_bodies.body_text, articles.sha256
            from articles join article_bodies on article_bodies.article_id = articles.id
            where articles.id = ? and not exists (
              select 1 from article_revisions where article_id = articles.id and path = articles.path)""",
            (self.placeholder, article),
        )

    def problem(self, rel: str, digest: str | None, size: int, reason: str) -> None:
        self.conn.execute(
            "insert or replace into problems (path, sha256, size, reason) values (?, ?, ?, ?)", (rel, digest, size, reason)
        )

    def write_article(self, post: Post) -> None:
        body = post.body
        self.conn.execute(
            """insert into articles (id, title, url, published, published_date, year, month, author,
            source, publication, tags, lead, word_count, image_count, link_count, path, sha256, feed_published)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                post.id,
                post.title,
                post.url,
                post.published,
                post.published[:10],
                int(post.published[:4]),
                post.published[:7],
                post.author,
                post.source,
                post.publication,
                json.dumps(post.tags, ensure_ascii=False),
                post.lead,
                body.word_count,
                len(body.images),
                len(body.links),
                post.path,
                post.sha256,
                post.feed_published,
            ),
        )
        self.conn.execute(
            "insert into article_bodies (article_id, body_html, body_text) values (?, ?, ?)",
            (post.id, body.html, body.text),
        )
        self.conn.executemany(
            "insert into images (article_id, position, src, alt, title, caption, width, height) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [(post.id, i.position, i.src, i.alt, i.title, i.caption, i.width, i.height) for i in body.images],
        )
        self.conn.executemany(
            "insert into links (article_id, position, href, text, domain, internal) values (?, ?, ?, ?, ?, ?)",
            [(post.id, k.position, k.href, k.text, k.domain, int(k.internal)) for k in body.links],
        )
        tags = [(topic_id(kind, name), name, kind) for kind, name in post.topics]
        self.conn.executemany("insert or ignore into tags (id, name, kind) values (?, ?, ?)", tags)
        self.conn.executemany(
            "insert or ignore into article_tags (article_id, tag_id) values (?, ?)", [(post.id, t[0]) for t in tags]
        )
        relations.store(self.conn, post.id, post.relation_features or relations.features(post.title, body.text))
        if self.with_search:
            self.search_rows.append((post.id, post.search_fields or search.index_fields(post.title, body.text)))
            if len(self.search_rows) >= SEARCH_BATCH:
                self.flush_search()

    def flush_search(self) -> None:
        if self.search_rows:
            search.insert_many(self.conn, sorted(self.search_rows))
            self.search_rows.clear()

    def finish(self) -> None:
        self.flush_search()
        self.number_revisions()
        self.conn.execute("delete from tags where id not in (select tag_id from article_tags)")

    def number_revisions(self) -> None:
        """Number the revisions of every article that got one in this build 1..N, in the
        order of the newest-revision rule (by published, then path; the last is kept), and
        drop an article's revision when it is its only one. An older file added to an
        article numbered by an earlier build goes before its revisions: all of them are
        first set apart (negative, beyond any placeholder), so no new number meets an old."""
        touched = "select article_id from article_revisions where revision < 0"
        self.conn.execute(
            f"update article_revisions set revision = -(1 << 40) - revision where revision > 0 and article_id in ({touched})"
        )
        self.conn.execute(
            """update article_revisions set revision = (
                select count(*) from article_revisions as other where other.article_id = article_revisions.article_id
                and (other.published, other.path) <= (article_revisions.published, article_revisions.path)
            ) where revision < 0"""
        )
        self.conn.execute(
            """delete from article_revisions where article_id in (
                select article_id from article_revisions group by article_id having count(*) = 1)"""
        )


def topic_id(kind: str, name: str) -> int:
    """Stable across builds; the tag "China" and the category "China" are two rows."""
    return article_id(f"{kind}:{name}")
