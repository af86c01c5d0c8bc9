"""What the autograder test cells call. The verdict is computed outside the student's kernel.

A test cell passes only names and data (no reference object ever sits in the notebook)::

    from course_lib.grading import check
    check(tf_weight, "course_lib.sparse.tf_weight", cases=[(0,), (1,), (10,)], group="examples in the text")
    ### BEGIN HIDDEN TESTS
    check(tf_weight, "course_lib.sparse.tf_weight", group="random counts", hidden=True,
          random_cases=lambda rng: (int(rng.integers(0, 10**6)),))
    ### END HIDDEN TESTS

Each ``check`` call is one *group* of cases, scored all or nothing; a test cell's points are
shared equally among its groups (nbgrader partial credit).

* **In the kernel** ``check`` runs the student's function on every case with every public
  route to the graded behaviour blocked (the module attribute and every reference to it:
  notebook globals, default arguments, closures, dispatch tables such as
  ``metrics.evaluate_run``'s, the local ``evaluate`` metric, :func:`reference`), and emits a
  record (:data:`RECORD_MIME`): a digest of the inputs and the student's outputs. Outside
  autograding it also computes the expected values and gives immediate feedback: one line
  when a visible group passes, ``tf_weight(10): expected 2.0, got 1.0`` when it fails, and
  for hidden groups only how many cases failed.
* **Under autograding** :func:`lockdown` runs when the kernel starts (before any student code):
  the chapter's references are replaced everywhere they are referenced and dropped, and
  re-executing their module files or starting a process is refused. ``check`` then only
  records; :mod:`course_lib.judge`, in nbgrader's parent process, re-evaluates the
  instructor's test cells in a clean process, checks each record against the inputs it
  expects, compares with :data:`RULES` and sets the cell's score and feedback. Whatever the
  kernel does to this module, to IPython or to the comparison functions changes nothing
  but its own screen.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent
RECORD_MIME = "application/vnd.qair-course.check+json"
MAX_RECORD_CHARS = 2_000_000  # a record larger than this is refused (the group scores 0)
_fresh_modules: dict[str, Any] = {}
_LOCKED: set[str] = set()  # dotted names removed from this process by lockdown()
_judge_groups: list | None = None  # set by course_lib.judge: check() then only describes its group


class ReferenceCalled(RuntimeError):
    """Raised when the student's function reaches the library behaviour it should write itself."""


# ---- the references and the routes to them ----------------------------------------------


def reference(dotted: str) -> Callable:
    """The reference ``course_lib.<module>.<name>`` loaded afresh from its file (tests only).

    Test cells never call it; while student code runs it is blocked like the references.
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
    return getattr(_fresh_modules[module_name], attr)


def routes(target: str) -> tuple[str, ...]:
    """Every public dotted name that must refuse while the student's version of ``target`` runs."""
    from . import references

    return (target, *references.ALSO_BLOCKED.get(target, ()), "course_lib.grading.reference")


def _public(dotted: str) -> Any:
    module_name, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


class _Blocked:
    """Stands in for a reference while student code runs: calling it, or reaching into it
    (``InvertedIndex.build``), raises :class:`ReferenceCalled`."""

    def __init__(self, public: str):
        object.__setattr__(self, "_public", public)

    def _refuse(self):
        raise ReferenceCalled(f"your function calls {object.__getattribute__(self, '_public')}: write it yourself instead")

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, name):
        self._refuse()

    def __repr__(self):
        return f"<blocked {object.__getattribute__(self, '_public')}>"


def _swap_everywhere(original: Any, replacement: Any, skip: set[int]) -> list[tuple[Any, Any, Any]]:
    """Replace ``original`` by ``replacement`` in every dict, list, closure cell and default
    arguments that refer to it (module tables, notebook globals, dispatch tables, closures).

    Returns undo entries ``(container, key, original)``.
    """
    undo = []
    for holder in gc.get_referrers(original):
        if id(holder) in skip:
            continue
        if type(holder) is dict:
            for key, value in list(holder.items()):
                if value is original:
                    holder[key] = replacement
                    undo.append((holder, key, original))
        elif type(holder) is list:
            for i, value in enumerate(holder):
                if value is original:
                    holder[i] = replacement
                    undo.append((holder, i, original))
        elif type(holder).__name__ == "cell":
            holder.cell_contents = replacement
            undo.append((holder, "cell_contents", original))
        elif type(holder) is tuple:  # default arguments of a function
            for fn in gc.get_referrers(holder):
                if callable(fn) and getattr(fn, "__defaults__", None) is holder:
                    defaults = list(holder)
                    for i, value in enumerate(defaults):
                        if value is original:
                            defaults[i] = replacement
                    fn.__defaults__ = tuple(defaults)
                    undo.append((fn, "__defaults__", holder))
    return undo  # no closure in this function: `original` must not live in a cell it would swap


