"""The nbgrader course: release in sync and leak-free, validation, badges, grading round trips,
and hostile submissions graded without losing anyone's grade."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib import course, project

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "notebooks"
CHAPTERS = course.chapters()
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
VOLATILE = re.compile(r'"(checksum|execution_count)": [^,\n]+')

pytestmark = pytest.mark.slow


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def _scratch_course(tmp_path: Path) -> Path:
    scratch = tmp_path / "course"
    shutil.copytree(COURSE, scratch, ignore=shutil.ignore_patterns(
        "submitted", "autograded", "feedback", "gradebook.db", "exchange", "release"))
    return scratch


def test_chapters_found():
    assert CHAPTERS, "no chapter in notebooks/source"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    scratch = _scratch_course(tmp_path_factory.mktemp("release"))
    course.release(scratch)
    return scratch


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_is_in_sync_with_source(released, chapter):
    fresh = (released / "release" / chapter / f"{chapter}.ipynb").read_text()
    committed = (COURSE / "release" / chapter / f"{chapter}.ipynb").read_text()
    assert VOLATILE.sub("", fresh) == VOLATILE.sub("", committed), f"run `make release`: {chapter} is stale"
    source = (COURSE / "source" / chapter / f"{chapter}.ipynb").read_text()
    assert (released / "source" / chapter / f"{chapter}.ipynb").read_text() == source, "source badges/set-up are stale"


def _solution_lines(nb) -> set[str]:
    """Code lines between solution or hidden-test markers (long enough to be distinctive)."""
    lines, inside = set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if line.strip() in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                inside = True
            elif line.strip() in ("### END SOLUTION", "### END HIDDEN TESTS"):
                inside = False
            elif inside and len(line.strip()) > 25:
                lines.add(line.strip())
    return lines


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_release_leaks_no_solution_and_no_hidden_test(chapter):
    release_text = (COURSE / "release" / chapter / f"{chapter}.ipynb").read_text()
    for marker in SOLUTION_MARKERS:
        assert marker not in release_text
    release_lines = {l.strip() for c in _nb(COURSE / "release" / chapter / f"{chapter}.ipynb").cells for l in c.source.splitlines()}
    leaked = _solution_lines(_nb(COURSE / "source" / chapter / f"{chapter}.ipynb")) & release_lines
    assert not leaked, f"solution lines in the release: {sorted(leaked)[:3]}"


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("kind", ["source", "release"])
def test_badges_point_at_the_notebook_itself(chapter, kind):
    nb = _nb(COURSE / kind / chapter / f"{chapter}.ipynb")
    first = nb.cells[0].source
    path = f"notebooks/release/{chapter}/{chapter}.ipynb"
    assert project.colab_url(path) in first and project.kaggle_url(path) in first
    assert (ROOT / path).is_file()
    setup = nb.cells[1].source
    assert "setup_notebook()" in setup and project.PIP_SPEC in setup and "torch" not in setup.split("%pip")[1].split("\n")[0]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_graded_cells_have_stable_ids_and_points(chapter):
    nb = _nb(COURSE / "source" / chapter / f"{chapter}.ipynb")
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded and all(c.metadata["nbgrader"]["points"] > 0 for c in graded)
    for cell in graded:
        assert "### BEGIN HIDDEN TESTS" in cell.source, f"{cell.metadata['nbgrader']['grade_id']} has no hidden tests"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_validate_passes_on_source_and_invert_fails_every_test_on_release(released, chapter):
    env = {"COURSE_PROFILE": "tiny"}
    out = course.nbgrader("validate", f"source/{chapter}/{chapter}.ipynb", course_root=released, env=env)
    assert "Success! Your notebook passes all the tests." in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
    out = course.nbgrader("validate", "--invert", f"release/{chapter}/{chapter}.ipynb", course_root=released, env=env)
    assert "Success! The notebook does not pass any tests." in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]


# ---- grading round trip with hostile submissions ----------------------------------------------

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


def test_grading_refuses_a_kernel_without_course_lib(tmp_path, monkeypatch):
    """The measured pitfall: autograde exits 0 while every student scores 0. We fail loudly instead."""
    import sys

    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    launcher = "import sys; sys.modules['course_lib'] = None; from ipykernel import kernelapp; kernelapp.launch_new_instance()"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", launcher, "-f", "{connection_file}"],
        "display_name": "Python 3 without course_lib", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot import course_lib"):
        course.preflight_kernel()


def test_nbgrader_config_loads_without_errors():
    """nbgrader only logs a broken config file and goes on with its defaults (30 s timeout, no
    output cut): load it the way nbgrader does and check what it sets."""
    from traitlets.config import Config

    config = Config()
    namespace = {"get_config": lambda: config, "__file__": str(COURSE / "nbgrader_config.py")}
    exec(compile((COURSE / "nbgrader_config.py").read_text(), "nbgrader_config.py", "exec"), namespace)
    assert config.CourseDirectory.root == str(COURSE)
    assert config.Exchange.root == str(COURSE / "exchange")
    assert "course_lib.nbgrader_ext.LimitOutputChars" in config.Autograde.autograde_preprocessors


def test_report_shows_runtime_points_and_tagged_outputs(tmp_path, monkeypatch):
    import base64

    monkeypatch.setattr(course, "BUILD", tmp_path)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 64).decode()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("table()", metadata={"tags": ["report"]}, outputs=[
            nbformat.v4.new_output("execute_result", data={"text/plain": "BM25 nDCG@10 0.61"}, execution_count=1),
            nbformat.v4.new_output("display_data", data={"image/png": png})]),
        nbformat.v4.new_code_cell("hidden_from_report()", outputs=[nbformat.v4.new_output("stream", text="noise")]),
    ])
    executed = tmp_path / "02_bm25.ipynb"
    nbformat.write(nb, executed)
    runs = {"02_bm25": {"seconds": 12.34, "peak_mb": 321.0, "executed": str(executed)}}
    grades = {("solutions", "02_bm25"): {"score": 12.0, "max_score": 12.0, "problem": ""},
              ("blank", "02_bm25"): {"score": 0.0, "max_score": 12.0, "problem": ""}}
    md = course.write_report(runs, grades).read_text()
    assert "| 02_bm25 | 12.3 | 321 / 1536 | - | 12/12 | 0/12 |" in md      # no cgroup peak: "-"
    runs["02_bm25"].update(peak_mb=1600.0, cgroup_peak_mb=1900.4)
    md = course.write_report(runs, grades).read_text()
    assert "| 02_bm25 | 12.3 | 1600 / 1536 **over** | 1900 / 2048 | 12/12 | 0/12 |" in md
    assert "BM25 nDCG@10 0.61" in md and "noise" not in md
    assert (tmp_path / "figures" / "02_bm25-0-1.png").read_bytes().startswith(b"\x89PNG")
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and 'src="figures/02_bm25-0-1.png"' in html


def test_execution_order_runs_a_needed_chapter_first(monkeypatch):
    found = ["01_tfidf", "02_bm25", "04_rag", "05_squad_finetuning"]
    assert course.execution_order(found) == ["01_tfidf", "02_bm25", "05_squad_finetuning", "04_rag"]
    assert course.execution_order(["01_tfidf", "04_rag"]) == ["01_tfidf", "04_rag"]   # absent needs are skipped
    monkeypatch.setattr(course, "NEEDS", {"a": ("b",), "b": ("a",)})
    with pytest.raises(ValueError, match="NEEDS has a cycle: a -> b -> a"):
        course.execution_order(["a", "b"])
