"""ColBERT-style late interaction: one vector per token, MaxSim scoring (chapter 3).

ColBERT (Khattab & Zaharia, 2020) keeps every token vector of the query and of the
document, each scaled to unit length, and scores::

    score(q, d) = sum_{i in q} max_{j in d} E_q[i] . E_d[j]

Each query token finds its best-matching document token ("MaxSim"); documents are
encoded once, at index time, as in a bi-encoder, yet matching stays token by token.
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import env, models
from .batching import iter_batches
from .checks import check_array, check_doc_ids, check_int, check_same_dim, check_text, check_texts
from .dense import l2_normalize
from .ranking import id_rank, top_k

Q_MARKER, D_MARKER = "[unused0]", "[unused1]"  # ColBERT's [Q] and [D]: unused BERT vocabulary entries


def maxsim(q_tokens, d_tokens, d_mask) -> float | np.ndarray:
    """Late-interaction score: sum over query tokens of the best dot product with a document token (chapter 3).

    score = sum_i max_{j: m_j = 1} q_i . d_j for ``q_tokens`` (Lq, dim), ``d_tokens``
    (Ld, dim) and ``d_mask`` (Ld,), 1 for a token and 0 for padding or a skipped
    token: a masked position never wins a max.  With ``d_tokens`` (N, Ld, dim) and
    ``d_mask`` (N, Ld) it scores N documents at once and returns an array (N,).
    Dot products equal cosines when the token vectors have unit length.
    """
    q = check_array(q_tokens, "q_tokens", 2)
    d = check_array(d_tokens, "d_tokens", (2, 3))
    m = check_array(d_mask, "d_mask", (1, 2))
    check_same_dim(q, "q_tokens", d, "d_tokens")
    if m.shape != d.shape[:-1]:
        raise ValueError(f"d_mask must have shape {d.shape[:-1]} (one entry per document token), got {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("d_mask must hold only 0 (masked) and 1 (token)")
    if (m.reshape(-1, m.shape[-1]).sum(axis=1) == 0).any():
        raise ValueError("d_mask masks every token of a document: nothing is left to match")
    sim = np.einsum("id,...jd->...ij", q, d)  # (..., Lq, Ld)
    sim = np.where(m[..., None, :] == 1, sim, -np.inf)
    scores = sim.max(axis=-1).sum(axis=-1)
    return float(scores) if d.ndim == 2 else scores


class ColBERTScorer:
    """Token embeddings and MaxSim ranking in the manner of ColBERT (chapter 3).

    * Queries: ``[CLS] [Q] q [SEP]``, then [MASK] tokens up to ``query_length``
      (query augmentation: the [MASK] outputs act as soft extra query terms; they are
      not attended to, as in ColBERT, but every one of the ``query_length`` vectors
      takes part in the score).
    * Documents: ``[CLS] [D] d [SEP]`` up to ``doc_length`` tokens; padding and the
      punctuation ``skiplist`` are masked out (documents only, never the query).
    * Every token vector is L2-normalised; score = :func:`maxsim`.

    Real ColBERT is trained end to end: BERT plus a linear layer down to 128
    dimensions, on (query, positive passage, negative passage) triples with a
    cross-entropy loss over the MaxSim scores.  Offline we have no such checkpoint,
    so the untrained MiniLM token vectors only show the mechanism (their scores are
    far weaker than a trained model's).  Under ``full`` with the hub, ``ColBERTScorer()`` loads a real
    checkpoint (:data:`models.COLBERT_HUB`, ColBERTv2), including its ``linear.weight`` projection.

    Storage is the price of late interaction: the index holds N x Ld x dim floats
    (516 passages x 180 tokens x 384 dims x 4 bytes is about 140 MB here), which is why
    ColBERT projects to 128 dimensions and ColBERTv2 compresses the vectors further.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        query_length: int = 32,
        doc_length: int = 180,
        skiplist: str | Sequence[str] = string.punctuation,
        device: str | None = None,
        profile: str | None = None,
    ):
        check_int(query_length, "query_length")
        check_int(doc_length, "doc_length")
        if query_length < 4 or doc_length < 4:
            raise ValueError(f"query_length and doc_length must be >= 4 ([CLS] marker text [SEP]), got "
                             f"{query_length} and {doc_length}")
        self.source = str(model_name_or_path or models.resolve("late-interaction", profile))
        self.tokenizer, self.model = models.load_encoder(self.source)
        self.device = device or env.device()
        self.model.to(self.device)
        self.projection = _projection(self.source)
        vocab = self.tokenizer.get_vocab()
        if Q_MARKER not in vocab or D_MARKER not in vocab:
            raise ValueError(f"{self.source} has no {Q_MARKER} and {D_MARKER} tokens to serve as [Q] and [D]: "
                             "use a model with a BERT vocabulary")
        self.q_marker, self.d_marker = vocab[Q_MARKER], vocab[D_MARKER]
        self.skip_ids = {i for symbol in skiplist for i in self.tokenizer.encode(symbol, add_special_tokens=False)}
        self.query_length, self.doc_length = query_length, doc_length
        self.doc_tokens: np.ndarray | None = None
        self.doc_mask: np.ndarray | None = None
        self.doc_ids: list = []

    def _tokenize(self, texts: list[str], marker: int, length: int, pad_to_length: bool) -> dict:
        """``[CLS] marker text [SEP]``: the text after a "." placeholder, which becomes the marker."""
        batch = self.tokenizer(
            [". " + t for t in texts], truncation=True, max_length=length, return_tensors="pt",
            padding="max_length" if pad_to_length else "longest",
        )
        batch["input_ids"][:, 1] = marker
        return batch

    def _encode(self, batch: dict) -> np.ndarray:
        import torch

        with torch.inference_mode():
            H = self.model(**batch.to(self.device)).last_hidden_state.float()
            if self.projection is not None:
                H = H @ self.projection.to(H.device).T
        return H.cpu().numpy()

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32, *, progress: bool = False) -> np.ndarray:
        """Unit token vectors of each query, augmented with [MASK] to ``query_length``: (n, query_length, dim)."""
        texts = check_texts(texts, "texts")
        out = None
        for batch in iter_batches(texts, batch_size, progress, "queries"):
            tokens = self._tokenize([texts[i] for i in batch], self.q_marker, self.query_length, True)
            ids = tokens["input_ids"]
            ids[ids == self.tokenizer.pad_token_id] = self.tokenizer.mask_token_id  # augmentation
            E = self._encode(tokens)
            out = np.zeros((len(texts), *E.shape[1:]), np.float32) if out is None else out
            out[batch] = l2_normalize(E)
        return out

    def encode_documents(self, texts: Sequence[str], batch_size: int = 32,
                         *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens, mask)``: unit token vectors (N, Ld, dim) of each document, padded to
        the longest, and a mask (N, Ld) that is 0 for padding and for skip-list tokens."""
        texts = check_texts(texts, "texts")
        parts = []
        for batch in iter_batches(texts, batch_size, progress, "documents"):
            tokens = self._tokenize([texts[i] for i in batch], self.d_marker, self.doc_length, False)
            ids = tokens["input_ids"].numpy()
            mask = tokens["attention_mask"].numpy() * ~np.isin(ids, list(self.skip_ids))
            parts.append((batch, l2_normalize(self._encode(tokens)), mask))
        Ld = max(mask.shape[1] for _, _, mask in parts)
        dim = parts[0][1].shape[2]
        E, M = np.zeros((len(texts), Ld, dim), np.float32), np.zeros((len(texts), Ld), np.int8)
        for batch, e, mask in parts:
            E[batch, : e.shape[1]], M[batch, : mask.shape[1]] = e, mask
        return E, M

    def index(self, docs: Sequence[str], doc_ids: Sequence | None = None, batch_size: int = 32,
              *, progress: bool = True) -> "ColBERTScorer":
        """Encode ``docs`` once and keep their token vectors under ``doc_ids``; returns self."""
        docs = check_texts(docs, "docs")
        self.doc_ids = check_doc_ids(doc_ids, len(docs))
        self._id_rank = id_rank(self.doc_ids)
        self.doc_tokens, self.doc_mask = self.encode_documents(docs, batch_size, progress=progress)
        return self

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """MaxSim score of ``query`` against each of ``docs`` (no index needed)."""
        E_d, mask = self.encode_documents(docs, progress=False)
        return maxsim(self.encode_queries([check_text(query, "query")])[0], E_d, mask)

    def search(self, query: str, k: int = 10) -> list[tuple[Any, float]]:
        """The top ``k`` indexed documents as [(doc_id, score), ...]: score descending, then doc id."""
        if self.doc_tokens is None:
            raise RuntimeError("call ColBERTScorer.index(docs) before searching")
        check_int(k, "k")
        scores = maxsim(self.encode_queries([check_text(query, "query")])[0], self.doc_tokens, self.doc_mask)
        ids, values = top_k(scores, k, self._id_rank)
        return [(self.doc_ids[i], float(s)) for i, s in zip(ids, values)]

    def __repr__(self) -> str:
        return f"ColBERTScorer({self.source!r}, query_length={self.query_length}, N={len(self.doc_ids)})"


def _projection(source: str):
    """ColBERT's ``linear.weight`` (dim x hidden) if the checkpoint has one, else None."""
    import torch

    path = Path(source)
    if path.is_dir():
        files = [path / name for name in ("model.safetensors", "pytorch_model.bin") if (path / name).exists()]
    else:  # a hub name
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        files = []
        for name in ("model.safetensors", "pytorch_model.bin"):
            try:
                files.append(Path(hf_hub_download(source, name)))
                break
            except EntryNotFoundError:  # no such file: try the next format
                continue
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), "pt") as f:
                if "linear.weight" in f.keys():
                    return f.get_tensor("linear.weight").float()
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
            if "linear.weight" in state:
                return state["linear.weight"].float()
    return None
