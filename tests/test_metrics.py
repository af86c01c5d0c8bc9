"""course_lib.metrics against hand computations and independent oracles.

Oracles: ir_measures (trec_eval through pytrec_eval, and its MS MARCO MRR) for the
ranking metrics on random runs; for SQuAD, a transcription of the official v1.1
evaluation logic written here, the local ``evaluate`` module, and the real SQuAD
v1.1 development set at ../shared/data (conftest's ``squad_dev_path``: required when
CI=true, skipped with the reason otherwise).
"""
from __future__ import annotations

import math
import random
import re
import string
from collections import Counter

import ir_measures
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_measures import AP, RR, P, R, Success, nDCG

from course_lib.metrics import (
    RELEVANCE_THRESHOLD,
    average_precision,
    evaluate_run,
    exact_match,
    hit_at_k,
    mean_average_precision,
    mean_reciprocal_rank,
    multiple_choice_accuracy,
    ndcg_at_k,
    normalize_answer,
    precision_at_k,
    read_trec_qrels,
    read_trec_run,
    recall_at_k,
    reciprocal_rank,
    squad_metric_path,
    squad_score,
    token_f1,
    write_trec_qrels,
    write_trec_run,
)
from course_lib.ranking import ranking_from_scores

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ SQuAD by hand
@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  New\tYork\n City ", "new york city"),
        ("U.S.A.", "usa"),  # punctuation inside a word is deleted, not split on
        ("state-of-the-art", "stateoftheart"),  # punctuation goes first, so "the" is no longer a word
        ("theory of the atom", "theory of atom"),  # articles only as whole words
        ("an apple a day, another day", "apple day another day"),
        ("A", ""),
        ("Café Ünïcode", "café ünïcode"),  # unicode letters kept, lower-cased
        ("Beyoncé's", "beyoncés"),
        ("l\u2019homme 1990\u20131991", "l\u2019homme 1990\u20131991"),  # non-ASCII punctuation stays (official)
        ("THE END.", "end"),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_by_hand():
    assert exact_match("Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("the broncos.", "Broncos") == 1.0
    assert exact_match("Broncos team", ["Broncos"]) == 0.0
    # pred {denver, broncos, team}, ref {denver, broncos}: P = 2/3, R = 1
    assert token_f1("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert token_f1("Broncos", ["Denver Broncos", "the Broncos"]) == 1.0  # best reference
    assert token_f1("x y y", "y y z") == pytest.approx(2 / 3)  # bags of tokens: y counts twice
    assert token_f1("cat", ["dog"]) == 0.0
    # empty against empty: EM 1 but F1 0 in SQuAD v1.1 (no overlap)
    assert exact_match("", [""]) == 1.0 and token_f1("", [""]) == 0.0
    assert exact_match("the", ["a"]) == 1.0 and token_f1("the", ["a"]) == 0.0


def test_squad_score_by_hand():
    refs = [
        {"id": "q1", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}},
        {"id": "q2", "answers": {"text": ["Paris", "in Paris"], "answer_start": [0, 0]}},
        {"id": "q3", "answers": {"text": ["1889"], "answer_start": [0]}},
    ]
    preds = [{"id": "q1", "prediction_text": "the Eiffel Tower"}, {"id": "q2", "prediction_text": "Paris, France"}]
    # q1: EM 1, F1 1; q2: EM 0, F1 max(2/3, 1/2) = 2/3; q3 unanswered: 0
    assert squad_score(preds, refs) == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 * (5 / 3) / 3)}


