"""course_lib.sparse against hand computations and independent oracles.

Oracles: scikit-learn for tf-idf (CountVectorizer counts, 1 + log10(tf) and
TfidfTransformer with idf_ = log10(N / df): the textbook weights exactly) and for
hashed n-grams (HashingVectorizer); bm25s for every BM25 variant; rank_bm25 only
where its formula matches ours.  rank_bm25 0.2.2 quirks we do not copy:
BM25Okapi replaces a negative idf (df > N/2) by epsilon * mean idf; BM25L multiplies
each term score by tf a second time; BM25L and BM25Plus (like bm25s) credit query
terms absent from a document with their tf = 0 value; an empty document scores NaN
when b = 1.  bm25s quirk: its BM25+ scores NaN when k1 = 0 (0/0 for absent terms).
"""
from __future__ import annotations

import math
import re
import string
from functools import partial

import bm25s
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi, BM25Plus
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer

from course_lib.sparse import (
    BM25,
    VARIANTS,
    InvertedIndex,
    Posting,
    TfidfRetriever,
    bm25_idf,
    bm25_term_score,
    bm25_tf,
    cosine,
    feature_bucket,
    idf_weight,
    ngrams,
    tf_weight,
)
from course_lib.text import STOP_WORDS, tokenize

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lime", "mango"]
tokens_st = st.lists(st.sampled_from(WORDS), max_size=12)
# at least one non-empty document, so every oracle has a vocabulary
corpus_st = st.lists(tokens_st, min_size=1, max_size=15).filter(lambda docs: any(docs))
query_st = st.lists(st.sampled_from(WORDS + ["unknown", "zebra"]), max_size=6)


# ------------------------------------------------------------ hand-computed cases
def test_tf_weight_by_hand():
    assert tf_weight(0) == 0.0
    assert tf_weight(1) == 1.0
    assert tf_weight(10) == pytest.approx(2.0)
    assert tf_weight(1000) == pytest.approx(4.0)
    np.testing.assert_allclose(tf_weight(np.array([0, 1, 100])), [0.0, 1.0, 3.0])


def test_idf_weight_by_hand():
    assert idf_weight(10, 1) == pytest.approx(1.0)
    assert idf_weight(1000, 10) == pytest.approx(2.0)
    assert idf_weight(7, 7) == 0.0  # a term in every document carries no weight
    np.testing.assert_allclose(idf_weight(100, np.array([1, 10, 100])), [2.0, 1.0, 0.0])


def test_cosine_by_hand():
    assert cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([3, 4], [6, 8]) == pytest.approx(1.0)
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([0, 0], [1, 1]) == 0.0  # all-zero vector: 0, not NaN
    assert cosine({"sweet": 1.0, "love": 1.0}, {"sweet": 2.0, "nurse": 2.0}) == pytest.approx(0.5)
    assert cosine({}, {"a": 1.0}) == 0.0


def test_tfidf_retriever_by_hand():
    # N = 2; df(a) = 1, df(b) = 2, df(c) = 1; idf(a) = idf(c) = log10 2, idf(b) = 0
    r = TfidfRetriever().index([["a", "a", "b"], ["b", "c"]], ["d1", "d2"])
    assert r.document_vector("d1") == pytest.approx({"a": (1 + math.log10(2)) * math.log10(2), "b": 0.0})
    assert r.query_vector(["a", "b"]) == pytest.approx({"a": math.log10(2), "b": 0.0})
    np.testing.assert_allclose(r.scores(["a", "b"]), [1.0, 0.0])  # both vectors lie along a
    np.testing.assert_array_equal(r.scores(["b"]), [0.0, 0.0])  # idf 0: zero query vector, no NaN
    assert r.search(["a", "b"], k=1) == [("d1", pytest.approx(1.0))]


def test_tfidf_without_document_idf_by_hand():
    # lnc.ltc: document weights tf only -> d1 = (1 + log10 2, 1) / |.|, q = (log10 2, 0) / |.|
    r = TfidfRetriever(doc_idf=False).index([["a", "a", "b"], ["b", "c"]])
    tf_a = 1 + math.log10(2)
    assert r.scores(["a", "b"])[0] == pytest.approx(tf_a / math.hypot(tf_a, 1.0))
    assert r.scores(["b", "c"])[1] == pytest.approx(1 / math.sqrt(2))  # q along c, d2 = (1, 1)/sqrt 2


