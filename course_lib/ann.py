"""Approximate nearest-neighbour search with FAISS, and how much it approximates (chapter 3).

Exact search compares a query with all N vectors.  Two classic ways to look at
fewer of them, both by inner product (cosine, for unit vectors):

* IVF (inverted file): k-means cuts the space into ``nlist`` cells; a vector is
  stored in the cell of its nearest centroid; a query scans only the ``nprobe``
  cells whose centroids are nearest to it.  Cost ~ nprobe / nlist of exact search.
* HNSW (hierarchical navigable small world graph): each vector is linked to ``M``
  neighbours on several layers; a query walks greedily down the layers, keeping the
  ``efSearch`` best candidates seen so far.  Larger efSearch: slower, more exact.

Quality is recall@k against exact search: the share of the true k nearest
neighbours that the approximate search also returns.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .checks import check_array, check_int, check_same_dim
from .dense import exact_search

KINDS = {"flat": (), "ivf": ("nlist", "nprobe"), "hnsw": ("M", "efConstruction", "efSearch")}
SEARCH_PARAM = {"ivf": "nprobe", "hnsw": "efSearch"}


def knn_recall(approx_ids, exact_ids) -> float:
    """k-NN recall: the mean share of the exact top-k ids that the approximate search found (chapter 3).
    It counts true nearest neighbours, not relevant documents (that is :func:`course_lib.metrics.recall_at_k`).

    recall@k = (1/n) sum_q |A_q & E_q| / |E_q| for ``approx_ids`` A and ``exact_ids`` E,
    both (n, k) (or (k,) for one query).  Order inside a row does not matter; FAISS's
    -1 ("no result") never matches.  Exact ids must be distinct within a row.
    """
    A = _ids(approx_ids, "approx_ids")
    E = _ids(exact_ids, "exact_ids")
    if A.shape != E.shape:
        raise ValueError(f"approx_ids and exact_ids must have the same shape, got {A.shape} and {E.shape}")
    E2 = np.atleast_2d(E)
    if (E2 < 0).any():
        raise ValueError("exact_ids must be non-negative document indices")
    ordered = np.sort(E2, axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        raise ValueError("exact_ids lists an id twice in one row")
    found = (E2[:, :, None] == np.atleast_2d(A)[:, None, :]).any(axis=2)
    return float(found.mean())


def ann_index(embeddings, kind: str = "hnsw", **params):
    """A FAISS inner-product index holding ``embeddings`` (N x dim) (chapter 3).

    ``kind="flat"``: exact (``IndexFlatIP``).  ``"ivf"``: ``IndexIVFFlat`` with
    ``nlist`` cells (default min(4 sqrt(N), N / 39): FAISS wants 39 training points
    per centroid) and ``nprobe`` (default 8), trained on the embeddings.  ``"hnsw"``:
    ``IndexHNSWFlat`` with ``M`` links (32), ``efConstruction`` (40), ``efSearch`` (64).
    """
    import faiss

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    unknown = set(params) - set(KINDS[kind])
    if unknown:
        raise ValueError(f"kind={kind!r} takes {KINDS[kind] or 'no parameters'}, got {sorted(unknown)}")
    for name, value in params.items():
        check_int(value, name)
    X = _float32(embeddings, "embeddings")
    N, dim = X.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = params.get("nlist", max(1, min(int(4 * math.sqrt(N)), N // 39)))
        if nlist > N:
            raise ValueError(f"nlist must be <= the number of embeddings ({N}), got {nlist}")
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(X)
    else:
        index = faiss.IndexHNSWFlat(dim, params.get("M", 32), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.get("efConstruction", 40)
    index.add(X)
    if kind in SEARCH_PARAM:
        set_search_param(index, params.get(SEARCH_PARAM[kind], {"ivf": 8, "hnsw": 64}[kind]))
    return index


def set_search_param(index, value: int) -> None:
    """Set ``nprobe`` of an IVF index or ``efSearch`` of an HNSW index (no rebuild needed)."""
    import faiss

    check_int(value, "value")
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = min(int(value), index.nlist)
    elif isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = int(value)
    else:
        raise TypeError(f"index must be an IVF or HNSW index, got {type(index).__name__}")


def ann_search(index, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` of the ``k`` best vectors of ``index`` for each query (n x dim);
    missing results (fewer than k reachable) have id -1."""
    Q = _float32(queries, "queries")
    if Q.shape[1] != index.d:
        raise ValueError(f"queries must have {index.d} columns like the index, got {Q.shape[1]}")
    check_int(k, "k")
    scores, ids = index.search(Q, k)
    return ids, scores


def sweep_ann(embeddings, queries, k: int = 10, kind: str = "hnsw", values=None,
              *, repeats: int = 3, **build) -> list[dict]:
    """Recall@k against exact search and queries per second as the search parameter grows (chapter 3).

    Builds one ``kind`` index with ``build`` parameters (e.g. ``nlist=256`` or ``M=16``),
    then searches with each of ``values`` for ``nprobe`` (IVF) or ``efSearch`` (HNSW).
    The first row is exact search (``IndexFlatIP``).  Each row: ``kind``, the
    parameters, ``recall@k``, ``qps`` (best of ``repeats``) and ``build_s``.
    """
    if kind not in SEARCH_PARAM:
        raise ValueError(f"kind must be one of {tuple(SEARCH_PARAM)}, got {kind!r}")
    check_int(repeats, "repeats")
    X, Q = _float32(embeddings, "embeddings"), _float32(queries, "queries")
    check_same_dim(Q, "queries", X, "embeddings")
    exact_ids, _ = exact_search(Q, X, k)
    name = SEARCH_PARAM[kind]
    values = list(values or ((1, 2, 4, 8, 16, 32) if kind == "ivf" else (8, 16, 32, 64, 128, 256)))
    flat, flat_s = _built(X, "flat")
    rows = [_measured(flat, Q, k, exact_ids, repeats, {"kind": "flat", "build_s": flat_s})]
    index, build_s = _built(X, kind, **build)
    for value in values:
        set_search_param(index, value)
        row = {"kind": kind, **build, name: value, "build_s": build_s}
        rows.append(_measured(index, Q, k, exact_ids, repeats, row))
    return rows


def _built(X: np.ndarray, kind: str, **params):
    """``(index, seconds to build it)``."""
    start = time.perf_counter()
    index = ann_index(X, kind, **params)
    return index, time.perf_counter() - start


def _measured(index, Q: np.ndarray, k: int, exact_ids: np.ndarray, repeats: int, row: dict) -> dict:
    """``row`` with recall@k against ``exact_ids`` and queries per second (best of ``repeats``)."""
    seconds = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        _, ids = index.search(Q, k)
        seconds = min(seconds, time.perf_counter() - start)
    return {**row, f"recall@{k}": knn_recall(ids, exact_ids), "qps": len(Q) / seconds}


def _float32(value, name: str) -> np.ndarray:
    """A 2-d array as C-contiguous float32, as FAISS needs it."""
    return np.ascontiguousarray(check_array(value, name, 2), dtype=np.float32)


def _ids(value, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer ids, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty (n, k) or (k,) array of ids, got shape {arr.shape}")
    return arr
