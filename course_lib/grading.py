"""What the autograder test cells call: compare a student's function with the reference.

A test cell reads::

    from course_lib.grading import check, reference
    ref = reference("course_lib.sparse.tf_weight")
    check(tf_weight, ref, cases=[(0,), (1,), (10,)])            # visible: first failure shown
    ### BEGIN HIDDEN TESTS
    check(tf_weight, ref, random_cases=lambda rng: (int(rng.integers(0, 10**6)),), hidden=True)
    ### END HIDDEN TESTS

* Visible cases report the first failure in one line: ``tf_weight(10): expected 2.0, got 1.0``.
* Hidden cases never show their inputs or values, only how many failed.
* An exception in the student's code is reported with its type and message.
* The reference is loaded afresh from ``course_lib``'s files (:func:`reference`), so a
  student who monkeypatches ``course_lib`` cannot change what is expected, and while the
  student's function runs the public reference is patched to raise: a solution that only
  calls the reference does not pass.
* Nothing is written to stderr (nbgrader scores a test cell with stderr output 0):
  warnings and the student's stderr are captured while their code runs.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent
_fresh_modules: dict[str, Any] = {}


class ReferenceCalled(RuntimeError):
    """Raised when the student's function calls the reference implementation it should rewrite."""


def reference(dotted: str) -> Callable:
    """The reference ``course_lib.<module>.<name>`` loaded from its file on disk.

    The module is executed afresh under a private name, so attributes a student
    replaced in the imported ``course_lib`` module do not leak into the expected values.
    """
    module_name, _, attr = dotted.rpartition(".")
    if not module_name.startswith("course_lib."):
        raise ValueError(f"dotted must name a course_lib function such as 'course_lib.sparse.tf_weight', got {dotted!r}")
    if module_name not in _fresh_modules:
        path = PACKAGE_DIR.joinpath(*module_name.split(".")[1:]).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # not registered in sys.modules: a private copy
        _fresh_modules[module_name] = module
    function = getattr(_fresh_modules[module_name], attr)
    function.__grading_public__ = dotted  # where the student would find it
    return function


def _values_equal(expected: Any, got: Any, rtol: float, atol: float) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and set(expected) == set(got)
            and all(_values_equal(expected[k], got[k], rtol, atol) for k in expected)
        )
    if isinstance(expected, str) or expected is None or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, (int, float, np.number)):
        try:
            got = float(got)
        except (TypeError, ValueError):
            return False
        expected = float(expected)
        if not (math.isfinite(expected) and math.isfinite(got)):
            return expected == got  # NaN never matches; infinities must agree
        return math.isclose(expected, got, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, (list, tuple, np.ndarray)):
        try:
            exp_arr, got_arr = np.asarray(expected), np.asarray(got)
        except Exception:
            return False
        if exp_arr.dtype.kind in "fiub" and got_arr.dtype.kind in "fiub":
            return exp_arr.shape == got_arr.shape and bool(np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol))
        return len(expected) == len(got) and all(_values_equal(e, g, rtol, atol) for e, g in zip(expected, got))
    return bool(expected == got)


