"""Sparse retrieval: tf-idf, the inverted index, cosine scoring and BM25.

Chapter 1 teaches term weighting (tf, idf, tf-idf), cosine scoring, the inverted
index and hashed bigram features; chapter 2 teaches BM25 and its variants.

Every weight is first a small pure function (:func:`tf_weight`, :func:`idf_weight`,
:func:`cosine`, :func:`bm25_idf`, :func:`bm25_tf`, :func:`bm25_term_score`) that
exercises can be graded against; the retrievers apply the same functions to whole
posting arrays.

How retrieval runs (the design of bm25s): the :class:`InvertedIndex` keeps every
posting of the collection in flat numpy arrays, term after term (a compressed
sparse column matrix, documents x terms).  A retriever computes each posting's
contribution to a score once, at index time.  A query with few postings is scored
with other queries in a block: one ``np.bincount`` adds up the postings of their
terms per document, and for the top k, ``np.partition`` of every 8th score bounds
the k-th best from below so that only the few documents above it are sorted.  A
query with many postings (common words in a large collection) runs MaxScore
(Turtle & Flood, 1995), which stops reading postings once the terms left cannot
change the top k (see ``_SparseRetriever``).  Both routes give the same documents
and the same scores, bit for bit.  No Python loop runs over documents.

Conventions shared by every retriever:

* Documents and queries are raw strings, analysed with ``tokenizer``
  (:func:`course_lib.text.tokenize` by default), or lists of string tokens, used as
  they are.
* A query term that is not in the index (out of vocabulary) is ignored.  A query
  of only unknown terms, or an empty query, scores 0 for every document.
* A repeated query term counts once per occurrence (tf-idf: it raises the query
  tf; BM25: its contribution is added once per occurrence, as in bm25s, rank_bm25
  and Lucene).
* Ranking: score descending, then doc id ascending; ``k`` larger than N returns
  all N documents, documents that match nothing included (score 0).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from itertools import accumulate, chain
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from . import ranking
from .checks import check_doc_ids, check_int
from .text import tokenize

VARIANTS = ("robertson", "lucene", "atire", "bm25l", "bm25+")
DEFAULT_DELTA = {"bm25l": 0.5, "bm25+": 1.0}  # the values Lv & Zhai (2011) recommend


# --------------------------------------------------------------------------- tf-idf
def tf_weight(count):
    """Log-scaled term frequency (chapter 1).

    tf_{t,d} = 1 + log10(count(t, d)) if count(t, d) > 0 else 0.
    Works on a number or a numpy array of counts.
    """
    c = np.asarray(count, dtype=np.float64)
    if np.any(c < 0) or np.any(np.isnan(c)):
        raise ValueError(f"count must be >= 0, got {count!r}")
    w = np.zeros_like(c)
    np.log10(c, out=w, where=c > 0)
    w = np.where(c > 0, 1.0 + w, 0.0)
    return float(w) if w.ndim == 0 else w


def idf_weight(N, df):
    """Inverse document frequency (chapter 1).

    idf_t = log10(N / df_t), with N documents of which df_t contain t (1 <= df_t <= N).
    A term in every document gets idf 0.  Works on numbers or numpy arrays.
    """
    N_, df_ = _check_N_df(N, df)
    w = np.log10(N_ / df_)
    return float(w) if w.ndim == 0 else w


def cosine(q, d) -> float:
    """Cosine similarity of a query and a document vector (chapter 1).

    cos(q, d) = (q . d) / (|q| |d|), and 0 when either vector is all zeros.
    ``q`` and ``d`` are both array-likes of the same length, or both mappings
    {term: weight} (a missing term has weight 0).
    """
    if isinstance(q, Mapping) != isinstance(d, Mapping):
        raise TypeError("q and d must both be mappings {term: weight} or both array-likes")
    if isinstance(q, Mapping):
        terms = list(set(q) | set(d))
        q, d = [q.get(t, 0.0) for t in terms], [d.get(t, 0.0) for t in terms]
    qv, dv = np.asarray(q, dtype=np.float64), np.asarray(d, dtype=np.float64)
    if qv.ndim != 1 or qv.shape != dv.shape:
        raise ValueError(f"q and d must be 1-d vectors of one length, got shapes {qv.shape} and {dv.shape}")
    norm = math.sqrt(qv @ qv) * math.sqrt(dv @ dv)
    return float(qv @ dv / norm) if norm > 0 else 0.0


# ----------------------------------------------------------------------------- BM25
def bm25_idf(N, df, variant: str = "lucene"):
    """The idf factor of BM25 (chapter 2); natural logarithms, 1 <= df <= N.

    robertson  log((N - df + 0.5) / (df + 0.5)), clamped at 0 (as bm25s does; the raw
               value is negative for df > N/2)
    lucene     log(1 + (N - df + 0.5) / (df + 0.5))
    atire      log(N / df)
    bm25l      log((N + 1) / (df + 0.5))
    bm25+      log((N + 1) / df)
    """
    N_, df_ = _check_N_df(N, df)
    _check_variant(variant)
    if variant == "robertson":
        w = np.maximum(np.log((N_ - df_ + 0.5) / (df_ + 0.5)), 0.0)
    elif variant == "lucene":
        w = np.log1p((N_ - df_ + 0.5) / (df_ + 0.5))
    elif variant == "atire":
        w = np.log(N_ / df_)
    elif variant == "bm25l":
        w = np.log((N_ + 1) / (df_ + 0.5))
    else:
        w = np.log((N_ + 1) / df_)
    return float(w) if w.ndim == 0 else w


def bm25_tf(tf, dl, avgdl, k1: float = 1.5, b: float = 0.75, variant: str = "lucene", delta=None):
    """The term-frequency factor of BM25 (chapter 2); 0 when tf = 0, for every variant.

    With the length normalisation L = 1 - b + b * dl / avgdl:
    robertson, lucene  tf / (k1 * L + tf)
    atire              (k1 + 1) * tf / (k1 * L + tf)
    bm25l              (k1 + 1) * (c + delta) / (k1 + c + delta), with c = tf / L
    bm25+              (k1 + 1) * tf / (k1 * L + tf) + delta
    ``delta`` defaults to 0.5 for bm25l and 1.0 for bm25+.

    BM25L and BM25+ follow Lv & Zhai (2011): only terms present in the document score,
    so delta is a lower bound on what a present term adds.  bm25s and rank_bm25 also
    credit an absent term with its tf = 0 value (idf * (k1 + 1) * delta / (k1 + delta),
    or idf * delta), which removes that lower bound.
    """
    _check_variant(variant)
    _check_params(k1, b, delta)
    delta = DEFAULT_DELTA.get(variant, 0.0) if delta is None else float(delta)
    tf_, dl_, avgdl_ = (np.asarray(x, dtype=np.float64) for x in (tf, dl, avgdl))
    if np.any(~(tf_ >= 0)) or np.any(~(dl_ >= tf_)):
        raise ValueError(f"tf must be >= 0 and dl >= tf, got tf={tf!r}, dl={dl!r}")
    present = tf_ > 0
    if np.any(present & ~(avgdl_ > 0)):
        raise ValueError(f"avgdl must be > 0 for a term that occurs, got {avgdl!r}")
    safe_avgdl = np.where(avgdl_ > 0, avgdl_, 1.0)
    L = 1.0 - b + b * dl_ / safe_avgdl
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant in ("robertson", "lucene"):
            w = tf_ / (k1 * L + tf_)
        elif variant == "atire":
            w = (k1 + 1) * tf_ / (k1 * L + tf_)
        elif variant == "bm25l":
            c = tf_ / L
            w = (k1 + 1) * (c + delta) / (k1 + c + delta)
        else:
            w = (k1 + 1) * tf_ / (k1 * L + tf_) + delta
    w = np.where(present, w, 0.0)
    return float(w) if w.ndim == 0 else w


def bm25_term_score(tf, df, N, dl, avgdl, k1: float = 1.5, b: float = 0.75,
                    variant: str = "lucene", delta=None):
    """One query term's BM25 contribution to one document's score (chapter 2).

    score(t, d) = bm25_idf(N, df_t) * bm25_tf(tf_{t,d}, |d|, avgdl); a document's score
    is the sum over the query's terms.  See :class:`BM25` for the variants.
    """
    return bm25_idf(N, df, variant) * bm25_tf(tf, dl, avgdl, k1, b, variant, delta)


# ------------------------------------------------------------------- hashed n-grams
def ngrams(tokens: Sequence[str], n: int = 2) -> list[str]:
    """All 1- to n-grams of ``tokens``, words joined by one space (chapter 1).

    ``ngrams(["new", "york", "city"])`` gives
    ``["new", "york", "city", "new york", "york city"]``: unigrams first, then bigrams.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    tokens = list(tokens)
    grams = list(tokens)
    for size in range(2, n + 1):
        grams += [" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)]
    return grams


def feature_bucket(term: str, buckets: int) -> int:
    """The bucket of a term under feature hashing (chapter 1).

    bucket = |murmurhash3_32(term)| mod buckets, the convention of scikit-learn's
    ``HashingVectorizer``.  DrQA hashed unigrams and bigrams into 2**24 buckets this
    way (with the unsigned hash) to index Wikipedia in fixed memory; two terms may
    share a bucket (a collision), which adds their counts.
    """
    check_int(buckets, "buckets")
    return int(_hash_buckets([term], buckets)[0])


def _hash_buckets(terms: Sequence[str], buckets: int) -> np.ndarray:
    from sklearn.utils import murmurhash3_32  # scikit-learn's C murmurhash

    h = np.fromiter((murmurhash3_32(t, seed=0) for t in terms), dtype=np.int64, count=len(terms))
    return np.abs(h) % buckets


# -------------------------------------------------------------------- inverted index
class Posting(NamedTuple):
    """One entry of a postings list: a document, the term's count in it and where."""

    doc_id: Any
    tf: int
    positions: tuple[int, ...] | None


class InvertedIndex:
    """A dictionary from terms to postings lists (chapter 1).

    Build it once with :meth:`build`, then query it many times.  Inside, the
    postings are flat arrays (memory-lean): the postings of term ``terms[j]`` are
    ``doc_index[indptr[j]:indptr[j+1]]`` (document numbers, ascending) with counts
    ``tf[...]``; :meth:`postings` and :meth:`as_dict` give a readable view.

    Attributes: ``N`` (documents), ``terms`` (the sorted vocabulary), ``df``
    (document frequency per term), ``doc_ids``, ``doc_lengths`` (|d| in tokens),
    ``avgdl`` (mean |d|), ``ngram`` and ``buckets`` (the features indexed).
    """

    def __init__(self):
        raise TypeError("use InvertedIndex.build(docs, doc_ids)")

    @classmethod
    def build(
        cls,
        docs: Iterable[str | Sequence[str]],
        doc_ids: Sequence | None = None,
        *,
        tokenizer: Callable[[str], list[str]] = tokenize,
        ngram: int = 1,
        buckets: int | None = None,
        positions: bool | None = None,
    ) -> "InvertedIndex":
        """Index ``docs`` (strings, or lists of string tokens).

        ``doc_ids``: one unique id per document, all str or all int (default 0..N-1).
        ``ngram``: index all 1- to n-grams (:func:`ngrams`) instead of single tokens.
        ``buckets``: hash every term into this many buckets (:func:`feature_bucket`);
        the vocabulary is then the set of used buckets (ints).
        ``positions``: record each token's position (default: when ngram == 1; an
        n-gram index does without them).
        """
        self = object.__new__(cls)
        if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram < 1:
            raise ValueError(f"ngram must be an int >= 1, got {ngram!r}")
        if buckets is not None:
            check_int(buckets, "buckets")
        if positions is None:
            positions = ngram == 1
        elif positions and ngram > 1:
            raise ValueError("positions=True needs ngram=1: an n-gram index records no positions")
        self.tokenizer, self.ngram, self.buckets = tokenizer, ngram, buckets

        if isinstance(docs, (str, bytes)) or not isinstance(docs, Iterable):
            raise TypeError(f"docs must be a list of documents, got {type(docs).__name__}")
        docs = docs if isinstance(docs, list) else list(docs)
        try:
            features = [self.analyze(d, "docs") for d in docs]
        except TypeError:
            for i, d in enumerate(docs):  # name the first bad document
                _as_tokens(d, f"docs[{i}]", tokenizer)
            raise
        N = len(features)
        if N == 0:
            raise ValueError("docs must contain at least one document")
        self.doc_ids = check_doc_ids(doc_ids, N)
        self.N = N

        # 1. The dictionary: sorted vocabulary, and every token mapped to its term id.
        flat = list(chain.from_iterable(features))
        self.doc_lengths = np.fromiter(map(len, features), dtype=np.int64, count=N)
        unique = set(flat)
        bad = next((t for t in unique if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"tokens must be str, got {bad!r} ({type(bad).__name__}) in docs")
        if buckets is None:
            self.terms = sorted(unique)
            self._term_id = {t: j for j, t in enumerate(self.terms)}
            token_term = np.fromiter(map(self._term_id.__getitem__, flat), dtype=np.int32, count=len(flat))
        else:
            features_seen = list(unique)
            feature_id = {t: j for j, t in enumerate(features_seen)}
            used, bucket_term = np.unique(_hash_buckets(features_seen, buckets), return_inverse=True)
            self.terms = used.tolist()
            self._term_id = {t: j for j, t in enumerate(self.terms)}
            token_term = bucket_term[np.fromiter(map(feature_id.__getitem__, flat), dtype=np.int64, count=len(flat))]
        V, T = len(self.terms), len(flat)

        # 2. Sort the token stream by term, keeping stream order inside a term: the
        # canonical CSR form of the (term x token) incidence matrix does exactly that.
        incidence = sp.csr_matrix(
            (np.ones(T, dtype=np.int8), (token_term, np.arange(T))), shape=(V, T)
        )
        incidence.sort_indices()
        order, term_ptr = incidence.indices, incidence.indptr.astype(np.int64)
        token_doc = np.repeat(np.arange(N, dtype=np.int32), self.doc_lengths)[order]

        # 3. Postings: one per run of equal (term, doc) in the sorted stream.
        starts_mask = np.ones(T, dtype=bool)
        starts_mask[1:] = token_doc[1:] != token_doc[:-1]
        starts_mask[term_ptr[:-1]] = True
        starts = np.flatnonzero(starts_mask)
        self.doc_index = token_doc[starts]
        self.tf = np.diff(starts, append=T).astype(np.int32)
        self.indptr = np.searchsorted(starts, term_ptr).astype(np.int64)
        self.df = np.diff(self.indptr)
        if positions:  # term j's positions: positions[term_ptr[j]:term_ptr[j+1]], split by tf
            doc_start = np.repeat(np.cumsum(self.doc_lengths) - self.doc_lengths, self.doc_lengths)
            self.positions = (np.arange(T) - doc_start)[order].astype(np.int32)
            self._term_ptr = term_ptr
        else:
            self.positions = self._term_ptr = None
        self.avgdl = float(self.doc_lengths.mean())
        return self

    def analyze(self, text: str | Sequence[str], name: str = "query") -> list[str]:
        """The terms this index makes of a document or query: tokens, then n-grams."""
        tokens = _as_tokens(text, name, self.tokenizer)
        return tokens if self.ngram == 1 else ngrams(tokens, self.ngram)

    def term_id(self, term) -> int | None:
        """The column of ``term`` in the index (None if it is not indexed)."""
        if self.buckets is not None and isinstance(term, str):
            term = feature_bucket(term, self.buckets)
        return self._term_id.get(term)

    def postings(self, term) -> list[Posting]:
        """The postings list of ``term``: (doc id, tf, positions) by document order; [] if unseen."""
        j = self.term_id(term)
        if j is None:
            return []
        lo, hi = self.indptr[j], self.indptr[j + 1]
        docs, tfs = self.doc_index[lo:hi].tolist(), self.tf[lo:hi].tolist()
        if self.positions is None:
            return [Posting(self.doc_ids[d], f, None) for d, f in zip(docs, tfs)]
        ends = (self._term_ptr[j] + np.cumsum(self.tf[lo:hi])).tolist()
        return [
            Posting(self.doc_ids[d], f, tuple(self.positions[e - f:e].tolist()))
            for d, f, e in zip(docs, tfs, ends)
        ]

    def as_dict(self) -> dict:
        """The whole index as {term: [Posting, ...]}: for small collections."""
        return {t: self.postings(t) for t in self.terms}

    def tf_matrix(self) -> sp.csc_matrix:
        """Raw counts as a documents x terms sparse matrix (columns in ``terms`` order)."""
        return sp.csc_matrix((self.tf, self.doc_index, self.indptr), shape=(self.N, len(self.terms)))

    def doc_number(self, doc_id) -> int:
        """The position of ``doc_id`` in the indexed collection."""
        try:
            return self._doc_number[doc_id]
        except (KeyError, TypeError):
            raise KeyError(f"doc_id {doc_id!r} is not in the index") from None

    @cached_property
    def _doc_number(self) -> dict:
        return {d: i for i, d in enumerate(self.doc_ids)}

    @cached_property
    def id_rank(self) -> np.ndarray:
        """Each document's place in ascending doc id order (ties in a ranking follow it)."""
        return ranking.id_rank(self.doc_ids)

    @cached_property
    def id_order(self) -> np.ndarray:
        """Document numbers in ascending doc id order (the inverse of ``id_rank``)."""
        return np.argsort(self.id_rank)

    def __len__(self) -> int:
        return len(self.terms)

    def __contains__(self, term) -> bool:
        return self.term_id(term) is not None

    def __repr__(self) -> str:
        return f"InvertedIndex(N={self.N}, terms={len(self.terms)}, postings={self.doc_index.size})"


# ------------------------------------------------------------------------ retrievers
class _SparseRetriever:
    """The query path shared by :class:`TfidfRetriever` and :class:`BM25`.

    A subclass fills ``self._contribution`` (one weight per posting, >= 0) in
    ``_weigh_postings`` and turns a query's term counts into per-term weights in
    ``_query_weights``; score(q, d) = sum_t query_weight(t) * contribution(t, d),
    summed in the order the terms first occur in the query.

    :meth:`search` takes one of two routes to the top k, with the same result:

    * A query whose terms have few postings in all is scored in a block with other
      queries: one ``np.bincount`` fills a (queries x N) score matrix, then
      :func:`course_lib.ranking.top_k` ranks each row.
    * A query with many postings (common words in a large collection) runs MaxScore
      (Turtle & Flood, 1995) and reads only part of them.  Each term has an upper bound
      u_t = query_weight(t) * max_d contribution(t, d).  Terms are added into partial
      scores from the largest bound down until the bounds of the others sum to
      R < theta, the k-th best partial score: a document none of the added terms
      reaches scores at most R and cannot enter the top k.  The remaining terms are
      looked up (``np.searchsorted``) only for the documents reached, dropping each
      one whose partial score + R falls below theta.  The few left get their exact
      scores (the same sum as :meth:`scores`) and are ranked by score, then doc id.
    """

    # a block of queries stops at this many postings or scores: its arrays stay in cache
    _BLOCK_POSTINGS, _BLOCK_CELLS = 2**17, 2**20
    # a query with at least this many postings runs MaxScore (measured in benchmarks/sparse.py)
    _MAXSCORE_POSTINGS = 2**14
    # MaxScore reads a term in at least 1/_DENSE_DF of the documents from a dense column
    _DENSE_DF = 4
    # the bounds hold to within this relative margin of float rounding
    _SLACK = 1e-9

    def __init__(self, tokenizer, ngram, buckets):
        self.tokenizer, self.ngram, self.buckets = tokenizer, ngram, buckets
        self.inverted_index: InvertedIndex | None = None

    def index(self, docs, doc_ids: Sequence | None = None):
        """Index ``docs`` (strings or lists of tokens) under ``doc_ids``; returns self."""
        self.inverted_index = InvertedIndex.build(
            docs, doc_ids, tokenizer=self.tokenizer, ngram=self.ngram, buckets=self.buckets, positions=False
        )
        ix = self.inverted_index
        self._contribution = self._weigh_postings(ix)
        # each term's largest contribution; terms whose postings all add 0 (idf 0) are skipped
        self._bound = np.maximum.reduceat(self._contribution, ix.indptr[:-1]) if len(ix) else np.zeros(0)
        self._scoring = self._bound > 0
        self._dense = None
        return self

    def scores(self, query) -> np.ndarray:
        """The score of every document for ``query``, in indexing order (length N)."""
        return self._score_block([self._weighted_terms(query, "query")])[0]

    def search(self, query, k: int = 10) -> list[tuple[Any, float]]:
        """The top ``k`` documents as [(doc_id, score), ...]: score descending, then doc id."""
        check_int(k, "k")
        return self._search([self._weighted_terms(query, "query")], k)[0]

    def search_batch(self, queries: Iterable, k: int = 10) -> list[list[tuple[Any, float]]]:
        """:meth:`search` for each query of ``queries``."""
        check_int(k, "k")
        if isinstance(queries, (str, Mapping)) or not isinstance(queries, Iterable):
            raise TypeError(f"queries must be a list of queries, got {type(queries).__name__} (use .run for a mapping)")
        return self._search([self._weighted_terms(q, f"queries[{i}]") for i, q in enumerate(queries)], k)

    def run(self, queries: Mapping, k: int = 10) -> dict:
        """A TREC-style run {query_id: {doc_id: score}} for ``queries`` {query_id: query}."""
        if not isinstance(queries, Mapping):
            raise TypeError(f"queries must be a mapping {{query_id: query}}, got {type(queries).__name__}")
        return {qid: dict(hits) for qid, hits in zip(queries, self.search_batch(list(queries.values()), k))}

    def _indexed(self) -> InvertedIndex:
        if self.inverted_index is None:
            raise RuntimeError(f"call {type(self).__name__}.index(docs) before searching")
        return self.inverted_index

    def _term_counts(self, query, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The term ids of the query's known terms, in first-occurrence order, and how often each occurs."""
        ix = self._indexed()
        term_id = ix._term_id.get if ix.buckets is None else ix.term_id
        counts = Counter(j for j in map(term_id, ix.analyze(query, name)) if j is not None)
        n = len(counts)
        return np.fromiter(counts, dtype=np.int64, count=n), np.fromiter(counts.values(), dtype=np.float64, count=n)

    def _weighted_terms(self, query, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The query's scoring terms (term ids, first-occurrence order) and their weights;
        a term that adds 0 to every score (idf 0, or query weight 0) is left out."""
        ids, counts = self._term_counts(query, name)
        weights = self._query_weights(ids, counts)
        scoring = self._scoring[ids] & (weights > 0)
        return ids[scoring], weights[scoring]

    def _score_block(self, queries: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The (queries x N) score matrix of weighted queries."""
        ix, n = self.inverted_index, len(queries)
        ids = np.concatenate([i for i, _ in queries])
        weights = np.concatenate([w for _, w in queries])
        rows = np.repeat(np.arange(n), [len(i) for i, _ in queries])
        lengths = ix.df[ids]
        # the positions of all the query terms' postings, without a Python loop
        postings = np.repeat(ix.indptr[ids] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
        cells = np.repeat(rows * ix.N, lengths) + ix.doc_index[postings]
        scores = np.bincount(cells, weights=self._contribution[postings] * np.repeat(weights, lengths), minlength=n * ix.N)
        return scores.reshape(n, ix.N)

    def _search(self, queries: list[tuple[np.ndarray, np.ndarray]], k: int) -> list[list[tuple[Any, float]]]:
        ix = self.inverted_index
        tops: list = [None] * len(queries)
        block, postings, partial = [], 0, None

        def score_block():
            S = self._score_block([queries[j] for j in block])
            for j, top, s in zip(block, *ranking.top_k(S, k, ix.id_rank)):
                tops[j] = top, s

        for q, (ids, weights) in enumerate(queries):
            n_postings = int(ix.df[ids].sum())
            if n_postings >= self._MAXSCORE_POSTINGS:
                partial = np.zeros(ix.N) if partial is None else partial  # all zeros between queries
                tops[q] = self._top(ids, weights, k, partial)
                continue
            block.append(q)
            postings += n_postings
            if postings >= self._BLOCK_POSTINGS or len(block) * ix.N >= self._BLOCK_CELLS:
                score_block()
                block, postings = [], 0
        if block:
            score_block()
        return [list(zip([ix.doc_ids[j] for j in top.tolist()], s.tolist())) for top, s in tops]

    def _top(self, ids, weights, k, partial) -> tuple[np.ndarray, np.ndarray]:
        """The document numbers of one query's top k and their scores (MaxScore, see the class)."""
        ix, contribution, doc_index, slack = self.inverted_index, self._contribution, self.inverted_index.doc_index, 1 + self._SLACK
        dense_row = self._dense_columns()[ids].tolist()
        los, his, ws = ix.indptr[ids].tolist(), ix.indptr[ids + 1].tolist(), weights.tolist()
        bounds = (weights * self._bound[ids]).tolist()
        order = sorted(range(len(ids)), key=bounds.__getitem__, reverse=True)
        rest = list(accumulate((bounds[i] for i in reversed(order)), initial=0.0))[-2::-1]  # R after each term
        # 1. Partial scores from the terms with the largest bounds, until the others cannot lift
        #    a document that only they reach to theta.
        parts, reached, theta, added, r, n = [doc_index[:0]], 0, 0.0, 0.0, 0.0, 0
        for i, r in zip(order, rest):
            n += 1
            docs, values = doc_index[los[i]:his[i]], contribution[los[i]:his[i]] * ws[i]
            before = partial[docs]
            parts.append(docs[(before == 0) & (values > 0)])  # reached now; a partial score of 0 counts as unreached
            partial[docs] = before + values
            reached, added = reached + parts[-1].size, added + bounds[i]
            if r and reached >= k and r * slack < added:  # theta <= added: worth computing
                parts = [np.concatenate(parts)]
                theta = _kth_largest(partial[parts[0]], k)
                if r * slack < theta:
                    break
        candidates = np.concatenate(parts)
        candidates.sort(kind="stable")  # sorted lookups are faster; a merge of sorted runs
        got = partial[candidates]
        partial[candidates] = 0.0
        # 2. The other terms, looked up for the candidates left: one by one, then the common
        #    terms (dense columns) at once; each step drops the candidates that cannot reach
        #    theta any more, with R the bounds of the terms still to come.
        later = order[n:]
        common = [i for i in later if dense_row[i] >= 0]
        for step in [[]] + [[i] for i in later if dense_row[i] < 0] + ([common] if common else []):
            if len(step) == 1 and dense_row[step[0]] < 0:
                (i,) = step
                p = doc_index[los[i]:his[i]].searchsorted(candidates)
                p += los[i]
                np.minimum(p, his[i] - 1, out=p)
                got = got + np.where(doc_index[p] == candidates, contribution[p] * ws[i], 0.0)
            elif step:
                rows = np.array([dense_row[i] for i in step])[:, None]
                got = got + (self._dense[rows, candidates] * weights[step][:, None]).sum(axis=0)
            later = [i for i in later if i not in step]
            if got.size >= k:
                theta = max(theta, _kth_largest(got, k))
            keep = got >= theta / slack - sum(bounds[i] for i in later)
            candidates, got = candidates[keep], got[keep]
        # 3. The exact scores of the candidates left, summed in the order of scores(), and the ranking.
        found = np.empty((len(order), candidates.size))  # contribution(t, d), 0 where t is absent
        dense = [j for j, row in enumerate(dense_row) if row >= 0]
        sparse = [j for j, row in enumerate(dense_row) if row < 0]
        if dense:
            found[dense] = self._dense[np.array([dense_row[j] for j in dense])[:, None], candidates]
        if sparse:
            p = np.array([doc_index[los[j]:his[j]].searchsorted(candidates) for j in sparse])
            p += ix.indptr[ids[sparse]][:, None]
            np.minimum(p, ix.indptr[ids[sparse] + 1][:, None] - 1, out=p)
            found[sparse] = np.where(doc_index[p] == candidates, contribution[p], 0.0)
        s = (found * weights[:, None]).cumsum(axis=0)[-1] if order else np.zeros(candidates.size)
        best, s = ranking.top_k(s, k, ix.id_rank[candidates].argsort().argsort()) if candidates.size else (candidates, s)
        top = candidates[best]
        if top.size < k:  # fewer than k documents score: the first zeros by doc id follow
            first = ix.id_order[: k + top.size]
            zeros = first[~np.isin(first, top)][: k - top.size]
            top, s = np.concatenate((top, zeros)), np.concatenate((s, np.zeros(zeros.size)))
        return top, s

    def _dense_columns(self) -> np.ndarray:
        """Each term's row in ``self._dense``, the contributions of the common terms (those in
        at least 1/_DENSE_DF of the documents) as a dense (terms x N) array; -1 for the others.
        Built on first use: only queries with many postings read it."""
        if self._dense is None:
            ix = self.inverted_index
            common = np.flatnonzero(ix.df * self._DENSE_DF >= ix.N)
            lengths = ix.df[common]
            postings = np.repeat(ix.indptr[common] - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
            self._dense = np.zeros((common.size, ix.N))
            self._dense[np.repeat(np.arange(common.size), lengths), ix.doc_index[postings]] = self._contribution[postings]
            self._dense_row = np.full(len(ix), -1)
            self._dense_row[common] = np.arange(common.size)
        return self._dense_row


class TfidfRetriever(_SparseRetriever):
    """Rank documents by the cosine of tf-idf vectors (chapter 1).

    tf-idf(t, d) = tf_{t,d} * idf_t with tf = 1 + log10(count), idf = log10(N / df);
    score(q, d) = sum_{t in q} [tf-idf(t, q) / |q|] * [tf-idf(t, d) / |d|] = cos(q, d),
    in [0, 1] (SMART notation ltc.ltc).  ``doc_idf=False`` is the simplified variant
    without idf on the document side (lnc.ltc): document weights are tf_{t,d} alone.
    An all-zero vector (e.g. only terms that occur in every document) scores 0.
    ``ngram=2, buckets=2**20`` gives DrQA-style hashed unigram + bigram features.
    """

    def __init__(self, *, doc_idf: bool = True, ngram: int = 1, buckets: int | None = None,
                 tokenizer: Callable[[str], list[str]] = tokenize):
        super().__init__(tokenizer, ngram, buckets)
        self.doc_idf = bool(doc_idf)

    def _weigh_postings(self, ix: InvertedIndex) -> np.ndarray:
        self.idf = idf_weight(ix.N, ix.df)
        w = tf_weight(ix.tf)
        if self.doc_idf:
            w = w * np.repeat(self.idf, ix.df)
        norm = np.sqrt(np.bincount(ix.doc_index, weights=w * w, minlength=ix.N))[ix.doc_index]
        return np.divide(w, norm, out=np.zeros_like(w), where=norm > 0)

    def _query_weights(self, ids, counts):
        w = tf_weight(counts) * self.idf[ids]
        norm = math.sqrt(np.bincount(np.zeros(w.size, dtype=np.intp), weights=w * w, minlength=1)[0])  # |q|
        return w / norm if norm > 0 else np.zeros_like(w)

    def query_vector(self, query) -> dict:
        """The query's tf-idf weights {term: tf * idf} (before normalisation)."""
        ids, counts = self._term_counts(query, "query")
        w = tf_weight(counts) * self.idf[ids]
        return {self.inverted_index.terms[j]: float(x) for j, x in zip(ids, w)}

    def document_vector(self, doc_id) -> dict:
        """The document's weights {term: tf * idf} (tf alone with doc_idf=False), before normalisation."""
        ix = self._indexed()
        p = np.flatnonzero(ix.doc_index == ix.doc_number(doc_id))
        terms = np.searchsorted(ix.indptr, p, side="right") - 1
        w = tf_weight(ix.tf[p]) * (self.idf[terms] if self.doc_idf else 1.0)
        return {ix.terms[j]: float(x) for j, x in zip(terms, w)}


class BM25(_SparseRetriever):
    """Okapi BM25 and the variants met in the wild (chapter 2).

    score(q, d) = sum_{t in q} idf_t * tfc(tf_{t,d}), with L = 1 - b + b * |d| / avgdl,
    natural logarithms and (Kamphuis et al., 2020, "Which BM25 do you mean?"):

    variant    idf_t                                  tfc(tf), 0 when tf = 0
    robertson  max(0, log((N - df + 0.5)/(df + 0.5)))  tf / (k1 L + tf)
    lucene     log(1 + (N - df + 0.5)/(df + 0.5))      tf / (k1 L + tf)
    atire      log(N / df)                             (k1 + 1) tf / (k1 L + tf)
    bm25l      log((N + 1)/(df + 0.5))                 (k1 + 1)(c + delta)/(k1 + c + delta), c = tf / L
    bm25+      log((N + 1)/df)                         (k1 + 1) tf / (k1 L + tf) + delta

    ``k1`` (>= 0) sets how fast tf saturates, ``b`` (0..1) how much document length
    normalises; ``delta`` (bm25l, bm25+) defaults to 0.5 and 1.0.  A term absent from
    a document adds nothing (Lv & Zhai's BM25L/BM25+; bm25s and rank_bm25 credit
    absent terms too, see :func:`bm25_tf`).  Out-of-vocabulary query terms are
    ignored; a repeated query term adds its contribution once per occurrence.
    Given the same tokens, scores equal bm25s's (to its float32 rounding) for
    robertson, lucene and atire, and for bm25l and bm25+ once its credit for absent
    terms is taken away.
    """

    def __init__(self, variant: str = "lucene", k1: float = 1.5, b: float = 0.75, delta: float | None = None,
                 *, ngram: int = 1, buckets: int | None = None, tokenizer: Callable[[str], list[str]] = tokenize):
        _check_variant(variant)
        _check_params(k1, b, delta)
        super().__init__(tokenizer, ngram, buckets)
        self.variant, self.k1, self.b = variant, float(k1), float(b)
        self.delta = DEFAULT_DELTA.get(variant, 0.0) if delta is None else float(delta)

    def _weigh_postings(self, ix: InvertedIndex) -> np.ndarray:
        return bm25_term_score(
            ix.tf, np.repeat(ix.df, ix.df), ix.N, ix.doc_lengths[ix.doc_index], ix.avgdl,
            self.k1, self.b, self.variant, self.delta,
        )

    def _query_weights(self, ids, counts):
        return counts

    def __repr__(self) -> str:
        return f"BM25(variant={self.variant!r}, k1={self.k1}, b={self.b}, delta={self.delta})"


# ------------------------------------------------------------------------- helpers
def _kth_largest(x: np.ndarray, k: int) -> float:
    """The k-th largest value of ``x`` (1 <= k <= x.size)."""
    return float(np.partition(x, x.size - k)[x.size - k])


def _as_tokens(text, name: str, tokenizer) -> list[str]:
    if isinstance(text, str):
        return tokenizer(text)
    if isinstance(text, list):
        return text  # not copied: never modified
    if isinstance(text, tuple):
        return list(text)
    raise TypeError(f"{name} must be a str or a list of str tokens, got {type(text).__name__}")


def _check_N_df(N, df):
    N_ = np.asarray(N, dtype=np.float64)
    df_ = np.asarray(df, dtype=np.float64)
    if np.any(~(N_ >= 1)):
        raise ValueError(f"N must be >= 1, got {N!r}")
    if np.any(~(df_ >= 1)) or np.any(df_ > N_):
        raise ValueError(f"df must be between 1 and N={N!r}, got {df!r}")
    return N_, df_


def _check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _check_params(k1, b, delta):
    if not isinstance(k1, (int, float)) or isinstance(k1, bool) or not k1 >= 0:
        raise ValueError(f"k1 must be a number >= 0, got {k1!r}")
    if not isinstance(b, (int, float)) or isinstance(b, bool) or not 0 <= b <= 1:
        raise ValueError(f"b must be a number in [0, 1], got {b!r}")
    if delta is not None and (not isinstance(delta, (int, float)) or isinstance(delta, bool) or not delta >= 0):
        raise ValueError(f"delta must be a number >= 0, got {delta!r}")
