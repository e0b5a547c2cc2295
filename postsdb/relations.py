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

What an incremental build recomputes, and why it stays exact: the features of an article
(its MinHash signature and term counts, in `article_features`) depend on its text alone,
so they are computed by the parse workers for the articles the build (re)loads, and kept
for the rest. Then every pair is worked out again from every article's features: an edit
changes the rarity (IDF) of the terms it touches, and with it every list those terms are
in, so no subset of the lists could be kept exactly; recomputing all makes an incremental
build's tables those of a fresh build (tests/test_relations.py compares them). The cost
grows with the corpus, not with the text to re-read: about 3.6 CPU seconds at 4,500
articles, 2.3 s of it the product of the TF-IDF matrix with itself, scored in chunks by
forked processes on every core, 1 s building that matrix; copies cost little (0.02 s).
What keeps it there, each exact: every pair is scored once (the upper triangle); the terms
of one article are no columns; the terms in more than a twentieth of the articles are
multiplied as a dense block (BLAS), the rest as a sparse product; the matrix is built from
whole arrays, each let go once used; LSH's bands are grouped with numpy. (BLAS sums in
another order with another number of threads: the last of a score's six decimals may
differ between machines, never between two builds on one.) Memory: the matrix's two parts
and the transpose of its sparse one, about 36 bytes a term of an article (0.5 GB at 13,590
articles), and in each scoring process a chunk's scores against the articles after it;
a --no-search build's peak RSS was 0.43 GB at 4,530 articles and 0.97 GB at 13,590 (0.61
and 1.54 GB before the matrix was built from arrays let go once used). Leaving the most common terms out of the product (not of the norms) would change
the lists (a fifth of them at 4,500 articles, for the terms in a tenth of the articles)
and, with those terms a dense block, save next to nothing. A bound for larger archives
would keep the IDF of the last full build and recompute only the changed articles' rows
and the lists they enter or leave.
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
CHUNK = 512  # rows of the similarity matrix held at once: 512 x N floats
PARALLEL_FROM = 2 * CHUNK  # fewer articles than this are scored in one process: no fork to pay
COMMON_SHARE = 0.05  # a term in more of the articles than this is multiplied as a dense column

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
    the few thousand values of a text."""
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


def copy_pairs(signatures: dict[int, np.ndarray]) -> dict[tuple[int, int], float]:
    """(a, b) with a < b -> estimated Jaccard, for every pair at or above COPY_THRESHOLD.
    LSH proposes the candidates: pairs that agree on a whole band of the signature, with
    the bands datasketch's MinHashLSH picks for the threshold; each is then kept only if
    its estimate is at or above the threshold. The bands are grouped with numpy, not
    inserted one article at a time into datasketch's index: the same candidates."""
    articles = np.array(sorted(signatures), dtype=np.int64)
    if len(articles) < 2:
        return {}
    values = np.stack([signatures[article] for article in articles.tolist()]).astype(np.uint32)
    bands, width = lsh_bands()
    candidates = set()
    for band in range(bands):
        part = np.ascontiguousarray(values[:, band * width : (band + 1) * width]).view(np.dtype((np.void, 4 * width))).ravel()
        candidates.update(same_value_pairs(part))
    if not candidates:
        return {}
    first, second = np.array(sorted(candidates), dtype=np.int64).T
    overlaps = np.count_nonzero(values[first] == values[second], axis=1) / NUM_PERM
    kept = overlaps >= COPY_THRESHOLD
    return {
        (int(articles[a]), int(articles[b])): round(float(overlap), 4)
        for a, b, overlap in zip(first[kept], second[kept], overlaps[kept])
    }


@functools.lru_cache(maxsize=1)
def lsh_bands() -> tuple[int, int]:
    """datasketch's bands for COPY_THRESHOLD and NUM_PERM: (how many, values each)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=COPY_THRESHOLD, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def same_value_pairs(values: np.ndarray) -> list[tuple[int, int]]:
    """Every (i, j), i < j, of the places holding equal values."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(first_of_runs(ordered))
    sizes = np.diff(np.append(starts, len(values)))
    pairs = []
    for begin, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
        group = sorted(order[begin : begin + size].tolist())
        pairs.extend((a, b) for k, a in enumerate(group) for b in group[k + 1 :])
    return pairs


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