# --------------------------------------------------------- SQuAD against oracles
def official_v11(dataset_rows, predictions: dict) -> dict:
    """The official SQuAD v1.1 scoring logic, restated: an independent oracle."""

    def norm(s):
        s = s.lower()
        s = "".join(c for c in s if c not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    def f1(pred, truth):
        p, t = norm(pred).split(), norm(truth).split()
        same = sum((Counter(p) & Counter(t)).values())
        if same == 0:
            return 0
        precision, recall = same / len(p), same / len(t)
        return 2 * precision * recall / (precision + recall)

    em_total = f1_total = 0
    for row in dataset_rows:
        if row["id"] not in predictions:
            continue
        truths, pred = row["answers"]["text"], predictions[row["id"]]
        em_total += max(norm(pred) == norm(t) for t in truths)
        f1_total += max(f1(pred, t) for t in truths)
    return {"exact_match": 100.0 * em_total / len(dataset_rows), "f1": 100.0 * f1_total / len(dataset_rows)}


@pytest.fixture(scope="module")
def squad_dev(squad_dev_path):  # conftest: fails when missing under CI=true, else skips
    from course_lib.data import squad_rows

    return squad_rows(squad_dev_path)


def _perturb(rows, seed=0, unanswered=0.05):
    """Predictions that exercise the normalisation: near misses, partial answers, noise."""
    rnd = random.Random(seed)
    edits = [
        lambda a, row: a,
        lambda a, row: "The " + a,
        lambda a, row: a.upper() + ".",
        lambda a, row: " ".join(a.split()[:-1]),
        lambda a, row: a + " " + rnd.choice(row["context"].split()),
        lambda a, row: " ".join(row["context"].split()[:6]),
        lambda a, row: row["answers"]["text"][-1].replace("'", "\u2019"),
        lambda a, row: "",
        lambda a, row: a.replace(" ", "-"),
        lambda a, row: rnd.choice(rows)["answers"]["text"][0],
    ]
    preds = []
    for row in rows:
        if rnd.random() < unanswered:
            continue  # scores 0
        answer = row["answers"]["text"][0]
        preds.append({"id": row["id"], "prediction_text": rnd.choice(edits)(answer, row)})
    return preds


def test_squad_dev_set_first_answer_scores_100(squad_dev):
    assert len(squad_dev) == 10570
    preds = [{"id": r["id"], "prediction_text": r["answers"]["text"][0]} for r in squad_dev]
    assert squad_score(preds, squad_dev) == {"exact_match": 100.0, "f1": 100.0}


def test_squad_dev_set_perturbed_matches_official_logic(squad_dev):
    rows = random.Random(1).sample(squad_dev, 2000)
    preds = _perturb(rows)
    ours = squad_score(preds, rows)
    oracle = official_v11(rows, {p["id"]: p["prediction_text"] for p in preds})
    assert ours == pytest.approx(oracle, rel=1e-12)
    assert 20 < ours["exact_match"] < 80 and ours["exact_match"] < ours["f1"] < 100


def test_local_evaluate_module_gives_identical_numbers(squad_dev):
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(squad_metric_path())
    rows = random.Random(2).sample(squad_dev, 400)
    preds = _perturb(rows, seed=3, unanswered=0)  # evaluate wants one prediction per reference
    random.Random(4).shuffle(preds)  # matched by id, not by position
    refs = [{"id": r["id"], "answers": r["answers"]} for r in rows]
    assert metric.compute(predictions=preds, references=refs) == squad_score(preds, refs)


# ----------------------------------------------------------- ranking by hand
RANKING = ["d1", "d2", "d3", "d4", "d5"]
QRELS = {"d2": 1, "d4": 2, "d9": 1, "d3": 0}  # relevant: d2, d4, d9 (d9 never retrieved)


def test_ranking_metrics_by_hand():
    assert RELEVANCE_THRESHOLD == 1
    assert reciprocal_rank(RANKING, QRELS, k=10) == 0.5
    assert reciprocal_rank(RANKING, QRELS, k=1) == 0.0  # first relevant beyond the cut-off
    assert precision_at_k(RANKING, QRELS, 2) == 0.5
    assert precision_at_k(RANKING, QRELS, 5) == pytest.approx(2 / 5)
    assert precision_at_k(RANKING, QRELS, 10) == pytest.approx(2 / 10)  # k beyond the run: misses
    assert recall_at_k(RANKING, QRELS, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, QRELS, 100) == pytest.approx(2 / 3)
    assert hit_at_k(RANKING, QRELS, 1) == 0.0 and hit_at_k(RANKING, QRELS, 2) == 1.0
    assert average_precision(RANKING, QRELS) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision(RANKING, QRELS, k=3) == pytest.approx((1 / 2) / 3)
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # ideal: the grades 2, 1, 1
    assert ndcg_at_k(RANKING, QRELS, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d4", "d2", "d9"], QRELS, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["d2", "d4"], QRELS, 1) == pytest.approx(1 / 2)  # ideal@1 holds grade 2


def test_graded_relevance_only_changes_ndcg():
    binary, graded = {"a": 1, "b": 1}, {"a": 1, "b": 3}
    for metric in (reciprocal_rank, precision_at_k, recall_at_k, hit_at_k, average_precision):
        assert metric(["a", "x", "b"], binary, 3) == metric(["a", "x", "b"], graded, 3)
    assert ndcg_at_k(["b", "x", "a"], graded, 3) > ndcg_at_k(["a", "x", "b"], graded, 3)


def test_no_relevant_document_scores_zero():
    for qrels in ({}, {"d1": 0}, set()):
        for metric in (reciprocal_rank, precision_at_k, recall_at_k, hit_at_k, average_precision, ndcg_at_k):
            assert metric(RANKING, qrels, 5) == 0.0
    assert reciprocal_rank([], {"d1": 1}, 10) == 0.0


def test_scores_rank_by_score_then_doc_id():
    scores = {"b": 1.0, "a": 1.0, "c": 2.0, "d": 0.5}
    assert ranking_from_scores(scores) == ["c", "a", "b", "d"]
    assert reciprocal_rank(scores, {"b": 1}, 10) == pytest.approx(1 / 3)
    assert precision_at_k(scores, ["a", "c"], 2) == 1.0  # qrels as a collection of relevant ids


def test_mean_reciprocal_rank_and_its_answered_only_variant():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 2}}
    run = {"q1": ["x", "a"], "q2": ["x", "y", "z"]}  # q3 missing from the run: scores 0
    assert mean_reciprocal_rank(run, qrels, 10) == pytest.approx((1 / 2) / 3)
    assert mean_reciprocal_rank(run, qrels, 10, answered_only=True) == pytest.approx(1 / 2)
    assert mean_reciprocal_rank({"q2": ["x"]}, qrels, 10, answered_only=True) == 0.0
    assert mean_average_precision(run, qrels) == pytest.approx((1 / 2) / 3)