def test_bm25_formulas_by_hand():
    tf, df, N, dl, avgdl, k1, b = 2, 1, 2, 3, 2.5, 1.2, 0.75
    L = 1 - b + b * dl / avgdl  # 1.15
    sat = tf / (k1 * L + tf)
    assert bm25_term_score(tf, df, N, dl, avgdl, k1, b, "lucene") == pytest.approx(math.log(1 + 1.5 / 1.5) * sat)
    assert bm25_term_score(tf, df, N, dl, avgdl, k1, b, "robertson") == 0.0  # log(1.5/1.5) = 0
    assert bm25_term_score(tf, df, 10, dl, avgdl, k1, b, "robertson") == pytest.approx(math.log(9.5 / 1.5) * sat)
    assert bm25_term_score(tf, df, N, dl, avgdl, k1, b, "atire") == pytest.approx(math.log(2) * (k1 + 1) * sat)
    c = tf / L
    assert bm25_term_score(tf, df, N, dl, avgdl, k1, b, "bm25l", 0.5) == pytest.approx(
        math.log(3 / 1.5) * (k1 + 1) * (c + 0.5) / (k1 + c + 0.5))
    assert bm25_term_score(tf, df, N, dl, avgdl, k1, b, "bm25+", 1.0) == pytest.approx(
        math.log(3 / 1) * ((k1 + 1) * sat + 1.0))
    assert bm25_idf(4, 4, "robertson") == 0.0  # clamped: raw value log(0.5/4.5) < 0
    for variant in VARIANTS:
        assert bm25_tf(0, 3, 2.5, variant=variant) == 0.0  # an absent term adds nothing
    assert bm25_tf(1, 1, 2.0, k1=1.2, b=0.0) == pytest.approx(1 / 2.2)  # b = 0: no length normalisation
    assert bm25_tf(5, 9, 2.0, k1=0.0) == 1.0  # k1 = 0: presence alone counts
    assert bm25_tf(5, 9, 2.0, k1=0.0, variant="bm25+", delta=1.0) == 2.0


def test_bm25_retriever_sums_term_scores():
    docs = [["a", "b", "a"], ["b"], ["c", "c", "c", "a"]]
    r = BM25("atire", k1=1.2, b=0.75).index(docs)
    avgdl = 8 / 3
    expected = [
        bm25_term_score(2, 2, 3, 3, avgdl, 1.2, 0.75, "atire") * 2 + bm25_term_score(1, 2, 3, 3, avgdl, 1.2, 0.75, "atire"),
        bm25_term_score(1, 2, 3, 1, avgdl, 1.2, 0.75, "atire"),
        bm25_term_score(1, 2, 3, 4, avgdl, 1.2, 0.75, "atire") * 2,
    ]
    # "a" twice in the query: its contribution counts twice; "zzz" is unknown and ignored
    np.testing.assert_allclose(r.scores(["a", "b", "a", "zzz"]), expected)


def test_inverted_index_by_hand():
    ix = InvertedIndex.build(["Sweet sweet nurse!", "love", "sweet love?"], ["d1", "d2", "d3"])
    assert ix.terms == ["love", "nurse", "sweet"]
    assert ix.N == 3 and ix.avgdl == 2.0
    np.testing.assert_array_equal(ix.df, [2, 1, 2])
    np.testing.assert_array_equal(ix.doc_lengths, [3, 1, 2])
    assert ix.postings("sweet") == [Posting("d1", 2, (0, 1)), Posting("d3", 1, (0,))]
    assert ix.postings("love") == [Posting("d2", 1, (0,)), Posting("d3", 1, (1,))]
    assert ix.postings("absent") == []
    assert "nurse" in ix and "absent" not in ix and len(ix) == 3
    assert ix.as_dict()["nurse"] == [Posting("d1", 1, (2,))]
    np.testing.assert_array_equal(ix.tf_matrix().toarray(), [[0, 1, 2], [1, 0, 0], [1, 0, 1]])
    assert repr(ix) == "InvertedIndex(N=3, terms=3, postings=5)"


def test_ngram_index_and_hashing():
    assert ngrams(["new", "york", "city"]) == ["new", "york", "city", "new york", "york city"]
    assert ngrams(["a", "b", "c"], 3)[-1] == "a b c"
    ix = InvertedIndex.build(["new york city", "york new"], ngram=2)
    assert ix.postings("new york") == [Posting(0, 1, None)]
    assert [p.doc_id for p in ix.postings("york")] == [0, 1]
    hashed = InvertedIndex.build(["new york city", "york new"], ngram=2, buckets=2**18)
    features = ngrams("new york city".split()) + ngrams("york new".split())
    assert hashed.terms == sorted({feature_bucket(t, 2**18) for t in features})
    assert hashed.postings("york new") == [Posting(1, 1, None)]
    # two buckets: every term collides with others and the counts add up
    tiny = InvertedIndex.build(["a b c d"], buckets=2)
    assert tiny.tf.sum() == 4 and len(tiny) <= 2