def _undo(entries) -> None:
    for container, key, value in reversed(entries):
        if isinstance(container, (dict, list)):
            container[key] = value
        else:
            setattr(container, key, value)


@contextlib.contextmanager
def _blocked(target: str):
    """While the student's code runs, every route of :func:`routes` raises (undone afterwards)."""
    undo: list = []
    try:
        for dotted in routes(target):
            if dotted in _LOCKED:
                continue
            module_name, _, attr = dotted.rpartition(".")
            fresh = getattr(_fresh_modules.get(module_name), attr, None)  # a copy from reference()
            for original in (_public(dotted), fresh):
                if original is not None and not isinstance(original, _Blocked):
                    undo += _swap_everywhere(original, _Blocked(dotted), skip={id(undo)})
            del original, fresh
        yield
    finally:
        _undo(undo)


def kernel_start() -> None:
    """Run by the grading kernel at start (``nbgrader_config.py``), under autograde only:
    :func:`lockdown`, then :func:`restore` before every cell (an IPython ``pre_run_cell`` event)."""
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        lockdown()
        _snapshot()
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.events.register("pre_run_cell", restore)


_PRISTINE: dict = {}  # this module as the kernel started it (see _snapshot)


def _snapshot() -> None:
    """Remember this module's table and, for each of its functions and IPython's ``display``
    (what :func:`check` records through), the code, defaults and module attribute."""
    import IPython.display
    from IPython.core import display_functions

    module = sys.modules[__name__]
    functions = [(module, name, f) for name, f in vars(module).items()
                 if inspect.isfunction(f) and f.__module__ == __name__]
    functions += [(m, name, getattr(m, name)) for m in (IPython.display, display_functions)
                  for name in ("display", "publish_display_data")]
    _PRISTINE.update(module=module, table=dict(vars(module)),
                     functions=[(m, name, f, f.__code__, f.__defaults__, f.__kwdefaults__) for m, name, f in functions])


def restore(*_: Any) -> None:
    """Undo what the student's code did to grading before a test cell runs: this module back in
    ``sys.modules`` and on ``course_lib``, its table as :func:`_snapshot` saw it, every function's
    code and defaults back. A submission that replaced ``check`` (or anything it calls) is then
    graded on its work; the judge still decides outside the kernel."""
    if not _PRISTINE:
        return
    module = _PRISTINE["module"]
    sys.modules[__name__] = module
    if "course_lib" in sys.modules:
        setattr(sys.modules["course_lib"], "grading", module)
    vars(module).update(_PRISTINE["table"])
    for holder, name, f, code, defaults, kwdefaults in _PRISTINE["functions"]:
        f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults
        setattr(holder, name, f)


def lockdown(chapter: str | None = None) -> list[str]:
    """Remove the chapter's references from this process for good (autograding only).

    Runs when the grading kernel starts, before any student code: each route of the
    chapter's targets is replaced everywhere it is referenced, and an audit hook refuses to
    re-execute those modules' files and to start processes (a fresh interpreter would have
    the library back). Returns the dotted names removed.
    """
    from . import references

    chapter = chapter or os.environ.get("COURSE_CHAPTER") or Path.cwd().name  # autograded/<student>/<chapter>/
    targets = references.TARGETS.get(chapter) or [t for ts in references.TARGETS.values() for t in ts]
    removed = []
    for target in targets:
        for dotted in routes(target):
            if dotted in _LOCKED:
                continue
            original = _public(dotted)
            _swap_everywhere(original, _Blocked(dotted), skip=set())
            del original
            _LOCKED.add(dotted)
            removed.append(dotted)
    _fresh_modules.clear()
    files = frozenset(str(PACKAGE_DIR.joinpath(*d.rpartition(".")[0].split(".")[1:]).with_suffix(".py")) for d in removed)
    sys.addaudithook(_refuser(files))
    return removed


def _refuser(files: frozenset) -> Callable:
    processes = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty")

    def hook(event, args):
        if event == "exec" and getattr(args[0], "co_filename", None) in files:
            raise ReferenceCalled("re-executing the course library's reference code is not allowed while grading")
        if event in processes:
            raise ReferenceCalled("starting a process is not allowed while grading")

    return hook