def test_evaluate_run():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}
    run = {"q1": {"a": 0.9, "x": 0.5, "b": 0.1}, "q2": {"y": 3.0, "c": 1.0}}
    result = evaluate_run(run, qrels, ["mrr@10", "map", "map@1", "p@2", "r@2", "hit@1", "ndcg@3"])
    assert result == pytest.approx({
        "mrr@10": (1 + 1 / 2) / 2,
        "map": ((1 + 2 / 3) / 2 + 1 / 2) / 2,
        "map@1": (1 / 2 + 0) / 2,
        "p@2": (1 / 2 + 1 / 2) / 2,
        "r@2": (1 / 2 + 1) / 2,
        "hit@1": 1 / 2,
        "ndcg@3": ((2 + 1 / 2) / (2 + 1 / math.log2(3)) + (1 / math.log2(3)) / 1) / 2,
    })
    per_query = evaluate_run(run, qrels, "mrr@10", per_query=True)
    assert per_query == {"mrr@10": {"q1": 1.0, "q2": 0.5}}


# --------------------------------------------------- ranking against ir_measures
@st.composite
def run_and_qrels(draw):
    """Runs without score ties (tie-breaking differs between tools) and qrels with a relevant doc."""
    docs = [f"d{i}" for i in range(draw(st.integers(2, 25)))]
    run, qrels = {}, {}
    for q in range(draw(st.integers(1, 6))):
        qid = f"q{q}"
        retrieved = draw(st.lists(st.sampled_from(docs), unique=True, max_size=len(docs)))
        scores = draw(st.lists(st.integers(0, 10**6), min_size=len(retrieved), max_size=len(retrieved), unique=True))
        if retrieved:
            run[qid] = {d: s / 1000 for d, s in zip(retrieved, scores)}
        judged = draw(st.dictionaries(st.sampled_from(docs), st.integers(0, 3), max_size=len(docs)))
        judged[draw(st.sampled_from(docs))] = draw(st.integers(1, 3))
        qrels[qid] = judged
    return run, qrels


