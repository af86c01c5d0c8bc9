"""Every chapter executes top to bottom under the tiny profile, teaching cells and plots included
(nbgrader validate in test_course.py runs them again in grading mode)."""
from __future__ import annotations

import functools
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib import course

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@functools.cache
def executed_under_tiny(chapter: str) -> nbformat.NotebookNode:
    """``chapter`` executed top to bottom under the tiny profile, once per test process (tests/test_prose.py
    reads the same run: conftest.worker_group keeps both files on one worker)."""
    source = ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb"
    nb = nbformat.read(source, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_PROFILE", "tiny")
        mp.delenv("NBGRADER_EXECUTION", raising=False)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(source.parent)}}).execute()
    return nb


@pytest.mark.parametrize("chapter", course.chapters())
def test_chapter_executes_under_tiny(chapter, tmp_path):
    nb = executed_under_tiny(chapter)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    stderr = [o["text"] for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
              for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not stderr, f"test cells wrote to stderr (nbgrader scores them 0): {stderr[:1]}"
    nbformat.write(nb, tmp_path / f"{chapter}.ipynb")


@pytest.mark.parametrize("chapter", course.chapters())
def test_chapter_states_its_budget_and_profiles(chapter):
    nb = nbformat.read(ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb", as_version=4)
    opening = nb.cells[2].source
    assert nb.cells[2].cell_type == "markdown" and opening.startswith("# Chapter")
    for word in ("budget", "`cpu`", "`tiny`", "`full`"):
        assert word in opening, f"{chapter}'s opening cell must state {word}"


def test_chapter_5_keeps_earlier_checkpoints():
    """A rerun resumes from the checkpoints in squad.output_dir (Drive, /kaggle/working or the cache):
    no cell deletes them."""
    nb = nbformat.read(ROOT / "notebooks" / "source" / "05_squad_finetuning" / "05_squad_finetuning.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "OUTPUT_DIR = squad.output_dir(PROFILE)" in code
    assert "rmtree(OUTPUT_DIR" not in code