def related(ids: list[int], term_blobs: list[bytes], topics: dict[int, list[int]], copies: set) -> list[tuple]:
    """(article, rank, related, score) rows: each article's RELATED best by score. Empties
    `term_blobs` as it reads them (at 45,000 articles they are 0.3 GB).

    The scores are symmetric, so each pair is computed once: the rows of a chunk against
    the articles from the chunk on (the upper triangle). The chunk's rows pick their best
    from that; the later articles' columns keep their own best few of the chunk, which
    their rows take in when their turn comes. Half the products of the whole square. The
    chunks are scored on every core (`scored_chunks`), then merged here in order."""
    common, rare = tfidf_parts(term_blobs)  # it lets the blobs go as it reads them
    position = {article: i for i, article in enumerate(ids)}
    copy_cells = np.array(sorted((position[a], position[b]) for a, b in copies), dtype=np.int64).reshape(-1, 2)
    # rare.T.tocsr() once: a product with a transpose would convert it every time.
    scoring = Scoring(rare, rare.T.tocsr(), common, topic_matrix(ids, topics), copy_cells)
    earlier: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first column, rows, scores) of past chunks
    rows = []
    starts = list(range(0, len(ids), CHUNK))
    for start, (own_columns, own_scores, later) in zip(starts, scored_chunks(scoring, starts)):
        stop = min(start + CHUNK, len(ids))
        parts_columns, parts_scores = [own_columns], [own_scores]
        for first, past_rows, past_scores in earlier:
            parts_columns.append(past_rows[:, start - first : stop - first].T)
            parts_scores.append(past_scores[:, start - first : stop - first].T)
        if later is not None:
            earlier.append((stop, *later))
        rows.extend(best_rows(ids, start, np.hstack(parts_columns), np.hstack(parts_scores)))
    return rows


@dataclass
class Scoring:
    """What scoring a chunk reads: the TF-IDF matrix's rare terms (and their transpose)
    and common terms, the topics, and the (row, column) places of the copies."""

    rare: object
    rare_t: object
    common: np.ndarray
    subjects: object
    copy_cells: np.ndarray

    @property
    def size(self) -> int:
        return self.common.shape[0]


_scoring: Scoring | None = None  # what the forked processes of `scored_chunks` read


def scored_chunks(scoring: Scoring, starts: list[int]):
    """`score_chunk` of each start, in order. From PARALLEL_FROM articles on, on every
    core: forked processes inherit the matrices (nothing is copied to them) and send back
    each chunk's few best; each uses one BLAS thread, the cores being taken already.
    Threads would not help: scipy's sparse product holds the GIL. If a scoring process
    dies (the system out of memory kills the largest), this one scores the chunks left."""
    global _scoring
    from postsdb.workers import usable_cpus, worker_pool

    workers = usable_cpus()
    _scoring = scoring
    done = 0
    try:
        if workers < 2 or scoring.size < PARALLEL_FROM:
            yield from map(score_chunk, starts)
            return
        give_back_freed_memory()
        try:
            with worker_pool(min(workers, len(starts)), setup=one_blas_thread) as pool:
                for scored in pool.map(score_chunk, starts):  # the largest chunk first: the cores stay busy to the end
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