ORACLE_PAIRS = [
    (lambda k: RR @ k, reciprocal_rank),
    (lambda k: P @ k, precision_at_k),
    (lambda k: R @ k, recall_at_k),
    (lambda k: AP @ k, average_precision),
    (lambda k: nDCG @ k, ndcg_at_k),
    (lambda k: Success @ k, hit_at_k),
]


@SETTINGS
@given(run_and_qrels(), st.integers(1, 12))
def test_ranking_metrics_match_ir_measures(data, k):
    run, qrels = data
    for make_measure, ours in ORACLE_PAIRS:
        measure = make_measure(k)
        oracle = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qrels, run)}
        for qid in run:  # trec_eval skips judged queries that have no run
            assert ours(run[qid], qrels[qid], k) == pytest.approx(oracle.get(qid, 0.0), abs=1e-9), (measure, qid)
    full_ap = {m.query_id: m.value for m in ir_measures.iter_calc([AP], qrels, run)}
    for qid in run:
        assert average_precision(run[qid], qrels[qid]) == pytest.approx(full_ap[qid], abs=1e-9)


@SETTINGS
@given(run_and_qrels(), st.integers(1, 12))
def test_ranking_metric_properties(data, k):
    run, qrels = data
    result = evaluate_run(run, qrels, [f"mrr@{k}", "map", f"ndcg@{k}", f"p@{k}", f"r@{k}", f"hit@{k}"], per_query=True)
    for values in result.values():
        assert set(values) == set(qrels) and all(0.0 <= v <= 1.0 + 1e-12 for v in values.values())
    for qid, judged in qrels.items():
        ranking = ranking_from_scores(run.get(qid, {}))
        assert (precision_at_k(ranking, judged, k) * k) == pytest.approx(round(precision_at_k(ranking, judged, k) * k))
        assert recall_at_k(ranking, judged, k) <= recall_at_k(ranking, judged, k + 1)
        assert hit_at_k(ranking, judged, k) == float(reciprocal_rank(ranking, judged, k) > 0)
        ideal = sorted(judged, key=lambda d: -judged[d])
        assert ndcg_at_k(ideal, judged, k) == pytest.approx(1.0)
    assert mean_reciprocal_rank(run, qrels, k, answered_only=True) >= mean_reciprocal_rank(run, qrels, k)
    reordered = dict(reversed(list(run.items())))
    assert evaluate_run(reordered, qrels, ["map", f"ndcg@{k}"]) == evaluate_run(run, qrels, ["map", f"ndcg@{k}"])


# ------------------------------------------------------------------ TREC files
def test_trec_run_and_qrels_round_trip(tmp_path):
    run = {"q1": {"d1": 0.5, "d2": 1e-7, "d3": 12.25}, "q2": ["d9", "d8"]}
    path = tmp_path / "run.txt"
    write_trec_run(run, path, tag="bm25")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d3 1 12.25 bm25" and lines[3] == "q2 Q0 d9 1 2.0 bm25"
    assert read_trec_run(path) == {"q1": run["q1"], "q2": {"d9": 2.0, "d8": 1.0}}
    oracle = {}
    for sd in ir_measures.read_trec_run(str(path)):
        oracle.setdefault(sd.query_id, {})[sd.doc_id] = sd.score
    assert oracle == read_trec_run(path)

    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": ["d9"]}
    qpath = tmp_path / "qrels.txt"
    write_trec_qrels(qrels, qpath)
    assert read_trec_qrels(qpath) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d9": 1}}
    assert {(q.query_id, q.doc_id, q.relevance) for q in ir_measures.read_trec_qrels(str(qpath))} == {
        ("q1", "d1", 2), ("q1", "d2", 0), ("q2", "d9", 1)}


