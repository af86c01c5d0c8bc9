"""course_lib.dense, .colbert, .ann and .rerank (chapter 3) against hand computations
and independent oracles: sentence-transformers for pooling and normalisation on the
packaged MiniLM, scikit-learn for cosines, FAISS IndexFlatIP for exact search, and
brute-force Python loops for top-k, MaxSim, RRF and recall.  Models are the tiny
BERT except where the oracle needs the real MiniLM."""
from __future__ import annotations

import math
import time

import faiss
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics.pairwise import cosine_similarity

import course_lib.dense as dense
from course_lib import env, models
from course_lib.ann import ann_index, ann_search, knn_recall, set_search_param, sweep_ann
from course_lib.colbert import ColBERTScorer, maxsim
from course_lib.dense import (
    BiEncoder,
    EmbeddingCache,
    cls_pool,
    cosine_matrix,
    exact_search,
    l2_normalize,
    mean_pool,
    reciprocal_rank_fusion,
)
from course_lib.grading import reference, same_ranking
from course_lib.rerank import CrossEncoder, train_cross_encoder, training_pairs

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCS = [
    "The Caesar cipher replaces each letter by the one three places further along the alphabet.",
    "Enigma was an electromechanical rotor cipher machine used by Germany.",
    "Volcanoes erupt when magma rises through the crust, sometimes violently!",
    "Coral reefs grow in warm, shallow, clear tropical seas.",
]
IDS = ["caesar", "enigma", "volcano", "reef"]
small_floats = st.floats(-10, 10, allow_nan=False, width=32)
# whole numbers: sklearn treats norms below ~1e-15 as zero, we do not
whole_floats = st.integers(-10, 10).map(float)