# ---- values as data: what a record carries ------------------------------------------------


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, type-preserving form of ``value`` (tuples, arrays, dicts with any keys, NaN).

    Anything else becomes ``{"x": type name}``, which equals nothing.
    """
    if depth > 40:
        return {"x": "too deeply nested"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return encode(value.item(), depth)
    if isinstance(value, int):
        return value if abs(value) < 2**63 else {"x": "int too large"}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"f": repr(value)}
    if isinstance(value, tuple):
        return {"t": [encode(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"s": sorted((encode(v, depth + 1) for v in value), key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            return {"x": f"array of {value.dtype}"}
        return {"a": encode(value.tolist(), depth + 1), "dtype": value.dtype.str, "shape": list(value.shape)}
    return {"x": type(value).__name__}


class Unsupported:
    """A decoded value of a type a record cannot carry: equal to nothing."""

    def __init__(self, what: str):
        self.what = what

    def __eq__(self, other):
        return False

    def __repr__(self):
        return f"<{self.what}>"


def decode(data: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "t" in data:
        return tuple(decode(v) for v in data["t"])
    if "d" in data:
        out = {}
        for k, v in data["d"]:
            key = decode(k)
            try:
                out[key] = decode(v)
            except TypeError:
                return Unsupported("dict with unhashable keys")
        return out
    if "f" in data:
        return float(data["f"])
    if "s" in data:
        return set(decode(v) for v in data["s"])
    if "a" in data:
        return np.array(decode(data["a"]), dtype=np.dtype(data["dtype"])).reshape(data["shape"])
    return Unsupported(str(data.get("x", "unknown value")))


def inputs_digest(calls: list[tuple[tuple, dict]]) -> str:
    """sha256 of the encoded inputs: the judge computes the same from the instructor's cell."""
    text = json.dumps([[encode(list(a)), encode(k)] for a, k in calls], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- comparison rules ---------------------------------------------------------------------


def values_equal(expected: Any, got: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """The default rule. Numbers: ``got`` a real number (never a bool or a string) within
    ``rtol``/``atol``, NaN never equal, infinities equal only to themselves. Strings, None and
    bools: same type and value (a numpy string is a string). Dicts: same keys, values by this rule. Lists, tuples and arrays:
    interchangeable, same length (same shape for numeric arrays), elements by this rule."""
    if isinstance(expected, dict):
        return (isinstance(got, dict) and set(expected) == set(got)
                and all(values_equal(expected[k], got[k], rtol, atol) for k in expected))
    if isinstance(expected, str):  # numpy's str_ is a str, as it is once the record is JSON
        return isinstance(got, str) and got == expected
    if isinstance(expected, (bool, np.bool_)) or expected is None:
        return type(got) is type(expected) and got == expected
    if isinstance(expected, (int, float, np.number)):
        if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, float, np.number)):
            return False
        e, g = float(expected), float(got)
        if not (math.isfinite(e) and math.isfinite(g)):
            return e == g
        return math.isclose(e, g, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, (list, tuple, np.ndarray)):
        if not isinstance(got, (list, tuple, np.ndarray)):
            return False
        try:
            exp_arr, got_arr = np.asarray(expected), np.asarray(got)
        except Exception:
            exp_arr = got_arr = None
        if exp_arr is not None and exp_arr.dtype.kind in "fiu" and got_arr.dtype.kind in "fiu":
            return exp_arr.shape == got_arr.shape and bool(np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol))
        return len(expected) == len(got) and all(values_equal(e, g, rtol, atol) for e, g in zip(expected, got))
    return bool(expected == got)