def same_ranking(expected: tuple, got: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """``(ids, scores)`` rankings agree: equal scores in order, and equal ids up to reordering inside ties.

    The last tie group may be cut by the top-k boundary, so any ids of that score are accepted there.
    """
    try:
        exp_ids, exp_scores = expected
        got_ids, got_scores = got
    except (TypeError, ValueError):
        return False
    if len(got_ids) != len(exp_ids) or not _values_equal(list(exp_scores), list(got_scores), rtol, atol):
        return False
    start = 0
    while start < len(exp_ids):
        end = start
        while end < len(exp_ids) and math.isclose(exp_scores[end], exp_scores[start], rel_tol=rtol, abs_tol=atol):
            end += 1
        if end < len(exp_ids) and sorted(map(str, exp_ids[start:end])) != sorted(map(str, got_ids[start:end])):
            return False
        start = end
    return True


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_text(name: str, args: tuple, kwargs: dict) -> str:
    parts = [_short(a, 60) for a in args] + [f"{k}={_short(v, 60)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


class _Blocked:
    """Stands in for the reference while the student's code runs: calling it, or reaching
    into it (``InvertedIndex.build``), raises :class:`ReferenceCalled`."""

    def __init__(self, public: str):
        self._public = public

    def _refuse(self):
        raise ReferenceCalled(f"your function calls {self._public}: write it yourself instead")

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, name):
        self._refuse()


@contextlib.contextmanager
def _reference_blocked(student: Callable, ref: Callable):
    """While the student's code runs, every public route to the reference raises."""
    public = getattr(ref, "__grading_public__", None)
    blocked = _Blocked(public)

    patched: list[tuple[Any, str, Any]] = []
    if public:
        module_name, _, attr = public.rpartition(".")
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        original = getattr(module, attr)
        patched.append((module, attr, original))
        namespace = getattr(student, "__globals__", {})  # a notebook's `from ... import name`
        patched += [(namespace, key, value) for key, value in namespace.items() if value is original]
        cells = getattr(student, "__closure__", None) or ()
        patched += [(cell, "cell_contents", original) for cell in cells if _cell_value(cell) is original]

    def put(target, key, value):
        if isinstance(target, dict):
            target[key] = value
        else:
            setattr(target, key, value)

    try:
        for target, key, _ in patched:
            put(target, key, blocked)
        yield
    finally:
        for target, key, value in reversed(patched):
            put(target, key, value)


def _cell_value(cell) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _run_student(student: Callable, ref: Callable, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """(ok, result or 'Type: message'), with warnings and stderr swallowed."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), _reference_blocked(student, ref):
        warnings.simplefilter("ignore")
        try:
            return True, student(*_copy(args), **_copy(kwargs))
        except ReferenceCalled as err:
            return False, str(err)
        except Exception as err:  # the student's bug, reported in one line
            return False, f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _copy(value: Any) -> Any:
    """Deep-enough copy so a student who mutates an input cannot change the reference's input."""
    import copy

    return copy.deepcopy(value)


def _as_call(case: Any) -> tuple[tuple, dict]:
    if isinstance(case, dict):
        return (), dict(case)
    if isinstance(case, tuple):
        return case, {}
    return (case,), {}


def check(
    student: Callable,
    ref: Callable,
    cases: Iterable[Any] = (),
    *,
    random_cases: Callable[[np.random.Generator], Any] | None = None,
    n_random: int = 25,
    seed: int = 0,
    hidden: bool = False,
    compare: Callable[[Any, Any], bool] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    hint: str = "",
) -> None:
    """Compare ``student`` with ``ref`` on ``cases`` and on ``n_random`` seeded random cases.

    A case is a tuple of positional arguments, a dict of keyword arguments, or a
    single argument. ``compare(expected, got)`` overrides the default comparison
    (floats within ``rtol``/``atol``, containers elementwise); use
    :func:`same_ranking` for rankings modulo ties. Raises ``AssertionError`` with a
    one-line message on the first visible failure, or with the number of failed
    hidden cases. Returns None on purpose: nbgrader reads a number displayed by a
    test cell as partial credit.
    """
    __tracebackhide__ = True  # IPython and pytest show the student's line, not ours
    if not callable(student):
        raise AssertionError(f"expected a function, got {type(student).__name__}: define it in the exercise cell above")
    name = getattr(student, "__name__", "your function")
    equal = compare or (lambda e, g: _values_equal(e, g, rtol, atol))
    calls = [_as_call(c) for c in cases]
    if random_cases is not None:
        rng = np.random.default_rng(seed)
        calls += [_as_call(random_cases(rng)) for _ in range(n_random)]
    if not calls:
        raise ValueError("check needs cases or random_cases")
    failures = 0
    for args, kwargs in calls:
        expected = ref(*_copy(args), **_copy(kwargs))
        ok, got = _run_student(student, ref, args, kwargs)
        passed = ok and equal(expected, got)
        if passed:
            continue
        if not hidden:
            call = _call_text(name, args, kwargs)
            detail = f"raised {got}" if not ok else f"expected {_short(expected)}, got {_short(got)}"
            raise AssertionError(f"{call}: {detail}" + (f". Hint: {hint}" if hint else ""))
        failures += 1
        if not ok and got.startswith("your function calls"):
            raise AssertionError(got)
    if failures:
        raise AssertionError(
            f"{name} is wrong on {failures} of {len(calls)} hidden test cases (inputs not shown)."
            + (f" Hint: {hint}" if hint else "")
        )