def one_blas_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def score_chunk(start: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The best few of the chunk's rows (columns and scores), and, if articles come after
    it, their best few among the chunk's rows (rows and scores, a column each)."""
    scoring = _scoring
    keep = RELATED + 1  # candidates a row keeps from each part: one more than a list, as before
    stop = min(start + CHUNK, scoring.size)
    block = pair_scores(scoring.rare, scoring.rare_t, scoring.common, scoring.subjects, start, stop)
    inside = np.arange(stop - start)
    block[inside, inside] = 0.0  # never the article itself
    cells = scoring.copy_cells
    cells = cells[(cells[:, 0] >= start) & (cells[:, 0] < stop) & (cells[:, 1] >= start)]
    block[cells[:, 0] - start, cells[:, 1] - start] = 0.0  # nor a copy
    own_columns, own_scores = best_of(block, keep, axis=1)
    if stop == scoring.size:
        return own_columns + start, own_scores, None
    later_rows, later_scores = best_of(block[:, stop - start :], keep, axis=0)
    return own_columns + start, own_scores, (later_rows + start, later_scores)


def pair_scores(rare, rare_t, common, subjects, start: int, stop: int) -> np.ndarray:
    """The scores of the articles start..stop against those from start on."""
    block = (rare[start:stop] @ rare_t[:, start:]).toarray()
    block += common[start:stop] @ common[start:].T
    block[block < MIN_SCORE] = 0.0  # before topics: they must not lift a pair the texts reject
    if subjects is not None:
        boost = (subjects[start:stop] @ subjects[start:].T.tocsr()).toarray()
        boost *= TOPIC_BOOST  # in place: 1 + TOPIC_BOOST x the topics' cosine, one array of the block's size
        boost += 1.0
        block *= boost
    return block


def best_of(scores: np.ndarray, keep: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The places of the `keep` highest scores along an axis, and the scores."""
    if scores.shape[axis] > keep:
        places = np.argpartition(-scores, keep - 1, axis=axis)
        places = places[:, :keep] if axis == 1 else places[:keep]
    else:
        places = np.indices(scores.shape)[axis]
    return places, np.take_along_axis(scores, places, axis=axis)


def best_rows(ids: list[int], start: int, columns: np.ndarray, scores: np.ndarray) -> list[tuple]:
    """Each row's RELATED best of its candidates (the columns, with their scores), by score
    rounded to 6 decimals, then by id: the order never depends on how the matrix was
    computed. A score of zero is no relation."""
    known = np.asarray(ids, dtype=np.int64)
    others = known[columns]
    rounded = np.round(scores, 6)
    order = np.lexsort((others, -rounded), axis=1)[:, :RELATED]
    best = np.take_along_axis(others, order, axis=1)
    best_scores = np.take_along_axis(rounded, order, axis=1)
    rows = []
    for offset, (found, values) in enumerate(zip(best.tolist(), best_scores.tolist())):
        article = ids[start + offset]
        rows.extend((article, rank, other, value) for rank, (other, value) in enumerate(zip(found, values), 1) if value > 0)
    return rows


def tfidf_parts(term_blobs: list[bytes]):
    """The TF-IDF matrix, rows of unit length: sublinear term frequency x smoothed inverse
    document frequency. A term in one article only links it to none, so it is left out.
    Built in whole arrays: one sort of every (term, place) pair numbers the terms and
    counts their articles.

    Returned as two parts whose products add up to its own: the terms in more than
    COMMON_SHARE of the articles as a dense array (float32), the rest sparse, each part's
    columns in the order of the terms' ids. A term in d articles costs d² multiplications
    in a sparse product, a few nanoseconds each with the bookkeeping of a nearly full
    result; as a dense column it costs N² at a fraction of a nanosecond (BLAS), cheaper
    once d passes about N/20. Each part is built from the arrays, never the whole matrix.
    Empties `term_blobs` as it reads them."""
    from scipy import sparse

    size = len(term_blobs)
    keys, counts, lengths = unpack_all(term_blobs)
    columns, df = term_columns(keys)
    del keys
    rows = np.repeat(np.arange(size, dtype=np.int32), lengths)
    shared = df[columns] >= 2
    rows, columns, weights = rows[shared], columns[shared], counts[shared].astype(np.float64)
    del counts, shared
    idf = np.log((1 + size) / (1 + df)) + 1.0
    np.log(weights, out=weights)  # in place, as are the next steps: at 45,000 articles each copy is 0.5 GB
    weights += 1.0
    weights *= idf[columns]
    norms = np.sqrt(np.bincount(rows, weights=np.square(weights), minlength=size))
    norms[norms == 0] = 1.0
    weights /= norms[rows]
    common_terms = df > COMMON_SHARE * size
    in_common = common_terms[columns]
    # Each part's columns: the kept terms of its kind, numbered in the order of their ids.
    common_column = running_count(common_terms & (df >= 2)) - 1
    rare_column = running_count(~common_terms & (df >= 2)) - 1
    common = np.zeros((size, int(common_column[-1] + 1) if len(df) else 0), dtype=np.float32)
    common[rows[in_common], common_column[columns[in_common]]] = weights[in_common]
    rare_rows = ~in_common
    del in_common  # each array is let go once used: the peak is the two parts and little more
    data = weights[rare_rows]
    del weights
    indices = rare_column[columns[rare_rows]].astype(np.int32)
    del columns
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[rare_rows], minlength=size))])
    del rows, rare_rows
    width = int(rare_column[-1] + 1) if len(df) else 0
    return common, sparse.csr_matrix((data, indices, indptr), shape=(size, width))


def term_columns(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each key's column (its rank among the distinct keys) and each column's count: what
    np.unique(return_inverse=True) gives, from one sort of the 32-bit keys and a table of
    where each run of keys sharing their top bits begins among the distinct ones. A key's
    column is its run's beginning, moved on past the smaller keys of its run: a step or
    two for the few keys whose run holds several (a binary search of each key, the way
    before, took three times as long)."""
    ordered = np.sort(keys)
    starts = np.flatnonzero(first_of_runs(ordered))
    df = np.diff(np.append(starts, len(ordered)))
    vocabulary = ordered[starts]
    del ordered
    bits = min(24, max(16, len(vocabulary).bit_length() + 2))  # about a quarter of the runs hold a key
    shift = np.uint32(32 - bits)
    run_start = np.zeros((1 << bits) + 1, dtype=np.int64)
    np.cumsum(np.bincount(vocabulary >> shift, minlength=1 << bits), out=run_start[1:])
    columns = run_start[keys >> shift]
    behind = np.flatnonzero(vocabulary[np.minimum(columns, len(vocabulary) - 1)] != keys) if len(vocabulary) else columns[:0]
    while len(behind):
        columns[behind] += 1
        behind = behind[vocabulary[columns[behind]] != keys[behind]]
    return columns.astype(np.int32), df


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
    pairs = copy_pairs(stored.signatures)
    copies = set(pairs) | {(b, a) for a, b in pairs}
    conn.execute("delete from article_copies")
    conn.executemany(
        "insert into article_copies (article_id, copy_id, overlap) values (?, ?, ?)",
        sorted((a, b, pairs.get((a, b), pairs.get((b, a)))) for a, b in copies),
    )
    conn.execute("delete from related_articles")
    conn.executemany(
        "insert into related_articles (article_id, rank, related_id, score) values (?, ?, ?, ?)",
        related(stored.ids, stored.term_blobs, stored.topics, copies),
    )


def store(conn: sqlite3.Connection, article: int, found: Features) -> None:
    conn.execute(
        "insert or replace into article_features (article_id, signature, terms) values (?, ?, ?)",
        (article, found.signature, found.terms),
    )