def rng_unit(rng, n, dim):
    X = rng.standard_normal((n, dim)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# ------------------------------------------------------------------ mean_pool
def test_mean_pool_by_hand_ignores_padding():
    H = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]], [[5.0, 5.0], [7.0, 9.0], [0.0, 1.0]]])
    mask = np.array([[1, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(mean_pool(H, mask), [[2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_allclose(mean_pool(H, mask.astype(bool)), [[2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_allclose(cls_pool(H), [[1.0, 2.0], [5.0, 5.0]])


@SETTINGS
@given(st.data())
def test_mean_pool_is_the_masked_average(data):
    B, T, dim = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    H = data.draw(arrays(np.float64, (B, T, dim), elements=small_floats))
    lengths = [data.draw(st.integers(1, T)) for _ in range(B)]
    mask = np.array([[1] * n + [0] * (T - n) for n in lengths])
    expected = np.array([H[b, : lengths[b]].mean(axis=0) for b in range(B)])
    np.testing.assert_allclose(mean_pool(H, mask), expected, rtol=1e-9, atol=1e-9)
    noisy = H.copy()
    noisy[mask == 0] = data.draw(small_floats)  # what sits under padding never matters
    np.testing.assert_allclose(mean_pool(noisy, mask), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "H, mask, message",
    [
        (np.ones((2, 3)), np.ones((2, 3)), "token_embeddings must have 3 dimensions"),
        (np.ones((2, 3, 4)), np.ones((2, 4)), "attention_mask must have shape"),
        (np.ones((1, 2, 2)), np.array([[1, 2]]), "attention_mask must hold only 0"),
        (np.ones((2, 2, 2)), np.array([[1, 1], [0, 0]]), "attention_mask row 1 has no token"),
        (np.full((1, 1, 2), np.nan), np.ones((1, 1)), "token_embeddings contains NaN"),
        (np.ones((0, 2, 2)), np.ones((0, 2)), "token_embeddings is empty"),
        ([["a"]], np.ones((1, 1)), "token_embeddings must be an array of numbers"),
    ],
)
def test_mean_pool_bad_input(H, mask, message):
    with pytest.raises((ValueError, TypeError), match=message):
        mean_pool(H, mask)


# ---------------------------------------------------- l2_normalize, cosine_matrix
def test_cosine_matrix_by_hand():
    Q = [[1.0, 0.0]]
    D = [[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0]]
    np.testing.assert_allclose(cosine_matrix(Q, D), [[1.0, 0.0, 1 / math.sqrt(2), 0.0]])
    np.testing.assert_allclose(l2_normalize([[3.0, 4.0], [0.0, 0.0]]), [[0.6, 0.8], [0.0, 0.0]])


@SETTINGS
@given(st.data())
def test_cosine_matrix_matches_sklearn(data):
    dim = data.draw(st.integers(1, 6))
    Q = data.draw(arrays(np.float64, (data.draw(st.integers(1, 4)), dim), elements=whole_floats))
    D = data.draw(arrays(np.float64, (data.draw(st.integers(1, 5)), dim), elements=whole_floats))
    C = cosine_matrix(Q, D)
    np.testing.assert_allclose(C, cosine_similarity(Q, D), atol=1e-9)
    assert (np.abs(C) <= 1 + 1e-12).all()
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(D), axis=1), (np.linalg.norm(D, axis=1) > 0) * 1.0)


@pytest.mark.parametrize(
    "Q, D, message",
    [
        (np.ones((2, 3)), np.ones((4, 2)), "Q and D must have the same vector dimension, got 3 and 2"),
        (np.ones(3), np.ones((4, 3)), "Q must have 2 dimensions"),
        (np.ones((2, 3)), np.ones((0, 3)), "D is empty"),
        (np.ones((2, 3)), np.array([[np.nan, 1, 1]]), "D contains NaN"),
        (np.ones((2, 3)), np.array([[np.inf, 1, 1]]), "D contains infinity"),
    ],
)
def test_cosine_matrix_bad_input(Q, D, message):
    with pytest.raises(ValueError, match=message):
        cosine_matrix(Q, D)


# ---------------------------------------------------------------- exact search
@pytest.mark.parametrize("N, k", [(50, 5), (5000, 10), (5000, 3000)])
def test_exact_search_equals_faiss_flat(monkeypatch, N, k):
    monkeypatch.setattr(dense, "BLOCK_SCORES", 4 * N)  # four queries per block: several blocks
    rng = np.random.default_rng(N)
    D, Q = rng_unit(rng, N, 16), rng_unit(rng, 30, 16)
    ids, scores = exact_search(Q, D, k)
    index = faiss.IndexFlatIP(16)
    index.add(D)
    faiss_scores, faiss_ids = index.search(Q, k)
    np.testing.assert_allclose(scores, faiss_scores, rtol=1e-5, atol=1e-5)
    # ids agree, except that two BLAS roundings may swap neighbours whose scores differ by ~1e-7
    S = Q.astype(np.float64) @ D.T.astype(np.float64)
    swapped = ids != faiss_ids
    assert swapped.mean() < 1e-3
    np.testing.assert_allclose(S[np.nonzero(swapped)[0], ids[swapped]], S[np.nonzero(swapped)[0], faiss_ids[swapped]],
                               atol=1e-6)
    flat_ids, flat_scores = ann_search(ann_index(D, "flat"), Q, k)
    np.testing.assert_array_equal(flat_ids, faiss_ids)
    np.testing.assert_array_equal(flat_scores, faiss_scores)


def test_exact_search_ties_and_bad_input():
    D = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    ids, scores = exact_search([[1.0, 0.0]], D, 2)
    assert ids.tolist() == [[0, 2]] and scores.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="queries and embeddings must have the same vector dimension"):
        exact_search(np.ones((1, 3)), D, 1)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        exact_search(np.ones((1, 2)), D, 0)


# ----------------------------------------------------------------------- maxsim
def test_maxsim_by_hand_padding_never_wins():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[1.0, 0.0], [0.6, 0.8], [9.0, 9.0]])
    assert maxsim(q, d, [1, 1, 0]) == pytest.approx(1.0 + 0.8)
    assert maxsim(q, d, [1, 1, 1]) == pytest.approx(9.0 + 9.0)
    # every real similarity negative: a zero-vector pad would win a max if it were not masked
    assert maxsim([[1.0, 0.0]], [[-1.0, 0.0], [0.0, 0.0]], [1, 0]) == pytest.approx(-1.0)
    # ties: two document tokens equally good count once per query token
    assert maxsim(q, [[1.0, 0.0], [1.0, 0.0]], [1, 1]) == pytest.approx(1.0)


@SETTINGS
@given(st.data())
def test_maxsim_matches_loops_and_batches(data):
    Lq, Ld, dim, N = (data.draw(st.integers(1, 5)) for _ in range(4))
    q = data.draw(arrays(np.float64, (Lq, dim), elements=small_floats))
    d = data.draw(arrays(np.float64, (N, Ld, dim), elements=small_floats))
    mask = np.array([data.draw(st.lists(st.integers(0, 1), min_size=Ld, max_size=Ld).filter(any)) for _ in range(N)])
    expected = [
        sum(max(float(q[i] @ d[n, j]) for j in range(Ld) if mask[n, j]) for i in range(Lq)) for n in range(N)
    ]
    np.testing.assert_allclose(maxsim(q, d, mask), expected, rtol=1e-9, atol=1e-9)
    assert maxsim(q, d[0], mask[0]) == pytest.approx(expected[0], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "q, d, mask, message",
    [
        (np.ones((2, 3)), np.ones((4, 2)), np.ones(4), "q_tokens and d_tokens must have the same vector dimension"),
        (np.ones((2, 3)), np.ones((4, 3)), np.ones(3), r"d_mask must have shape \(4,\)"),
        (np.ones((2, 3)), np.ones((4, 3)), np.zeros(4), "d_mask masks every token"),
        (np.ones((2, 3)), np.ones((4, 3)), np.full(4, 0.5), "d_mask must hold only 0"),
        (np.ones(3), np.ones((4, 3)), np.ones(4), "q_tokens must have 2 dimensions"),
        (np.ones((2, 3)), np.full((4, 3), np.nan), np.ones(4), "d_tokens contains NaN"),
    ],
)
def test_maxsim_bad_input(q, d, mask, message):
    with pytest.raises(ValueError, match=message):
        maxsim(q, d, mask)


# ---------------------------------------------------------------------- RRF
def test_rrf_by_hand():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]])
    assert [d for d, _ in fused] == ["b", "c", "a", "d"]
    np.testing.assert_allclose([s for _, s in fused], [1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 61, 1 / 63])
    # a tie is broken by doc id; search results [(doc_id, score)] are accepted as rankings
    assert reciprocal_rank_fusion([[("y", 9.0), ("x", 1.0)], [("x", 5.0), ("y", 0.0)]], k=1) == [
        ("x", 1 / 2 + 1 / 3),
        ("y", 1 / 2 + 1 / 3),
    ]
    assert reciprocal_rank_fusion([[], [3, 1]], k=10) == [(3, 1 / 11), (1, 1 / 12)]


rankings_st = st.lists(
    st.lists(st.integers(0, 20), unique=True, max_size=10), min_size=1, max_size=4
)


@SETTINGS
@given(rankings_st, st.integers(1, 100), st.randoms())
def test_rrf_properties(rankings, k, rnd):
    fused = reciprocal_rank_fusion(rankings, k=k)
    expected = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            expected[doc] = expected.get(doc, 0.0) + 1 / (k + rank)
    assert dict(fused) == pytest.approx(expected)
    assert fused == sorted(fused, key=lambda p: (-p[1], p[0]))
    shuffled = list(rankings)
    rnd.shuffle(shuffled)
    assert reciprocal_rank_fusion(shuffled, k=k) == fused  # exact sums: the order of rankings is irrelevant
    if len(rankings) == 1:
        assert [d for d, _ in fused] == rankings[0]


@pytest.mark.parametrize(
    "rankings, k, error, message",
    [
        ([["a"]], 0, ValueError, "k must be a number > 0, got 0"),
        ([["a"]], -1, ValueError, "k must be a number > 0"),
        ([["a"]], float("nan"), ValueError, "k must be a number > 0"),
        ([], 60, ValueError, "rankings must be a non-empty list"),
        ("ab", 60, ValueError, "rankings must be a non-empty list"),
        ([["a", "b", "a"]], 60, ValueError, r"rankings\[0\] lists a doc id more than once"),
        ([["a"], "b"], 60, TypeError, r"rankings\[1\] must be a list of doc ids"),
        ([["a"], [1]], 60, TypeError, "one kind"),
    ],
)
def test_rrf_bad_input(rankings, k, error, message):
    with pytest.raises(error, match=message):
        reciprocal_rank_fusion(rankings, k=k)


# --------------------------------------------------------------- knn_recall
def test_recall_at_k_by_hand():
    assert knn_recall([[1, 2, 3]], [[3, 4, 1]]) == pytest.approx(2 / 3)
    assert knn_recall([[1, 2], [-1, -1]], [[2, 1], [5, 6]]) == pytest.approx(0.5)  # -1: no result
    assert knn_recall([7, 8], [8, 7]) == 1.0


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_recall_at_k_properties(n, k, seed):
    rng = np.random.default_rng(seed)
    exact = np.stack([rng.permutation(30)[:k] for _ in range(n)])
    approx = rng.integers(-1, 30, size=(n, k))
    r = knn_recall(approx, exact)
    brute = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx.tolist(), exact.tolist())])
    assert r == pytest.approx(brute) and 0 <= r <= 1
    assert knn_recall(rng.permuted(exact, axis=1), exact) == 1.0


