"""The verdict on test cells, computed outside the student's kernel (nbgrader's parent starts it).

``python -m course_lib.judge`` reads ``{grade_id: {"source", "points", "records"}}`` as JSON on
stdin: the instructor's test cell (as nbgrader restored it from the gradebook) and the records
the kernel's :func:`course_lib.grading.check` emitted. It executes each test cell in this clean
process with ``check`` describing its groups instead of running anything (the student's
functions are placeholders here), recomputes the expected values from the library, matches
each group with its record (same target, group and input digest: a missing, garbled or
forged record scores 0 for that group, with a message), compares with
:data:`course_lib.grading.RULES`, and prints ``{grade_id: {"score", "lines"}}``: the cell's
points shared equally among its groups, and one feedback line per group.
"""
from __future__ import annotations

import ast
import copy
import json
import sys
from typing import Any

from . import grading


class _StudentPlaceholder:
    """Stands for the student's function while the instructor's cell is read: never called."""

    def __init__(self, name: str):
        self.__name__ = name


def _student_names(source: str) -> set[str]:
    """The names passed as the first argument of ``check(...)`` calls in a test cell."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"
                and node.args and isinstance(node.args[0], ast.Name)):
            names.add(node.args[0].id)
    return names


def groups_of(source: str, expected: bool = True) -> list[dict]:
    """The groups a test cell's ``check`` calls define, with their expected values (unless ``expected`` is False)."""
    namespace: dict[str, Any] = {name: _StudentPlaceholder(name) for name in _student_names(source)}
    namespace["__name__"] = "__judge__"
    grading._judge_groups = groups = []
    try:
        exec(compile(source, "<test cell>", "exec"), namespace)
    finally:
        grading._judge_groups = None
    for g in groups if expected else ():
        reference = grading._public(g["target"])
        g["expected"] = [reference(*copy.deepcopy(a), **copy.deepcopy(k)) for a, k in g["calls"]]
        g["digest"] = grading.inputs_digest(g["calls"])
    return groups


def _record_for(group: dict, records: list) -> tuple[dict | None, str]:
    """The one record of ``group`` (or None and why)."""
    same = [r for r in records if isinstance(r, dict) and r.get("target") == group["target"]
            and r.get("group") == group["group"]]
    if not same:
        return None, "no record of this group reached the grader (the cell did not run to this check)"
    matching = [r for r in same if r.get("digest") == group["digest"]]
    if not matching:
        return None, "its record does not match the test's inputs (an edited or forged record)"
    if any(json.dumps(r, sort_keys=True) != json.dumps(matching[0], sort_keys=True) for r in matching):
        return None, "several different records for it (forged records)"
    record = matching[0]
    results = record.get("results")
    if (not isinstance(results, list) or len(results) != len(group["calls"])
            or not all(isinstance(x, dict) and ("out" in x or isinstance(x.get("error"), str)) for x in results)):
        return None, "its record is garbled"
    return record, ""


def judge_cell(source: str, points: float, records: list) -> dict:
    """``{"score", "lines"}`` of one test cell."""
    try:
        groups = groups_of(source)
    except Exception as err:  # the instructor's cell is broken: say so, never guess
        raise RuntimeError(f"the test cell cannot be read by the judge: {type(err).__name__}: {err}") from err
    if not groups:
        raise RuntimeError("the test cell calls check() nowhere")
    share = points / len(groups)
    score, lines = 0.0, []
    for g in groups:
        record, why = _record_for(g, records)
        if record is None:
            line = f"{g['name']}, {g['group']}: {why}"
            ok = False
        else:
            try:
                line = grading.feedback(g["name"], g["target"], g["group"], g["hidden"], g["calls"], g["expected"],
                                        record["results"], g["compare"], g["rtol"], g["atol"], g["hint"])
            except Exception as err:  # a result the rules cannot even look at
                line = f"{g['name']}, {g['group']}: unreadable result ({type(err).__name__})"
            ok = line.startswith("✓")
        score += share if ok else 0.0
        lines.append(f"[{share if ok else 0:g}/{share:g}] {line}")
    return {"score": round(score, 6), "lines": lines}


def main() -> int:
    cells = json.load(sys.stdin)
    print(json.dumps({grade_id: judge_cell(c["source"], float(c["points"]), c["records"]) for grade_id, c in cells.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