# -------------------------------------------------------------- scikit-learn oracle
def sklearn_tfidf_scores(docs, queries, doc_idf=True, vectorizer=None):
    """cos(q, d) with textbook weights, computed by scikit-learn."""
    vectorizer = vectorizer or CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None)
    X = vectorizer.fit_transform(docs).astype(np.float64).tocsr()
    X.eliminate_zeros()
    X.data = 1 + np.log10(X.data)
    N = X.shape[0]
    df = np.bincount(X.indices, minlength=X.shape[1])
    # a feature no document has (df = 0) is out of vocabulary: weight 0, as in course_lib
    idf = np.log10(N / np.maximum(df, 1)) * (df > 0)
    with np.errstate(divide="ignore"):  # sklearn's own idf of an unused hash bucket
        query_side = TfidfTransformer(smooth_idf=False).fit(X)
    query_side.idf_ = idf
    doc_side = query_side if doc_idf else TfidfTransformer(use_idf=False).fit(X)
    Q = vectorizer.transform(queries).astype(np.float64).tocsr()
    Q.data = 1 + np.log10(Q.data)
    return (query_side.transform(Q) @ doc_side.transform(X).T).toarray()


@SETTINGS
@given(corpus_st, st.lists(query_st, min_size=1, max_size=4), st.booleans())
def test_tfidf_matches_sklearn(corpus, queries, doc_idf):
    docs = [" ".join(d) for d in corpus]
    qs = [" ".join(q) for q in queries]
    r = TfidfRetriever(doc_idf=doc_idf).index(docs)
    ours = np.array([r.scores(q) for q in qs])
    np.testing.assert_allclose(ours, sklearn_tfidf_scores(docs, qs, doc_idf), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(corpus_st, st.lists(query_st, min_size=1, max_size=4))
def test_hashed_bigrams_match_sklearn(corpus, queries):
    buckets = 2**6  # small, so collisions happen
    docs = [" ".join(d) for d in corpus]
    qs = [" ".join(q) for q in queries]
    r = TfidfRetriever(ngram=2, buckets=buckets).index(docs)
    hv = HashingVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                           n_features=buckets, alternate_sign=False, norm=None)
    counts = hv.transform(docs).toarray()
    ix = r.inverted_index
    np.testing.assert_array_equal(ix.tf_matrix().toarray(), counts[:, ix.terms])
    assert set(np.flatnonzero(counts.sum(axis=0))) == set(ix.terms)
    ours = np.array([r.scores(q) for q in qs])
    np.testing.assert_allclose(ours, sklearn_tfidf_scores(docs, qs, vectorizer=hv), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(corpus_st)
def test_index_counts_match_sklearn(corpus):
    docs = [" ".join(d) for d in corpus]
    cv = CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None)
    counts = cv.fit_transform(docs).toarray()
    ix = InvertedIndex.build(docs)
    assert ix.terms == cv.get_feature_names_out().tolist()
    np.testing.assert_array_equal(ix.tf_matrix().toarray(), counts)
    np.testing.assert_array_equal(ix.df, (counts > 0).sum(axis=0))
    np.testing.assert_array_equal(ix.doc_lengths, counts.sum(axis=1))
    for term in ix.terms:  # positions: where the term occurs in each document's token list
        for p in ix.postings(term):
            assert p.positions == tuple(i for i, t in enumerate(corpus[p.doc_id]) if t == term)
            assert p.tf == len(p.positions)


# --------------------------------------------------------------------- BM25 oracles
def bm25s_model(corpus, variant, k1, b, delta):
    model = bm25s.BM25(method=variant, k1=k1, b=b, delta=delta)
    model.index(corpus, show_progress=False)
    return model


def bm25s_scores(model, query, N):
    return model.get_scores(query).astype(np.float64) if query else np.zeros(N)


def absent_term_credit(model, corpus, query):
    """What bm25s (and rank_bm25's BM25Plus) add for query terms a document lacks."""
    credit = np.zeros(len(corpus))
    for t in query:
        if t in model.vocab_dict and model.nonoccurrence_array is not None:
            lacks = np.array([t not in d for d in corpus])
            credit += lacks * float(model.nonoccurrence_array[model.vocab_dict[t]])
    return credit


