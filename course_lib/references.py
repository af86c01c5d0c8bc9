"""Reference answers of exercises whose graded behaviour is not one library function as it stands,
and the table of what each chapter grades (read by :mod:`course_lib.grading`).

Each adapter is built from library objects; :data:`ALSO_BLOCKED` lists them, so calling the
library instead of writing the exercise is refused while the student's function runs.
Ranking adapters return the *complete* reference ranking and the cut ``k``
(:func:`course_lib.grading.same_ranking` needs every tied id to judge the last tie group).
"""
from __future__ import annotations


def tfidf_vector(docs, i):
    """Chapter 1: {term: tf * idf} of docs[i], from :class:`course_lib.sparse.TfidfRetriever`."""
    from . import sparse

    return sparse.TfidfRetriever().index(docs).document_vector(i)


def build_inverted_index(docs):
    """Chapter 1: {term: [(doc_id, tf, [positions]), ...]} from :class:`course_lib.sparse.InvertedIndex`."""
    from . import sparse

    return {term: [(p.doc_id, p.tf, list(p.positions)) for p in postings]
            for term, postings in sparse.InvertedIndex.build(docs).as_dict().items()}


def rank(docs, query_tokens, k=10):
    """Chapter 1: ([(doc_id, score)] of every document scoring above 0 by tf-idf cosine, k)."""
    from . import sparse

    hits = sparse.TfidfRetriever().index(docs).search(query_tokens, max(len(docs), 1))
    return [(d, s) for d, s in hits if s > 0], k


def bm25_rank(query, docs, k1=1.5, b=0.75, k=10):
    """Chapter 2: ((doc_ids, scores) of every document by Lucene BM25, k)."""
    from . import sparse

    hits = sparse.BM25("lucene", k1=k1, b=b).index(list(docs.values()), list(docs)).search(query, len(docs))
    return ([d for d, _ in hits], [s for _, s in hits]), k


def reciprocal_rank_fusion(rankings, k=60):
    """Chapter 3: (the complete fused ranking of :func:`course_lib.dense.reciprocal_rank_fusion`, no cut)."""
    from . import dense

    return dense.reciprocal_rank_fusion(rankings, k), None


def weighted_fusion(rankings, weights=None):
    """Chapter 4: (the complete fused ranking of :func:`course_lib.rag.weighted_fusion`, no cut)."""
    from . import rag

    return rag.weighted_fusion(rankings, weights), None


def answer_in_window(offsets, sequence_ids, start_char, end_char):
    """Chapter 5: True when :func:`course_lib.squad.label_positions` finds the answer in the window."""
    from . import squad

    return squad.label_positions(offsets, sequence_ids, start_char, end_char) != (0, 0)


def span_text(context, offsets, i, j):
    """Chapter 5: the text :func:`course_lib.squad.postprocess` returns for logits that single out tokens i and j."""
    from . import squad

    start_logits, end_logits = [0.0] * len(offsets), [0.0] * len(offsets)
    start_logits[i], end_logits[j] = 10.0, 10.0
    predictions = squad.postprocess({"id": ["q"], "context": [context]}, {"example_id": ["q"], "offset_mapping": [offsets]},
                                    [start_logits], [end_logits], n_best=1, max_answer_length=len(offsets))
    return predictions[0]["prediction_text"]


_HERE = "course_lib.references."
# target -> further public routes to the same behaviour (refused while the student's function runs)
ALSO_BLOCKED: dict[str, tuple[str, ...]] = {
    _HERE + "tfidf_vector": ("course_lib.sparse.TfidfRetriever",),
    _HERE + "build_inverted_index": ("course_lib.sparse.InvertedIndex",),
    _HERE + "rank": ("course_lib.sparse.TfidfRetriever",),
    _HERE + "bm25_rank": ("course_lib.sparse.BM25",),
    _HERE + "reciprocal_rank_fusion": ("course_lib.dense.reciprocal_rank_fusion",),
    _HERE + "weighted_fusion": ("course_lib.rag.weighted_fusion",),
    _HERE + "answer_in_window": ("course_lib.squad.label_positions",),
    _HERE + "span_text": ("course_lib.squad.postprocess",),
    "course_lib.sparse.bm25_term_score": ("course_lib.sparse.bm25_idf",),
    "course_lib.metrics.mean_reciprocal_rank": ("course_lib.metrics.reciprocal_rank",),
    # chapter 5 asks for EM and F1 by hand: the metric's parts and the local `evaluate` metric
    # (whose module holds squad_score) refuse too
    "course_lib.metrics.squad_score": ("course_lib.metrics.exact_match", "course_lib.metrics.token_f1",
                                       "course_lib.metrics.normalize_answer"),
}

# chapter -> the targets its test cells name (tests/test_grading.py checks it against the notebooks)
TARGETS: dict[str, tuple[str, ...]] = {
    "01_tfidf": ("course_lib.sparse.tf_weight", "course_lib.sparse.idf_weight", _HERE + "tfidf_vector",
                 "course_lib.sparse.cosine", _HERE + "build_inverted_index", _HERE + "rank", "course_lib.sparse.ngrams"),
    "02_bm25": ("course_lib.sparse.bm25_idf", "course_lib.sparse.bm25_term_score", _HERE + "bm25_rank",
                "course_lib.metrics.precision_at_k", "course_lib.metrics.recall_at_k",
                "course_lib.metrics.reciprocal_rank", "course_lib.metrics.mean_reciprocal_rank",
                "course_lib.metrics.average_precision", "course_lib.metrics.ndcg_at_k"),
    "03_dense_retrieval": ("course_lib.dense.mean_pool", "course_lib.dense.cosine_matrix", "course_lib.ranking.top_k",
                           _HERE + "reciprocal_rank_fusion", "course_lib.colbert.maxsim", "course_lib.ann.knn_recall"),
    "04_rag": ("course_lib.rag.chunk_spans", _HERE + "weighted_fusion", "course_lib.rag.build_prompt",
               "course_lib.rag.map_citations", "course_lib.rag.second_hop_query", "course_lib.rag.evaluate_qa"),
    "05_squad_finetuning": ("course_lib.squad.context_span", _HERE + "answer_in_window",
                            "course_lib.squad.label_positions", "course_lib.squad.best_span", _HERE + "span_text",
                            "course_lib.metrics.squad_score"),
}
