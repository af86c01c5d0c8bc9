"""Chapter grading end to end: planted submissions, hostile ones among them, graded in the sandbox
(one module fixture, the longest in the suite: its own pytest-xdist unit)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nbformat
import pytest
from test_course import _nb, _scratch_course

from course_lib import course

pytestmark = pytest.mark.slow

CH = "01_tfidf"


def _edit_solution(nb, grade_id: str, new_source: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = new_source
            return nb
    raise KeyError(grade_id)


def _first_solution_id(nb) -> str:
    return next(c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))


def _last_solution_id(nb) -> str:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")][-1]


# Run from a solution cell: each attack on what the sandbox hides; "ok" means it got through.
ATTACKS = """
import os, socket
def _attack(name, fn):
    try:
        fn()
        print("ATTACK", name, "ok")
    except Exception as err:
        print("ATTACK", name, "blocked", type(err).__name__)
_attack("read_source", lambda: open({source!r}).read())
_attack("write_gradebook", lambda: open({gradebook!r}, "ab").write(b"tampered"))
_attack("touch_other_student", lambda: open({other!r}, "a").write("tampered"))
_attack("list_course", lambda: os.listdir({course!r}) or 1 / 0)
_attack("socket_to_host", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3))
"""
# libc's fork through ctypes: the lockdown's audit hook refuses os.fork, the sandbox's pids limit must cap this one
FORK_BOMB = """
import ctypes, os, signal, time
kids = []
while len(kids) < 2000:
    pid = ctypes.CDLL(None, use_errno=True).fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    if pid < 0:
        break
    kids.append(pid)
print("FORKED", len(kids))
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""
STUCK = "\nimport time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass\n"


def _submissions(scratch: Path, port: int = 1) -> dict[str, object]:
    """student -> notebook (or raw text) for chapter 1."""
    solved = _nb(scratch / "source" / CH / f"{CH}.ipynb")
    first = _first_solution_id(solved)
    first_source = next(c.source for c in solved.cells if c.metadata.get("nbgrader", {}).get("grade_id") == first)
    last = _last_solution_id(solved)
    last_source = next(c.source for c in solved.cells if c.metadata.get("nbgrader", {}).get("grade_id") == last)
    attacks = ATTACKS.format(source=str(scratch / "source" / CH / f"{CH}.ipynb"), gradebook=str(scratch / "gradebook.db"),
                             other=str(scratch / "submitted" / "good" / CH / f"{CH}.ipynb"), course=str(scratch), port=port)
    first_test, second_test = [c.metadata["nbgrader"]["grade_id"] for c in solved.cells
                               if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")][:2]

    def variant(fn):
        nb = nbformat.from_dict(json.loads(nbformat.writes(solved)))
        return fn(nb) or nb

    return {
        "good": solved,
        "blank": _nb(scratch / "release" / CH / f"{CH}.ipynb"),
        "import_error": variant(lambda nb: _edit_solution(nb, first, "import no_such_module_qair\n" + first_source)),
        "infinite_loop": variant(lambda nb: _edit_solution(nb, first, "def tf_weight(count):\n    while True:\n        pass")),
        "loud": variant(lambda nb: _edit_solution(nb, first, "print('x' * 10_000_000)\n" + first_source)),
        "deleted_test": variant(lambda nb: setattr(nb, "cells", [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != first_test])),
        "edited_test": variant(lambda nb: _edit_solution(_edit_solution(nb, first, "def tf_weight(count):\n    return 0.0"), first_test, "pass")),
        "sys_exit": variant(lambda nb: _edit_solution(nb, first, "import sys\nsys.exit()\n" + first_source)),
        "monkeypatch": variant(lambda nb: _edit_solution(nb, first, "import course_lib.sparse\ncourse_lib.sparse.tf_weight = lambda count: 0.0\ndef tf_weight(count):\n    return 0.0")),
        "invalid_json": "{ this is not a notebook",
        "snoop": variant(lambda nb: _edit_solution(nb, first, attacks + first_source)),
        "alloc_10gb": variant(lambda nb: _edit_solution(nb, last, "_x = bytearray(10 * 2**30)\n" + last_source)),
        "fork_bomb": variant(lambda nb: _edit_solution(nb, first, FORK_BOMB + first_source)),
        "print_50mb": variant(lambda nb: _edit_solution(nb, first, "print('x' * 50_000_000)\n" + first_source)),
        "os_exit": variant(lambda nb: _edit_solution(nb, last, last_source + "\nimport os\nos._exit(0)\n")),
        "kill_kernel": variant(lambda nb: _edit_solution(nb, last, last_source + "\nimport os\nos.kill(os.getpid(), 9)\n")),
        "stuck_loop": variant(lambda nb: _edit_solution(nb, last, last_source + STUCK)),
        "extra_notebook": solved,
        # nbgrader metadata edited: points raised, a solution cell made graded, a test cell's metadata garbled
        "edited_metadata": variant(lambda nb: _edit_metadata(nb, {first_test: {"points": 100}, first: {"grade": True, "points": 50},
                                                                  second_test: "garbage"})),
        # wrong work, its test cell renamed away and the next test cell renamed to its id
        "renamed_test_ids": variant(lambda nb: _edit_metadata(_edit_solution(nb, first, "def tf_weight(count):\n    return 0.0"),
                                                              {first_test: {"grade_id": "free-points"}, second_test: {"grade_id": first_test}})),
        # wrong work, its test cell's nbgrader metadata removed
        "stripped_test_metadata": variant(lambda nb: _edit_metadata(_edit_solution(nb, first, "def tf_weight(count):\n    return 0.0"),
                                                                    {first_test: None})),
    }


def _edit_metadata(nb, edits: dict):
    """Edit cells' nbgrader metadata by grade_id (all lookups first): a dict updates it, None removes it, anything else replaces it."""
    cells = {gid: next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid) for gid in edits}
    for gid, edit in edits.items():
        if edit is None:
            del cells[gid].metadata["nbgrader"]
        elif isinstance(edit, dict):
            cells[gid].metadata["nbgrader"].update(edit)
        else:
            cells[gid].metadata["nbgrader"] = edit
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    import socket

    scratch = _scratch_course(tmp_path_factory.mktemp("grade"))
    course.release(scratch, only=[CH])
    listener = socket.create_server(("127.0.0.1", 0))  # a host service the sandboxed kernel must not reach
    listener.setblocking(False)
    for student, nb in _submissions(scratch, listener.getsockname()[1]).items():
        folder = scratch / "submitted" / student / CH
        folder.mkdir(parents=True)
        target = folder / f"{CH}.ipynb"
        target.write_text(nb) if isinstance(nb, str) else nbformat.write(nb, target)
        if student == "extra_notebook":
            nbformat.write(nbformat.v4.new_notebook(), folder / "my_notes.ipynb")
    original = course.CELL_TIMEOUTS[CH]
    course.CELL_TIMEOUTS[CH] = 20  # the infinite loop is cut here
    try:
        results = course.grade(scratch)
    finally:
        course.CELL_TIMEOUTS[CH] = original
    try:
        listener.accept()
        scratch.joinpath("connections").write_text("accepted")
    except BlockingIOError:
        pass
    listener.close()
    return scratch, results