def same_ranking(expected: tuple, got: Any, k: int | None = None, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """``got = (ids, scores)`` is a correct top ``k`` of the reference's complete ranking ``expected``.

    Scores equal the reference's first ``min(k, N)`` scores in order; the ids within each run of
    equal scores are distinct and each has that score in the reference (so the last run, cut by
    the top-k boundary, may hold any of the tied ids, but never an id the reference lacks).
    """
    try:
        exp_ids, exp_scores = list(expected[0]), list(expected[1])
        got_ids, got_scores = list(got[0]), list(got[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return False
    n = len(exp_ids) if k is None else min(int(k), len(exp_ids))
    if len(got_ids) != n or len(got_scores) != n or not values_equal(exp_scores[:n], got_scores, rtol, atol):
        return False
    start = 0
    while start < n:
        end = start
        while end < n and math.isclose(exp_scores[end], exp_scores[start], rel_tol=rtol, abs_tol=atol):
            end += 1
        tied = [i for i, s in zip(exp_ids, exp_scores) if math.isclose(s, exp_scores[start], rel_tol=rtol, abs_tol=atol)]
        group = got_ids[start:end]
        try:
            if len(set(group)) != len(group) or not all(any(_same_id(g, t) for t in tied) for g in group):
                return False
        except TypeError:  # unhashable ids
            return False
        start = end
    return True


def _same_id(got: Any, expected: Any) -> bool:
    """Equal ids of one kind: strings (numpy's included) or integers (numpy's included, never bools)."""
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, (bool, np.bool_)):
        return isinstance(got, (int, np.integer)) and not isinstance(got, (bool, np.bool_)) and got == expected
    return type(got) is type(expected) and got == expected


def _pairs(result: Any) -> tuple[list, list] | None:
    try:
        pairs = [(d, s) for d, s in result]
    except (TypeError, ValueError):
        return None
    return [d for d, _ in pairs], [s for _, s in pairs]


def same_hits(expected: tuple, got: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Rankings as ``[(id, score), ...]``: :func:`same_ranking` of ``expected = (pairs, k)``."""
    pairs, k = expected
    got_split = _pairs(got)
    return got_split is not None and same_ranking(_pairs(pairs), got_split, k, rtol, atol)


def same_ids_ranking(expected: tuple, got: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Rankings as ``(ids, scores)``: :func:`same_ranking` of ``expected = ((ids, scores), k)``."""
    ranking, k = expected
    return same_ranking(ranking, got, k, rtol, atol)


def same_index(expected: dict, got: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Inverted indexes ``{term: [(doc_id, tf, [positions]), ...]}``: equal as plain ints, postings in order."""
    try:
        plain = {t: [(int(d), int(tf), [int(p) for p in pos]) for d, tf, pos in postings] for t, postings in got.items()}
        want = {t: [(int(d), int(tf), [int(p) for p in pos]) for d, tf, pos in postings] for t, postings in expected.items()}
    except (AttributeError, TypeError, ValueError):
        return False
    if any(isinstance(x, bool) for postings in got.values() for posting in postings for x in posting[:2]):
        return False
    return plain == want


def same_span(expected: Any, got: Any, rtol: float = 1e-6, atol: float = 1e-6) -> bool:
    """Spans ``(i, j, score)`` or None: equal token indices and scores within tolerance."""
    if expected is None or got is None:
        return expected is None and got is None
    try:
        i, j, score = got
    except (TypeError, ValueError):
        return False
    return (values_equal(expected[0], i, 0, 0) and values_equal(expected[1], j, 0, 0)
            and values_equal(expected[2], score, rtol, atol))


RULES: dict[str, Callable[..., bool]] = {
    "values": values_equal, "ranking": same_ids_ranking, "hits": same_hits, "index": same_index, "span": same_span,
}


def shown(rule: str, expected: Any) -> Any:
    """What a feedback line shows as the expected value."""
    if rule == "hits":
        pairs, k = expected
        return pairs if k is None else pairs[:k]
    if rule == "ranking":
        (ids, scores), k = expected
        return (ids, scores) if k is None else (ids[:k], scores[:k])
    return expected


# ---- running the student's function --------------------------------------------------------


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def call_text(name: str, args: tuple, kwargs: dict) -> str:
    parts = [_short(a, 60) for a in args] + [f"{k}={_short(v, 60)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


def _as_call(case: Any) -> tuple[tuple, dict]:
    if isinstance(case, dict):
        return (), dict(case)
    if isinstance(case, tuple):
        return case, {}
    return (case,), {}


def calls_of(cases: Iterable[Any], random_cases: Callable | None, n_random: int, seed: int) -> list[tuple[tuple, dict]]:
    """The (args, kwargs) of a group: its listed cases, then ``n_random`` seeded random ones."""
    calls = [_as_call(c) for c in cases]
    if random_cases is not None:
        rng = np.random.default_rng(seed)
        calls += [_as_call(random_cases(rng)) for _ in range(n_random)]
    return calls


def _run_student(student: Callable, args: tuple, kwargs: dict) -> dict:
    """``{"out": encoded result}`` or ``{"error": "Type: message"}``; warnings and stderr swallowed.

    Call it inside ``_blocked(target)``."""
    import copy

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            result = student(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        except ReferenceCalled as err:
            return {"error": str(err), "reference": True}
        except Exception as err:  # the student's bug, reported in one line
            return {"error": f"{type(err).__name__}: {err}" if str(err) else type(err).__name__}
    return {"out": encode(result)}


def autograding() -> bool:
    """True in a kernel that :func:`lockdown` has locked (nbgrader autograde)."""
    return bool(_LOCKED)


def _emit(record: dict) -> None:
    from IPython.display import display

    display({RECORD_MIME: record, "text/plain": f"(record of {record['group']!r} for the grader)"}, raw=True)


def check(
    student: Callable,
    target: str,
    cases: Iterable[Any] = (),
    *,
    group: str = "examples",
    random_cases: Callable[[np.random.Generator], Any] | None = None,
    n_random: int = 25,
    seed: int = 0,
    hidden: bool = False,
    compare: str = "values",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    hint: str = "",
) -> None:
    """Run ``student`` on one group of cases and record its outputs for the grader.

    ``target`` names the graded behaviour (``"course_lib.sparse.tf_weight"`` or an adapter in
    :mod:`course_lib.references`). A case is a tuple of positional arguments, a dict of keyword
    arguments, or a single argument. ``compare`` names a rule of :data:`RULES`. Outside
    autograding, raises ``AssertionError`` with a one-line message when the group fails and
    prints one line when a visible group passes. Returns None (nbgrader would read a displayed
    number as partial credit).
    """
    __tracebackhide__ = True  # IPython and pytest show the student's line, not ours
    if compare not in RULES:
        raise ValueError(f"compare must be one of {sorted(RULES)}, got {compare!r}")
    calls = calls_of(cases, random_cases, n_random, seed)
    if not calls:
        raise ValueError("check needs cases or random_cases")
    name = getattr(student, "__name__", "your function")
    if _judge_groups is not None:
        _judge_groups.append({"name": name, "target": target, "group": group, "hidden": hidden, "calls": calls,
                              "compare": compare, "rtol": rtol, "atol": atol, "hint": hint})
        return None
    if callable(student):
        with _blocked(target):  # once per group: finding every reference walks the whole heap
            results = []
            for args, kwargs in calls:
                results.append(_run_student(student, args, kwargs))
                if results[-1].get("reference"):  # the group fails on it: the other cases need not run
                    results += [results[-1]] * (len(calls) - len(results))
                    break
    else:
        results = [{"error": f"expected a function, got {type(student).__name__}"}] * len(calls)
    record = {"target": target, "group": group, "hidden": hidden, "n": len(calls), "digest": inputs_digest(calls),
              "results": results}
    if len(json.dumps(record)) > MAX_RECORD_CHARS:
        record["results"] = [{"error": "output too large to record"}] * len(calls)
    _emit(record)
    if autograding():
        return None
    message = feedback(name, target, group, hidden, calls, [_expected(target, a, k) for a, k in calls], results,
                       compare, rtol, atol, hint)
    if not message.startswith("✓"):
        raise AssertionError(message)
    if not hidden:
        print(message)
    return None


def _expected(target: str, args: tuple, kwargs: dict) -> Any:
    """The reference's value for one case, from a private copy of its module (feedback only)."""
    import copy

    return reference(target)(*copy.deepcopy(args), **copy.deepcopy(kwargs))


def feedback(name: str, target: str, group: str, hidden: bool, calls: list, expected: list, results: list,
             compare: str, rtol: float, atol: float, hint: str) -> str:
    """One line on a group: ``✓ ...`` when every case passes, else what failed (hidden inputs never shown)."""
    rule = RULES[compare]
    failed = []
    for (args, kwargs), want, res in zip(calls, expected, results):
        if "error" in res:
            if res.get("reference"):
                return res["error"]
            failed.append((args, kwargs, want, f"raised {res['error']}"))
        elif not rule(want, decode(res["out"]), rtol=rtol, atol=atol):
            failed.append((args, kwargs, want, f"expected {_short(shown(compare, want))}, got {_short(decode(res['out']))}"))
    tip = f". Hint: {hint}" if hint else ""
    if not failed:
        return f"✓ {name}: the {len(calls)} {group} pass" if not hidden else f"✓ {name}: {group} pass"
    if hidden:
        kinds = sorted({d.split(":")[0] for *_, d in failed if d.startswith("raised")})
        raised = f"; it raised {', '.join(k.removeprefix('raised ') for k in kinds)}" if kinds else ""
        return f"{name} is wrong on {len(failed)} of {len(calls)} {group} (hidden: inputs not shown){raised}{tip}"
    args, kwargs, _, detail = failed[0]
    return f"{call_text(name, args, kwargs)}: {detail}{tip}"