@SETTINGS
@given(corpus_st, st.lists(query_st, min_size=1, max_size=4), st.sampled_from(VARIANTS),
       st.sampled_from([0.5, 0.9, 1.2, 1.5, 2.0]), st.sampled_from([0.0, 0.4, 0.75, 1.0]),
       st.sampled_from([0.5, 1.0]))
def test_bm25_matches_bm25s(corpus, queries, variant, k1, b, delta):
    model = bm25s_model(corpus, variant, k1, b, delta)
    ours = BM25(variant, k1=k1, b=b, delta=delta).index(corpus)
    for q in queries:
        expected = bm25s_scores(model, q, len(corpus))
        if variant in ("bm25l", "bm25+"):  # Lv & Zhai: absent terms add nothing here
            expected = expected - absent_term_credit(model, corpus, q)
        got = ours.scores(q)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        ranked = [ours.inverted_index.doc_number(d) for d, _ in ours.search(q, k=len(corpus))]
        assert np.all(np.diff(expected[ranked]) <= 1e-5), "rankings agree up to exact ties"


@SETTINGS
@given(corpus_st, st.lists(query_st, min_size=1, max_size=4), st.sampled_from([1.2, 1.5]),
       st.sampled_from([0.0, 0.75, 1.0]))
def test_bm25_matches_rank_bm25_where_formulas_agree(corpus, queries, k1, b):
    assume(b < 1 or all(corpus))  # rank_bm25 divides 0 by 0 for an empty document when b = 1
    N = len(corpus)
    df = {t: sum(t in d for d in corpus) for t in WORDS}
    okapi = BM25Okapi(corpus, k1=k1, b=b)
    plus = BM25Plus(corpus, k1=k1, b=b, delta=1.0)
    robertson = BM25("robertson", k1=k1, b=b).index(corpus)
    ours_plus = BM25("bm25+", k1=k1, b=b, delta=1.0).index(corpus)
    for q in queries:
        # BM25Okapi = (k1 + 1) * Robertson while no query term has df > N/2 (its epsilon floor)
        q_okapi = [t for t in q if df.get(t, 0) <= N / 2]
        np.testing.assert_allclose(okapi.get_scores(q_okapi), (k1 + 1) * robertson.scores(q_okapi),
                                   rtol=1e-10, atol=1e-10)
        # BM25Plus also credits absent known terms with idf * delta
        credit = sum(np.array([t not in d for d in corpus]) * math.log((N + 1) / df[t])
                     for t in q if df.get(t, 0) > 0)
        np.testing.assert_allclose(plus.get_scores(q), ours_plus.scores(q) + credit, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ["lucene", "robertson"])
def test_bm25_matches_bm25s_on_bundled_corpus(variant):
    from course_lib.data import load_corpus, load_queries

    passages = load_corpus()
    corpus = [tokenize(t, stopwords=STOP_WORDS) for t in passages["text"]]
    queries = [tokenize(q, stopwords=STOP_WORDS) for q in load_queries()["text"]]
    model = bm25s_model(corpus, variant, 1.5, 0.75, 0.5)
    ours = BM25(variant).index(corpus, passages["_id"])
    for q in queries:
        expected = bm25s_scores(model, q, len(corpus))
        np.testing.assert_allclose(ours.scores(q), expected, rtol=1e-5, atol=1e-5)
        ranked = [ours.inverted_index.doc_number(d) for d, _ in ours.search(q, k=10)]
        assert np.all(np.diff(expected[ranked]) <= 1e-5)
        assert expected[ranked[0]] == pytest.approx(expected.max(), abs=1e-5)


# --------------------------------------------------------------------- properties
@SETTINGS
@given(corpus_st, query_st, st.integers(1, 20), st.sampled_from(["tfidf", *VARIANTS]))
def test_ranking_properties(corpus, query, k, kind):
    r = TfidfRetriever() if kind == "tfidf" else BM25(kind)
    r.index(corpus, [f"d{i:02d}" for i in range(len(corpus))])
    s = r.scores(query)
    assert s.shape == (len(corpus),) and np.all(np.isfinite(s)) and np.all(s >= 0)
    if kind == "tfidf":
        assert np.all(s <= 1 + 1e-12)
    hits = r.search(query, k)
    assert len(hits) == min(k, len(corpus))
    keys = [(-score, doc) for doc, score in hits]
    assert keys == sorted(keys), "score descending, then doc id ascending"
    best = sorted(zip(-s, r.inverted_index.doc_ids))[: len(hits)]
    assert [d for _, d in best] == [d for d, _ in hits]
    assert r.search_batch([query, query], k) == [hits, hits]
    assert r.run({"q1": query}, k) == {"q1": dict(hits)}


