"""Relations between texts (postsdb/relations.py), built from real posts of data/: copies,
revisions and related articles, and an incremental build's tables against a fresh build's."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import opencc
import pytest
import sqlite_utils

from conftest import DATA
from postsdb import relations, search
from postsdb.build import build
from postsdb.search import normalize

RELATION_TABLES = ("article_copies", "related_articles", "article_revisions", "article_features")
FROM_LINE = re.compile(r"^from:.*$", re.M)
TITLE_LINE = re.compile(r"^title:.*$", re.M)
DATE_LINE = re.compile(r"^date:.*$", re.M)
PARAGRAPH = re.compile(r"<p>(?:(?!</p>).){40,}?</p>", re.S)


def estimate(first, second) -> float:
    """Jaccard as two MinHash signatures estimate it: the share of their equal values."""
    return round(float(np.count_nonzero(first == second)) / relations.NUM_PERM, 4)


def rows(db_path, sql, params=()):
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def relation_dump(db_path) -> dict:
    db = sqlite_utils.Database(db_path)
    return {name: list(db[name].rows_where(order_by=", ".join(db[name].pks))) for name in RELATION_TABLES}


def real_posts(count: int) -> list[Path]:
    """The first Chinese posts of the sample with a few long paragraphs."""
    found = []
    for path in sorted((DATA / "posts").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if len(PARAGRAPH.findall(text)) >= 3:
            found.append(path)
        if len(found) == count:
            return found
    raise AssertionError("the sample has too few posts with paragraphs")


def front_and_body(text: str) -> tuple[str, str]:
    end = text.index("\n---", 4) + len("\n---")
    return text[:end], text[end:]


def retitled(text: str, *, url: str | None = None, title: str | None = None, date: str | None = None) -> str:
    front, body = front_and_body(text)
    if url:
        front = FROM_LINE.sub(f"from: {url}", front, count=1)
    if title:
        front = TITLE_LINE.sub(f'title: "{title}"', front, count=1)
    if date:
        front = DATE_LINE.sub(f"date: {date}", front, count=1)
    return front + body


def traditional_copy(original: Path, folder: Path, name: str = "copy.md") -> Path:
    """The real post republished elsewhere: Traditional script, its own title and URL, and
    the other site's line at the top."""
    text = opencc.OpenCC("s2t.json").convert(original.read_text(encoding="utf-8"))
    front, body = front_and_body(retitled(text, url="https://mirror.example.org/reposted/1", title="轉載：另一個標題"))
    path = folder / name
    path.write_text(front + "\n<p>本文轉載自其他網站，版權歸原作者所有。</p>\n" + body, encoding="utf-8")
    return path


def article_id_of(db_path, path: str) -> int:
    return rows(db_path, "select article_id from article_files where path = ?", (path,))[0][0]


def copies(db_path) -> set[tuple[int, int]]:
    return {(a, b) for a, b in rows(db_path, "select article_id, copy_id from article_copies")}


