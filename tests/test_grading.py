"""course_lib.grading and course_lib.judge: routes to the reference refused, records judged outside, rules pinned."""
from __future__ import annotations

import math

import numpy as np
import pytest

import course_lib.metrics as metrics
import course_lib.sparse as sparse
from course_lib import grading, judge
from course_lib.grading import check, same_ranking, values_equal

TF = "course_lib.sparse.tf_weight"


def good_tf(count):
    return 1 + math.log10(count) if count > 0 else 0.0


# ---- every public route to the reference refuses (item 1) ------------------------------
ref_global = grading.reference(TF)
from course_lib.sparse import tf_weight as imported  # noqa: E402


def via_module(c):
    return sparse.tf_weight(c)


def via_default(c, f=imported):
    return f(c)


def via_global_reference(c):
    return ref_global(c)


def via_own_reference_call(c):
    return grading.reference(TF)(c)


def _closure():
    g = imported

    def via_closure(c):
        return g(c)
    return via_closure


@pytest.mark.parametrize("cheat", [via_module, via_default, via_global_reference, via_own_reference_call, _closure()])
def test_every_route_to_the_reference_is_refused(cheat):
    with pytest.raises(AssertionError, match="write it yourself"):
        check(cheat, TF, cases=[(10,)])
    assert sparse.tf_weight(10) == 2.0 and imported(10) == 2.0, "undone afterwards"


def test_a_function_that_reaches_the_reference_runs_once_per_group():
    """The group fails on the first call that reaches the reference; the other cases are not run
    (a slow cheat, such as loading the evaluate metric on every call, would run out the cell's time)."""
    calls = []

    def cheat(c):
        calls.append(c)
        return sparse.tf_weight(c)

    with pytest.raises(AssertionError, match="write it yourself"):
        check(cheat, TF, cases=[(1,), (10,), (100,)], random_cases=lambda rng: (int(rng.integers(1, 99)),), n_random=40)
    assert calls == [1]


def test_dispatch_table_and_metric_parts_are_refused():
    def p_at_k(ranking, qrels, k):
        return metrics.evaluate_run({"q": ranking}, {"q": qrels}, [f"p@{k}"])["p@" + str(k)]

    with pytest.raises(AssertionError, match="course_lib.metrics.precision_at_k"):
        check(p_at_k, "course_lib.metrics.precision_at_k", cases=[(["a"], {"a": 1}, 1)])

    def em_f1(predictions, references):
        return {"exact_match": 100 * metrics.exact_match(predictions[0]["prediction_text"],
                                                         references[0]["answers"]["text"]), "f1": 0.0}

    case = ([{"id": "1", "prediction_text": "x"}], [{"id": "1", "answers": {"text": ["x"], "answer_start": [0]}}])
    with pytest.raises(AssertionError, match="course_lib.metrics.exact_match"):
        check(em_f1, "course_lib.metrics.squad_score", cases=[case])


def test_visible_group_prints_one_line_and_failure_is_one_line(capsys):
    check(good_tf, TF, cases=[(1,), (10,)], group="examples in the text")
    assert capsys.readouterr().out.strip().splitlines()[-1] == "✓ good_tf: the 2 examples in the text pass"

    def tf(count):
        return float(count)
    with pytest.raises(AssertionError) as err:
        check(tf, TF, cases=[(1,), (10,)])
    assert str(err.value) == "tf(10): expected 2.0, got 10.0"


# ---- the judge, outside the kernel (items 3, 4, 7) -------------------------------------
CELL = '''from course_lib.grading import check
check(tf_weight, "course_lib.sparse.tf_weight", group="examples in the text", cases=[(0,), (1,), (10,)])
### BEGIN HIDDEN TESTS
check(tf_weight, "course_lib.sparse.tf_weight", group="random cases", hidden=True, n_random=20,
      random_cases=lambda rng: (int(rng.integers(0, 10**6)),))
### END HIDDEN TESTS
'''


def _records(fn):
    records = []
    grading._emit, saved = records.append, grading._emit
    grading._LOCKED.add("nothing")  # autograding: record only
    try:
        ns = {"tf_weight": fn}
        exec(CELL, ns)
    finally:
        grading._emit = saved
        grading._LOCKED.discard("nothing")
    return records


def test_judge_gives_partial_credit_per_group_and_hides_hidden_inputs():
    def tf(count):  # right on the examples, wrong for large counts
        return good_tf(count) if count <= 10 else 0.0

    verdict = judge.judge_cell(CELL, 2, _records(tf))
    assert verdict["score"] == 1
    assert verdict["lines"][0] == "[1/1] ✓ tf_weight: the 3 examples in the text pass"
    assert "wrong on 20 of 20 random cases (hidden: inputs not shown)" in verdict["lines"][1]
    assert judge.judge_cell(CELL, 2, _records(good_tf))["score"] == 2


def test_missing_forged_or_garbled_records_score_zero_with_a_message():
    records = _records(good_tf)
    assert "no record" in judge.judge_cell(CELL, 2, [])["lines"][0]
    forged = [dict(r, digest="0" * 64) for r in records]
    assert judge.judge_cell(CELL, 2, forged)["score"] == 0
    garbled = [dict(r, results=[{"out": 1.0}]) for r in records]
    verdict = judge.judge_cell(CELL, 2, garbled)
    assert verdict["score"] == 0 and "garbled" in verdict["lines"][0]