@pytest.mark.parametrize(
    "approx, exact, error, message",
    [
        ([[1, 2]], [[1, 2, 3]], ValueError, "approx_ids and exact_ids must have the same shape"),
        ([[1, 2]], [[1, 1]], ValueError, "exact_ids lists an id twice"),
        ([[1.0, 2.0]], [[1, 2]], TypeError, "approx_ids must be an array of integer ids"),
        ([], [], TypeError, "approx_ids must be an array of integer ids"),
        ([[1, 2]], [[-1, 2]], ValueError, "exact_ids must be non-negative"),
    ],
)
def test_recall_at_k_bad_input(approx, exact, error, message):
    with pytest.raises(error, match=message):
        knn_recall(approx, exact)


# ------------------------------------------------------------------------ ANN
def test_ivf_probing_every_cell_and_hnsw_are_close_to_exact():
    rng = np.random.default_rng(0)
    centres = rng_unit(rng, 20, 16)
    D = centres[rng.integers(0, 20, 2000)] + 0.1 * rng.standard_normal((2000, 16)).astype(np.float32)
    Q = D[rng.integers(0, 2000, 50)] + 0.05 * rng.standard_normal((50, 16)).astype(np.float32)
    exact_ids, _ = exact_search(Q, D, 10)
    ivf = ann_index(D, "ivf", nlist=16, nprobe=1)
    set_search_param(ivf, 16)
    assert knn_recall(ann_search(ivf, Q, 10)[0], exact_ids) == 1.0
    hnsw = ann_index(D, "hnsw", M=16, efSearch=200)
    assert knn_recall(ann_search(hnsw, Q, 10)[0], exact_ids) >= 0.95