def assert_same_as_fresh(folder: Path, incremental: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    fresh.unlink(missing_ok=True)
    build([folder], fresh)
    assert relation_dump(incremental) == relation_dump(fresh)


@pytest.fixture
def real_folder(tmp_path) -> Path:
    folder = tmp_path / "posts"
    folder.mkdir()
    for path in real_posts(6):
        shutil.copy(path, folder / path.name)
    return folder


# --- the pure part ------------------------------------------------------------------


def test_a_text_and_its_traditional_script_have_one_signature():
    text = real_posts(1)[0].read_text(encoding="utf-8")
    other = opencc.OpenCC("s2t.json").convert(text)
    assert other != text
    assert relations.features("", text).signature == relations.features("", other).signature


def test_a_signature_is_datasketchs_minhash_of_the_shingles():
    from datasketch import MinHash

    shingles = relations.shingle_hashes(normalize(real_posts(1)[0].read_text(encoding="utf-8")))
    assert len(shingles) > relations.MINHASH_BLOCK  # more than one block
    theirs = MinHash(num_perm=relations.NUM_PERM, seed=relations.SEED, hashfunc=int, scheme="affine32")
    theirs.update_batch(shingles.tolist())
    assert relations.min_hashes(shingles).tolist() == theirs.hashvalues.tolist()


def test_the_permutations_are_datasketchs():
    from datasketch import MinHash

    a, b = MinHash(num_perm=relations.NUM_PERM, seed=relations.SEED, scheme="affine32").permutations
    assert [x.tolist() for x in relations.permutations()] == [a.tolist(), b.tolist()]


def test_shared_normalization_gives_the_same_features_and_index_fields():
    text = real_posts(1)[0].read_text(encoding="utf-8")
    title = "翻牆：VPN 與 Tor"
    normal = normalize(title), normalize(text)
    assert relations.features(title, text, normal) == relations.features(title, text)
    assert search.index_fields(title, text, normal) == search.index_fields(title, text)


def test_tokens_read_in_numpy_are_the_expressions_tokens():
    texts = [normalize(path.read_text(encoding="utf-8")) for path in real_posts(3)]
    texts += ["", "a", "ab", "中", "a中b", "ab中cd_ef", "x1 2y 33 the and", "𠀀𠀁abc𠀂", "émigré naïve ١٢٣", "ーカタカナ・テスト", "한국어 abc"]
    for text in texts:
        codes, terms = relations.text_tokens(text)
        expected_codes, expected_terms = relations.token_codes(relations.TOKEN.findall(text))
        assert codes.tolist() == expected_codes.tolist() and terms.tolist() == expected_terms.tolist(), text[:40]


def term_columns(keys: np.ndarray, by_blocks: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each key's column among the distinct keys and each column's count, as the matrix finds
    them: the sorted vocabulary, and each key's place in it (`places_in`, with its table of
    runs made once as `tfidf_matrix` makes it, or for the call)."""
    ordered = np.sort(keys)
    starts = np.flatnonzero(relations.first_of_runs(ordered))
    vocabulary = ordered[starts]
    runs = relations.run_starts(vocabulary) if by_blocks else None
    return relations.places_in(vocabulary, keys, runs), np.diff(np.append(starts, len(ordered)))


@pytest.mark.parametrize("by_blocks", [False, True])
def test_term_columns_are_the_ranks_numpys_unique_gives(by_blocks):
    rng = np.random.default_rng(3)
    spread = rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32)
    crowded = (rng.integers(0, 2**12, 20_000) | np.uint32(0xABC00000)).astype(np.uint32)  # many keys per run
    for keys in (np.zeros(0, np.uint32), np.array([7], np.uint32), spread, np.concatenate([spread, crowded, spread[:99]])):
        columns, counts = term_columns(keys, by_blocks)
        _, expected_columns, expected_counts = np.unique(keys, return_inverse=True, return_counts=True)
        assert columns.tolist() == expected_columns.tolist() and counts.tolist() == expected_counts.tolist()


def test_a_short_text_has_no_signature_and_is_no_ones_copy():
    assert relations.features("标题", "一句话而已。").signature is None


def test_terms_are_character_pairs_and_words_of_two_letters_or_more():
    keys, counts = relations.term_counts(normalize("用tor翻牆 a VPN，VPN"))
    same_keys, _ = relations.term_counts("vpn 翻墙 tor")  # 用 alone and "a" are no terms
    assert list(keys) == list(same_keys) and sorted(counts) == [1, 1, 2]


# --- copies -------------------------------------------------------------------------


def test_a_copy_in_traditional_script_at_another_url_is_found_both_ways(real_folder, tmp_path):
    original = real_posts(1)[0]
    traditional_copy(original, real_folder)
    db_path = tmp_path / "posts.db"
    build([real_folder], db_path)
    a, b = article_id_of(db_path, original.name), article_id_of(db_path, "copy.md")
    assert a != b
    assert copies(db_path) == {(a, b), (b, a)}
    (overlap,) = {o for (o,) in rows(db_path, "select overlap from article_copies")}
    assert relations.COPY_THRESHOLD <= overlap <= 1


def test_copies_are_the_pairs_datasketchs_lsh_proposes_at_the_threshold(data_db):
    """The bands grouped in numpy against datasketch's own index, on the sample's signatures
    and variants of them that keep from a fifth to four fifths of their values."""
    from datasketch import MinHash, MinHashLSH

    signatures = {
        article: np.frombuffer(values, dtype=np.uint32)
        for article, values in rows(data_db, "select article_id, signature from article_features where signature is not null")
    }
    rng = np.random.default_rng(7)
    for number, article in enumerate(sorted(signatures)[:60]):
        variant = signatures[article].copy()
        changed = rng.random(relations.NUM_PERM) < 0.2 + 0.6 * number / 60
        variant[changed] = rng.integers(0, 2**32, int(changed.sum()), dtype=np.uint64).astype(np.uint32)
        signatures[10**9 + number] = variant
    lsh = MinHashLSH(threshold=relations.COPY_THRESHOLD, num_perm=relations.NUM_PERM)
    hashes = {a: MinHash(seed=relations.SEED, hashvalues=values, scheme="affine32") for a, values in signatures.items()}
    for article, minhash in hashes.items():
        lsh.insert(article, minhash)
    expected = {
        (a, b): estimate(signatures[a], signatures[b])
        for a in hashes
        for b in lsh.query(hashes[a])
        if b > a and estimate(signatures[a], signatures[b]) >= relations.COPY_THRESHOLD
    }
    assert len(expected) >= 10  # the variants that kept most of their values
    first, second, overlaps = relations.copy_arrays(signatures)
    assert dict(zip(zip(first.tolist(), second.tolist()), overlaps.tolist())) == expected


def test_related_articles_are_never_the_article_or_its_copy(real_folder, tmp_path):
    traditional_copy(real_posts(1)[0], real_folder)
    db_path = tmp_path / "posts.db"
    build([real_folder], db_path)
    listed = rows(db_path, "select article_id, related_id from related_articles")
    assert listed  # six real posts on related subjects do relate
    assert not [pair for pair in listed if pair[0] == pair[1] or pair in copies(db_path)]
    ranks = rows(db_path, "select article_id, group_concat(rank) from related_articles group by article_id")
    assert all(
        [int(r) for r in numbers.split(",")] == list(range(1, len(numbers.split(",")) + 1)) for _, numbers in ranks
    )


def test_a_copy_added_edited_and_deleted_changes_exactly_its_pairs(real_folder, tmp_path):
    db_path = tmp_path / "incremental.db"
    build([real_folder], db_path)
    assert copies(db_path) == set()
    before = rows(db_path, "select * from related_articles order by 1, 2")

    original = real_posts(1)[0]
    copy = traditional_copy(original, real_folder)
    build([real_folder], db_path)
    a, b = article_id_of(db_path, original.name), article_id_of(db_path, "copy.md")
    assert copies(db_path) == {(a, b), (b, a)}
    assert_same_as_fresh(real_folder, db_path, tmp_path)

    # Edited into a text of its own: its shortest long paragraph only. No longer a copy.
    front, body = front_and_body(copy.read_text(encoding="utf-8"))
    copy.write_text(front + "\n" + min(PARAGRAPH.findall(body), key=len) + "\n", encoding="utf-8")
    build([real_folder], db_path)
    assert copies(db_path) == set()
    assert_same_as_fresh(real_folder, db_path, tmp_path)

    copy.unlink()
    build([real_folder], db_path)
    assert copies(db_path) == set()
    assert rows(db_path, "select * from related_articles order by 1, 2") == before
    assert_same_as_fresh(real_folder, db_path, tmp_path)


# --- revisions -----------------------------------------------------------------------


def edited_revision(original: Path, folder: Path) -> Path:
    """The same URL a day later, with one paragraph rewritten."""
    text = original.read_text(encoding="utf-8")
    paragraph = PARAGRAPH.findall(front_and_body(text)[1])[1]
    edited = text.replace(paragraph, "<p>此段已被编辑删改，原文不再可见。</p>", 1)
    date = DATE_LINE.search(text).group(0).split(":", 1)[1].strip()
    later = retitled(edited, date=str(int(date[:4]) + 1) + date[4:], title="改过的标题")
    path = folder / ("zz-" + original.name)
    path.write_text(later, encoding="utf-8")
    return path


def test_every_file_of_a_url_is_a_revision_oldest_first(real_folder, tmp_path):
    original = real_posts(1)[0]
    newer = edited_revision(original, real_folder)
    db_path = tmp_path / "posts.db"
    build([real_folder], db_path)
    article = article_id_of(db_path, original.name)
    revisions = rows(
        db_path, "select revision, path, title from article_revisions where article_id = ? order by revision", (article,)
    )
    assert [(r, p) for r, p, _ in revisions] == [(1, original.name), (2, newer.name)]
    assert revisions[1][2] == "改过的标题"
    assert "此段已被编辑删改" in rows(db_path, "select body_text from article_revisions where revision = 2")[0][0]
    assert "此段已被编辑删改" not in rows(db_path, "select body_text from article_revisions where revision = 1")[0][0]
    assert rows(db_path, "select body_html from article_revisions where revision = 2") == rows(
        db_path, "select body_html from article_bodies where article_id = ?", (article,)
    )
    # Only an article with several files has revisions: the other five have none.
    assert rows(db_path, "select count(*), count(distinct article_id) from article_revisions") == [(2, 1)]


def test_revisions_added_and_removed_incrementally_match_a_fresh_build(real_folder, tmp_path):
    original = real_posts(1)[0]
    db_path = tmp_path / "incremental.db"
    build([real_folder], db_path)
    newer = edited_revision(original, real_folder)
    build([real_folder], db_path)
    assert rows(db_path, "select max(revision) from article_revisions") == [(2,)]
    assert_same_as_fresh(real_folder, db_path, tmp_path)
    newer.unlink()
    build([real_folder], db_path)
    assert rows(db_path, "select count(*) from article_revisions") == [(0,)]  # one file: no versions
    assert_same_as_fresh(real_folder, db_path, tmp_path)


def test_an_older_file_added_later_goes_first(real_folder, tmp_path):
    """Two versions numbered by one build; a third file, older than both, arrives in the
    next: it becomes revision 1, and the others move up, as a fresh build numbers them."""
    original = real_posts(1)[0]
    db_path = tmp_path / "incremental.db"
    newer = edited_revision(original, real_folder)
    build([real_folder], db_path)
    text = original.read_text(encoding="utf-8")
    date = DATE_LINE.search(text).group(0).split(":", 1)[1].strip()
    older = real_folder / ("aa-" + original.name)
    older.write_text(retitled(text, date=str(int(date[:4]) - 1) + date[4:], title="最早的标题"), encoding="utf-8")
    summary = build([real_folder], db_path)
    assert summary.problems == []
    article = article_id_of(db_path, original.name)
    numbered = rows(db_path, "select revision, path from article_revisions where article_id = ? order by revision", (article,))
    assert numbered == [(1, older.name), (2, original.name), (3, newer.name)]
    assert_same_as_fresh(real_folder, db_path, tmp_path)


def stored_sample(db_path) -> tuple[relations.Stored, np.ndarray]:
    with sqlite3.connect(db_path) as conn:
        stored = relations.read_stored(conn)
        copy_rows = conn.execute("select article_id, copy_id from article_copies order by 1, 2").fetchall()
    return stored, np.array(copy_rows, dtype=np.int64).reshape(-1, 2)


def all_pairs_scores(stored: relations.Stored, copy_rows: np.ndarray) -> np.ndarray:
    """The oracle: every pair scored, as the build did before it scored candidates only.
    The matrix times its transpose, MIN_SCORE and the topics' boost, the article and its
    copies left out (zero)."""
    matrix = relations.tfidf_matrix(list(stored.term_blobs))
    scores = (matrix @ matrix.T).toarray()
    scores[scores < relations.MIN_SCORE] = 0.0
    subjects = relations.topic_matrix(stored.ids, stored.topics)
    scores *= 1.0 + relations.TOPIC_BOOST * (subjects @ subjects.T).toarray()
    place = {article: i for i, article in enumerate(stored.ids)}
    np.fill_diagonal(scores, 0.0)
    for article, copy in copy_rows.tolist():
        scores[place[article], place[copy]] = 0.0
    return scores


def all_pairs_lists(stored: relations.Stored, copy_rows: np.ndarray) -> list[tuple]:
    """The oracle's lists: each article's RELATED best by rounded score, then id."""
    scores = all_pairs_scores(stored, copy_rows)
    found = []
    for i, article in enumerate(stored.ids):
        ranked = sorted((-round(float(score), 6), stored.ids[j]) for j, score in enumerate(scores[i]) if round(float(score), 6) > 0)
        found.extend((article, rank, other, -score) for rank, (score, other) in enumerate(ranked[: relations.RELATED], 1))
    return found


def same_lists(found: list[tuple], expected: list[tuple]) -> None:
    """The same articles at the same ranks; the scores to the sixth decimal (one product
    sums in another order than the other: the last decimal may differ)."""
    assert [row[:3] for row in found] == [row[:3] for row in expected]
    assert max(abs(a[3] - b[3]) for a, b in zip(found, expected)) <= 1.01e-6


def test_with_every_candidate_the_lists_are_those_of_all_pairs(data_db, monkeypatch):
    """Where every article's terms and every term's articles are looked up, the candidates
    are every pair: the lists are the all-pairs lists of the oracle."""
    stored, copy_rows = stored_sample(data_db)
    expected = all_pairs_lists(stored, copy_rows)
    monkeypatch.setattr(relations, "TOP_TERMS", 10**6)
    monkeypatch.setattr(relations, "POSTINGS", len(stored.ids))
    same_lists(relations.related(stored.ids, list(stored.term_blobs), stored.topics, copy_rows), expected)


def test_the_built_lists_of_the_sample_are_the_all_pairs_ones(data_db):
    """With the build's TOP_TERMS and POSTINGS (chosen so), the sample's lists are those of
    every pair scored, though an article proposes about 100 candidates of 150 (the
    candidates are not complete: with 30 terms and 30 articles a term, 4 entries of 755
    differed); each listed score is the pair's exact score."""
    stored, copy_rows = stored_sample(data_db)
    expected = all_pairs_lists(stored, copy_rows)
    built = rows(data_db, "select article_id, rank, related_id, score from related_articles order by 1, 2")
    oracle, place = all_pairs_scores(stored, copy_rows), {article: i for i, article in enumerate(stored.ids)}
    assert all(abs(oracle[place[a], place[b]] - score) <= 1.01e-6 for a, _, b, score in built)
    assert len(built) == 5 * len(stored.ids)
    same_lists(built, expected)
    matrix = relations.tfidf_matrix(list(stored.term_blobs))
    assert len(relations.candidate_pairs(matrix, relations.copy_keys(stored.ids, copy_rows))) < 0.8 * len(stored.ids) ** 2 / 2


def test_an_article_proposes_at_most_top_terms_times_postings_candidates(data_db, monkeypatch):
    """However many articles there are: the sample, and the sample three times over."""
    stored, copy_rows = stored_sample(data_db)
    monkeypatch.setattr(relations, "TOP_TERMS", 4)
    monkeypatch.setattr(relations, "POSTINGS", 3)
    for times in (1, 3):
        matrix = relations.tfidf_matrix(list(stored.term_blobs) * times)
        size = matrix.shape[0]
        proposed = [np.unique(article * size + other) for article, other in relations.proposals(matrix, np.zeros(0, dtype=np.int64))]
        per_article = np.bincount(np.concatenate(proposed) // size, minlength=size)
        assert per_article.max() <= 4 * 3
        assert per_article.min() > 0


def test_copies_and_the_article_itself_are_read_past_in_a_terms_list(data_db, monkeypatch):
    """The sample three times over, each article's two others its copies: a term's list
    begins with the three of them, and still each article gets POSTINGS others from it."""
    stored, _ = stored_sample(data_db)
    monkeypatch.setattr(relations, "TOP_TERMS", 2)
    monkeypatch.setattr(relations, "POSTINGS", 3)
    matrix = relations.tfidf_matrix(list(stored.term_blobs) * 3)
    size, sample = matrix.shape[0], len(stored.ids)
    places = np.arange(size)
    copies = np.unique(np.concatenate([places * size + (places + shift * sample) % size for shift in (1, 2)]))
    article, other = (np.concatenate(part) for part in zip(*relations.proposals(matrix, copies)))
    assert not np.any(article == other) and not np.any(np.isin(article * size + other, copies))
    assert np.bincount(article, minlength=size).max() == 2 * 3


def test_same_value_pairs_are_every_pair_of_equal_values():
    values = np.random.default_rng(3).integers(0, 40, 300)
    expected = {(i, j) for i in range(len(values)) for j in range(i + 1, len(values)) if values[i] == values[j]}
    keys = relations.same_value_pairs(values)
    assert sorted(keys.tolist()) == sorted(i * len(values) + j for i, j in expected)


def test_pairs_scored_in_forked_processes_give_the_lists_of_one_process(data_db, monkeypatch):
    """The sample's pairs in chunks of 256, scored by a pool of forked processes, then in
    this process alone: the same lists, the build's."""
    from postsdb import workers

    stored, copy_rows = stored_sample(data_db)
    listed = rows(data_db, "select article_id, rank, related_id from related_articles order by 1, 2")
    pools, real_pool = [], workers.worker_pool
    monkeypatch.setattr(workers, "worker_pool", lambda *args, **kwargs: pools.append(args) or real_pool(*args, **kwargs))
    monkeypatch.setattr(relations, "CHUNK", 256)
    monkeypatch.setattr(relations, "PARALLEL_FROM", 512)
    forked = relations.related(stored.ids, list(stored.term_blobs), stored.topics, copy_rows)
    assert pools  # the pool was used
    monkeypatch.setattr(relations, "PARALLEL_FROM", 10**9)
    alone = relations.related(stored.ids, list(stored.term_blobs), stored.topics, copy_rows)
    assert len(pools) == 1
    assert forked == alone
    assert [row[:3] for row in forked] == listed  # the build's chunks, in this process


def test_when_the_scoring_processes_die_this_one_scores_the_chunks(data_db, monkeypatch):
    """A scoring process the system kills (out of memory, say) costs time, not the build."""
    from postsdb import workers

    stored, copy_rows = stored_sample(data_db)
    real_pool = workers.worker_pool
    monkeypatch.setattr(workers, "worker_pool", lambda count, setup=None: real_pool(count, setup=lambda: os._exit(1)))
    monkeypatch.setattr(relations, "CHUNK", 256)
    monkeypatch.setattr(relations, "PARALLEL_FROM", 512)
    survived = relations.related(stored.ids, list(stored.term_blobs), stored.topics, copy_rows)
    monkeypatch.setattr(relations, "PARALLEL_FROM", 10**9)
    alone = relations.related(stored.ids, list(stored.term_blobs), stored.topics, copy_rows)
    assert survived and survived == alone


def test_the_sample_relates_every_article_to_others(data_db):
    listed = rows(data_db, "select count(distinct article_id) from related_articles")[0][0]
    assert listed == rows(data_db, "select count(*) from articles")[0][0]
    assert rows(data_db, "select count(*) from related_articles where article_id = related_id") == [(0,)]
