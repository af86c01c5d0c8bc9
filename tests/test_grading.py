"""course_lib.grading: messages, hidden cases, exceptions, reference detection, no stderr."""
from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import course_lib.text
from course_lib import grading
from course_lib.grading import check, reference, same_ranking


def ref_tf(count):
    return 1 + math.log10(count) if count > 0 else 0.0


def test_visible_failure_is_one_line_expected_got():
    def tf(count):
        return float(count)

    with pytest.raises(AssertionError) as err:
        check(tf, ref_tf, cases=[(1,), (10,)])
    assert str(err.value) == "tf(10): expected 2.0, got 10.0"


def test_passing_solution_returns_none_so_nbgrader_sees_no_partial_credit():
    seen = []

    def tf(c):
        seen.append(c)
        return 1 + math.log10(c) if c else 0.0

    assert check(tf, ref_tf, cases=[0, 1, 5], random_cases=lambda rng: (int(rng.integers(0, 1000)),), n_random=10) is None
    assert len(seen) == 13


def test_hidden_failures_show_no_inputs():
    def tf(count):
        return 1 + math.log10(count) if count > 7 else 0.0

    with pytest.raises(AssertionError) as err:
        check(tf, ref_tf, random_cases=lambda rng: (int(rng.integers(1, 12)),), n_random=30, hidden=True, hint="count 1")
    message = str(err.value)
    assert "hidden test cases (inputs not shown)" in message and "of 30" in message
    assert "expected" not in message and "got" not in message


def test_student_exception_is_reported_with_type_and_message():
    def tf(count):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"tf\(3\): raised NotImplementedError$"):
        check(tf, ref_tf, cases=[(3,)])

    def tf2(count):
        return 1 / 0

    with pytest.raises(AssertionError, match="raised ZeroDivisionError: division by zero"):
        check(tf2, ref_tf, cases=[(3,)])


def test_nan_and_wrong_types_never_pass():
    with pytest.raises(AssertionError, match="got nan"):
        check(lambda c: float("nan"), ref_tf, cases=[(0,)])
    with pytest.raises(AssertionError, match="expected 0.0, got 'zero'"):
        check(lambda c: "zero", ref_tf, cases=[(0,)])
    with pytest.raises(AssertionError, match="expected a function"):
        check(None, ref_tf, cases=[(0,)])


def test_reference_loaded_from_disk_ignores_monkeypatching(monkeypatch):
    monkeypatch.setattr(course_lib.text, "tokenize", lambda text, **k: ["patched"])
    fresh = reference("course_lib.text.tokenize")
    assert fresh("Hello World") == ["hello", "world"]
    with pytest.raises(ValueError, match="dotted must name a course_lib function"):
        reference("os.path.join")


def test_solution_that_calls_the_reference_is_caught_by_any_route():
    ref = reference("course_lib.text.tokenize")
    from course_lib.text import tokenize as imported_name

    def via_module(text):
        return course_lib.text.tokenize(text)

    def via_imported_name(text):
        return imported_name(text)

    for cheat in (via_module, via_imported_name):
        with pytest.raises(AssertionError, match="calls course_lib.text.tokenize"):
            check(cheat, ref, cases=["Hello"])
        with pytest.raises(AssertionError, match="calls course_lib.text.tokenize"):
            check(cheat, ref, cases=["Hello"], hidden=True)
    assert course_lib.text.tokenize("A b") == ["a", "b"], "the patch must be undone"
    assert imported_name("A b") == ["a", "b"]


def test_student_mutating_the_input_does_not_change_expected():
    def spoil(xs):
        xs.clear()
        return 0

    with pytest.raises(AssertionError, match=r"expected 3, got 0"):
        check(spoil, len, cases=[([1, 2, 3],)])


def test_nothing_reaches_stderr(capfd):
    def noisy(count):
        warnings.warn("deprecated!")
        print("progress 10%", file=sys.stderr)
        return ref_tf(count)

    check(noisy, ref_tf, cases=[(1,), (10,)])
    assert capfd.readouterr().err == ""


def test_rankings_modulo_ties():
    expected = (["d1", "d2", "d3", "d4"], [2.0, 1.0, 1.0, 0.5])
    assert same_ranking(expected, (["d1", "d3", "d2", "d4"], [2.0, 1.0, 1.0, 0.5]))
    assert not same_ranking(expected, (["d2", "d1", "d3", "d4"], [2.0, 1.0, 1.0, 0.5]))
    assert not same_ranking(expected, (["d1", "d2", "d3"], [2.0, 1.0, 1.0]))
    assert not same_ranking(expected, (["d1", "d2", "d3", "d4"], [2.0, 1.0, 1.0, 0.4]))
    # a tie cut by the top-k boundary accepts any tied id
    assert same_ranking((["a", "b"], [1.0, 0.5]), (["a", "z"], [1.0, 0.5]))
    assert not same_ranking(expected, "garbage")


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_identical_arrays_always_pass_and_shifted_fail(values):
    arr = np.array(values)
    assert grading._values_equal(arr, arr.copy(), 1e-6, 1e-9)
    assert not grading._values_equal(arr, arr + 1.0, 1e-6, 1e-9)
    assert not grading._values_equal(arr, arr[:-1], 1e-6, 1e-9)


def test_dicts_compare_by_keys_and_values():
    assert grading._values_equal({"a": 1.0, "b": [1, 2]}, {"b": [1, 2], "a": 1.0 + 1e-12}, 1e-6, 1e-9)
    assert not grading._values_equal({"a": 1.0}, {"a": 1.0, "b": 2}, 1e-6, 1e-9)


def test_a_blocked_class_refuses_attribute_access_too():
    ref = reference("course_lib.sparse.InvertedIndex")
    import course_lib.sparse

    def via_class_method(docs):
        return course_lib.sparse.InvertedIndex.build(docs).as_dict()

    def ref_index(docs):
        return ref.build(docs).as_dict()

    ref_index.__grading_public__ = "course_lib.sparse.InvertedIndex"  # as the chapter test cells mark wrappers
    with pytest.raises(AssertionError, match="calls course_lib.sparse.InvertedIndex: write it yourself"):
        check(via_class_method, ref_index, cases=[([["a", "b"]],)])
    assert course_lib.sparse.InvertedIndex.build([["a"]]).N == 1
