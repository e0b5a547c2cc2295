"""Related articles: those that share the article's topics first (rarer topics count more),
then those that share the rarest words of its title and first lines (an FTS5 OR-query of
their words and pairs of characters against the same lead of every article, the small
index `related_fts`, ordered by bm25), never the article itself. Plain SQL
on a sqlite3 connection, so the article page and the benchmark run the same lookup.
"""

from __future__ import annotations

import json

from postsdb.search import CJK_RUN, FTS_TABLE, LEAD_CHARS, RELATED_TABLE, WORD, bigrams, has_index, lead, normalize

RELATED = 5
MAX_TOKENS = 16  # enough to find an article's neighbours, few enough to be quick
# The most frequent characters of written Chinese: a pair with one of them says little about
# a text, and its phrase costs the most (the index holds single characters, and these are in
# nearly every article), so such pairs are left out of the query.
COMMON = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之"
    "年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样"
    "理心她本前开但因只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两"
    "高间由问很最重并物手应战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化"
)

BY_TOPIC = """
select theirs.article_id
from article_tags as mine
join article_tags as theirs on theirs.tag_id = mine.tag_id and theirs.article_id != mine.article_id
join (select tag_id, count(*) as articles from article_tags
      where tag_id in (select tag_id from article_tags where article_id = :id) group by tag_id) as sizes
  on sizes.tag_id = mine.tag_id
where mine.article_id = :id
group by theirs.article_id
order by sum(1.0 / sizes.articles) desc, count(*) desc, theirs.article_id
limit :limit
"""
# Leads first; the whole texts only for an article whose lead shares no word with any other
# (an English piece among Chinese ones, say), rarely enough that its cost does not count.
BY_WORDS = {
    table: f"select rowid from {table} where {table} match :query and rowid != :id order by rank limit :limit"
    for table in (RELATED_TABLE, FTS_TABLE)
}
LEAD = "select substr(body_text, 1, :chars) from article_bodies where article_id = :id"
ARTICLES = """
select id, title, published_date, source, publication, author from articles
where id in (select value from json_each(:ids))
"""


def words_query(text: str) -> str | None:
    """An FTS5 query matching any of the text's words (OR), or None: its Latin words, and
    each pair of neighbouring CJK characters as a two-character phrase."""
    normal, position, words = normalize(text), 0, []
    for match in CJK_RUN.finditer(normal):
        words.extend(WORD.findall(normal[position : match.start()]))
        words.extend(" ".join(pair) for pair in bigrams(match.group(0)) if not COMMON.intersection(pair))
        position = match.end()
    words.extend(WORD.findall(normal[position:]))
    tokens = []
    for word in words:
        if len(word) > 1 and word not in tokens:  # one character alone says little
            tokens.append(word)
    tokens = tokens[:MAX_TOKENS]
    return " OR ".join(f'"{t}"' for t in tokens) if tokens else None


def related_ids(conn, article_id: int, title: str, limit: int = RELATED) -> list[int]:
    ids = [row[0] for row in conn.execute(BY_TOPIC, {"id": article_id, "limit": limit})]
    if len(ids) >= limit:
        return ids
    searches = [sql for table, sql in BY_WORDS.items() if has_index(conn, table)]  # an older build may lack one
    if not searches:  # built without search
        return ids
    start = conn.execute(LEAD, {"chars": LEAD_CHARS, "id": article_id}).fetchone()
    query = words_query(lead(title, start[0] if start else ""))
    for sql in searches if query else ():
        for (other,) in conn.execute(sql, {"query": query, "id": article_id, "limit": limit * 2}):
            if other not in ids:
                ids.append(other)
            if len(ids) == limit:
                return ids
    return ids


def related_articles(conn, article_id: int, title: str, limit: int = RELATED) -> list[dict]:
    """The related articles, in order, as dicts of what a list of articles shows."""
    ids = related_ids(conn, article_id, title, limit)
    cursor = conn.execute(ARTICLES, {"ids": json.dumps(ids)})
    columns = [c[0] for c in cursor.description]
    rows = {row[0]: dict(zip(columns, row)) for row in cursor}
    return [rows[i] for i in ids if i in rows]
