"""The instructor's flow on a fresh course: nbgrader's exchange (release, fetch, submit, collect,
feedback) and the grading jobs on a Dask cluster (a LocalCluster here)."""
from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_course import _scratch_course

from course_lib import course, grader

CH = "01_tfidf"
pytestmark = pytest.mark.slow


def _student(*args: str, cwd: Path, exchange: Path):
    """nbgrader as the student: run from the student's own folder, outside the course."""
    out = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--course", "qair-course",
                          f"--Exchange.root={exchange}"], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.fixture(scope="module")
def small_course(tmp_path_factory) -> Path:
    """A fresh course: release, then one student's round trip through the exchange."""
    root = _scratch_course(tmp_path_factory.mktemp("exchange"))
    course.release(root, only=[CH])
    assert course.nbgrader("release_assignment", CH, course_root=root).returncode == 0
    home = root.parent / "student"
    home.mkdir()
    _student("fetch_assignment", CH, cwd=home, exchange=root / "exchange")
    shutil.copy(root / "source" / CH / f"{CH}.ipynb", home / CH / f"{CH}.ipynb")  # the student solves it
    _student("submit", CH, cwd=home, exchange=root / "exchange")
    assert course.nbgrader("collect", CH, course_root=root).returncode == 0
    return root


def test_exchange_and_dask_round_trip(small_course):
    """release, fetch, submit, collect; the jobs on a Dask LocalCluster; feedback back to the student."""
    from dask.distributed import Client, LocalCluster

    student = getpass.getuser()
    assert (small_course / "submitted" / student / CH / f"{CH}.ipynb").is_file()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        results = course.grade(small_course, scheduler=client)
    row = results[(student, CH)]
    assert row["score"] == row["max_score"] > 0 and not row["problem"]
    assert (small_course / "grades.csv").read_text().splitlines()[1].startswith(f"{student},{CH},{row['score']:g}")
    assert course.nbgrader("release_feedback", CH, course_root=small_course).returncode == 0
    _student("fetch_feedback", CH, cwd=small_course.parent / "student", exchange=small_course / "exchange")
    fetched = list((small_course.parent / "student" / CH / "feedback").glob(f"*/{CH}.html"))
    assert fetched and "tf_weight" in fetched[0].read_text()


def test_nbgrader_autograde_outside_the_grader_refuses_before_student_code_runs(small_course, tmp_path):
    """formgrader's autograde button and `nbgrader autograde` by hand would run the student's code
    unconfined: they stop with the message that says to run `make grade`, and no student code runs."""
    import nbformat

    from course_lib.nbgrader_ext import GRADE_IN_THE_SANDBOX

    root = shutil.copytree(small_course, tmp_path / "course")
    submitted = root / "submitted" / getpass.getuser() / CH / f"{CH}.ipynb"
    nb = nbformat.read(submitted, as_version=4)
    ran = tmp_path / "student-code-ran"
    nb.cells.insert(2, nbformat.v4.new_code_cell(f"open({str(ran)!r}, 'w').write('unconfined')"))
    nbformat.write(nb, submitted)
    out = course.nbgrader("autograde", CH, "--force", course_root=root)
    assert GRADE_IN_THE_SANDBOX in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
    assert not ran.exists()
    assert not (root / "autograded" / getpass.getuser() / CH / f"{CH}.ipynb").exists()


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2"])
def test_workers_must_be_a_positive_int(small_course, workers):
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        grader.grade(small_course, workers=workers)


def test_a_submission_from_another_course_version_is_graded_with_a_warning(tmp_path):
    import nbformat

    from course_lib import __version__, project

    folder = tmp_path / CH
    folder.mkdir()
    nb = nbformat.read(course.COURSE_ROOT / "release" / CH / f"{CH}.ipynb", as_version=4)
    nbformat.write(nb, folder / f"{CH}.ipynb")
    assert grader.check_submission(folder, CH) == ("", [])  # the release records this version
    nb.metadata[project.METADATA_KEY] = {"version": "0.0.1"}
    nbformat.write(nb, folder / f"{CH}.ipynb")
    problem, notes = grader.check_submission(folder, CH)
    assert problem == "" and notes == [project.version_warning(nb)]
    assert "'0.0.1'" in notes[0] and __version__ in notes[0]
