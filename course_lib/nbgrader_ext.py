"""nbgrader preprocessors the course adds to autograding (see notebooks/nbgrader_config.py).

:class:`JudgeTestCells` scores the test cells outside the student's kernel.

nbgrader's own ``LimitOutput`` counts lines, so a submission printing one 10 MB line
keeps all of it in the graded notebook and its feedback. :class:`LimitOutputChars`
cuts every text output to ``max_chars`` characters.

:class:`SandboxRequired` stands where nbgrader's ``Execute`` stood: nbgrader's own autograde
(formgrader's button, ``nbgrader autograde`` by hand) would run student code with the
instructor's rights in the course folder, so it stops and says how to grade instead.
"""
import nbformat
from nbgrader.preprocessors import ClearHiddenTests, Execute, NbGraderPreprocessor
from traitlets import Bool, Integer

# The grading kernel's arguments: removes the chapter's references before any student code
# runs (course_lib.grading.lockdown, under autograde only).
KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=['import course_lib.grading as _course_grading', "
    "'_course_grading.kernel_start()', 'del _course_grading']",
]


GRADE_IN_THE_SANDBOX = (
    "qair-course runs student code only in its grading sandbox: run `make grade` (python -m course_lib.course "
    "grade) from the course folder; the grades, feedback and formgrader's pages then show the results")


class SandboxRequired(Execute):
    """nbgrader's autograde outside :mod:`course_lib.grader`: refuses before any student code runs.
    (The grader's job configuration puts :class:`course_lib.sandbox.SandboxedExecute` here.)"""

    def preprocess(self, nb, resources, *args, **kwargs):
        raise RuntimeError(GRADE_IN_THE_SANDBOX)


class LimitOutputChars(NbGraderPreprocessor):
    """Truncate stream and ``text/plain`` outputs longer than ``max_chars``."""

    max_chars = Integer(20_000, help="characters kept per output").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = self._cut(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = self._cut(output["data"]["text/plain"])
        return cell, resources

    def _cut(self, text):
        text = "".join(text) if isinstance(text, list) else text
        if len(text) <= self.max_chars:
            return text
        return text[: self.max_chars] + f"\n... [output cut: {len(text):,} characters in all]\n"


class JudgeTestCells(NbGraderPreprocessor):
    """Score every autograder test cell from outside the kernel (:mod:`course_lib.judge`).

    Runs after ``Execute``. It collects the records each test cell's ``check`` calls emitted,
    hands them with the cell's source as the gradebook holds it (never the submission's) to
    ``python -m course_lib.judge`` in a fresh process, and replaces the cell's outputs by the
    judge's feedback lines and its score (an ``execute_result``: nbgrader's partial credit).
    What the kernel printed, raised or displayed in a test cell no longer counts.
    """

    timeout = Integer(600, help="seconds the judge may take for one notebook").tag(config=True)

    def preprocess(self, nb, resources):
        import json
        import subprocess
        import sys

        from nbgrader import utils

        from .grading import RECORD_MIME

        tests = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells
                 if c.cell_type == "code" and utils.is_grade(c) and not utils.is_solution(c)}
        if not tests:
            return nb, resources
        sources = self._instructor_sources(resources, tests)
        payload = {gid: {"source": sources[gid], "points": c.metadata.nbgrader.get("points", 0),
                         "records": [o["data"][RECORD_MIME] for o in c.get("outputs", [])
                                     if o.get("output_type") == "display_data" and RECORD_MIME in o.get("data", {})]}
                   for gid, c in tests.items() if gid in sources}
        out = subprocess.run([sys.executable, "-m", "course_lib.judge"], input=json.dumps(payload), capture_output=True,
                             text=True, timeout=self.timeout)
        if out.returncode != 0:
            raise RuntimeError(f"course_lib.judge failed:\n{out.stderr[-3000:]}")
        verdicts = json.loads(out.stdout.strip().splitlines()[-1])
        for gid, cell in tests.items():
            verdict = verdicts.get(gid, {"score": 0, "lines": [f"{gid} is not a test cell of this assignment"]})
            cell.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text="\n".join(verdict["lines"]) + "\n"),
                nbformat.v4.new_output("execute_result", data={"text/plain": f"{verdict['score']:g}"},
                                       execution_count=cell.get("execution_count")),
            ]
        return nb, resources

    @staticmethod
    def _instructor_sources(resources, tests) -> dict:
        """The gradebook's source of each test cell: the judge never executes a submission's text.

        Without nbgrader's resources (tests of this preprocessor alone) the cells' own source is used.
        """
        info = resources.get("nbgrader")
        if not info:
            return {gid: c.source for gid, c in tests.items()}
        from nbgrader.api import Gradebook, MissingEntry

        sources = {}
        with Gradebook(info["db_url"]) as gb:
            for gid in tests:
                try:
                    sources[gid] = gb.find_source_cell(gid, info["notebook"], info["assignment"]).source
                except MissingEntry:
                    continue
        return sources


class RestoreCellMetadata(NbGraderPreprocessor):
    """Put every cell's nbgrader metadata back as the gradebook holds it, before nbgrader reads it.

    Runs first when autograde sanitizes a submission. A cell whose ``grade_id`` the gradebook
    knows gets the gradebook's flags and points (a submission cannot raise its points, make a
    solution cell graded or a test cell a solution); a cell with an unknown ``grade_id`` or
    malformed metadata (not a dict, no string ``grade_id``) loses it and runs as a plain cell,
    and ``OverwriteCells.add_missing_cells`` puts back any test cell that went missing so.
    """

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook, MissingEntry

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            known = {}
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader")
                if meta is None:
                    continue
                grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
                if isinstance(grade_id, str) and grade_id not in known:
                    known[grade_id] = self._canonical(gb, grade_id, info, MissingEntry)
                canonical = known.get(grade_id) if isinstance(grade_id, str) else None
                if canonical is None:
                    del cell.metadata["nbgrader"]
                    self.log.warning("Cell metadata %r is not in the gradebook: graded as a plain cell", meta)
                else:
                    cell.metadata["nbgrader"] = nbformat.from_dict(dict(canonical))
        return nb, resources

    @staticmethod
    def _canonical(gb, grade_id: str, info: dict, missing) -> dict | None:
        """The nbgrader metadata the gradebook records for ``grade_id`` (None when it has none)."""
        where = (grade_id, info["notebook"], info["assignment"])
        try:
            source = gb.find_source_cell(*where)
        except missing:
            return None
        meta = {"grade_id": grade_id, "locked": bool(source.locked), "schema_version": 3,
                "grade": False, "solution": False}
        try:
            meta.update(grade=True, points=float(gb.find_graded_cell(*where).max_score))
        except missing:
            pass
        try:
            gb.find_solution_cell(*where)
            meta["solution"] = True
        except missing:
            pass
        return meta


class ClearHiddenTestsInFeedback(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests`` for feedback: it never fails on a submission's own cells
    (a test cell copied without its metadata, a BEGIN marker without its END). Everything from a
    ``### BEGIN HIDDEN TESTS`` line to its END line, or to the end of the cell, is removed."""

    enforce_metadata = Bool(False)

    def _remove_hidden_test_region(self, cell) -> bool:
        lines, kept, inside = cell.source.split("\n"), [], False
        for line in lines:
            if self.begin_test_delimeter in line:
                inside = True
            elif self.end_test_delimeter in line:
                inside = False
            elif not inside:
                kept.append(line)
        cell.source = "\n".join(kept)
        return len(kept) != len(lines)
