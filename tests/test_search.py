"""Chinese full-text search, measured against a ground truth on the real corpus.

The ground truth is "contains": the normalized query is a substring of the normalized
title + body text. Latin words are matched from the start of a word (FTS5 indexes words,
so "vpn" finds "VPNs" but not "OpenVPN"); the ground truth says the same.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from postsdb.search import FTS_TABLE, MAX_QUERY_CHARS, MAX_QUERY_TERMS, ensure_index, fts_query, index_fields, insert_many
from postsdb.search import normalize, within_limits
from postsdb.snippet import fold, one_to_one

QUERIES = {
    "1 char": ["的", "港", "审", "腾", "墙", "鬼", "狄"],
    "2 chars": ["微信", "香港", "审查", "腾讯", "翻墙", "中国", "政府", "病毒"],
    "3 chars": ["互联网", "为什么", "出版社", "意大利", "防火墙", "共产党"],
    "4+ chars": ["应用程序", "社交媒体", "意识形态", "基因编辑", "中华民国", "百科全书", "共同富裕"],
    "Traditional → Simplified": ["騰訊", "審查", "網絡", "資訊", "臉書", "翻牆", "習近平"],
    "Simplified → Traditional": ["变数", "区块链", "社区", "写作", "创作者"],
    "English": ["vpn", "google", "Facebook", "BBC", "twitter", "iYouPort", "the"],
    "mixed": ["BBC中文", "VPN服务", "Google文档", "ATM机", "5G网络", "IP地址"],
    "multi-term": ["香港 微信", "VPN 翻墙", "腾讯 收费", "騰訊 微信 云", "google 审查"],
}
LATIN = re.compile(r"[0-9a-z\u00c0-\u024f]")


def ground_truth(texts: dict[int, str], query: str) -> set[int]:
    patterns = []
    for term in query.split():
        needle = normalize(term)
        boundary = r"(?<![0-9a-z\u00c0-\u024f])" if LATIN.match(needle) else ""
        patterns.append(re.compile(boundary + re.escape(needle)))
    return {i for i, text in texts.items() if all(p.search(text) for p in patterns)}


def relaxed_truth(texts: dict[int, str], query: str) -> set[int]:
    """The ground truth when punctuation and spaces between words are ignored, as FTS5 does."""
    patterns = []
    for term in query.split():
        pieces = [re.escape(p) for p in re.findall(r"[^\W_]", normalize(term))]
        patterns.append(re.compile(r"[\W_]*".join(pieces)))
    return {i for i, text in texts.items() if all(p.search(text) for p in patterns)}


def fts_hits(conn, query: str) -> set[int]:
    sql = f"select rowid from {FTS_TABLE} where {FTS_TABLE} match ?"
    return {row[0] for row in conn.execute(sql, (fts_query(query),))}


@pytest.fixture(scope="module")
def corpus(corpus_db):
    conn = sqlite3.connect(corpus_db)
    texts = {
        i: normalize(f"{title}\n{text}")
        for i, title, text in conn.execute(
            "select id, title, body_text from articles join article_bodies on article_id = id"
        )
    }
    yield conn, texts
    conn.close()


def scores(conn, texts, queries):
    found = expected = right = 0
    for query in queries:
        truth, hits = ground_truth(texts, query), fts_hits(conn, query)
        found, expected, right = found + len(hits), expected + len(truth), right + len(truth & hits)
    precision = right / found if found else 1.0
    recall = right / expected if expected else 1.0
    return precision, recall, expected


@pytest.mark.parametrize("query_class", list(QUERIES))
def test_search_finds_what_the_text_contains(corpus, query_class, capsys):
    conn, texts = corpus
    precision, recall, expected = scores(conn, texts, QUERIES[query_class])
    with capsys.disabled():
        print(f"\n  {query_class:<26} precision {precision:.2f}  recall {recall:.2f}  ({expected} expected hits)")
    assert expected > 0, "pick queries the corpus contains"
    assert recall == 1.0
    if query_class not in ("English", "mixed", "multi-term"):
        assert precision == 1.0
    # Where words meet, FTS5 drops what is between them: "IP 地址" is a hit for "IP地址".
    # Those are the only extra hits allowed.
    for query in QUERIES[query_class]:
        assert fts_hits(conn, query) <= relaxed_truth(texts, query), query


def test_each_query_matches_the_ground_truth_exactly_for_cjk(corpus):
    conn, texts = corpus
    for query_class in ("1 char", "2 chars", "3 chars", "4+ chars", "Traditional → Simplified", "Simplified → Traditional"):
        for query in QUERIES[query_class]:
            assert fts_hits(conn, query) == ground_truth(texts, query), query


def test_scripts_meet(corpus):
    conn, texts = corpus
    seed = conn.execute("select id from articles where title like '腾讯捐%'").fetchone()[0]
    assert seed in fts_hits(conn, "騰訊")  # Traditional query, Simplified text
    huli = {i for (i,) in conn.execute("select article_id from article_bodies where body_text like '%變數%'")}
    assert huli and huli <= fts_hits(conn, "变数")  # Simplified query, Traditional text


# Each query, and the plain words a reader meant by it: operators and punctuation are text,
# never FTS5 syntax, so the hits are those of the words (None: no words, no hits).
OPERATOR_QUERIES = {
    "": None, "   ": None, '"': None, "'": None, "()": None, "*": None, "-": None, "^": None, "：，。": None,
    "AND": "and", "OR NOT": "or not", '"微信': "微信", "NEAR(": "near", "微信*": "微信", "a:b": "a:b",
}  # fmt: skip
# "a:b" is the word "a" then a word that starts with "b", whatever punctuation is between.
A_THEN_B = re.compile(r"(?<![0-9a-z\u00c0-\u024f])a[\W_]+b")


@pytest.mark.parametrize("query", list(OPERATOR_QUERIES))
def test_punctuation_and_operators_are_searched_as_plain_words(corpus, query):
    conn, texts = corpus
    words = OPERATOR_QUERIES[query]
    if words is None:
        assert fts_hits(conn, query) == set()
        return
    if words == "a:b":
        truth = {i for i, text in texts.items() if A_THEN_B.search(text)}
    else:
        truth = ground_truth(texts, words)
    assert truth, "pick words the corpus contains"
    assert fts_hits(conn, query) == truth, query


def test_fts_query_shapes():
    assert fts_query("微信") == '("微" + "信")'
    assert fts_query("腾讯公司") == '("腾" + "讯" + "公" + "司")'
    assert fts_query("的") == '("的")'
    assert fts_query("騰訊 VPN") == '("腾" + "讯") AND ("vpn"*)'
    assert fts_query("5G网络") == '("5g" + "网" + "络")'
    assert fts_query("网络5G") == '("网" + "络" + "5g"*)'
    assert fts_query("香港，微信") == '("香" + "港" + "微" + "信")'


def test_query_limits_are_checked_and_fts_query_stays_total():
    words = " ".join(["的"] * MAX_QUERY_TERMS)
    assert within_limits(words) and within_limits("长" * MAX_QUERY_CHARS) and within_limits(None)
    assert within_limits(f"  {words}  ")  # white space around the query is not counted
    assert not within_limits(words + " 的") and not within_limits("长" * (MAX_QUERY_CHARS + 1))
    # fts_query never refuses (ad-hoc SQL may call escape_fts with anything): it searches
    # for the first MAX_QUERY_TERMS terms of the first MAX_QUERY_CHARS characters.
    assert fts_query(" ".join(["的"] * 300)) == fts_query(words)
    assert fts_query("长" * 300) == fts_query("长" * MAX_QUERY_CHARS)
    assert fts_query(5) == '("5"*)'


@pytest.mark.parametrize(
    "text, query",
    [("香港2020年", "香港2020"), ("网络5G时代", "网络5G"), ("香港，微信支付", "香港，微信"), ("A网B", "A网B"), ("腾讯5G", "騰訊5G")],
)
def test_a_cjk_run_followed_by_more_in_the_query_matches(tmp_path, text, query):
    conn = sqlite3.connect(tmp_path / "t.db")
    ensure_index(conn)
    insert_many(conn, [(1, index_fields("", text))])
    assert fts_hits(conn, query) == {1}
    assert fts_query('"') == '""'


@pytest.mark.parametrize("text", ["", "ＶＰＮ服務，﨑ABC…", "騰訊 Ｆａｃｅｂｏｏｋ：ＡＢ", "plain ascii", "Ǆ"])
def test_the_snippet_fold_is_the_one_to_one_table(text):
    assert fold(text) == text.translate(one_to_one())


def test_a_cut_lead_keeps_its_mark_when_it_fits_and_gets_one_when_cut_again(data_db):
    from postsdb.snippet import shortened

    with sqlite3.connect(data_db) as conn:
        cut = [lead for (lead,) in conn.execute("select lead from articles where lead like '%…'")]
        whole = [lead for (lead,) in conn.execute("select lead from articles where lead not like '%…' and length(lead) > 20")]
    assert cut and whole
    for lead in cut:
        assert shortened(lead, len(lead) + 10) == lead  # fits: still says it was cut
        again = shortened(lead, 20)
        assert again.endswith("…") and lead.startswith(again[:-1]) and len(again) <= 21
    for lead in whole:
        assert shortened(lead, len(lead)) == lead and shortened(lead, 10).endswith("…")