@SETTINGS
@given(corpus_st, query_st, st.randoms(use_true_random=False), st.sampled_from(["tfidf", "lucene", "bm25l"]))
def test_document_order_does_not_matter(corpus, query, rnd, kind):
    make = (lambda: TfidfRetriever()) if kind == "tfidf" else partial(BM25, kind)
    ids = [f"d{i}" for i in range(len(corpus))]
    perm = list(range(len(corpus)))
    rnd.shuffle(perm)
    a = make().index(corpus, ids)
    b = make().index([corpus[i] for i in perm], [ids[i] for i in perm])
    # same floats, summed in the same (term) order: scores and rankings are identical
    assert dict(zip(ids, a.scores(query))) == dict(zip(b.inverted_index.doc_ids, b.scores(query)))
    assert a.search(query, 5) == b.search(query, 5)


@SETTINGS
@given(st.lists(st.floats(0, 10), min_size=1, max_size=8), st.lists(st.floats(0, 10), min_size=1, max_size=8))
def test_cosine_is_bounded(q, d):
    n = min(len(q), len(d))
    c = cosine(q[:n], d[:n])
    assert 0.0 <= c <= 1.0 + 1e-12 and math.isfinite(c)


def test_ties_break_by_doc_id():
    r = BM25().index([["x"], ["x"], ["x", "y"], ["x"]], ["b", "d", "c", "a"])
    assert [d for d, _ in r.search(["x"], 4)] == ["a", "b", "d", "c"]  # c is longer: lower score
    assert [d for d, _ in r.search(["y"], 4)] == ["c", "a", "b", "d"]  # zeros follow, by id
    assert [d for d, _ in r.search(["x"], 2)] == ["a", "b"]


def test_stop_word_and_unknown_queries_score_zero():
    stop = partial(tokenize, stopwords=STOP_WORDS)
    for r in (TfidfRetriever(tokenizer=stop), BM25(tokenizer=stop), BM25("bm25+", tokenizer=stop)):
        r.index(["The cat sat on the mat.", "A dog barked at the cat."], ["d1", "d2"])
        for q in ("the of and", "", "zebra unicorn", [], ["zebra"]):
            s = r.scores(q)
            assert not np.isnan(s).any() and not s.any()
            assert r.search(q, 5) == [("d1", 0.0), ("d2", 0.0)]


def test_term_in_every_document_gives_zero_not_nan():
    r = TfidfRetriever().index(["a b", "a c", "a"])
    np.testing.assert_array_equal(r.scores("a"), [0.0, 0.0, 0.0])  # idf 0 everywhere
    assert r.scores("a")[2] == 0.0  # d3 = "a" has an all-zero tf-idf vector