def _max_points(scratch: Path) -> float:
    nb = _nb(scratch / "source" / CH / f"{CH}.ipynb")
    return float(sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")))


def _first_test_points(scratch: Path) -> float:
    nb = _nb(scratch / "source" / CH / f"{CH}.ipynb")
    return float(next(c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")))


def test_every_submission_gets_a_row(graded):
    scratch, results = graded
    assert {s for s, _ in results} == set(_submissions(scratch))


def test_solutions_get_full_marks_and_blank_gets_zero(graded):
    scratch, results = graded
    total = _max_points(scratch)
    assert results[("good", CH)]["score"] == total == results[("good", CH)]["max_score"]
    assert results[("blank", CH)]["score"] == 0
    assert not results[("good", CH)]["problem"]


@pytest.mark.parametrize("student", ["import_error", "infinite_loop", "sys_exit", "monkeypatch", "edited_test",
                                     "renamed_test_ids", "stripped_test_metadata"])
def test_hostile_submissions_lose_exactly_the_broken_exercise(graded, student):
    scratch, results = graded
    row = results[(student, CH)]
    assert row["score"] == _max_points(scratch) - _first_test_points(scratch), (student, row)


def _last_test_points(scratch: Path) -> float:
    nb = _nb(scratch / "source" / CH / f"{CH}.ipynb")
    return float([c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")][-1])


def _outputs(scratch: Path, student: str) -> str:
    nb = _nb(scratch / "autograded" / student / CH / f"{CH}.ipynb")
    return "".join(o.get("text", "") + o.get("evalue", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.usefixtures("bubblewrap")
@pytest.mark.parametrize("attack", ["read_source", "write_gradebook", "touch_other_student", "list_course", "socket_to_host"])
def test_sandbox_blocks_each_attack_and_the_work_still_counts(graded, attack):
    scratch, results = graded
    outputs = _outputs(scratch, "snoop")
    assert f"ATTACK {attack} blocked" in outputs and f"ATTACK {attack} ok" not in outputs
    assert results[("snoop", CH)]["score"] == _max_points(scratch)
    assert not scratch.joinpath("connections").exists()


def test_no_other_grade_or_folder_changes(graded):
    from nbgrader.api import Gradebook

    scratch, results = graded
    assert "tampered" not in (scratch / "submitted" / "good" / CH / f"{CH}.ipynb").read_text()
    with Gradebook("sqlite:///" + str(scratch / "gradebook.db")) as gb:
        stored = {(s.student.id, s.assignment.name): s.score for a in gb.assignments for s in a.submissions}
    assert stored == {key: row["score"] for key, row in results.items() if key in stored}
    assert stored[("good", CH)] == _max_points(scratch)


@pytest.mark.usefixtures("bubblewrap")
@pytest.mark.parametrize("student", ["alloc_10gb", "os_exit", "kill_kernel", "stuck_loop"])
def test_a_dead_or_stuck_kernel_costs_only_the_cells_after_it(graded, student):
    scratch, results = graded
    assert results[(student, CH)]["score"] == _max_points(scratch) - _last_test_points(scratch), results[(student, CH)]


@pytest.mark.usefixtures("bubblewrap")
def test_fork_bomb_is_capped_and_the_work_still_counts(graded):
    scratch, results = graded
    forked = int(re.search(r"FORKED (\d+)", _outputs(scratch, "fork_bomb")).group(1))
    assert forked < 200
    assert results[("fork_bomb", CH)]["score"] == _max_points(scratch)


def test_50mb_of_output_is_cut_and_the_work_still_counts(graded):
    scratch, results = graded
    assert results[("print_50mb", CH)]["score"] == _max_points(scratch)
    assert (scratch / "autograded" / "print_50mb" / CH / f"{CH}.ipynb").stat().st_size < 5_000_000
    assert (scratch / "feedback" / "print_50mb" / CH / f"{CH}.html").stat().st_size < 5_000_000


def test_report_has_pass_rates_distribution_problems_and_similar_pairs(graded):
    scratch, results = graded
    report = (scratch / "grades.html").read_text()
    assert "ch1-tf-weight-tests" in report and "data:image/png;base64," in report
    assert "invalid_json" in report  # the problems list
    # good, extra_notebook and loud share one solution: they are reported as alike
    assert re.search(r"class='similar'>01_tfidf: extra_notebook and good, cosine 1\.00", report)


def test_edited_cell_metadata_neither_crashes_nor_changes_the_score(graded):
    """Points raised, a solution cell made graded, a test cell's metadata garbled: the gradebook's metadata wins."""
    scratch, results = graded
    row = results[("edited_metadata", CH)]
    assert row["score"] == row["max_score"] == _max_points(scratch) and not row["problem"], row


def test_a_deleted_test_cell_is_restored_and_graded(graded):
    """nbgrader puts the gradebook's copy of a deleted test cell back (add_missing_cells): the work is graded."""
    scratch, results = graded
    assert results[("deleted_test", CH)]["score"] == _max_points(scratch)


def test_loud_output_is_truncated_and_still_graded(graded):
    scratch, results = graded
    assert results[("loud", CH)]["score"] == _max_points(scratch)
    autograded = scratch / "autograded" / "loud" / CH / f"{CH}.ipynb"
    assert autograded.stat().st_size < 1_000_000


def test_invalid_json_scores_zero_with_a_reason(graded):
    _, results = graded
    row = results[("invalid_json", CH)]
    assert row["score"] == 0 and "not a readable notebook" in row["problem"]


def test_extra_notebook_is_set_aside(graded):
    scratch, results = graded
    row = results[("extra_notebook", CH)]
    assert row["score"] == _max_points(scratch) and "my_notes.ipynb" in row["problem"]


def test_feedback_and_csv_export(graded):
    scratch, results = graded
    feedback = scratch / "feedback" / "good" / CH / f"{CH}.html"
    assert feedback.is_file() and "tf_weight" in feedback.read_text()
    blank_feedback = (scratch / "feedback" / "blank" / CH / f"{CH}.html").read_text()
    assert "NotImplementedError" in blank_feedback
    rows = {r["student_id"]: r for r in csv.DictReader(open(scratch / "grades.csv"))}
    assert float(rows["good"]["score"]) == _max_points(scratch)
    assert float(rows["blank"]["score"]) == 0
    table = course.grade_table(results)
    assert table.splitlines()[0].split() == ["student", CH, "total"]
    assert "! invalid_json" in table
