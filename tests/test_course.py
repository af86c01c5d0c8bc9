"""The nbgrader course: release in sync and leak-free, validation, badges, the grading set-up
(kernel preflight, nbgrader config, the report); the grading round trips are in test_course_grading."""
from __future__ import annotations

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
    assert (COURSE / "exchange").is_dir()  # formgrader's release and collect need it
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