def test_empty_documents_are_allowed():
    r = BM25().index(["", "sweet", ""])
    assert r.inverted_index.doc_lengths.tolist() == [0, 1, 0]
    assert r.search("sweet", 1)[0][0] == 1
    empty = BM25().index(["", ""])
    assert empty.search("sweet", 5) == [(0, 0.0), (1, 0.0)]
    assert TfidfRetriever().index([""]).scores("a").tolist() == [0.0]


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: InvertedIndex.build([]), ValueError, "docs"),
        (lambda: InvertedIndex.build("one document"), TypeError, "docs"),
        (lambda: InvertedIndex.build(["ok", 3]), TypeError, "docs[1]"),
        (lambda: InvertedIndex.build([["ok", 3]]), TypeError, "tokens must be str"),
        (lambda: InvertedIndex.build(["a", "b"], ["x"]), ValueError, "doc_ids"),
        (lambda: InvertedIndex.build(["a", "b"], ["x", "x"]), ValueError, "'x' appears twice"),
        (lambda: InvertedIndex.build(["a", "b"], ["x", 1]), TypeError, "doc_ids"),
        (lambda: InvertedIndex.build(["a"], ngram=0), ValueError, "ngram"),
        (lambda: InvertedIndex.build(["a"], ngram=2, positions=True), ValueError, "positions"),
        (lambda: InvertedIndex.build(["a"], buckets=0), ValueError, "buckets"),
        (lambda: InvertedIndex(), TypeError, "build"),
        (lambda: BM25("okapi"), ValueError, "variant"),
        (lambda: BM25(k1=-1), ValueError, "k1"),
        (lambda: BM25(b=1.5), ValueError, "b must"),
        (lambda: BM25("bm25+", delta=-1), ValueError, "delta"),
        (lambda: BM25().search("a"), RuntimeError, "index(docs)"),
        (lambda: BM25().index(["a b"]).search("a", k=0), ValueError, "k must"),
        (lambda: BM25().index(["a b"]).search("a", k=2.5), ValueError, "k must"),
        (lambda: BM25().index(["a b"]).search(42), TypeError, "query"),
        (lambda: BM25().index(["a b"]).search_batch("a b"), TypeError, "queries"),
        (lambda: BM25().index(["a b"]).run(["a b"]), TypeError, "queries"),
        (lambda: TfidfRetriever().index(["a"]).document_vector("nope"), KeyError, "doc_id"),
        (lambda: tf_weight(-1), ValueError, "count"),
        (lambda: idf_weight(10, 0), ValueError, "df"),
        (lambda: idf_weight(10, 11), ValueError, "df"),
        (lambda: idf_weight(0, 1), ValueError, "N"),
        (lambda: bm25_tf(2, 1, 3.0), ValueError, "dl"),
        (lambda: bm25_tf(1, 1, 0.0), ValueError, "avgdl"),
        (lambda: cosine([1, 2], [1, 2, 3]), ValueError, "shapes"),
        (lambda: cosine({"a": 1}, [1]), TypeError, "mappings"),
        (lambda: ngrams(["a"], 0), ValueError, "n must"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_k_larger_than_N_returns_every_document():
    r = TfidfRetriever().index(["a", "b", "a b"])
    assert [d for d, _ in r.search("a", 100)] == [0, 2, 1]


def test_pre_tokenised_and_raw_input_agree():
    texts = ["The Cat sat.", "cats and DOGS", "dogs!"]
    a = BM25().index(texts)
    b = BM25().index([tokenize(t) for t in texts])
    np.testing.assert_array_equal(a.scores("dogs cat"), b.scores(["dogs", "cat"]))
    np.testing.assert_array_equal(a.scores("dogs cat"), a.scores(("dogs", "cat")))


def test_numpy_doc_ids_are_plain_ids():
    r = BM25().index(["a", "b"], np.array([10, 20]))
    assert r.search("b", 1) == [(20, pytest.approx(r.scores("b")[1]))]
    assert type(r.search("b", 1)[0][0]) is int


def test_hypothesis_alphabet_is_token_safe():
    # the oracles tokenize joined strings: every test word must survive tokenize unchanged
    assert all(tokenize(w) == [w] and set(w) <= set(string.ascii_lowercase) for w in WORDS + ["unknown", "zebra"])


# ------------------------------------------------- the two query routes (block, MaxScore)
@pytest.fixture
def maxscore(monkeypatch):
    """Send every query down the MaxScore route, whatever its number of postings."""
    from course_lib.sparse import _SparseRetriever

    monkeypatch.setattr(_SparseRetriever, "_MAXSCORE_POSTINGS", 0)
    return _SparseRetriever


def block_route(r):
    """The same retriever with every query scored in the block route."""
    clone = object.__new__(type(r))
    clone.__dict__.update(r.__dict__)
    clone._MAXSCORE_POSTINGS = float("inf")
    return clone


@SETTINGS
@given(corpus_st, st.lists(query_st, min_size=1, max_size=4), st.integers(1, 20),
       st.sampled_from(["tfidf", "tfidf-lnc", *VARIANTS]), st.sampled_from([1, 4, 10**9]))
def test_maxscore_route_equals_block_route(corpus, queries, k, kind, dense_df):
    """Bit for bit: same documents, same order, same float scores, ties by doc id.
    dense_df 1: only terms in every document are read from dense columns; 10**9: all are."""
    from course_lib.sparse import _SparseRetriever

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_SparseRetriever, "_MAXSCORE_POSTINGS", 0)
        mp.setattr(_SparseRetriever, "_DENSE_DF", dense_df)
        r = {"tfidf": TfidfRetriever(), "tfidf-lnc": TfidfRetriever(doc_idf=False)}.get(kind) or BM25(kind)
        # ids in an order unlike indexing order, and repeated documents: many exact ties
        docs = corpus + corpus[:3]
        r.index(docs, [f"d{(7 * i) % 101:03d}" for i in range(len(docs))])
        got = r.search_batch(queries, k)
        assert got == block_route(r).search_batch(queries, k)
        for q, hits in zip(queries, got):
            s = r.scores(q)
            best = sorted(zip(-s, r.inverted_index.doc_ids))[:k]
            assert hits == [(d, -score) for score, d in best]


