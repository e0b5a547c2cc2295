"""Chinese full-text search: one normalizer for the index and for queries.

Stock FTS5 fails Chinese readers: `unicode61` makes a whole run of Han characters one
token, and `trigram` cannot match two-character words. So both the indexed text and the
query go through `normalize` (NFKC, Traditional → Simplified, lowercase), and every CJK
character becomes a token of its own:

    "腾讯微信" → "腾 讯 微 信"

A query term is then a phrase of the same characters, which means "contains": a
one-character term is one token, with no prefix index to keep. (Overlapping bigrams with
a one-character prefix index held every character about three times: an index 3x the
size and 4x the time to build, for the same matches.) Latin words are indexed as words,
and a query's last word is a prefix: "vpn" finds "VPNs".
"""

from __future__ import annotations

import functools
import re
import unicodedata

import opencc

FTS_TABLE = "articles_fts"
# Contentless: the text lives in article_bodies; the index holds only tokens.
FTS_DDL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
    title, body, content='', tokenize='unicode61 remove_diacritics 0'
)
"""
# A second, small index of each article's title and first lines, for related articles
# (postsdb/related.py): ranking an OR of many words against whole bodies read every body's
# positions of those words, 20-40 ms an article page on the x30 corpus; against leads, 3-10.
RELATED_TABLE = "related_fts"
RELATED_DDL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {RELATED_TABLE} USING fts5(
    lead, content='', tokenize='unicode61 remove_diacritics 0'
)
"""
INDEX_TABLES = (FTS_TABLE, RELATED_TABLE)  # with their shadow tables: `{name}_data`, ...
LEAD_CHARS = 200  # of the body, after the title: a short title alone may share no word
CJK_RUN = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3131-\u318e\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+"
)
# What the unicode61 tokenizer would keep as one token outside CJK runs.
WORD = re.compile(r"[^\W_]+")
# Every term of a query is one more phrase or prefix look-up in the index, ANDed with the
# rest: `的 的 …` with 300 terms held the server for 1.5 s. Real searches are a few words
# (a pasted headline is about 30 characters), so these bounds take nothing from a reader
# and keep the costliest query short. The served site answers a longer one with a 400 that
# says so (plugins/cjk_search.py); `fts_query` itself searches for its first part.
MAX_QUERY_TERMS = 16
MAX_QUERY_CHARS = 200
QUERY_LIMIT_MESSAGE = (
    f"Search is limited to {MAX_QUERY_TERMS} words and {MAX_QUERY_CHARS} characters. "
    f"搜索最多 {MAX_QUERY_TERMS} 个词、{MAX_QUERY_CHARS} 个字符。"
)


@functools.lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s.json")


def normalize(text: str) -> str:
    """NFKC, then Traditional → Simplified, then lowercase: 騰訊 and 腾讯 become one."""
    return _converter().convert(unicodedata.normalize("NFKC", text)).lower()


def bigrams(run: str) -> list[str]:
    """The run's overlapping pairs of characters (the run itself if shorter)."""
    return [run[i : i + 2] for i in range(len(run) - 1)] or [run]


def spaced(match: re.Match) -> str:
    return " " + " ".join(match.group(0)) + " "


def index_text(text: str) -> str:
    """The text as the index sees it: each CJK character a word, the rest as it was."""
    return spaced_cjk(normalize(text))


def spaced_cjk(normal_text: str) -> str:
    """Normalized text with each CJK character a word of its own."""
    return CJK_RUN.sub(spaced, normal_text)


def query_tokens(term: str) -> list[str]:
    """One query term as index tokens, in order; a prefix token ends in `*`."""
    tokens = []
    position = 0
    normal = normalize(term)
    for match in CJK_RUN.finditer(normal):
        tokens.extend(WORD.findall(normal[position : match.start()]))
        tokens.extend(match.group(0))  # one token per character, exactly as indexed
        position = match.end()
    tokens.extend(WORD.findall(normal[position:]))
    if tokens and not CJK_RUN.match(tokens[-1]):
        tokens[-1] += "*"  # a word at the end may go on: "vpn" finds "VPNs", as a reader expects
    return tokens