def test_patched_rules_in_the_kernel_change_nothing_outside(monkeypatch):
    def wrong(count):
        return 0.0
    records = _records(wrong)
    monkeypatch.setattr(grading, "values_equal", lambda *a, **k: True)  # what a kernel may do to itself
    monkeypatch.setitem(grading.RULES, "values", lambda *a, **k: True)
    import subprocess, sys, json
    out = subprocess.run([sys.executable, "-m", "course_lib.judge"], capture_output=True, text=True,
                         input=json.dumps({"t": {"source": CELL, "points": 2, "records": records}}))
    assert json.loads(out.stdout)["t"]["score"] == 0


# ---- comparison rules, each pinned by hand -----------------------------------------------
@pytest.mark.parametrize("expected, got, equal", [
    (True, True, True), (True, 1, False), (1, True, False), (False, 0, False), (None, None, True), (None, 0, False),
    ("a", "a", True), ("a", ["a"], False), (2.0, 2.0 + 1e-12, True), (2.0, 2.001, False), (2.0, "2.0", False),
    (2, 2.0, True), (2.0, np.float32(2.0), True), (float("nan"), float("nan"), False),
    (float("inf"), float("inf"), True), (float("inf"), float("-inf"), False), (1e-12, 0.0, True),
    ([1.0, 2.0], (1.0, 2.0), True), ([1.0, 2.0], np.array([1.0, 2.0]), True), ([1.0, 2.0], [1.0], False),
    (np.zeros((2, 1)), np.zeros(2), False), (["a", "b", "c"], "abc", False), ({"a": 1.0}, {"a": 1.0, "b": 2}, False),
    ({"a": [1, 2]}, {"a": [1, 2]}, True), ((1, "x"), [1, "x"], True),
    ("a", np.str_("a"), True), (np.str_("a"), "a", True), ("a", np.str_("b"), False), ("1", 1, False),
])
def test_values_equal_rules(expected, got, equal):
    assert values_equal(expected, got) is equal


def test_same_ranking_last_tie_group_needs_ids_the_reference_ties():
    full = (["a", "b", "c", "d"], [2.0, 1.0, 1.0, 0.5])
    assert same_ranking(full, (["a", "c"], [2.0, 1.0]), k=2)            # any tied id at the cut
    assert not same_ranking(full, (["a", "z"], [2.0, 1.0]), k=2)        # an id that does not exist
    assert not same_ranking(full, (["a", "d"], [2.0, 1.0]), k=2)        # an id with another score
    assert not same_ranking(full, (["a", "b", "b"], [2.0, 1.0, 1.0]), k=3)  # duplicates
    assert same_ranking(full, (["a", "c", "b", "d"], [2.0, 1.0, 1.0, 0.5]))
    assert not same_ranking(full, (["b", "a", "c", "d"], [2.0, 1.0, 1.0, 0.5]))
    assert not same_ranking(full, (["a", "b", "c"], [2.0, 1.0, 1.0]))   # too short for k = None
    assert same_ranking(full, (["a", "b", "c", "d"], [2.0, 1.0, 1.0, 0.5]), k=10)
    assert not same_ranking(full, "garbage")


def test_same_ranking_ids_of_one_kind():
    """numpy strings and integers are ids of their kind (a student's ids may come from numpy); bools,
    strings for integers and integers for strings are not."""
    strings = (["a", "b"], [2.0, 1.0])
    assert same_ranking(strings, ([np.str_("a"), np.str_("b")], [2.0, 1.0]))
    assert not same_ranking(strings, (["a", 1], [2.0, 1.0]))
    integers = ([1, 0], [2.0, 1.0])
    assert same_ranking(integers, ([np.int64(1), np.int64(0)], [2.0, 1.0]))
    assert not same_ranking(integers, ([True, False], [2.0, 1.0]))
    assert not same_ranking(integers, (["1", "0"], [2.0, 1.0]))


def test_encode_round_trips_and_refuses_objects():
    value = {"t": (1, 2.5, None), 3: [np.array([[1, 2]]), "x"], "n": float("nan")}
    back = grading.decode(grading.encode(value))
    assert back["t"] == (1, 2.5, None) and back[3][0].shape == (1, 2) and math.isnan(back["n"])
    assert not values_equal([1], grading.decode(grading.encode(object())))


def test_targets_match_the_notebooks():
    import glob
    import nbformat
    from pathlib import Path
    from course_lib import references
    for path in sorted(glob.glob(str(Path(__file__).resolve().parents[1] / "notebooks/source/*/*.ipynb"))):
        nb = nbformat.read(path, as_version=4)
        named = {g["target"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
                 and not c.metadata["nbgrader"].get("solution") for g in judge.groups_of(c.source, expected=False)}
        assert named == set(references.TARGETS[Path(path).stem]), path


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.integers(0, 3), min_size=1, max_size=12), st.integers(1, 14), st.randoms())
def test_any_order_within_ties_passes_and_an_outsider_fails(levels, k, rnd):
    scores = sorted((float(s) for s in levels), reverse=True)
    ids = [f"d{i}" for i in range(len(scores))]
    shuffled = list(range(len(ids)))
    rnd.shuffle(shuffled)
    order = sorted(shuffled, key=lambda i: -scores[i])  # a random order inside each tie
    n = min(k, len(ids))
    got = ([ids[i] for i in order[:n]], [scores[i] for i in order[:n]])
    assert same_ranking((ids, scores), got, k)
    assert not same_ranking((ids, scores), (got[0][:-1] + ["nowhere"], got[1]), k)


@given(st.recursive(st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=12))
def test_encode_decode_round_trip(value):
    assert values_equal(value, grading.decode(grading.encode(value)), 0, 0)