def test_sweep_ann_rows():
    rng = np.random.default_rng(1)
    D, Q = rng_unit(rng, 800, 8), rng_unit(rng, 20, 8)
    rows = sweep_ann(D, Q, k=5, kind="ivf", values=[1, 20], repeats=1, nlist=20)
    assert [r["kind"] for r in rows] == ["flat", "ivf", "ivf"]
    assert rows[0]["recall@5"] == 1.0 and rows[2]["recall@5"] == 1.0  # nprobe = nlist scans everything
    assert rows[1]["nprobe"] == 1 and rows[1]["nlist"] == 20 and rows[1]["qps"] > 0
    rows = sweep_ann(D, Q, k=5, kind="hnsw", values=[8], repeats=1, M=8)
    assert rows[1]["efSearch"] == 8 and rows[1]["M"] == 8


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("lsh", {}, "kind must be one of"),
        ("ivf", {"M": 8}, r"kind='ivf' takes \('nlist', 'nprobe'\), got \['M'\]"),
        ("ivf", {"nlist": 100}, "nlist must be <= the number of embeddings"),
        ("hnsw", {"efSearch": 0}, "efSearch must be an int >= 1"),
        ("flat", {"nprobe": 2}, "takes no parameters"),
    ],
)
def test_ann_index_bad_input(kind, params, message):
    with pytest.raises(ValueError, match=message):
        ann_index(np.ones((10, 4), np.float32), kind, **params)


