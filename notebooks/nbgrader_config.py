"""nbgrader configuration of the qair-course course (run nbgrader from this folder)."""
import os

c = get_config()  # noqa: F821 (provided by nbgrader)
HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "qair-course"
c.CourseDirectory.root = HERE
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db")
# The exchange lives inside the course, so formgrader and the assignment list work
# without system folders (a laptop, Binder, a single-user JupyterHub).
c.Exchange.root = os.path.join(HERE, "exchange")
# formgrader offers release and collect only when the exchange exists (nbgrader's command-line
# release would create it; formgrader never does): a fresh clone gets it on first use.
os.makedirs(c.Exchange.root, exist_ok=True)

# Per-chapter cell timeout: `python -m course_lib.course` sets COURSE_CELL_TIMEOUT from
# course_lib.course.CELL_TIMEOUTS; 120 s when nbgrader is run by hand.
c.Execute.timeout = int(os.environ.get("COURSE_CELL_TIMEOUT", "120"))
c.Execute.interrupt_on_timeout = True
# A submission that prints megabytes keeps only this much in the graded notebook.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading that the kernel cannot switch off (course_lib.grading, course_lib.judge):
# * the kernel removes the chapter's references before any student code runs;
# * test cells a submission deleted or whose metadata it edited are put back from the gradebook
#   (RestoreCellMetadata, then nbgrader's OverwriteCells with add_missing_cells);
# * JudgeTestCells scores each test cell from the records of its checks, outside the kernel;
# * feedback shows each test cell without its hidden tests.
from course_lib.nbgrader_ext import KERNEL_ARGUMENTS  # noqa: E402

c.Execute.extra_arguments = KERNEL_ARGUMENTS
c.OverwriteCells.add_missing_cells = True
from nbgrader.preprocessors import (  # noqa: E402
    CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells, OverwriteKernelspec,
)

c.Autograde.sanitize_preprocessors = [
    "course_lib.nbgrader_ext.RestoreCellMetadata", ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
    CheckCellMetadata,
]

# One 10 MB line passes LimitOutput (it counts lines): also cut outputs by characters.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, GetGrades, IgnorePattern, LimitOutput,
    SaveAutoGrades,
)

# nbgrader's own Execute would run student code unconfined (formgrader's autograde button,
# `nbgrader autograde` by hand): SandboxRequired refuses and says to run `make grade`, whose
# jobs put course_lib.sandbox.SandboxedExecute in its place.
c.Autograde.autograde_preprocessors = [
    "course_lib.nbgrader_ext.SandboxRequired", "course_lib.nbgrader_ext.JudgeTestCells", IgnorePattern, ClearMetadataPreprocessor, LimitOutput, "course_lib.nbgrader_ext.LimitOutputChars",
    SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]
c.GenerateFeedback.preprocessors = [GetGrades, "course_lib.nbgrader_ext.ClearHiddenTestsInFeedback", CSSHTMLHeaderPreprocessor]