def query_text(query) -> str:
    """The query as text, trimmed; `escape_fts(5)` in ad-hoc SQL passes a number."""
    return "" if query is None else str(query).strip()


def within_limits(query) -> bool:
    """Whether a reader's query is short enough to be searched as it is."""
    text = query_text(query)
    return len(text) <= MAX_QUERY_CHARS and len(text.split()) <= MAX_QUERY_TERMS


def fts_query(query: str) -> str:
    """An FTS5 query meaning "contains every term". Never raises, never invalid.

    Terms are split on white space and ANDed; each term is one phrase. Input with no
    searchable character gives a query that matches nothing. Past the limits, only the
    first MAX_QUERY_CHARS characters and MAX_QUERY_TERMS terms are searched.
    """
    phrases = []
    for term in query_text(query)[:MAX_QUERY_CHARS].split()[:MAX_QUERY_TERMS]:
        tokens = query_tokens(term)
        if not tokens:
            continue
        parts = [f'"{t[:-1]}"*' if t.endswith("*") else f'"{t}"' for t in tokens]
        phrases.append(parts[0] if len(parts) == 1 else " + ".join(parts))
    if not phrases:
        return '""'  # the empty phrase: matches nothing, and is valid FTS5
    return " AND ".join(f"({p})" for p in phrases)


# --- the index, kept in step with the articles table --------------------------


def ensure_index(conn) -> None:
    conn.execute(FTS_DDL)
    conn.execute(RELATED_DDL)


def lead(title: str, body_text: str) -> str:
    """What the related index holds of an article, and what its related lookup asks for."""
    return f"{title or ''}\n{(body_text or '')[:LEAD_CHARS]}"


def index_fields(title: str, body_text: str, normal: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """The article's title, body and lead, as the two indexes hold them. `normal`: the
    title and body already through `normalize`, when the caller has them. (The lead is
    normalized on its own: cut from the text before, it may not be a cut of the text after.)"""
    normal_title, normal_body = normal or (normalize(title), normalize(body_text))
    return spaced_cjk(normal_title), spaced_cjk(normal_body), index_text(lead(title, body_text))


def insert_many(conn, rows: list[tuple[int, tuple[str, str, str]]]) -> None:
    """Rows in ascending rowid order make FTS5 write one segment for all of them."""
    conn.executemany(f"insert into {FTS_TABLE} (rowid, title, body) values (?, ?, ?)", [(i, t, b) for i, (t, b, _) in rows])
    conn.executemany(f"insert into {RELATED_TABLE} (rowid, lead) values (?, ?)", [(i, text) for i, (_, _, text) in rows])


def delete(conn, article_ids: list[int]) -> None:
    """A contentless index forgets a row only when told its exact tokens again, so they
    are recomputed from the stored text."""
    if not article_ids or not has_index(conn):
        return
    for article_id in article_ids:
        row = conn.execute(
            """select articles.title, article_bodies.body_text from articles
            join article_bodies on article_bodies.article_id = articles.id where articles.id = ?""",
            (article_id,),
        ).fetchone()
        if row is None:
            continue
        title, body, lead_tokens = index_fields(row[0], row[1] or "")
        conn.execute(
            f"insert into {FTS_TABLE} ({FTS_TABLE}, rowid, title, body) values ('delete', ?, ?, ?)",
            (article_id, title, body),
        )
        conn.execute(
            f"insert into {RELATED_TABLE} ({RELATED_TABLE}, rowid, lead) values ('delete', ?, ?)",
            (article_id, lead_tokens),
        )


def index_pages_sql() -> str:
    """A `dbstat` expression: 1 for a page of the search indexes, else 0."""
    return "(" + " or ".join(f"name = '{t}' or name like '{t}\\_%' escape '\\'" for t in INDEX_TABLES) + ")"


def has_index(conn, table: str = FTS_TABLE) -> bool:
    return conn.execute("select 1 from sqlite_master where name = ?", (table,)).fetchone() is not None