# ------------------------------------------------ grading uses these references
@pytest.mark.parametrize(
    "dotted, case",
    [
        ("course_lib.dense.mean_pool", (np.ones((1, 2, 3)), np.array([[1, 0]]))),
        ("course_lib.dense.cosine_matrix", (np.eye(2), np.ones((3, 2)))),
        ("course_lib.ranking.top_k", (np.array([0.1, 0.3, 0.3]), 2)),
        ("course_lib.colbert.maxsim", (np.eye(2), np.eye(2), np.array([1, 0]))),
        ("course_lib.dense.reciprocal_rank_fusion", ([["a", "b"], ["b"]],)),
        ("course_lib.ann.knn_recall", (np.array([[1, 2]]), np.array([[2, 3]]))),
    ],
)
def test_references_load_for_grading(dotted, case):
    """grading.reference executes the module afresh: it must import and agree with the library."""
    module, _, name = dotted.rpartition(".")
    public = getattr(__import__(module, fromlist=[name]), name)
    expected, got = public(*case), reference(dotted)(*case)
    assert same_ranking(expected, got) if name == "top_k" else repr(expected) == repr(got)


# ------------------------------------------------------- models: tiny profile
@pytest.fixture(scope="module")
def tiny_path():
    return str(models.tiny_bert())


@pytest.fixture(scope="module")
def tiny_encoder(tiny_path):
    return BiEncoder(tiny_path, cache=False)


def test_bi_encoder_encodes_unit_vectors_independent_of_batching(tiny_encoder):
    Z = tiny_encoder.encode(DOCS, batch_size=4, progress=False)
    assert Z.shape == (4, 32) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.vstack([tiny_encoder.encode([d], progress=False) for d in DOCS])
    np.testing.assert_allclose(Z, one_by_one, atol=1e-5)  # padding in a batch changes nothing


