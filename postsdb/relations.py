"""Relations between texts, derived from the loaded articles: copies and related articles.

**Copies** (`article_copies`) are the same text at two URLs, found by MinHash/LSH
(`datasketch`) over the shingles of each body as the search index sees it (NFKC,
Traditional → Simplified, lowercase: postsdb/search.py), so a copy in the other script is
still a copy. The title takes no part: a retitled or translated copy keeps its body.

**Related articles** (`related_articles`) are the nearest texts by cosine similarity of
TF-IDF vectors of the whole title and body: overlapping pairs of CJK characters and Latin
words, each weighted by its rarity, so the article's subject decides, not a few words of
its lead. Shared topics multiply a score (they never add to zero): a pair whose texts
disagree cannot enter the list on its topics alone. Never the article itself nor a copy.

Which pairs are scored: candidates, found in time linear in the archive. Each article
looks up its TOP_TERMS heaviest terms (by TF-IDF weight) in posting lists that keep, of
each term, the POSTINGS articles heaviest in it (one of each group of copies), reading
past itself and its copies; a pair proposed by either article is scored once, exactly (the
same cosine, topic boost and MIN_SCORE as every pair would get), and offered to both
lists. An article proposes at most TOP_TERMS x POSTINGS = 750 candidates, whatever the
archive's size. What it gives up: a pair that shares no term heavy in one article and,
within that term, heavy enough to be among the first POSTINGS, is never scored. With 50
terms and 15 articles a term, data/'s lists are those of every pair (755 of 755 entries),
the benchmark's x30 corpus's 99.9% (its copies differ in their text), its x300 corpus's
82.6% (each post has 299 siblings sharing most of its words: a list is five of them,
told apart by the smallest differences of score); precision@5 on
bench/related_judged.json stays 0.52. A corpus of identical copies (bench/serve.py's
scaled one) lists five different texts where every pair listed five copies of one.

What an incremental build recomputes, and why it stays exact: the features of an article
(its MinHash signature and term counts, in `article_features`) depend on its text alone,
so they are computed by the parse workers for the articles the build (re)loads, and kept
for the rest. Then the candidates and their scores are worked out again from every
article's features: an edit changes the rarity (IDF) of the terms it touches, and with it
weights, lists and scores everywhere, so no subset could be kept exactly; recomputing all
makes an incremental build's tables those of a fresh build (tests/test_relations.py
compares them). Everything is ordered by value, then by place or id, never by how work
was shared out: the lists are the same on one core or many.

The cost grows with the archive, linearly (README, Benchmarks): at 4,530 articles (x30,
copies perturbed) about 460,000 candidate pairs (200 an article) and 4-5 CPU seconds; at
45,300 (x300) 8.6 million (380 an article, still under the bound), the whole build 10
times x30's CPU, its peak RSS 1.9 GB against 0.44 GB (every pair scored: 8.6 GB on a
corpus of identical copies). Each piece is whole arrays, a block at a time: the matrix is
built in two passes over the features (the first counts each term's articles, the second
fills the matrix, BLOBS articles at a time); the heaviest terms and the posting lists are
found ROWS rows at a time, the look-ups read LOOKED_UP entries at a time, and the pairs
are scored CHUNK at a time on every core by forked processes that inherit the matrix:
each first article's row is spread once into a dense vector, which its partners' rows
multiply. The lists keep each article's best few while the chunks come in (`BestLists`).
Copies stay numpy arrays too: where each text has 299 copies, `article_copies` has 13
million rows, which as Python tuples took 8.4 GB. Memory is then the matrix (12 bytes a
term of an article: 0.75 GB at x300's 62 million) and what one block needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import re
import sqlite3
import zlib
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from postsdb.search import CJK_RUN, normalize

# --- copies ---------------------------------------------------------------------

SHINGLE = 5  # tokens: five Chinese characters (two or three words), or five Latin words
NUM_PERM = 128  # permutations: the estimate's standard error at J = 0.5 is about 0.044
SEED = 1
MINHASH_BLOCK = 256  # shingles hashed at once: 256 x NUM_PERM uint32, 128 kB
# A copy shares at least half of its shingles (Jaccard, as MinHash estimates it). Measured
# on the sample: the two most similar different articles share 0.11 (two ChinaFile
# pieces with the same site's boilerplate); a copy with one of its 50 paragraphs rewritten
# shares 0.99, with its own header and footer 1.0, the same text in Traditional script 1.0
# (normalized to the same shingles), its first half alone 0.59. 0.5 lies far from the
# unrelated pairs and takes in excerpts of half an article; LSH at 0.5 (datasketch picks
# the bands) finds a pair at 0.8 with a probability of about 1.
COPY_THRESHOLD = 0.5
MIN_SHINGLES = 50  # a text shorter than this (a link and a line) is no one's copy

# --- related articles -------------------------------------------------------------

RELATED = 5
TOPIC_BOOST = 0.5  # score = cosine x (1 + TOPIC_BOOST x cosine of the topic vectors)
MIN_SCORE = 0.02  # below this two texts share only common words: no relation, list shorter
# English function words. Without them, a Chinese text quoting a few English tweets came
# out nearest to English articles: "the", "to", "of" are rare in a Chinese archive, so
# they weighed more than any Chinese word. Numbers alone (dates, counts) are left out too.
STOP_WORDS = frozenset(
    """a about after all also am an and any are as at be because been before being but by can
    could did do does doing for from had has have he her here him his how i if in into is it its
    just me more most my no not of on one only or other our out over said she so some such than
    that the their them then there these they this those through to too up us very was we were
    what when where which while who why will with would you your""".split()
)
# Candidates: an article looks up its TOP_TERMS heaviest terms, and takes from each the
# POSTINGS articles heaviest in it; at most TOP_TERMS x POSTINGS candidates an article.
TOP_TERMS = 50
POSTINGS = 15
CHUNK = 65_536  # pairs scored at once
PARALLEL_FROM = 2 * CHUNK  # fewer pairs than this are scored in one process: no fork to pay
ROWS = 2048  # rows of the matrix read at once to find the candidates
LOOKED_UP = 1 << 21  # entries of the posting lists read at once
BLOBS = 2048  # articles' terms unpacked at once to build the matrix
CUT_FROM = 1 << 22  # scored pairs held before the lists are cut down to their best

CJK_CLASS = CJK_RUN.pattern[1:-2]  # the inside of its [...]+
TOKEN = re.compile(f"[{CJK_CLASS}]|[^\\W_{CJK_CLASS}]+")  # one CJK character, or a word
LATIN_WORD = re.compile(f"[^\\W_{CJK_CLASS}]{{2,}}")  # a word of two letters or more, no CJK in it


@dataclass
class Features:
    """What relations need of one article, as `article_features` stores it."""

    signature: bytes | None  # NUM_PERM MinHash values, uint32; None for a short text
    terms: bytes  # `pack_terms`: the distinct terms' ids and their counts, compressed


def features(title: str, body_text: str, normal: tuple[str, str] | None = None) -> Features:
    """Pure, so a worker process computes it while it parses. `normal`: the title and the
    body already through `normalize`, when the caller has them (the parse worker shares
    them with the search index: normalizing is a fifth of this function's cost)."""
    normal_title, normal_body = normal or (normalize(title or ""), normalize(body_text or ""))
    codes, terms = text_tokens(normal_body)  # one pass for both: shingles, and words as terms
    values = signature(codes)
    words = np.concatenate([word_ids(normal_title), codes[terms]])
    keys, counts = term_counts(normal_title + "\n" + normal_body, words)
    return Features(None if values is None else values.tobytes(), pack_terms(keys, counts))


def pack_terms(keys: np.ndarray, counts: np.ndarray) -> bytes:
    """Sorted ids as the gaps between them (uint32), then the counts (uint16, capped),
    deflated: a third of the plain arrays' size, which is most of `article_features`."""
    gaps = np.diff(keys.astype(np.int64), prepend=0).astype(np.uint32)
    capped = np.minimum(counts, 0xFFFF).astype(np.uint16)
    return zlib.compress(gaps.tobytes() + capped.tobytes(), 1)  # level 6: 4% smaller, three times the time


def unpack_all(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every blob that `pack_terms` wrote, as whole arrays: the keys (uint32), the counts
    and each blob's number of terms. Each blob's keys are the running sum of its gaps (in
    uint32: a blob's keys are sorted 32-bit ids); nothing larger than the result is held.
    Empties `blobs` as it reads them."""
    keys, counts = [], []
    lengths = np.empty(len(blobs), dtype=np.int64)
    for number in range(len(blobs)):
        blob, blobs[number] = blobs[number], b""
        raw = zlib.decompress(blob)
        size = lengths[number] = len(raw) // 6  # 4 bytes of gap and 2 of count a term
        keys.append(np.cumsum(np.frombuffer(raw, dtype=np.uint32, count=size), dtype=np.uint32))
        counts.append(np.frombuffer(raw, dtype=np.uint16, count=size, offset=size * 4))
    if not blobs:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint16), lengths
    return np.concatenate(keys), np.concatenate(counts), lengths


def signature(codes: np.ndarray) -> np.ndarray | None:
    """The MinHash of the text whose `token_codes` these are; None if it is too short."""
    shingles = shingles_of(codes)
    if len(shingles) < MIN_SHINGLES:
        return None
    return min_hashes(shingles)


def min_hashes(shingles: np.ndarray) -> np.ndarray:
    """datasketch's MinHash of these 32-bit values (scheme "affine32", our permutations),
    in whole arrays: each value mixed by the MurmurHash3 finalizer, then a x h + b modulo
    2^32 for each permutation (a, b), the least of each kept. The same values as its
    `update_batch` (tests/test_relations.py compares them), which turns the array into a
    list and back: three quarters of its cost. A block of values at a time, so the values
    x permutations array stays in the cache (and small, however long the text)."""
    a, b = permutations()
    mixed = fmix32(shingles.astype(np.uint32))
    least = np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    for start in range(0, len(mixed), MINHASH_BLOCK):
        np.minimum(least, (mixed[start : start + MINHASH_BLOCK, None] * a + b).min(axis=0), out=least)
    return least


def fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, wrapping at 2^32 as uint32 arithmetic does."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def warm_up() -> None:
    """Draw the permutations and classify the code points before the parse workers are
    forked, so that each of them does not do it again."""
    permutations()
    char_kinds()


def warm_up_writer() -> None:
    """Import datasketch (0.3-0.8 s) and pick LSH's bands, for `update`: done by the
    writing process while the parse workers run, not after them, when it would be waited for."""
    lsh_bands()


@functools.lru_cache(maxsize=1)
def permutations() -> tuple[np.ndarray, np.ndarray]:
    """datasketch's (a, b) for NUM_PERM and SEED, scheme "affine32": uint32 arrays, each a
    odd. Drawn as its MinHash draws them (tests/test_relations.py compares them), without
    importing it: its import would delay the parse workers' start."""
    draw = np.random.RandomState(SEED)
    a = draw.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = draw.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def shingle_hashes(normal_text: str) -> np.ndarray:
    """The distinct 32-bit hashes of every SHINGLE consecutive tokens of the text: a token
    is a CJK character or a Latin word, so five characters of Chinese, five words of
    English. Space, punctuation and markup are left out: a copy's layout does not count."""
    return shingles_of(text_tokens(normal_text)[0])


def shingles_of(codes: np.ndarray) -> np.ndarray:
    if len(codes) < SHINGLE:
        return np.zeros(0, dtype=np.uint64)
    value = np.zeros(len(codes) - SHINGLE + 1, dtype=np.uint64)
    for offset in range(SHINGLE):  # a polynomial hash of each window, wrapping at 2^64
        value = value * np.uint64(1_000_003) + codes[offset : offset + len(value)]
    return distinct((value >> np.uint64(29)) & np.uint64(0xFFFFFFFF))


def distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values) by one plain sort: np.unique hashes integers, ten times slower on
    the few thousand values of a text, and on the millions of pairs of an archive."""
    ordered = np.sort(values)
    return ordered[first_of_runs(ordered)]


def first_of_runs(ordered: np.ndarray) -> np.ndarray:
    """True where a sorted array's value differs from the one before it."""
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return first


def token_codes(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A number per token: a CJK character's code point; a word's CRC-32, above every code
    point. The characters are read in one pass over the joined tokens (most tokens of a
    Chinese text are single characters); each distinct word is hashed once. Also the
    places of the words that are terms of `term_counts`: two letters or more (a token of
    two characters is a word), neither a stop word nor a number, marked by a bit while
    the word is hashed."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter(map(len, tokens), np.int64, len(tokens))
    chars = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    codes = chars[np.cumsum(lengths) - lengths]  # each token's first character
    words = np.flatnonzero(lengths > 1)
    if not len(words):
        return codes, words
    return codes, hash_words(codes, words, map(tokens.__getitem__, words.tolist()))


TERM_BIT = 1 << 33
OTHER, WORD_CHAR, CJK_CHAR = 0, 1, 2


def text_tokens(normal_text: str) -> tuple[np.ndarray, np.ndarray]:
    """`token_codes(TOKEN.findall(normal_text))`, the same arrays, reading the text's code
    points in numpy: only the words (runs of two letters or more) become strings, not
    each character of a Chinese text (the regular expression was a fifth of `features`)."""
    chars = np.frombuffer(normal_text.encode("utf-32-le"), dtype="<u4")
    kinds = char_kinds()[chars]
    in_word = np.concatenate([[False], kinds == WORD_CHAR, [False]])
    word_starts = np.flatnonzero(in_word[1:-1] & ~in_word[:-2])
    word_ends = np.flatnonzero(in_word[1:-1] & ~in_word[2:]) + 1
    places = np.sort(np.concatenate([np.flatnonzero(kinds == CJK_CHAR), word_starts]))
    codes = chars[places].astype(np.uint64)
    long_words = word_ends - word_starts > 1
    words = np.searchsorted(places, word_starts[long_words])  # their token numbers
    if not len(words):
        return codes, words
    spans = map(slice, word_starts[long_words].tolist(), word_ends[long_words].tolist())
    return codes, hash_words(codes, words, map(normal_text.__getitem__, spans))


def hash_words(codes: np.ndarray, words: np.ndarray, strings) -> np.ndarray:
    """Put each word's `word_code` at its place (`words`) in `codes`, hashing each distinct
    word once, and return the places of the words that are terms (their TERM_BIT taken off)."""
    hashed: dict[str, int] = {}
    codes[words] = np.fromiter(
        (hashed[w] if w in hashed else hashed.setdefault(w, word_code(w)) for w in strings),
        np.uint64,
        len(words),
    )
    terms = words[codes[words] >= TERM_BIT]
    codes[terms] -= np.uint64(TERM_BIT)
    return terms


@functools.lru_cache(maxsize=1)
def char_kinds() -> np.ndarray:
    """Every code point's kind for TOKEN: a CJK character, a word's (a letter or digit
    outside the CJK ranges), or neither; found by the expression's own classes, once
    (0.05 s; the parse workers inherit it)."""
    every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    kinds = np.zeros(0x110000, dtype=np.uint8)
    kinds[[m.start() for m in re.finditer(f"[^\\W_{CJK_CLASS}]", every)]] = WORD_CHAR
    kinds[[m.start() for m in re.finditer(f"[{CJK_CLASS}]", every)]] = CJK_CHAR
    return kinds


def word_code(word: str) -> int:
    term = word not in STOP_WORDS and not word.isdigit()
    return zlib.crc32(word.encode()) | 1 << 32 | (TERM_BIT if term else 0)


def word_ids(normal_text: str) -> np.ndarray:
    """The codes of the text's words that are terms."""
    codes, terms = token_codes(LATIN_WORD.findall(normal_text))
    return codes[terms]


def copy_arrays(signatures: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of copies, as arrays: the first article's id, the second's (larger), and
    the estimated Jaccard (4 decimals), in the order of the pairs. LSH proposes the
    candidates: pairs that agree on a whole band of the signature, with the bands
    datasketch's MinHashLSH picks for the threshold; each is then kept only if its
    estimate is at or above the threshold. The bands are grouped with numpy, not inserted
    one article at a time into datasketch's index: the same candidates. The pairs stay
    arrays (an archive of many copies of each text has millions of them)."""
    articles = np.array(sorted(signatures), dtype=np.int64)
    none = np.zeros(0, dtype=np.int64)
    if len(articles) < 2:
        return none, none, np.zeros(0)
    values = np.stack([signatures[article] for article in articles.tolist()]).astype(np.uint32)
    bands, width = lsh_bands()
    candidates = none
    for band in range(bands):
        part = np.ascontiguousarray(values[:, band * width : (band + 1) * width]).view(np.dtype((np.void, 4 * width))).ravel()
        candidates = distinct(np.concatenate([candidates, same_value_pairs(part)]))
    first, second = candidates // len(articles), candidates % len(articles)
    overlaps = np.concatenate(
        [
            np.count_nonzero(values[first[start : start + CHUNK]] == values[second[start : start + CHUNK]], axis=1)
            for start in range(0, len(first), CHUNK)
        ]
        or [none]
    ) / NUM_PERM
    kept = overlaps >= COPY_THRESHOLD
    return articles[first[kept]], articles[second[kept]], np.round(overlaps[kept], 4)


@functools.lru_cache(maxsize=1)
def lsh_bands() -> tuple[int, int]:
    """datasketch's bands for COPY_THRESHOLD and NUM_PERM: (how many, values each)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=COPY_THRESHOLD, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def same_value_pairs(values: np.ndarray) -> np.ndarray:
    """Every (i, j), i < j, of the places holding equal values, as keys i x N + j. The
    groups of one size are paired in one step."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(first_of_runs(ordered))
    sizes = np.diff(np.append(starts, len(values)))
    keys = [np.zeros(0, dtype=np.int64)]
    for size in np.unique(sizes[sizes > 1]).tolist():
        begins = starts[sizes == size]
        groups = np.sort(order[begins[:, None] + np.arange(size)], axis=1).astype(np.int64)
        earlier, later = np.triu_indices(size, 1)
        keys.append((groups[:, earlier] * len(values) + groups[:, later]).ravel())
    return np.concatenate(keys)


# --- related articles ---------------------------------------------------------------


def term_counts(normal_text: str, words: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The text's terms, each overlapping pair of CJK characters and each word of two
    letters or more, as sorted distinct 32-bit ids (uint32) and their counts (uint32).
    Two terms with one id count as one: rare among the few thousand terms of a text, and
    harmless to a similarity. `words`: the text's `word_ids`, when the caller has them."""
    chars = np.frombuffer(normal_text.encode("utf-32-le"), dtype="<u4")
    cjk = char_kinds()[chars] == CJK_CHAR
    codes = chars.astype(np.uint64)
    pairs = cjk[:-1] & cjk[1:]
    bigrams = mix((codes[:-1][pairs] << np.uint64(21)) | codes[1:][pairs])
    ids = np.concatenate([bigrams, word_ids(normal_text) if words is None else words])
    ordered = np.sort((ids & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    starts = np.flatnonzero(first_of_runs(ordered))
    return ordered[starts], np.diff(np.append(starts, len(ordered))).astype(np.uint32)


def mix(values: np.ndarray) -> np.ndarray:
    """A 64-bit finalizer (MurmurHash3's), so a pair's two code points spread over 32 bits."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    return values ^ (values >> np.uint64(33))


def related(ids: list[int], term_blobs: list[bytes], topics: dict[int, list[int]], copies: np.ndarray) -> list[tuple]:
    """(article, rank, related, score) rows: each article's RELATED best by score among its
    candidates (`candidate_pairs`), never itself nor a copy (`copies`: (article, copy) id
    pairs, both ways, an array of two columns). Empties `term_blobs` once the matrix is
    built from them.

    A pair found from either side is scored once, exactly (`pair_scores`), and offered to
    both lists. The pairs are scored in chunks, on every core (`scored_chunks`); each
    chunk's scores are merged into the lists in order, so the lists never depend on how
    the chunks were shared out."""
    matrix = tfidf_matrix(term_blobs)
    size = len(ids)
    pairs = candidate_pairs(matrix, copy_keys(ids, copies))
    first, second = pairs // size, pairs % size
    del pairs
    scoring = Scoring(matrix, topic_matrix(ids, topics), first, second)
    starts = list(range(0, len(first), CHUNK))
    lists = BestLists()
    for start, scores in zip(starts, scored_chunks(scoring, starts)):
        stop = start + CHUNK
        lists.offer(first[start:stop], second[start:stop], scores)
    return lists.rows(ids)


def copy_keys(ids: list[int], copies: np.ndarray) -> np.ndarray:
    """The (article, copy) id pairs as sorted keys of their places: article x N + copy."""
    if not len(copies):
        return np.zeros(0, dtype=np.int64)
    places = np.searchsorted(np.asarray(ids, dtype=np.int64), copies)  # ids are sorted: `read_stored` reads them in order
    return distinct(places[:, 0] * len(ids) + places[:, 1])


def candidate_pairs(matrix, copies: np.ndarray) -> np.ndarray:
    """Every pair to score, as sorted keys first x N + second (first < second): for each
    article, each of its TOP_TERMS heaviest terms (`heaviest_terms`) gives the first
    POSTINGS other articles of that term's list, heaviest first (`posting_lists`),
    skipping the article itself and its copies. So an article proposes at most TOP_TERMS
    x POSTINGS candidates however large the archive: the work grows with the archive,
    not with its square. A pair proposed by either side is one pair. A term's list holds
    one article of each group of copies (`copy_groups`), its heaviest: a text copied
    hundreds of times fills no list, and an article reads past a few entries, not past
    all its copies."""
    size = matrix.shape[0]
    found = [np.zeros(0, dtype=np.int64)]
    for article, other in proposals(matrix, copies):
        found.append(distinct(np.minimum(article, other) * size + np.maximum(article, other)))
    return distinct(np.concatenate(found))


def proposals(matrix, copies: np.ndarray):
    """(article, other) arrays, about LOOKED_UP entries of the lists read at a time: what
    each article proposes (`candidate_pairs`)."""
    size = matrix.shape[0]
    if size < 2:
        return
    rows, terms = heaviest_terms(matrix)
    if not len(rows):  # no article shares a term with another
        return
    group, skipped = copy_groups(copies, size)
    starts, listed = posting_lists(matrix, terms, POSTINGS + int(skipped.max()), group)
    read = np.cumsum(np.minimum(starts[terms + 1] - starts[terms], POSTINGS + skipped[rows]))
    bounds = np.searchsorted(read, np.arange(0, int(read[-1]), LOOKED_UP), side="right").tolist() + [len(rows)]
    for begin, end in zip(bounds[:-1], bounds[1:]):
        row, term = rows[begin:end], terms[begin:end]
        yield looked_up(starts, listed, row, term, skipped[row], copies, size)


def copy_groups(copies: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each article's group, the least place among it and its copies; and how many groups
    an article and its copies span, the most entries of a term's list (one article a
    group) that can be the article or its copies."""
    group = np.arange(size)
    if not len(copies):
        return group, np.ones(size, dtype=np.int64)
    articles, others = copies // size, copies % size
    np.minimum.at(group, articles, others)
    spanned = distinct(np.concatenate([np.arange(size) * size + group, articles * size + group[others]]))
    return group, np.bincount(spanned // size, minlength=size)


def looked_up(starts, listed, rows, terms, skipped, copies, size) -> tuple[np.ndarray, np.ndarray]:
    """(article, other) for each article's term: the term's first POSTINGS articles that
    are neither the article nor one of its copies (it reads on past those, `skipped`)."""
    wanted = np.minimum(starts[terms + 1] - starts[terms], POSTINGS + skipped)
    lookup = np.repeat(np.arange(len(rows)), wanted)
    offsets = np.arange(len(lookup)) - np.repeat(np.cumsum(wanted) - wanted, wanted)
    other = listed[starts[terms][lookup] + offsets].astype(np.int64)
    article = rows[lookup]
    keep = other != article
    if len(copies):
        keys = article * size + other
        keep &= copies[np.minimum(np.searchsorted(copies, keys), len(copies) - 1)] != keys
    lookup, article, other = lookup[keep], article[keep], other[keep]
    keep = rank_in_runs(lookup) < POSTINGS
    return article[keep], other[keep]


def heaviest_first(major: np.ndarray, weights: np.ndarray, minor: np.ndarray, minor_size: int) -> np.ndarray:
    """The order of places by `major`, then by weight (in [0, 1], heaviest first, to the
    precision the key leaves it), then by `minor`: one sort of unique packed 63-bit keys,
    several times faster than np.lexsort of the three."""
    minor_bits = max(1, minor_size.bit_length())
    major_bits = max(1, int(major.max()).bit_length()) if len(major) else 1
    weight_bits = 63 - major_bits - minor_bits  # 20 or more (a millionth) up to 8 million terms and a million articles
    lightness = np.round(np.clip(1.0 - weights, 0.0, 1.0) * ((1 << weight_bits) - 1)).astype(np.int64)
    return np.argsort((major.astype(np.int64) << (weight_bits + minor_bits)) | (lightness << minor_bits) | minor)


def best_first(major: np.ndarray, scores: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """The order of places by `major`, then by score (rounded to 6 decimals, highest
    first), then by `minor`: as `heaviest_first`, the scores exact in millionths."""
    millionths = np.round(scores * 1e6).astype(np.int64)
    top = int(millionths.max()) if len(millionths) else 0
    minor_bits = max(1, int(minor.max()).bit_length()) if len(minor) else 1
    score_bits = max(1, top.bit_length())
    key = (major.astype(np.int64) << (score_bits + minor_bits)) | ((top - millionths) << minor_bits) | minor
    return np.argsort(key)


def rank_in_runs(values: np.ndarray) -> np.ndarray:
    """Each place's rank in its run of equal values (0 for the first): values sorted."""
    firsts = np.flatnonzero(first_of_runs(values))
    lengths = np.diff(np.append(firsts, len(values)))
    return np.arange(len(values)) - np.repeat(firsts, lengths)


def heaviest_terms(matrix) -> tuple[np.ndarray, np.ndarray]:
    """(article, term) for each article's TOP_TERMS heaviest terms (by TF-IDF weight, ties
    by term), a block of ROWS rows at a time."""
    rows, terms = [], []
    for start in range(0, matrix.shape[0], ROWS):
        block = matrix[start : start + ROWS]
        local = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        order = heaviest_first(local, block.data, block.indices, matrix.shape[1])
        keep = order[rank_in_runs(local[order]) < TOP_TERMS]
        rows.append(local[keep] + start)
        terms.append(block.indices[keep])
    return np.concatenate(rows).astype(np.int64), np.concatenate(terms).astype(np.int64)


def posting_lists(matrix, terms: np.ndarray, length: int, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `terms`, its first `length` articles by weight (heaviest first, ties by
    place), the first of each `group` only, as CSR-like arrays: term t's articles are
    listed[starts[t]:starts[t + 1]]. Read a block of ROWS rows at a time, each block's
    lists cut to `length` before they join (what a cut leaves out, `length` groups of the
    block outweigh)."""
    width = matrix.shape[1]
    needed = np.zeros(width, dtype=bool)
    needed[terms] = True
    parts, held, merged = [], 0, 0
    for start in range(0, matrix.shape[0], ROWS):
        block = matrix[start : start + ROWS]
        local = np.repeat(np.arange(start, start + block.shape[0]), np.diff(block.indptr))
        inside = needed[block.indices]
        parts.append(first_of_each(block.indices[inside], local[inside], block.data[inside], length, group))
        held += len(parts[-1][0])
        if held > 2 * merged + CUT_FROM:  # merged as they come, so that no more than twice the lists are held
            parts = [first_of_each(*(np.concatenate(part) for part in zip(*parts)), length, group)]
            held = merged = len(parts[0][0])
    columns, rows, _ = first_of_each(*(np.concatenate(part) for part in zip(*parts)), length, group)
    starts = np.zeros(width + 1, dtype=np.int64)
    np.cumsum(np.bincount(columns, minlength=width), out=starts[1:])
    return starts, rows.astype(np.int32)


def first_of_each(columns, rows, weights, length, group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first `length` (column, row, weight) of each column, heaviest first, ties by
    row, one row of each group; sorted by column."""
    order = heaviest_first(columns, weights, rows, int(rows.max()) + 1 if len(rows) else 1)
    columns, rows, weights = columns[order], rows[order], weights[order]
    groups = columns.astype(np.int64) * len(group) + group[rows]
    by_group = np.argsort(groups, kind="stable")  # the heaviest of a group first
    heads = np.zeros(len(groups), dtype=bool)
    heads[by_group[first_of_runs(groups[by_group])]] = True
    columns, rows, weights = columns[heads], rows[heads], weights[heads]
    keep = rank_in_runs(columns) < length
    return columns[keep], rows[keep], weights[keep]


@dataclass
class Scoring:
    """What scoring a chunk reads: the TF-IDF matrix, the topics, and the pairs (the places
    of their two articles)."""

    matrix: object
    subjects: object
    first: np.ndarray
    second: np.ndarray


_scoring: Scoring | None = None  # what the forked processes of `scored_chunks` read


def scored_chunks(scoring: Scoring, starts: list[int]):
    """`score_chunk` of each start, in order. From PARALLEL_FROM pairs on, on every core:
    forked processes inherit the matrices (nothing is copied to them) and send back each
    chunk's scores. Threads would not help: scipy's sparse products hold the GIL. If a
    scoring process dies (the system out of memory kills the largest), this one scores
    the chunks left."""
    global _scoring
    from postsdb.workers import usable_cpus, worker_pool

    workers = usable_cpus()
    _scoring = scoring
    done = 0
    try:
        if workers < 2 or len(scoring.first) < PARALLEL_FROM:
            yield from map(score_chunk, starts)
            return
        give_back_freed_memory()
        try:
            with worker_pool(min(workers, len(starts))) as pool:
                for scored in pool.map(score_chunk, starts):
                    yield scored
                    done += 1
        except BrokenProcessPool:
            yield from map(score_chunk, starts[done:])
    finally:
        _scoring = None


def give_back_freed_memory() -> None:
    """Return the heap's freed pages to the system (glibc's malloc_trim), so that the
    forked processes do not start with them: what building the matrix let go stays mapped
    otherwise (at 13,590 articles, 200 MB in each process)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def score_chunk(start: int) -> np.ndarray:
    scoring = _scoring
    stop = start + CHUNK
    return pair_scores(scoring.matrix, scoring.subjects, scoring.first[start:stop], scoring.second[start:stop])


def pair_scores(matrix, subjects, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The exact score of each pair: the cosine of the two texts (rows of unit length),
    zero below MIN_SCORE, times 1 + TOPIC_BOOST x the cosine of their topics."""
    scores = text_cosines(matrix, first, second)
    scores[scores < MIN_SCORE] = 0.0  # before topics: they must not lift a pair the texts reject
    if subjects is not None:
        boost = np.asarray(subjects[first].multiply(subjects[second]).sum(axis=1)).ravel()
        scores *= 1.0 + TOPIC_BOOST * boost
    return scores


def text_cosines(matrix, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The dot product of rows first[k] and second[k], `first` sorted: each first row is
    spread once into a dense vector, which the rows of its partners multiply (the merge
    of two sparse rows, pair by pair, costs four times as much)."""
    dense = np.zeros(matrix.shape[1])
    scores = np.empty(len(first))
    bounds = np.append(np.flatnonzero(first_of_runs(first)), len(first)).tolist()
    for begin, end in zip(bounds[:-1], bounds[1:]):
        row = int(first[begin])
        span = slice(matrix.indptr[row], matrix.indptr[row + 1])
        dense[matrix.indices[span]] = matrix.data[span]
        scores[begin:end] = matrix[second[begin:end]] @ dense
        dense[matrix.indices[span]] = 0.0
    return scores


class BestLists:
    """Each article's RELATED best so far, by score rounded to 6 decimals, then by id (the
    order never depends on how the scores were computed); a score of zero is no relation.
    Offered chunks are held until they outgrow what is kept, then cut down to it."""

    def __init__(self) -> None:
        self.kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.held = self.after_cut = 0

    def offer(self, first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> None:
        rounded = np.round(scores, 6)
        live = rounded > 0
        first, second, rounded = first[live], second[live], rounded[live]
        self.kept.append((np.concatenate([first, second]), np.concatenate([second, first]), np.concatenate([rounded, rounded])))
        self.held += 2 * len(first)
        if self.held > 2 * self.after_cut + CUT_FROM:
            self.cut()

    def cut(self) -> None:
        article, other, score = (np.concatenate(part) for part in zip(*self.kept)) if self.kept else (np.zeros(0, dtype=np.int64),) * 3
        order = best_first(article, score, other)
        keep = order[rank_in_runs(article[order]) < RELATED]
        self.kept = [(article[keep], other[keep], score[keep])]
        self.held = self.after_cut = len(keep)

    def rows(self, ids: list[int]) -> list[tuple]:
        self.cut()
        article, other, score = self.kept[0]
        known = np.asarray(ids, dtype=np.int64)
        ranks = rank_in_runs(article) + 1
        return list(zip(known[article.astype(np.int64)].tolist(), ranks.tolist(), known[other.astype(np.int64)].tolist(), score.tolist()))


def tfidf_matrix(term_blobs: list[bytes]):
    """The TF-IDF matrix, rows of unit length: sublinear term frequency x smoothed inverse
    document frequency, one sparse (CSR) matrix whose columns are the terms in the order of
    their ids. A term in one article only links it to none, so it is left out.

    Two passes over the blobs, BLOBS at a time, so that nothing larger than the matrix is
    held: the first counts each term's articles, the second fills the matrix's arrays,
    whose size the counts give. Empties `term_blobs` once read."""
    from scipy import sparse

    size = len(term_blobs)
    vocabulary, df = document_frequencies(term_blobs)
    idf = np.log((1 + size) / (1 + df)) + 1.0
    kept_column = running_count(df >= 2) - 1
    entries = int(df[df >= 2].sum())
    data, indices = np.empty(entries), np.empty(entries, dtype=np.int32)
    indptr = np.zeros(size + 1, dtype=np.int64)
    runs = run_starts(vocabulary)
    for start in range(0, size, BLOBS):
        keys, counts, lengths = unpack_all(term_blobs[start : start + BLOBS])  # a copy of the slice is emptied
        rows = np.repeat(np.arange(len(lengths)), lengths)
        columns = places_in(vocabulary, keys, runs)
        shared = df[columns] >= 2
        rows, columns, weights = rows[shared], columns[shared], np.log(counts[shared].astype(np.float64))
        weights += 1.0
        weights *= idf[columns]
        norms = np.sqrt(np.bincount(rows, weights=np.square(weights), minlength=len(lengths)))
        norms[norms == 0] = 1.0
        weights /= norms[rows]
        filled = indptr[start]
        data[filled : filled + len(weights)] = weights
        indices[filled : filled + len(weights)] = kept_column[columns]
        indptr[start + 1 : start + 1 + len(lengths)] = filled + np.cumsum(np.bincount(rows, minlength=len(lengths)))
    term_blobs.clear()
    width = int(kept_column[-1] + 1) if len(df) else 0
    return sparse.csr_matrix((data, indices, indptr), shape=(size, width))


def document_frequencies(term_blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Every term (sorted ids) and the number of articles it is in, BLOBS at a time: each
    block's counts are merged into those of the blocks before."""
    vocabulary, df = np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    for start in range(0, len(term_blobs), BLOBS):
        keys, _, _ = unpack_all(term_blobs[start : start + BLOBS])  # a copy of the slice is emptied
        keys = np.sort(keys)
        firsts = np.flatnonzero(first_of_runs(keys))
        counts = np.diff(np.append(firsts, len(keys)))  # the block's own terms, counted first: a tenth of its keys
        both = np.concatenate([vocabulary, keys[firsts]])
        order = np.argsort(both, kind="stable")
        both = both[order]
        firsts = np.flatnonzero(first_of_runs(both))
        vocabulary, df = both[firsts], np.add.reduceat(np.concatenate([df, counts])[order], firsts) if len(firsts) else df
    return vocabulary, df


def places_in(vocabulary: np.ndarray, keys: np.ndarray, runs: tuple | None = None) -> np.ndarray:
    """Each key's place in the sorted distinct `vocabulary` that holds it, from a table of
    where each run of keys sharing their top bits begins (`run_starts`, made once for a
    vocabulary read in blocks): a key's place is its run's beginning, moved on past the
    smaller keys of its run, a step or two for the few keys whose run holds several (a
    binary search of each key took three times as long)."""
    run_start, shift = runs or run_starts(vocabulary)
    columns = run_start[keys >> shift]
    behind = np.flatnonzero(vocabulary[np.minimum(columns, len(vocabulary) - 1)] != keys) if len(vocabulary) else columns[:0]
    while len(behind):
        columns[behind] += 1
        behind = behind[vocabulary[columns[behind]] != keys[behind]]
    return columns.astype(np.int32)


def run_starts(vocabulary: np.ndarray) -> tuple[np.ndarray, np.uint32]:
    """Where each run of the sorted `vocabulary`'s keys that share their top bits begins,
    and the shift that gives a key's top bits. Up to 2^24 places: made once, not per block
    of keys (at 4,530 articles, a second a build made three times)."""
    bits = min(24, max(16, len(vocabulary).bit_length() + 2))  # about a quarter of the runs hold a key
    shift = np.uint32(32 - bits)
    run_start = np.zeros((1 << bits) + 1, dtype=np.int64)
    np.cumsum(np.bincount(vocabulary >> shift, minlength=1 << bits), out=run_start[1:])
    return run_start, shift


def running_count(flags: np.ndarray) -> np.ndarray:
    """np.cumsum of a boolean array, as int64: summed as int64, three times faster."""
    counts = flags.view(np.int8).astype(np.int64)
    return np.cumsum(counts, out=counts)


def topic_matrix(ids: list[int], topics: dict[int, list[int]]):
    """Articles x topics, each topic weighted by its rarity, rows of unit length; None if
    no article has a topic."""
    from scipy import sparse

    pairs = [(i, tag) for i, article in enumerate(ids) for tag in topics.get(article, ())]
    if not pairs:
        return None
    rows, tags = zip(*pairs)
    vocabulary, columns = np.unique(np.array(tags, dtype=np.int64), return_inverse=True)
    df = np.bincount(columns, minlength=len(vocabulary))
    weights = np.log((1 + len(ids)) / df)
    matrix = sparse.csr_matrix((weights[columns], (rows, columns)), shape=(len(ids), len(vocabulary)))
    return unit_rows(matrix)


def unit_rows(matrix):
    from scipy import sparse

    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return (sparse.diags(1.0 / norms) @ matrix).tocsr()


# --- in the database ------------------------------------------------------------------

# What the article page reads (plugins/article_page.py), and the benchmark times.
RELATED_SQL = """
select articles.id, articles.title, articles.published_date, articles.source, articles.publication, articles.author
from related_articles join articles on articles.id = related_articles.related_id
where related_articles.article_id = :id order by related_articles.rank
"""
COPIES_SQL = """
select articles.id, articles.title, articles.url, articles.source, articles.published_date, article_copies.overlap
from article_copies join articles on articles.id = article_copies.copy_id
where article_copies.article_id = :id order by articles.published, articles.id
"""


@dataclass
class Stored:
    """Every article's features and topics, as the database holds them, by article id."""

    ids: list[int]
    signatures: dict[int, np.ndarray]
    term_blobs: list[bytes]
    topics: dict[int, list[int]]


def read_stored(conn: sqlite3.Connection) -> Stored:
    stored = Stored([], {}, [], {})
    for article, values, blob in conn.execute("select article_id, signature, terms from article_features order by article_id"):
        stored.ids.append(article)
        stored.term_blobs.append(blob)
        if values is not None:
            stored.signatures[article] = np.frombuffer(values, dtype=np.uint32)
    for article, tag in conn.execute("select article_id, tag_id from article_tags order by article_id, tag_id"):
        stored.topics.setdefault(article, []).append(tag)
    return stored


def update(conn: sqlite3.Connection) -> None:
    """Rewrite `article_copies` and `related_articles` from every article's features."""
    stored = read_stored(conn)
    first, second, overlaps = copy_arrays(stored.signatures)
    copies = np.concatenate([np.stack([first, second], axis=1), np.stack([second, first], axis=1)])
    overlaps = np.concatenate([overlaps, overlaps])
    order = np.lexsort((copies[:, 1], copies[:, 0]))
    conn.execute("delete from article_copies")
    conn.executemany(
        "insert into article_copies (article_id, copy_id, overlap) values (?, ?, ?)",
        (row for start in range(0, len(order), CHUNK) for row in copy_rows(copies, overlaps, order[start : start + CHUNK])),
    )
    conn.execute("delete from related_articles")
    conn.executemany(
        "insert into related_articles (article_id, rank, related_id, score) values (?, ?, ?, ?)",
        related(stored.ids, stored.term_blobs, stored.topics, copies),
    )


def copy_rows(copies: np.ndarray, overlaps: np.ndarray, places: np.ndarray) -> list[tuple]:
    """The rows of `article_copies` at these places: a slice at a time, not millions of tuples."""
    return list(zip(copies[places, 0].tolist(), copies[places, 1].tolist(), overlaps[places].tolist()))


def store(conn: sqlite3.Connection, article: int, found: Features) -> None:
    conn.execute(
        "insert or replace into article_features (article_id, signature, terms) values (?, ?, ?)",
        (article, found.signature, found.terms),
    )
