"""course_lib.ranking: the one top-k and its tie rule (score descending, then doc id), against
full sorts, and every retriever of the course held to the same rule."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import models, rag
from course_lib.colbert import ColBERTScorer
from course_lib.dense import BiEncoder, exact_search, reciprocal_rank_fusion
from course_lib.ranking import id_rank, ranking_from_scores, top_k
from course_lib.sparse import BM25, TfidfRetriever

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_top_k(scores, k, rank=None):
    """Score descending, then ``rank`` (default: index) ascending, by a full sort."""
    return np.lexsort((np.arange(scores.size) if rank is None else rank, -scores))[:k]


def test_top_k_by_hand_with_ties():
    ids, values = top_k([0.5, 0.9, 0.5, 0.9, 0.1], 3)
    assert ids.tolist() == [1, 3, 0] and values.tolist() == [0.9, 0.9, 0.5]
    ids, values = top_k([0.2, 0.1], 5)  # k > N: all of them
    assert ids.tolist() == [0, 1]
    ids, values = top_k([[1, 2, 3], [3, 3, -np.inf]], 2)
    assert ids.tolist() == [[2, 1], [0, 1]] and values.tolist() == [[3, 2], [3, 3]]
    # doc ids ["d", "b", "a", "c"]: among the ties at 0.9 (positions 0, 1, 3), "b" then "c" then "d"
    assert id_rank(["d", "b", "a", "c"]).tolist() == [3, 1, 0, 2]
    ids, _ = top_k([0.9, 0.9, 0.1, 0.9], 2, id_rank(["d", "b", "a", "c"]))
    assert ids.tolist() == [1, 3]


@SETTINGS
@given(st.data())
def test_top_k_matches_a_full_sort(data):
    # few distinct values, so ties are everywhere; N up to 6000 exercises the two-level path
    n, N, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 6000)), data.draw(st.integers(1, 12))
    seed, levels = data.draw(st.integers(0, 2**32 - 1)), data.draw(st.integers(1, 30))
    rng = np.random.default_rng(seed)
    S = rng.integers(0, levels, size=(n, N)).astype(np.float32)
    rank = rng.permutation(N) if data.draw(st.booleans()) else None
    ids, values = top_k(S, k, rank)
    for row, row_ids, row_values in zip(S, ids, values):
        expected = brute_top_k(row, k, rank)
        assert row_ids.tolist() == expected.tolist()
        np.testing.assert_array_equal(row_values, row[expected])


@pytest.mark.parametrize(
    "scores, k, rank, message",
    [
        ([1.0, 2.0], 0, None, "k must be an int >= 1, got 0"),
        ([1.0, 2.0], -3, None, "k must be an int >= 1"),
        ([1.0, 2.0], 1.5, None, "k must be an int >= 1"),
        ([1.0, 2.0], True, None, "k must be an int >= 1"),
        ([], 1, None, "scores is empty"),
        ([1.0, np.nan], 1, None, "scores contains NaN"),
        (np.ones((2, 2, 2)), 1, None, "scores must have 1 or 2 dimensions"),
        ([1.0, 2.0], 1, [0, 0], "id_rank must be a permutation of 0..1"),
        ([1.0, 2.0], 1, [0, 1, 2], "id_rank must be a permutation"),
        ([1.0, 2.0], 1, [0.0, 1.0], "id_rank must be a permutation"),
    ],
)
def test_top_k_bad_input(scores, k, rank, message):
    with pytest.raises(ValueError, match=message):
        top_k(scores, k, rank)


def test_exact_search_refuses_an_id_rank_that_is_not_a_permutation():
    with pytest.raises(ValueError, match="id_rank must be a permutation of 0..2"):
        exact_search(np.ones((1, 2)), np.ones((3, 2)), 2, [0, 0, 1])


# ------------------------------------------- every retriever ranks ties by doc id
# the same text three times under ids out of order, so every retriever sees exact ties
TEXTS = ["the enigma cipher machine", "coral reefs in warm seas", "the enigma cipher machine",
         "volcanoes and magma", "the enigma cipher machine", "coral reefs in warm seas"]
IDS = ["p5", "p3", "p1", "p4", "p2", "p0"]
QUERY = "enigma cipher reefs"


def _held_to_the_rule(hits):
    """A result [(doc_id, score), ...] in the order the metrics rank it, with a tie in it."""
    assert [d for d, _ in hits] == ranking_from_scores(dict(hits)), hits
    assert len({s for _, s in hits}) < len(hits), "the case must contain ties"


@pytest.mark.parametrize("retriever", [BM25, TfidfRetriever])
def test_sparse_retrievers_break_ties_by_doc_id(retriever):
    hits = retriever().index(TEXTS, IDS).search(QUERY, k=6)
    _held_to_the_rule(hits)
    assert [d for d, _ in hits][:3] == ["p1", "p2", "p5"]


def test_bi_encoder_and_colbert_break_ties_by_doc_id():
    encoder = BiEncoder(str(models.tiny_bert()), cache=False).index(TEXTS, IDS, progress=False)
    hits = encoder.search(QUERY, k=6)
    _held_to_the_rule(hits)
    scorer = ColBERTScorer(str(models.tiny_bert()), query_length=8).index(TEXTS, IDS, progress=False)
    _held_to_the_rule(scorer.search(QUERY, k=6))


def test_rag_retrievers_and_fusion_break_ties_by_doc_id():
    chunks = [{"chunk_id": i, "doc_id": i, "text": t, "title": ""} for i, t in zip(IDS, TEXTS)]
    dense = rag.DenseRetriever(chunks, profile="tiny")
    bm25 = rag.BM25Retriever(chunks)
    hybrids = [rag.HybridRetriever([bm25, dense]), rag.HybridRetriever([bm25, dense], fusion="weighted")]
    for retriever in (dense, bm25, *hybrids):
        _held_to_the_rule(retriever.search(QUERY, k=6))
    _held_to_the_rule(reciprocal_rank_fusion([["p5", "p3"], ["p3", "p5"]]))