@pytest.mark.parametrize(
    "content, reader, words",
    [
        ("q1 Q0 d1 1 0.5\n", read_trec_run, ":1: expected 6 fields"),
        ("q1 Q0 d1 1 high run\n", read_trec_run, "score must be a number"),
        ("q1 Q0 d1 1 0.5 r\nq1 Q0 d1 2 0.4 r\n", read_trec_run, ":2: doc 'd1' appears twice"),
        ("q1 0 d1\n", read_trec_qrels, "expected 4 fields"),
        ("q1 0 d1 yes\n", read_trec_qrels, "grade must be an int"),
    ],
)
def test_malformed_trec_files(tmp_path, content, reader, words):
    path = tmp_path / "file.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(words)):
        reader(path)


# ------------------------------------------------------------- multiple choice
def test_multiple_choice_accuracy():
    assert multiple_choice_accuracy([0, "B", None, "d"], ["A", 1, 2, 3]) == 0.75
    assert multiple_choice_accuracy(["c"], [2]) == 1.0
    assert multiple_choice_accuracy([1, 1], [0, 0]) == 0.0


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: reciprocal_rank(RANKING, QRELS, 0), ValueError, "k must"),
        (lambda: precision_at_k(RANKING, QRELS, 2.5), ValueError, "k must"),
        (lambda: reciprocal_rank("d1 d2", QRELS, 3), TypeError, "ranking"),
        (lambda: reciprocal_rank(["d1", "d1"], QRELS, 3), ValueError, "'d1' more than once"),
        (lambda: recall_at_k(RANKING, 5, 3), TypeError, "qrels"),
        (lambda: ndcg_at_k(RANKING, {"d1": "high"}, 3), ValueError, "grades"),
        (lambda: mean_reciprocal_rank([["d1"]], {"q1": {}}, 3), TypeError, "run"),
        (lambda: mean_reciprocal_rank({1: ["d1"]}, {"1": {"d1": 1}}, 3), ValueError, "run has queries"),
        (lambda: mean_average_precision({}, {}), ValueError, "qrels"),
        (lambda: evaluate_run({}, {"q": {}}, ["ndcg"]), ValueError, "measures"),
        (lambda: evaluate_run({}, {"q": {}}, ["p@0"]), ValueError, "measures"),
        (lambda: evaluate_run({}, {"q": {}}, ["recall@5"]), ValueError, "measures"),
        (lambda: normalize_answer(None), TypeError, "text"),
        (lambda: exact_match("a", []), ValueError, "references"),
        (lambda: token_f1("a", [None]), ValueError, "references"),
        (lambda: squad_score([], []), ValueError, "references"),
        (lambda: squad_score({"id": "q"}, [{"id": "q", "answers": {"text": ["a"]}}]), TypeError, "predictions"),
        (lambda: squad_score([{"id": "q"}], [{"id": "q", "answers": {"text": ["a"]}}]), ValueError, "predictions[0]"),
        (lambda: squad_score([{"id": "x", "prediction_text": "a"}], [{"id": "q", "answers": {"text": ["a"]}}]),
         ValueError, "ids that no reference has"),
        (lambda: squad_score([{"id": "q", "prediction_text": "a"}] * 2, [{"id": "q", "answers": {"text": ["a"]}}]),
         ValueError, "twice"),
        (lambda: squad_score([], [{"id": "q", "answers": {"text": []}}]), ValueError, "references[0]['answers']"),
        (lambda: squad_score([], [{"id": "q"}]), ValueError, "references[0]"),
        (lambda: multiple_choice_accuracy([0], [0, 1]), ValueError, "one item per question"),
        (lambda: multiple_choice_accuracy([], []), ValueError, "answers"),
        (lambda: multiple_choice_accuracy(["AB"], [0]), ValueError, "predictions[0]"),
        (lambda: multiple_choice_accuracy([0], [-1]), ValueError, "answers[0]"),
        (lambda: multiple_choice_accuracy([True], [1]), ValueError, "predictions[0]"),
        (lambda: write_trec_run({"q 1": {"d": 1.0}}, "/dev/null"), ValueError, "white space"),
        (lambda: write_trec_qrels([("q", "d")], "/dev/null"), TypeError, "qrels"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()
