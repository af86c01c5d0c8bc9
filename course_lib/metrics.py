"""Evaluation metrics for retrieval and question answering.

Chapter 2 teaches the ranking metrics (reciprocal rank and MRR, precision@k,
recall@k, average precision and MAP, nDCG@k, hit rate); chapter 4 scores
multiple-choice answers (MMLU-style accuracy); chapter 5 scores extractive answers
with SQuAD v1.1 exact match and token F1.

Scales: every function returns a share in [0, 1], except :func:`squad_score`, which
returns percentages in [0, 100] like ``evaluate``'s ``squad`` metric.

Ranking input, TREC style: a run is {query_id: {doc_id: score}} (or {query_id:
[doc_id, ...]} already ranked best first) and qrels are {query_id: {doc_id: grade}}.
Scores rank documents by score descending, then doc id ascending (as
:mod:`course_lib.sparse` does; trec_eval breaks ties by doc id descending).
A metric over a collection averages over the queries of the qrels: a judged query
missing from the run scores 0, and a run query without judgments is an error (it
is usually a mismatch of id types).  A query with no relevant document scores 0.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .ranking import ranking_from_scores

RELEVANCE_THRESHOLD = 1
"""A judged document is relevant when its grade >= RELEVANCE_THRESHOLD (so grades 1
and 2 of the bundled qrels are, 0 is not).  Binary metrics (RR, P, R, AP, hit) use it;
nDCG uses the grades themselves as gains."""

MEASURES = ("mrr@k", "map", "map@k", "ndcg@k", "p@k", "r@k", "hit@k")


# ------------------------------------------------------------------- SQuAD (ch. 5)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalisation, in the official order (chapter 5).

    Lower-case; delete ASCII punctuation (``string.punctuation``, also inside words:
    "U.S." -> "us"); replace the whole words a, an, the by a space ("theory" keeps
    its "the"); collapse runs of white space to one space.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = text.lower().translate(_NO_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised reference, else 0.0 (0-1 scale).

    EM = max over references r of [normalize(prediction) == normalize(r)].
    """
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(r) for r in _references(references)))


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """Token-overlap F1 between prediction and the best reference (0-1 scale).

    With the normalised answers split on white space into bags of tokens:
    overlap = |pred & ref| (counts), P = overlap / |pred|, R = overlap / |ref|,
    F1 = 2PR / (P + R), and 0 when overlap = 0 (so an empty prediction against an
    empty reference scores 0, as in SQuAD v1.1); the maximum over references.
    """
    pred = normalize_answer(prediction).split()
    best = 0.0
    for ref in _references(references):
        ref_tokens = normalize_answer(ref).split()
        overlap = sum((Counter(pred) & Counter(ref_tokens)).values())
        if overlap:
            p, r = overlap / len(pred), overlap / len(ref_tokens)
            best = max(best, 2 * p * r / (p + r))
    return best


