"""Ranking: the one top-k of the course and its one tie rule (chapters 1-5).

**The tie rule.** A ranking lists documents by score descending; documents with equal
scores follow in ascending doc id order. Every retriever (sparse, dense, late
interaction, reranking, fusion) and every metric ranks this way, so a printed ranking
and the evaluated one are the same list.

For arrays, "doc id order" is given as ``id_rank``: ``id_rank[i]`` is document i's
place when the doc ids are sorted (``None``: the position itself, for documents
numbered 0..N-1).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .checks import check_array, check_int, check_permutation

CHUNK = 64  # top_k's first level: the maximum of every CHUNK consecutive scores


def top_k(scores, k: int, id_rank=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of ``scores`` (N,), or of each row of ``scores`` (n, N) (chapter 3).

    Returns ``(ids, values)``: positions by score descending, then by ``id_rank``
    ascending (the doc id order; ``None``: by position), so ties are deterministic;
    ``k`` larger than N returns all N.
    """
    S = check_array(scores, "scores", (1, 2), allow_inf=True)
    check_int(k, "k")
    rank = None if id_rank is None else check_permutation(id_rank, "id_rank", S.shape[-1])
    rows = np.atleast_2d(S)
    ids = _top_rows(rows, k, rank)
    values = np.take_along_axis(rows, ids, axis=1)
    return (ids[0], values[0]) if S.ndim == 1 else (ids, values)


def id_rank(doc_ids) -> np.ndarray:
    """Each document's place when ``doc_ids`` are sorted ascending: the ``id_rank`` of :func:`top_k`."""
    ids = list(doc_ids)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return rank


def ranking_from_scores(scores: Mapping) -> list:
    """The doc ids of ``scores`` {doc_id: score} ranked by score descending, then doc id ascending."""
    return sorted(scores, key=lambda d: (-scores[d], d))


def _top_row(s: np.ndarray, k: int, rank: np.ndarray) -> np.ndarray:
    """Positions of the k best of the 1-d ``s`` (k <= s.size), by the tie rule, exactly."""
    kth = np.partition(s, s.size - k)[s.size - k]  # the k-th best score
    above = np.flatnonzero(s > kth)
    ties = np.flatnonzero(s == kth)
    ties = ties[np.argsort(rank[ties], kind="stable")[: k - above.size]]  # the first ids among the ties
    best = np.concatenate((above, ties))
    return best[np.lexsort((rank[best], -s[best]))]


def _top_rows(S: np.ndarray, k: int, rank: np.ndarray | None) -> np.ndarray:
    """:func:`top_k` positions of each row of the 2-d ``S``, without input checks.

    For small k the selection is two-level: each run of CHUNK scores is summarised by
    its maximum, and only the k runs with the largest maxima (plus a short tail) can
    hold a top-k score, so only their scores are candidates.  ``argpartition`` then
    picks k candidates per row; a row where a score left out ties the k-th best is
    redone exactly (:func:`_top_row`), to keep the tie rule.
    """
    n, N = S.shape
    k = min(k, N)
    rank = np.arange(N) if rank is None else rank
    R = N // CHUNK  # full runs
    two_level = R >= 4 * k
    if two_level:
        N0 = R * CHUNK
        M = np.maximum.reduceat(S[:, :N0], np.arange(0, N0, CHUNK), axis=1)  # (n, R) run maxima
        runs = np.argpartition(-M, k - 1, axis=1)[:, :k]
        chosen = S[:, :N0].reshape(n, R, CHUNK)[np.arange(n)[:, None], runs].reshape(n, k * CHUNK)
        values = np.hstack((chosen, S[:, N0:]))
    else:
        values = S
    # the k smallest of -values: much faster than the k largest of values when many scores tie (zeros)
    best = np.argpartition(-values, k - 1, axis=1)[:, :k]
    best_values = np.take_along_axis(values, best, axis=1)
    kth = best_values.min(axis=1, keepdims=True)
    redo = (values >= kth).sum(axis=1) > k
    ids = best
    if two_level:  # candidate position -> column of S
        run = np.take_along_axis(runs, np.minimum(best // CHUNK, k - 1), axis=1)
        ids = np.where(best < k * CHUNK, run * CHUNK + best % CHUNK, N0 + best - k * CHUNK)
        redo |= (M >= kth).sum(axis=1) > (np.take_along_axis(M, runs, axis=1) >= kth).sum(axis=1)
    ids = np.take_along_axis(ids, np.lexsort((rank[ids], -best_values), axis=1), axis=1)
    for r in np.flatnonzero(redo):
        ids[r] = _top_row(S[r], k, rank)
    return ids