def test_maxscore_ties_break_by_doc_id_by_hand(maxscore):
    # "x" is in every document, "y" in e and c: e and c tie, and so do a, b and d
    docs = [["x"], ["x"], ["x", "y"], ["x"], ["x", "y"]]
    ids = ["b", "d", "e", "a", "c"]
    r = BM25().index(docs, ids)
    x_only, with_y, y_only = r.scores(["x"])[0], r.scores(["x", "y"])[2], r.scores(["y"])[2]
    assert r.search(["x", "y"], 5) == [("c", with_y), ("e", with_y), ("a", x_only), ("b", x_only), ("d", x_only)]
    assert r.search(["y"], 4) == [("c", y_only), ("e", y_only), ("a", 0.0), ("b", 0.0)]  # zeros follow, by doc id
    assert r.search(["zzz"], 2) == [("a", 0.0), ("b", 0.0)]
    assert r.search([], 9) == [("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0), ("e", 0.0)]
    assert r.search_batch([["x", "y"]], 5) == block_route(r).search_batch([["x", "y"]], 5)


def test_maxscore_prunes_and_still_finds_the_top(maxscore):
    # one rare, strong term and many weak ones: MaxScore stops reading the common term
    docs = [["common"] * 3 for _ in range(200)] + [["rare", "common"], ["rare"], ["rare", "common", "common"]]
    r = BM25().index(docs)
    s = r.scores(["rare", "common"])
    expected = sorted(range(len(docs)), key=lambda d: (-s[d], d))[:3]
    assert [d for d, _ in r.search(["rare", "common"], 3)] == expected == [201, 200, 202]  # shortest first
    assert r._dense is not None and r._dense.shape == (1, len(docs))  # "common" is read from its dense column


def test_a_contribution_of_zero_is_no_match_on_both_routes(maxscore):
    class Underflow(BM25):
        def _weigh_postings(self, ix):
            w = super()._weigh_postings(ix)
            w[ix.indptr[ix.term_id("a")]] = 0.0  # the first posting of "a" underflowed
            return w

    r = Underflow().index([["a", "c"], ["a", "a"], ["b"], ["a", "b"]], ["w", "x", "y", "z"])
    assert r.scores(["a"])[0] == 0.0
    hits = r.search(["a", "a"], 4)
    assert [d for d, _ in hits] == ["x", "z", "w", "y"]  # w scores 0: among the zeros, by doc id
    assert hits == block_route(r).search(["a", "a"], 4)
    # the rare "a" reaches document 0 first, with 0, then "c": document 0 is listed once
    rare = Underflow().index([["a", "c"], ["a", "a"]] + [["c"]] * 8)
    hits = rare.search(["a", "c"], 11)
    assert sorted(d for d, _ in hits) == list(range(10))
    assert hits == block_route(rare).search(["a", "c"], 11)


def test_a_query_of_zero_weights_scores_zero_on_both_routes(maxscore):
    # lnc.ltc: every document holds both terms, so idf = 0 and the query vector is all zeros
    r = TfidfRetriever(doc_idf=False).index([["apple", "banana"]] * 2, ["d1", "d0"])
    assert r.search(["apple", "banana"], 2) == [("d0", 0.0), ("d1", 0.0)]
    assert r.search(["apple", "banana"], 2) == block_route(r).search(["apple", "banana"], 2)


def test_search_routes_a_batch_by_postings(monkeypatch):
    from course_lib.sparse import _SparseRetriever

    docs = [["a", "b"]] * 50 + [["c"]]
    r = BM25().index(docs)
    routed = []
    monkeypatch.setattr(_SparseRetriever, "_MAXSCORE_POSTINGS", 50)
    original = _SparseRetriever._top
    monkeypatch.setattr(_SparseRetriever, "_top", lambda self, ids, *a: routed.append(ids.tolist()) or original(self, ids, *a))
    hits = r.search_batch([["c"], ["a", "b"], ["a"], ["b", "c"]], 2)
    assert routed == [[0, 1], [0], [1, 2]]  # 100, 50 and 51 postings; ["c"] has 1
    assert hits == block_route(r).search_batch([["c"], ["a", "b"], ["a"], ["b", "c"]], 2)


# ----------------------------------------------------------- options, by hand
def test_index_without_positions_by_hand():
    ix = InvertedIndex.build(["sweet sweet nurse"], positions=False)
    assert ix.postings("sweet") == [Posting(0, 2, None)]
    assert ix.positions is None
    assert InvertedIndex.build(["a b"], ngram=2).positions is None  # an n-gram index keeps none by default


def test_bm25_over_bigrams_and_hashed_features_by_hand():
    docs = ["new york city", "york new", "new city"]
    r = BM25(ngram=2).index(docs)
    # "new york" occurs only in document 0; "york new" only in 1
    assert [d for d, _ in r.search("new york", 2)] == [0, 1]
    assert r.inverted_index.term_id("new york") is not None
    hashed = BM25(ngram=2, buckets=2**20).index(docs)
    np.testing.assert_allclose(hashed.scores("new york"), r.scores("new york"))  # no collision among 7 features
    ix = hashed.inverted_index
    assert ix.terms[ix.term_id("new york")] == feature_bucket("new york", 2**20)


def test_custom_tokenizer_is_used_for_documents_and_queries():
    upper = BM25(tokenizer=str.split).index(["Apple pie", "apple tart"])
    assert upper.inverted_index.terms == ["Apple", "apple", "pie", "tart"]
    assert [d for d, _ in upper.search("Apple", 1)] == [0]
    assert [d for d, _ in upper.search("apple", 1)] == [1]


def test_bm25_parameters_by_hand():
    docs = [["a", "a", "b"], ["a", "c", "c", "c"]]
    N, avgdl = 2, 3.5
    for variant, k1, b, delta in [("lucene", 0.9, 0.4, None), ("atire", 2.0, 1.0, None), ("bm25+", 1.2, 0.0, 0.25),
                                  ("bm25l", 1.5, 0.75, 0.1)]:
        r = BM25(variant, k1=k1, b=b, delta=delta).index(docs)
        expected = [bm25_term_score(2, 2, N, 3, avgdl, k1, b, variant, delta),
                    bm25_term_score(1, 2, N, 4, avgdl, k1, b, variant, delta)]
        np.testing.assert_allclose(r.scores(["a"]), expected, rtol=1e-15)
    assert BM25("bm25l").delta == 0.5 and BM25("bm25+").delta == 1.0 and BM25().delta == 0.0
    assert repr(BM25("atire", k1=2, b=0.5)) == "BM25(variant='atire', k1=2.0, b=0.5, delta=0.0)"


def test_run_by_hand():
    r = BM25().index(["a b", "b", "c"], ["x", "y", "z"])
    run = r.run({"q1": "b", "q2": "c"}, k=2)
    s_b = r.scores("b")
    assert run == {"q1": {"y": s_b[1], "x": s_b[0]}, "q2": {"z": r.scores("c")[2], "x": 0.0}}
    assert list(run["q1"]) == ["y", "x"]  # best first: the shorter document


def test_query_terms_repeat_and_order_by_hand():
    r = TfidfRetriever().index([["a", "b"], ["c"], ["c", "d"]])
    # tf of a repeated query term: 1 + log10(2); idf(a) = log10 3
    assert r.query_vector(["a", "a", "zzz"]) == pytest.approx({"a": (1 + math.log10(2)) * math.log10(3)})
    # the score does not depend on the order of the query's words (up to float rounding)
    np.testing.assert_allclose(r.scores("a c d"), r.scores("d c a"), rtol=1e-15)


@pytest.mark.parametrize("kind", ["tfidf", "lucene", "bm25l", "bm25+"])
def test_maxscore_equals_block_route_on_a_zipf_corpus(kind):
    """Where pruning bites: 400 documents, 40 words with Zipf frequencies, small k."""
    from course_lib.sparse import _SparseRetriever

    rng = np.random.default_rng(7)
    p = 1 / np.arange(1, 41) ** 1.1
    words = np.array([f"w{i}" for i in range(40)])
    docs = [words[rng.choice(40, rng.integers(1, 30), p=p / p.sum())].tolist() for _ in range(400)]
    queries = [words[rng.choice(40, rng.integers(1, 9))].tolist() for _ in range(200)]
    r = TfidfRetriever() if kind == "tfidf" else BM25(kind)
    r.index(docs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_SparseRetriever, "_MAXSCORE_POSTINGS", 0)
        for k in (1, 3, 10):
            assert r.search_batch(queries, k) == block_route(r).search_batch(queries, k)