def test_progress_bars_obey_tqdm_disable(tiny_encoder, monkeypatch, capsys):
    """Under nbgrader, env.quiet() sets TQDM_DISABLE: a bar on stderr would cost the test cell its points."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    tiny_encoder.encode(DOCS, batch_size=1)
    assert "encoding" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    tiny_encoder.encode(DOCS, batch_size=1)
    assert capsys.readouterr().err == ""


def test_bi_encoder_pooling_is_the_library_function(tiny_path):
    encoder = BiEncoder(tiny_path, pooling="cls", normalize=False, cache=False)
    batch = encoder.tokenizer(DOCS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        H = encoder.model(**batch).last_hidden_state.numpy()
    np.testing.assert_allclose(encoder.encode(DOCS[:2], progress=False), H[:, 0], atol=1e-5)
    mean = BiEncoder(tiny_path, normalize=False, cache=False).encode(DOCS[:2], progress=False)
    np.testing.assert_allclose(mean, mean_pool(H, batch["attention_mask"].numpy()), atol=1e-5)


def test_bi_encoder_search_and_run(tiny_encoder):
    tiny_encoder.index(DOCS, IDS, progress=False)
    ranking = tiny_encoder.search(DOCS[1], k=2)
    assert ranking[0][0] == "enigma" and ranking[0][1] == pytest.approx(1.0, abs=1e-5) and len(ranking) == 2
    run = tiny_encoder.run({"q1": DOCS[2], "q2": "cipher"}, k=3)
    assert set(run) == {"q1", "q2"} and next(iter(run["q1"])) == "volcano" and len(run["q2"]) == 3
    assert tiny_encoder.search_batch([DOCS[3]], k=1) == [tiny_encoder.search(DOCS[3], k=1)]
    with pytest.raises(TypeError, match="query must be a str"):
        tiny_encoder.search(["a list"], 1)
    with pytest.raises(TypeError, match="texts must be a list of strings, got one str"):
        tiny_encoder.encode("one text")
    with pytest.raises(ValueError, match="doc_ids must be unique"):
        tiny_encoder.index(DOCS[:2], ["x", "x"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        BiEncoder(pooling="max")


def test_embedding_cache_hits_do_not_recompute(tiny_path, tmp_path):
    encoder = BiEncoder(tiny_path, cache=tmp_path)
    calls = []
    forward = encoder.model.forward
    encoder.model.forward = lambda *a, **kw: calls.append(len(kw["input_ids"])) or forward(*a, **kw)
    first = encoder.encode(DOCS[:3], batch_size=2, progress=False)
    assert sum(calls) == 3
    again = encoder.encode(DOCS[:3], progress=False)
    assert sum(calls) == 3  # every text was a hit
    np.testing.assert_array_equal(again, first)
    mixed = encoder.encode([DOCS[3], DOCS[0]], progress=False)
    assert sum(calls) == 4  # only the new text ran through the model
    np.testing.assert_array_equal(mixed[1], first[0])
    fresh = BiEncoder(tiny_path, cache=tmp_path)  # a new session reads the file
    fresh.model.forward = lambda *a, **kw: pytest.fail("the disk cache was not used")
    np.testing.assert_array_equal(fresh.encode(DOCS, progress=False)[:3], first)
    assert len(EmbeddingCache(fresh.cache.path.stem, tmp_path)) == 4
    other = BiEncoder(tiny_path, pooling="cls", cache=tmp_path)  # another setting, another key
    assert other.cache.path != fresh.cache.path


def test_colbert_tokens_markers_and_masks(tiny_path):
    scorer = ColBERTScorer(tiny_path, query_length=8, doc_length=12)
    query = scorer._tokenize(["cipher"], scorer.q_marker, 8, True)
    assert query["input_ids"][0, 1] == scorer.q_marker
    E_q = scorer.encode_queries(["cipher machine", "a much longer query than eight tokens allow"])
    assert E_q.shape == (2, 8, 32)
    np.testing.assert_allclose(np.linalg.norm(E_q, axis=-1), 1.0, rtol=1e-5)
    E_d, mask = scorer.encode_documents(["Magma, ash!", DOCS[0]], progress=False)
    assert E_d.shape[:2] == mask.shape == (2, 12)
    # [CLS] [D] magma , ash ! [SEP] then padding: punctuation and padding masked, markers kept
    assert mask[0].tolist() == [1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    alone, alone_mask = scorer.encode_documents(["Magma, ash!"], progress=False)
    np.testing.assert_allclose(alone[0, alone_mask[0] == 1], E_d[0, mask[0] == 1], atol=1e-5)


def test_colbert_search_is_maxsim(tiny_path):
    scorer = ColBERTScorer(tiny_path).index(DOCS, IDS, progress=False)
    ranking = scorer.search("rotor cipher machine", k=4)
    assert sorted(d for d, _ in ranking) == sorted(IDS)
    E_q = scorer.encode_queries(["rotor cipher machine"])[0]
    by_hand = {d: maxsim(E_q, scorer.doc_tokens[i], scorer.doc_mask[i]) for i, d in enumerate(IDS)}
    assert dict(ranking) == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(scorer.score("rotor cipher machine", DOCS), [by_hand[d] for d in IDS], rtol=1e-5)
    assert all(s <= 32 + 1e-4 for _, s in ranking)  # at most 1 per query token


def test_colbert_loads_a_projection(tiny_path, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, BertModel

    BertModel.from_pretrained(tiny_path).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_path).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["linear.weight"] = torch.randn(8, 32)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    scorer = ColBERTScorer(str(tmp_path), query_length=8)
    assert scorer.encode_queries(["cipher"]).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="query_length must be an int >= 1"):
        ColBERTScorer(str(tmp_path), query_length=0)


def test_cross_encoder_reranks_with_ties_by_doc_id(tiny_path):
    reranker = CrossEncoder(tiny_path)
    corpus = dict(zip(IDS, DOCS))
    candidates = ["reef", "caesar", "enigma"]
    # score the same batch rerank scores: the tiny random model gives near-equal scores, and a
    # different batch (other padding) can flip them by float noise
    scores = reranker.score("cipher", [corpus[d] for d in candidates])
    ranking = reranker.rerank("cipher", [("reef", 3.0), ("caesar", 2.0), ("enigma", 1.0)], corpus, k=2)
    expected = sorted(candidates, key=lambda d: (-scores[candidates.index(d)], d))[:2]
    assert [d for d, _ in ranking] == expected
    assert [s for _, s in ranking] == pytest.approx(sorted(scores.tolist(), reverse=True)[:2])
    # equal texts score equally: the tie rule (doc id), not the first stage's order, decides
    twice = reranker.rerank("cipher", ["enigma", "caesar"], {"caesar": "same", "enigma": "same"})
    assert [d for d, _ in twice] == ["caesar", "enigma"]
    with pytest.raises(KeyError, match="not in corpus"):
        reranker.rerank("cipher", ["nowhere"], corpus)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        reranker.rerank("cipher", IDS, corpus, k=0)


def test_training_pairs_positives_near_misses_and_hard_negatives():
    corpus = dict(zip(IDS, DOCS))
    queries = {"q1": "cipher machine", "q2": "nothing judged"}
    qrels = {"q1": {"enigma": 2, "caesar": 0}}
    first_stage = lambda q, k: [("enigma", 9.0), ("reef", 5.0), ("volcano", 1.0)][:k]  # noqa: E731
    pairs = training_pairs(queries, qrels, corpus, first_stage, negatives=2)
    assert pairs == [
        ("cipher machine", corpus["enigma"], 1.0),
        ("cipher machine", corpus["caesar"], 0.0),  # the judged near miss comes first
        ("cipher machine", corpus["reef"], 0.0),  # then the best unjudged first-stage result
    ]
    bm25_pairs = training_pairs(queries, {"q1": {"enigma": 2}}, corpus, negatives=1)  # BM25 by default
    assert bm25_pairs == [("cipher machine", corpus["enigma"], 1.0), ("cipher machine", corpus["caesar"], 0.0)]
    with pytest.raises(ValueError, match="no query in queries has a judged passage"):
        training_pairs(queries, {"q1": {"elsewhere": 1}}, corpus, first_stage)
    with pytest.raises(ValueError, match="qrels must be a non-empty mapping"):
        training_pairs(queries, {}, corpus)


def test_train_cross_encoder_learns_and_saves(tiny_path, tmp_path):
    pairs = [("cipher", DOCS[0], 1), ("cipher", DOCS[2], 0), ("reef", DOCS[3], 1), ("reef", DOCS[1], 0)]
    reranker = train_cross_encoder(pairs * 8, tiny_path, epochs=4, batch_size=8, lr=2e-3, warmup=0.0,
                                   save_to=tmp_path / "ce", progress=False)
    assert reranker.score("cipher", [DOCS[0]])[0] > reranker.score("cipher", [DOCS[2]])[0]
    assert reranker.score("reef", [DOCS[3]])[0] > reranker.score("reef", [DOCS[1]])[0]
    reloaded = CrossEncoder(str(tmp_path / "ce"))
    np.testing.assert_allclose(reloaded.score("reef", DOCS), reranker.score("reef", DOCS), atol=1e-5)
    with pytest.raises(ValueError, match=r"pairs\[0\] must be \(query: str, passage: str, label: 0 or 1\)"):
        train_cross_encoder([("q", "d", 0.5)], tiny_path)


def test_fine_tuning_from_an_encoder_starts_the_pooler_at_identity(tiny_path):
    pairs = [("cipher", DOCS[0], 1), ("cipher", DOCS[2], 0)]
    reranker = train_cross_encoder(pairs, tiny_path, lr=1e-12, progress=False)
    pooler = reranker.model.bert.pooler.dense
    np.testing.assert_allclose(pooler.weight.detach().numpy(), np.eye(32), atol=1e-6)
    np.testing.assert_allclose(pooler.bias.detach().numpy(), 0.0, atol=1e-6)


# --------------------------------------------- the packaged MiniLM (the oracle)
def test_pooling_matches_sentence_transformers_on_packaged_minilm(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    path = str(models.packaged_minilm())
    texts = DOCS + ["short", " ".join(["a long passage about rivers and deltas"] * 60)]  # the last is truncated
    for pooling in ("mean", "cls"):
        body = Transformer(path, max_seq_length=256)
        oracle = SentenceTransformer(
            modules=[body, Pooling(body.get_embedding_dimension(), pooling_mode=pooling), Normalize()], device="cpu"
        )
        expected = oracle.encode(texts, batch_size=3)
        got = BiEncoder(path, pooling=pooling, cache=tmp_path).encode(texts, batch_size=3, progress=False)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_offline_loading_takes_seconds(monkeypatch):
    """The hub unreachable and no offline flag set: the fast check decides, then the packaged model loads."""
    for var in env._OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(env, "_hub_answer", None)
    start = time.perf_counter()
    encoder = BiEncoder(profile="full", cache=False)
    elapsed = time.perf_counter() - start
    assert encoder.source == str(models.packaged_minilm())
    assert elapsed < 20, f"loading took {elapsed:.1f} s"