def squad_score(predictions: Sequence[Mapping], references: Sequence[Mapping]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 over a dataset, in percent (0-100 scale), chapter 5.

    Same input and output as ``evaluate.load("squad")``: predictions
    [{"id", "prediction_text"}], references [{"id", "answers": {"text": [...],
    "answer_start": [...]}}]; returns {"exact_match": .., "f1": ..}, each the mean
    over references of :func:`exact_match` / :func:`token_f1`, times 100.  A
    reference without a prediction scores 0, as in the official script.
    """
    if isinstance(predictions, Mapping) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a list of {{'id', 'prediction_text'}} dicts, got {type(predictions).__name__}")
    if isinstance(references, Mapping) or not isinstance(references, Sequence) or not references:
        raise ValueError("references must be a non-empty list of {'id', 'answers'} dicts")
    answer_of = {}
    for i, p in enumerate(predictions):
        if not isinstance(p, Mapping) or not isinstance(p.get("prediction_text"), str) or "id" not in p:
            raise ValueError(f"predictions[{i}] must be a dict with 'id' and a str 'prediction_text', got {p!r}")
        if p["id"] in answer_of:
            raise ValueError(f"predictions has id {p['id']!r} twice")
        answer_of[p["id"]] = p["prediction_text"]
    em = f1 = 0.0
    ids = set()
    for i, r in enumerate(references):
        answers = r.get("answers") if isinstance(r, Mapping) else None
        if not isinstance(answers, Mapping) or "id" not in r:
            raise ValueError(f"references[{i}] must be a dict with 'id' and 'answers': {{'text': [...]}}, got {r!r}")
        texts = answers.get("text")
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise ValueError(f"references[{i}]['answers']['text'] must be a non-empty list of str, got {texts!r}")
        ids.add(r["id"])
        if r["id"] in answer_of:
            em += exact_match(answer_of[r["id"]], texts)
            f1 += token_f1(answer_of[r["id"]], texts)
    unknown = [pid for pid in answer_of if pid not in ids]
    if unknown:
        raise ValueError(f"predictions has ids that no reference has: {unknown[:5]}")
    n = len(references)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}


def squad_metric_path() -> str:
    """The folder of the local ``evaluate`` metric: ``evaluate.load(squad_metric_path())``
    gives :func:`squad_score` offline, where ``evaluate.load("squad")`` needs the hub."""
    return str(Path(__file__).resolve().parent / "evaluate_metrics" / "squad_v1")


def _references(references) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ValueError(f"references must be a str or a non-empty list of str, got {references!r}")
    return refs


# --------------------------------------------------------- multiple choice (ch. 4)
def multiple_choice_accuracy(predictions: Sequence, answers: Sequence) -> float:
    """Share of questions answered with the correct choice (0-1 scale), chapter 4.

    Choices are indices (0, 1, 2, ...) or letters ("A", "b", ...: A = 0); a
    prediction of None (no choice could be read from the model) counts as wrong.
    accuracy = |{i : predictions[i] = answers[i]}| / n.
    """
    if len(predictions) != len(answers):
        raise ValueError(f"predictions and answers must have one item per question: {len(predictions)} != {len(answers)}")
    if not answers:
        raise ValueError("answers must not be empty")
    gold = [_choice(a, f"answers[{i}]") for i, a in enumerate(answers)]
    guess = [None if p is None else _choice(p, f"predictions[{i}]") for i, p in enumerate(predictions)]
    return sum(g == p for g, p in zip(gold, guess)) / len(gold)


def _choice(x, name: str) -> int:
    if isinstance(x, int) and not isinstance(x, bool) and x >= 0:
        return x
    if isinstance(x, str) and len(x) == 1 and x.upper() in string.ascii_uppercase:
        return string.ascii_uppercase.index(x.upper())
    raise ValueError(f"{name} must be a choice index >= 0 or a letter A-Z, got {x!r}")


# --------------------------------------------------------- ranking metrics (ch. 2)
def reciprocal_rank(ranking, qrels, k: int) -> float:
    """1 / rank of the first relevant document in the top k, else 0 (0-1 scale)."""
    top, relevant = _top(ranking, k), _relevant(qrels)
    return next((1.0 / i for i, d in enumerate(top, start=1) if d in relevant), 0.0)


def precision_at_k(ranking, qrels, k: int) -> float:
    """P@k = |relevant in the top k| / k (0-1); a ranking shorter than k is padded with misses."""
    top, relevant = _top(ranking, k), _relevant(qrels)
    return sum(d in relevant for d in top) / k


def recall_at_k(ranking, qrels, k: int) -> float:
    """R@k = |relevant in the top k| / |relevant| (0-1); 0 when nothing is relevant."""
    top, relevant = _top(ranking, k), _relevant(qrels)
    return sum(d in relevant for d in top) / len(relevant) if relevant else 0.0


def hit_at_k(ranking, qrels, k: int) -> float:
    """1.0 if a relevant document is in the top k, else 0.0; its mean is the hit rate (0-1)."""
    top, relevant = _top(ranking, k), _relevant(qrels)
    return float(any(d in relevant for d in top))


def average_precision(ranking, qrels, k: int | None = None) -> float:
    """AP = (1 / |relevant|) * sum of P@i over the ranks i <= k holding a relevant document (0-1).

    The denominator counts every relevant document, retrieved or not (trec_eval's
    convention, also for AP@k); 0 when nothing is relevant.
    """
    top, relevant = _top(ranking, k), _relevant(qrels)
    hits, total = 0, 0.0
    for i, d in enumerate(top, start=1):
        if d in relevant:
            hits += 1
            total += hits / i
    return total / len(relevant) if relevant else 0.0


def ndcg_at_k(ranking, qrels, k: int) -> float:
    """nDCG@k = DCG@k / IDCG@k (0-1), linear gains and a log2 discount.

    DCG@k = sum_{i=1..k} grade(d_i) / log2(i + 1), with grade 0 for unjudged documents
    (and negative grades); IDCG@k is the DCG of the ideal ranking, the judged grades
    sorted descending (from the qrels, not from the run).  0 when no grade is positive.
    """
    top, grades = _top(ranking, k), _grades(qrels)
    dcg = sum(max(grades.get(d, 0), 0) / math.log2(i + 1) for i, d in enumerate(top, start=1))
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def mean_reciprocal_rank(run: Mapping, qrels: Mapping, k: int, *, answered_only: bool = False) -> float:
    """MRR@k: the mean of :func:`reciprocal_rank` over the judged queries (0-1), chapter 2.

    A query with no relevant document in the top k scores 0.  ``answered_only=True``
    is the variant that leaves those queries out of the mean (0 if none is left).
    """
    values = list(_per_query(reciprocal_rank, run, qrels, k).values())
    if answered_only:
        values = [v for v in values if v > 0]
    return sum(values) / len(values) if values else 0.0


def mean_average_precision(run: Mapping, qrels: Mapping, k: int | None = None) -> float:
    """MAP (MAP@k with ``k``): the mean of :func:`average_precision` over the judged queries (0-1)."""
    values = _per_query(average_precision, run, qrels, k)
    return sum(values.values()) / len(values)


def evaluate_run(run: Mapping, qrels: Mapping, measures: Iterable[str] = ("mrr@10", "map", "ndcg@10", "p@10", "r@10", "hit@10"),
                 *, per_query: bool = False) -> dict:
    """Several ranking metrics at once, each a mean over the judged queries (0-1 scale).

    ``measures``: names like "mrr@10", "map", "map@100", "ndcg@10", "p@5", "r@100",
    "hit@10".  Returns {measure: mean}, or {measure: {query_id: value}} with
    ``per_query=True``.
    """
    if isinstance(measures, str):
        measures = [measures]
    result = {}
    for name in measures:
        metric, k = _parse_measure(name)
        values = _per_query(metric, run, qrels, k)
        result[name] = values if per_query else sum(values.values()) / len(values)
    return result


_METRICS: dict[str, Callable] = {
    "mrr": reciprocal_rank, "map": average_precision, "ndcg": ndcg_at_k,
    "p": precision_at_k, "r": recall_at_k, "hit": hit_at_k,
}


def _parse_measure(name) -> tuple[Callable, int | None]:
    m = re.fullmatch(r"(mrr|map|ndcg|p|r|hit)(?:@(\d+))?", name) if isinstance(name, str) else None
    if m is None or (m[2] is None and m[1] != "map") or (m[2] is not None and int(m[2]) < 1):
        raise ValueError(f"measures must be names like {MEASURES} (k an int >= 1), got {name!r}")
    return _METRICS[m[1]], None if m[2] is None else int(m[2])


def _per_query(metric: Callable, run: Mapping, qrels: Mapping, k) -> dict:
    if not isinstance(run, Mapping):
        raise TypeError(f"run must be a mapping {{query_id: {{doc_id: score}}}}, got {type(run).__name__}")
    if not isinstance(qrels, Mapping) or not qrels:
        raise ValueError("qrels must be a non-empty mapping {query_id: {doc_id: grade}}")
    unjudged = [q for q in run if q not in qrels]
    if unjudged:
        raise ValueError(f"run has queries that qrels do not judge: {unjudged[:5]} (qrels ids look like {list(qrels)[:3]})")
    return {q: metric(run.get(q, ()), judged, k) for q, judged in qrels.items()}


def _top(ranking, k) -> list:
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if isinstance(ranking, Mapping):
        ranking = ranking_from_scores(ranking)
    elif isinstance(ranking, (str, bytes)) or not isinstance(ranking, Iterable):
        raise TypeError(f"ranking must be a list of doc ids or a mapping {{doc_id: score}}, got {type(ranking).__name__}")
    ranking = list(ranking)
    if len(set(ranking)) != len(ranking):
        twice = next(d for d, n in Counter(ranking).items() if n > 1)
        raise ValueError(f"ranking lists doc id {twice!r} more than once")
    return ranking if k is None else ranking[:k]


def _grades(qrels) -> dict:
    if isinstance(qrels, Mapping):
        bad = next((g for g in qrels.values() if not isinstance(g, (int, float)) or isinstance(g, bool)), None)
        if bad is not None:
            raise ValueError(f"qrels grades must be numbers, got {bad!r}")
        return dict(qrels)
    if isinstance(qrels, (str, bytes)) or not isinstance(qrels, Iterable):
        raise TypeError(f"qrels must be a mapping {{doc_id: grade}} or a collection of relevant doc ids, got {type(qrels).__name__}")
    return dict.fromkeys(qrels, 1)


def _relevant(qrels) -> set:
    return {d for d, g in _grades(qrels).items() if g >= RELEVANCE_THRESHOLD}


# ---------------------------------------------------------------- TREC files (ch. 2)
def write_trec_run(run: Mapping, path: str | Path, tag: str = "course_lib") -> None:
    """Write ``run`` as TREC run lines "qid Q0 docid rank score tag", best first.

    A ranked list (no scores) gets the scores n, n - 1, ..., 1.
    """
    lines = []
    for qid, ranking in _items(run, "run"):
        scores = ranking if isinstance(ranking, Mapping) else {d: float(len(ranking) - i) for i, d in enumerate(ranking)}
        for rank, doc in enumerate(ranking_from_scores(scores), start=1):
            lines.append(f"{_field(qid, 'query id')} Q0 {_field(doc, 'doc id')} {rank} {float(scores[doc])!r} {_field(tag, 'tag')}")
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file into {query_id: {doc_id: score}} (ids as str)."""
    run: dict[str, dict[str, float]] = {}
    for where, (qid, _q0, doc, _rank, score, _tag) in _rows(path, 6, "qid Q0 docid rank score tag"):
        try:
            value = float(score)
        except ValueError:
            raise ValueError(f"{where}: score must be a number, got {score!r}") from None
        if doc in run.setdefault(qid, {}):
            raise ValueError(f"{where}: doc {doc!r} appears twice for query {qid!r}")
        run[qid][doc] = value
    return run


def write_trec_qrels(qrels: Mapping, path: str | Path) -> None:
    """Write ``qrels`` as TREC qrels lines "qid 0 docid grade"."""
    lines = [
        f"{_field(qid, 'query id')} 0 {_field(doc, 'doc id')} {int(grade)}"
        for qid, judged in _items(qrels, "qrels")
        for doc, grade in _grades(judged).items()
    ]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a TREC qrels file into {query_id: {doc_id: grade}} (ids as str, grades int)."""
    qrels: dict[str, dict[str, int]] = {}
    for where, (qid, _iteration, doc, grade) in _rows(path, 4, "qid 0 docid grade"):
        try:
            qrels.setdefault(qid, {})[doc] = int(grade)
        except ValueError:
            raise ValueError(f"{where}: grade must be an int, got {grade!r}") from None
    return qrels


def _items(mapping, name: str):
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a mapping {{query_id: ...}}, got {type(mapping).__name__}")
    return mapping.items()


def _field(value, name: str) -> str:
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"a {name} in a TREC file must be non-empty and without white space, got {value!r}")
    return text


def _rows(path, width: int, layout: str):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != width:
                raise ValueError(f"{path}:{number}: expected {width} fields '{layout}', got {line.strip()!r}")
            yield f"{path}:{number}", fields
