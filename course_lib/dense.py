"""Dense retrieval: pooling, cosine scores, exact top-k search, the bi-encoder and
reciprocal rank fusion (chapter 3).

A bi-encoder turns every text into one vector, z = normalise(pool(BERT(text))),
and scores a query against a document by the dot product of their vectors::

    score(q, d) = z_q . z_d          (= cos(q, d), since |z_q| = |z_d| = 1)

Documents are encoded once, at index time; a query costs one encoding and one
matrix product with the N x dim document matrix.

The small pure functions are what chapter 3's exercises are graded against:
:func:`mean_pool`, :func:`cosine_matrix`, :func:`reciprocal_rank_fusion` (and
:func:`course_lib.ranking.top_k`, :func:`course_lib.colbert.maxsim`,
:func:`course_lib.ann.knn_recall`).  :class:`BiEncoder` runs a plain
``transformers`` model and applies the same functions, so the pooling students
write is the pooling the encoder uses.

Conventions: arrays are numpy; a ranking from a retriever's ``search`` is a list
``[(doc_id, score), ...]``, best first, as in :mod:`course_lib.sparse`; bad input
raises an error that names the argument and what was expected.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import env, models
from .batching import iter_batches
from .ranking import CHUNK, id_rank, ranking_from_scores, top_k
from .checks import (check_array, check_doc_ids, check_int, check_permutation, check_same_dim, check_text, check_texts,
                     ranked_ids)

POOLINGS = ("mean", "cls")
BLOCK_SCORES = 1 << 24  # exact_search: at most this many scores (64 MiB of float32) in memory at once
QUERY_BLOCK = 1024  # exact_search: queries per block


# ----------------------------------------------------------------- pure functions
def mean_pool(token_embeddings, attention_mask) -> np.ndarray:
    """Average the token vectors of each text over its real tokens (chapter 3).

    z_b = sum_t m_bt h_bt / sum_t m_bt, for ``token_embeddings`` h of shape
    (batch, tokens, dim) and ``attention_mask`` m of shape (batch, tokens), 1 for a
    real token and 0 for padding, so padding never changes the average.
    """
    H = check_array(token_embeddings, "token_embeddings", 3)
    m = check_array(attention_mask, "attention_mask", 2)
    if m.shape != H.shape[:2]:
        raise ValueError(
            f"attention_mask must have shape (batch, tokens) = {H.shape[:2]} to match token_embeddings, got {m.shape}"
        )
    if not np.isin(m, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    counts = m.sum(axis=1, keepdims=True)
    if (counts == 0).any():
        raise ValueError(f"attention_mask row {int(np.flatnonzero(counts[:, 0] == 0)[0])} has no token (all 0)")
    return (H * m[:, :, None].astype(H.dtype)).sum(axis=1) / counts.astype(H.dtype)


def cls_pool(token_embeddings) -> np.ndarray:
    """The vector of the first token, [CLS], of each text: z_b = h_b0 (chapter 3)."""
    return check_array(token_embeddings, "token_embeddings", 3)[:, 0, :]


def l2_normalize(X) -> np.ndarray:
    """``X`` scaled to unit length along its last axis, x / |x| (chapter 3); a zero vector stays zero."""
    X = check_array(X, "X", (1, 2, 3))
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def cosine_matrix(Q, D) -> np.ndarray:
    """All cosines between the rows of ``Q`` (n x dim) and ``D`` (N x dim), an n x N matrix (chapter 3).

    cos(q, d) = q . d / (|q| |d|); a zero vector has cosine 0 with everything.
    """
    Q, D = check_array(Q, "Q", 2), check_array(D, "D", 2)
    check_same_dim(Q, "Q", D, "D")
    return l2_normalize(Q) @ l2_normalize(D).T


def exact_search(queries, embeddings, k: int = 10, id_rank=None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner-product search of every query against every embedding (chapter 3).

    scores = Q D^T, one block of at most ``BLOCK_SCORES`` scores at a time (as FAISS
    does: a block of queries against a block of embeddings); the :func:`~course_lib.ranking.top_k`
    of each block, then the top k of those candidates, which is exact, ties included
    (ties by ``id_rank``, the doc id order: see :mod:`course_lib.ranking`).
    Returns ``(ids, scores)``, each n x min(k, N) (FAISS returns them the other way
    round).  With unit vectors the scores are cosines.
    """
    Q, D = check_array(queries, "queries", 2), check_array(embeddings, "embeddings", 2)
    check_same_dim(Q, "queries", D, "embeddings")
    check_int(k, "k")
    rank = np.arange(len(D)) if id_rank is None else check_permutation(id_rank, "id_rank", len(D))
    Q = Q.astype(D.dtype, copy=False)
    n, N = len(Q), len(D)
    rows = min(n, QUERY_BLOCK)
    cols = max(BLOCK_SCORES // rows // CHUNK, 1) * CHUNK
    ids = np.empty((n, min(k, N)), dtype=np.int64)
    scores = np.empty(ids.shape, dtype=D.dtype)
    buffer = np.empty((rows, min(cols, N)), dtype=D.dtype)  # reused: no new 64 MiB per block
    # each block's own doc id order (None: by position)
    block_rank = {d0: None if id_rank is None else rank[d0 : d0 + cols].argsort().argsort() for d0 in range(0, N, cols)}
    for q0 in range(0, n, rows):
        block_ids, block_scores = [], []
        for d0 in range(0, N, cols):
            Qb, Db = Q[q0 : q0 + rows], D[d0 : d0 + cols]
            S = np.matmul(Qb, Db.T, out=buffer) if buffer.shape == (len(Qb), len(Db)) else Qb @ Db.T
            top, values = top_k(S, k, block_rank[d0])
            block_ids.append(np.atleast_2d(top) + d0)
            block_scores.append(np.atleast_2d(values))
        I, V = np.hstack(block_ids), np.hstack(block_scores)
        order = np.lexsort((rank[I], -V), axis=1)[:, :k]
        ids[q0 : q0 + rows] = np.take_along_axis(I, order, axis=1)
        scores[q0 : q0 + rows] = np.take_along_axis(V, order, axis=1)
    return ids, scores


def reciprocal_rank_fusion(rankings, k: float = 60) -> list[tuple[Any, float]]:
    """Fuse several rankings of documents into one (chapter 3; Cormack et al., 2009).

    RRF(d) = sum over the rankings that contain d of 1 / (k + rank(d)), rank 1 being
    the best.  Each ranking lists doc ids best first, or is a search result
    ``[(doc_id, score), ...]`` whose scores are ignored.  Returns
    ``[(doc_id, RRF(d)), ...]`` by score descending, then doc id ascending.  The
    sum is exact (``math.fsum``), so the order of the rankings does not matter.
    """
    if not isinstance(k, (int, float, np.integer, np.floating)) or isinstance(k, bool) or not k > 0:
        raise ValueError(f"k must be a number > 0, got {k!r}")
    if isinstance(rankings, (str, bytes, Mapping)) or not isinstance(rankings, Sequence) or not rankings:
        raise ValueError(f"rankings must be a non-empty list of rankings, got {rankings!r}")
    terms: dict[Any, list[float]] = {}
    for i, ranking in enumerate(rankings):
        for rank, doc in enumerate(ranked_ids(ranking, f"rankings[{i}]"), start=1):
            terms.setdefault(doc, []).append(1.0 / (k + rank))
    fused = {doc: math.fsum(t) for doc, t in terms.items()}
    try:
        return [(d, fused[d]) for d in ranking_from_scores(fused)]
    except TypeError:
        raise TypeError("rankings must use doc ids of one kind (all str or all int) so that ties can be ordered")


# ------------------------------------------------------------------- bi-encoder
class BiEncoder:
    """Dense retrieval with one encoder for queries and documents (chapter 3).

    z = normalise(pool(BERT(text))), pool = :func:`mean_pool` over the attention mask
    (``pooling="mean"``, how all-MiniLM-L6-v2 was trained) or the [CLS] vector
    (``"cls"``, the textbook's BERT(q)[CLS]); score(q, d) = z_q . z_d.

    ``model_name_or_path=None`` takes the profile's encoder from
    :func:`course_lib.models.resolve` (the packaged all-MiniLM-L6-v2 offline, the tiny
    BERT in tests).  Texts longer than ``max_length`` tokens are truncated (MiniLM was
    trained on 256).  With ``cache=True`` embeddings are kept on disk under
    ``models.cache_dir()/embeddings`` (or the directory ``cache`` names), keyed by the
    model and a hash of each text, so a text is encoded once.  Usage::

        encoder = BiEncoder().index(passages, doc_ids)
        encoder.search("who broke the Enigma", k=5)   # [(doc_id, score), ...]
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        pooling: str = "mean",
        *,
        max_length: int = 256,
        normalize: bool = True,
        cache: bool | str | Path = True,
        device: str | None = None,
        profile: str | None = None,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        check_int(max_length, "max_length")
        self.source = str(model_name_or_path or models.resolve("encoder", profile))
        self.tokenizer, self.model = models.load_encoder(self.source)
        self.device = device or env.device()
        self.model.to(self.device)
        self.pooling, self.max_length, self.normalize = pooling, max_length, bool(normalize)
        self.dim = self.model.config.hidden_size
        self.cache = None
        if cache:
            key = model_fingerprint(self.source, self.model, pooling=pooling, max_length=max_length,
                                    normalize=self.normalize)
            self.cache = EmbeddingCache(key, None if cache is True else cache)
        self.embeddings: np.ndarray | None = None
        self.doc_ids: list = []

    def encode(self, texts: Sequence[str], batch_size: int = 32, *, progress: bool = True,
               cached: bool = True) -> np.ndarray:
        """One float32 vector per text (len(texts) x dim), unit length if ``normalize``;
        ``cached=False`` neither reads nor writes the disk cache (queries)."""
        texts = check_texts(texts, "texts")
        cache = self.cache if cached else None
        found = cache.get(texts) if cache is not None else {}
        todo = [i for i, t in enumerate(texts) if t not in found]
        new = np.zeros((len(todo), self.dim), dtype=np.float32)
        for batch in iter_batches([texts[i] for i in todo], batch_size, progress, "encoding"):
            H, mask = self._token_embeddings([texts[todo[i]] for i in batch])
            z = mean_pool(H, mask) if self.pooling == "mean" else cls_pool(H)
            new[batch] = l2_normalize(z) if self.normalize else z
        if cache is not None and todo:
            cache.put([texts[i] for i in todo], new)
        Z = np.empty((len(texts), self.dim), dtype=np.float32)
        Z[todo] = new
        for i, t in enumerate(texts):
            if t in found:
                Z[i] = found[t]
        return Z

    def _token_embeddings(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            H = self.model(**batch.to(self.device)).last_hidden_state
        return H.float().cpu().numpy(), batch["attention_mask"].cpu().numpy()

    def index(self, docs: Sequence[str], doc_ids: Sequence | None = None, batch_size: int = 32,
              *, progress: bool = True) -> "BiEncoder":
        """Encode ``docs`` once and keep their vectors under ``doc_ids`` (0..N-1 by default); returns self."""
        docs = check_texts(docs, "docs")
        self.doc_ids = check_doc_ids(doc_ids, len(docs))
        self._id_rank = id_rank(self.doc_ids)
        self.embeddings = self.encode(docs, batch_size, progress=progress)
        return self

    def search(self, query: str, k: int = 10) -> list[tuple[Any, float]]:
        """The top ``k`` documents as [(doc_id, score), ...]: score descending, then doc id."""
        return self.search_batch([check_text(query, "query")], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, batch_size: int = 32) -> list[list[tuple[Any, float]]]:
        """:meth:`search` for each of ``queries``, encoded in batches and scored by one matrix product."""
        if self.embeddings is None:
            raise RuntimeError("call BiEncoder.index(docs) before searching")
        Z = self.encode(check_texts(queries, "queries"), batch_size, progress=False, cached=False)
        ids, scores = exact_search(Z, self.embeddings, k, self._id_rank)
        return [[(self.doc_ids[i], float(s)) for i, s in zip(row_ids, row_scores)]
                for row_ids, row_scores in zip(ids, scores)]

    def run(self, queries: Mapping, k: int = 10) -> dict:
        """A TREC-style run {query_id: {doc_id: score}} for ``queries`` {query_id: query}."""
        if not isinstance(queries, Mapping):
            raise TypeError(f"queries must be a mapping {{query_id: query}}, got {type(queries).__name__}")
        rankings = self.search_batch(list(queries.values()), k)
        return {qid: dict(ranking) for qid, ranking in zip(queries, rankings)}

    def __repr__(self) -> str:
        return f"BiEncoder({self.source!r}, pooling={self.pooling!r}, N={len(self.doc_ids)})"


# ------------------------------------------------------------ embedding cache
def model_fingerprint(source: str, model, **settings) -> str:
    """A key for ``model`` loaded from ``source`` with encoding ``settings``: a hash of the
    name, the hub revision, and (for a local directory) each weight file's size and mtime."""
    identity: dict[str, Any] = {"source": str(source), "settings": settings,
                                "revision": getattr(model.config, "_commit_hash", None)}
    path = Path(source)
    if path.is_dir():
        identity["files"] = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns)
            for p in path.iterdir()
            if p.suffix in (".safetensors", ".bin", ".json")
        )
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


class EmbeddingCache:
    """Embeddings on disk: one ``.npz`` file per model key, holding the sha256 of each
    text and its vector.  Written atomically, so a crash never leaves a broken file."""

    def __init__(self, key: str, directory: str | Path | None = None):
        self.path = Path(directory or models.cache_dir() / "embeddings") / f"{key}.npz"
        self._rows: dict[str, np.ndarray] | None = None

    @staticmethod
    def text_hash(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _load(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows = {}
            if self.path.exists():
                with np.load(self.path) as stored:
                    self._rows = dict(zip(stored["keys"].tolist(), stored["vectors"]))
        return self._rows

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """{text: vector} for the texts already encoded."""
        rows = self._load()
        return {t: rows[h] for t in set(texts) if (h := self.text_hash(t)) in rows}

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``vectors`` (one row per text) and rewrite the file."""
        rows = self._load()
        rows.update(zip(map(self.text_hash, texts), vectors))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, keys=np.array(list(rows), dtype="U64"), vectors=np.stack(list(rows.values())))
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._load())
