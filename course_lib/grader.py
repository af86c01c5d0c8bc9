"""``make grade``: every submission an independent, sandboxed job; one process writes the gradebook.

A job (:func:`grade_job`) gets bytes in and gives data out, so it runs the same in a local
pool or on a Dask cluster: a scratch course (the course's nbgrader config, a copy of the
gradebook as it was before grading, the one notebook), ``nbgrader autograde`` and
``generate_feedback`` there with the kernel in :mod:`course_lib.sandbox`, and back come the
score of every grade cell, the autograded notebook and the feedback. The parent
(:func:`grade`) re-checks each score against the cell's points and writes the real gradebook,
``autograded/``, ``feedback/``, ``grades.csv`` and ``grades.html``.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import sandbox, similarity

SIMILARITY_THRESHOLD = 0.8


def nbgrader(*args: str, course_root: Path, timeout: int | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader`` in ``course_root`` (where nbgrader_config.py lives) with this Python.

    This environment's ``bin`` goes first on PATH: nbgrader runs ``alembic`` to create a
    gradebook, and ``make`` calls ``.venv/bin/python`` without activating the environment.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course_root, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PATH": path, **(env or {})},
    )


def preflight_kernel() -> None:
    """Fail loudly unless the grading kernel can import course_lib.

    Without it every student silently scores 0 while ``nbgrader autograde`` exits 0.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import course_lib, course_lib.grading")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    except Exception as err:
        raise RuntimeError(
            "The grading kernel 'python3' cannot import course_lib, so every submission would score 0. "
            "Install the course into the kernel's environment (pip install -e .) and retry.\n" + str(err)
        ) from err


def submissions(course_root: Path) -> list[tuple[str, str]]:
    """(student, chapter) pairs under ``submitted/``."""
    base = course_root / "submitted"
    if not base.is_dir():
        return []
    return sorted((s.name, a.name) for s in base.iterdir() if s.is_dir() for a in s.iterdir() if a.is_dir())


def check_submission(folder: Path, chapter: str) -> tuple[str, list[str]]:
    """(fatal problem or "", notes): an unreadable or missing notebook is fatal (graded 0);
    unknown extra notebooks are set aside (renamed ``*.ipynb.ignored``) with a note; a notebook
    released with another course version gets :func:`course_lib.project.version_warning` as a note."""
    import nbformat

    from .project import version_warning

    notes = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.stem != chapter:
            notes.append(f"ignored extra notebook {path.name}")
            path.rename(path.with_suffix(".ipynb.ignored"))
    path = folder / f"{chapter}.ipynb"
    if not path.exists():
        return f"{chapter}.ipynb is missing; graded 0", notes
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:
        return f"{path.name} is not a readable notebook ({type(err).__name__}); graded 0", notes
    return "", notes + list(filter(None, [version_warning(nb)]))


def last_error(out: subprocess.CompletedProcess) -> str:
    lines = [l for l in (out.stdout + out.stderr).splitlines() if "ERROR" in l or "Error" in l]
    return (lines[-1] if lines else f"nbgrader exited {out.returncode}")[-300:]


# ---- one job ---------------------------------------------------------------------------------


_JOB_CONFIG = '''
# ---- added by course_lib.grader for one sandboxed job ----
from nbgrader.preprocessors import Execute as _Execute
from nbgrader.converters import Autograde as _Autograde
_pre = c.Autograde.autograde_preprocessors if "autograde_preprocessors" in c.Autograde \\
    else _Autograde.autograde_preprocessors.default_value
_unconfined = (_Execute, "course_lib.nbgrader_ext.SandboxRequired")  # the course's config names the latter
c.Autograde.autograde_preprocessors = ["course_lib.sandbox.SandboxedExecute" if p in _unconfined else p for p in _pre]
c.SandboxedExecute.sandbox = {sandbox!r}
c.SandboxedExecute.max_output_chars = {output_chars}
c.SandboxedExecute.timeout = {cell_timeout}
c.KernelManager.transport = "ipc"
c.KernelManager.ip = {ipc!r}
'''


EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")  # nbgrader's exchange keeps these with a submission


def grade_job(student: str, chapter: str, notebook: bytes, gradebook: bytes, config: str, cell_timeout: int,
              hidden: list[str] = (), exchange_files: dict | None = None) -> dict:
    """Autograde one notebook in a scratch course with the kernel sandboxed; returns
    {grades: {(notebook, grade_id): auto_score}, autograded, feedback: bytes, problem, sandboxed}."""
    from nbgrader.api import Gradebook

    limits = sandbox.limits(chapter)
    sandboxed = not sandbox.available()
    with tempfile.TemporaryDirectory(prefix="qair-job-") as tmp:
        job = Path(tmp)
        root, ipc, runtime = job / "course", job / "ipc", job / "runtime"
        work = root / "autograded" / student / chapter  # where nbgrader runs the notebook
        for folder in (root / "submitted" / student / chapter, work, ipc, runtime):
            folder.mkdir(parents=True)
        (root / "submitted" / student / chapter / f"{chapter}.ipynb").write_bytes(notebook)
        for name, data in (exchange_files or {}).items():
            if name in EXCHANGE_FILES:
                (root / "submitted" / student / chapter / name).write_bytes(data[:1000])
        (root / "gradebook.db").write_bytes(gradebook)
        groups = sandbox.make_cgroups(name := sandbox.new_cgroup_name()) if sandboxed else []
        spec = {"cgroup": name if sandboxed else "", "memory": limits["memory"], "cpu_s": limits["cpu_s"],
                "pids": limits["pids"]}
        if sandboxed:
            spec["bwrap"] = sandbox.bwrap_argv(work, writable=[work, ipc], hidden=[Path(tmp), *map(Path, hidden)])
        (root / "nbgrader_config.py").write_text(config + _JOB_CONFIG.format(
            sandbox=spec, output_chars=limits["output_chars"], cell_timeout=cell_timeout, ipc=str(ipc / "kernel")))
        env = {"COURSE_CELL_TIMEOUT": str(cell_timeout), "COURSE_PROFILE": "tiny", "JUPYTER_RUNTIME_DIR": str(runtime),
               "COURSE_CHAPTER": chapter}  # the chapter whose references the kernel's lockdown removes
        wall = cell_timeout * 40 + 120
        result = {"grades": {}, "autograded": b"", "feedback": b"", "problem": "", "sandboxed": sandboxed}
        try:
            out = nbgrader("autograde", chapter, "--student", student, "--create", "--force",
                           course_root=root, env=env, timeout=wall)
            if out.returncode != 0:
                result["problem"] = last_error(out)
            else:
                fb = nbgrader("generate_feedback", chapter, "--student", student, "--force", course_root=root,
                              timeout=wall)
                if fb.returncode != 0:
                    result["problem"] = "feedback failed: " + last_error(fb)
        except subprocess.TimeoutExpired:
            result["problem"] = f"grading ran past {wall} s; graded 0"
        finally:
            sandbox.remove_cgroups(groups)
        if not result["problem"]:
            with Gradebook("sqlite:///" + str(root / "gradebook.db")) as gb:
                sub = gb.find_submission(chapter, student)
                result["grades"] = {(nb.name, g.name): g.auto_score for nb in sub.notebooks for g in nb.grades}
            result["autograded"] = (work / f"{chapter}.ipynb").read_bytes()
            feedback = root / "feedback" / student / chapter / f"{chapter}.html"
            result["feedback"] = feedback.read_bytes() if feedback.exists() else b""
            result["exchange_files"] = {name: (feedback.parent / name).read_bytes() for name in EXCHANGE_FILES
                                        if (feedback.parent / name).is_file()}
        return result


# ---- the parent --------------------------------------------------------------------------------


def grade(course_root: Path, *, csv_path: Path | None = None, cell_timeouts: dict | None = None,
          default_timeout: int = 120, workers: int | None = None, scheduler: str | None = None,
          report_path: Path | None = None) -> dict[tuple[str, str], dict]:
    """Autograde ``submitted/`` in parallel; write the gradebook, ``autograded/``, ``feedback/``,
    the CSV and the HTML report; return {(student, chapter): {score, max_score, problem, cells}}.

    ``workers`` jobs at once (default: every core); ``scheduler``: the address of a Dask
    scheduler (``tcp://host:8786``), or a ``dask.distributed.Client``, to run the jobs there.
    """
    from nbgrader.api import Gradebook

    course_root = Path(course_root).resolve()
    cell_timeouts = cell_timeouts or {}
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    sandboxed = sandbox.warn_if_unavailable()
    preflight_kernel()
    db = course_root / "gradebook.db"
    if not db.exists():
        raise FileNotFoundError(f"{db} does not exist: release the chapters first (make release)")
    gradebook = db.read_bytes()
    config = (course_root / "nbgrader_config.py").read_text()
    hidden = [str(course_root), str(Path(__file__).resolve().parents[1] / "notebooks")]
    results: dict[tuple[str, str], dict] = {}
    jobs = []
    for student, chapter in submissions(course_root):
        problem, notes = check_submission(course_root / "submitted" / student / chapter, chapter)
        results[(student, chapter)] = {"problem": problem, "notes": notes, "grades": {}}
        if not problem:
            folder = course_root / "submitted" / student / chapter
            extra = {n: (folder / n).read_bytes()[:1000] for n in EXCHANGE_FILES if (folder / n).is_file()}
            jobs.append(((student, chapter), (student, chapter, (folder / f"{chapter}.ipynb").read_bytes(), gradebook,
                                              config, cell_timeouts.get(chapter, default_timeout), hidden, extra)))
    for key, out in zip([k for k, _ in jobs], _run_jobs([a for _, a in jobs], workers, scheduler)):
        results[key].update(problem=out["problem"], grades=out["grades"])
        student, chapter = key
        for folder, data in (("autograded", out["autograded"]), ("feedback", out["feedback"])):
            if data:
                target = course_root / folder / student / chapter
                target.mkdir(parents=True, exist_ok=True)
                (target / (f"{chapter}.ipynb" if folder == "autograded" else f"{chapter}.html")).write_bytes(data)
                for name, text in out.get("exchange_files", {}).items():  # release_feedback reads them
                    (target / name).write_bytes(text)
        print(f"graded {student}/{chapter}" + (f": {out['problem']}" if out["problem"] else ""), flush=True)
    with Gradebook("sqlite:///" + str(db)) as gb:
        for (student, chapter), row in results.items():
            row.update(_record(gb, student, chapter, row.pop("grades")))
            row["problem"] = "; ".join(filter(None, [row["problem"], *row.pop("notes")]))
            row["sandboxed"] = sandboxed
    write_csv(results, csv_path or course_root / "grades.csv")
    write_report(results, course_root, report_path or course_root / "grades.html")
    return results


def _run_jobs(args: list[tuple], workers: int | None, scheduler) -> list[dict]:
    """Results of :func:`grade_job` for every argument tuple, in order."""
    if scheduler is not None:
        from dask.distributed import Client

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = [client.submit(grade_job, *a, pure=False) for a in args]
            return client.gather(futures)
        finally:
            if client is not scheduler:
                client.close()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda a: grade_job(*a), args))


def _record(gb, student: str, chapter: str, grades: dict) -> dict:
    """Write one submission's scores into the gradebook (each clipped to the cell's points,
    unknown cells ignored); returns {score, max_score, cells: {grade_id: (score, points)}}."""
    from nbgrader.api import MissingEntry

    assignment = gb.find_assignment(chapter)
    gb.update_or_create_student(student)
    try:
        gb.remove_submission(chapter, student)
    except MissingEntry:
        pass
    sub = gb.add_submission(chapter, student)
    cells = {}
    for nb in sub.notebooks:
        for g in nb.grades:
            points = float(g.max_score)
            score = grades.get((nb.name, g.name))
            score = 0.0 if not isinstance(score, (int, float)) or score != score else min(max(float(score), 0.0), points)
            g.auto_score = score
            cells[g.name] = (score, points)
    gb.db.commit()
    return {"score": float(sum(s for s, _ in cells.values())), "max_score": float(assignment.max_score), "cells": cells}


# ---- what the instructor reads ----------------------------------------------------------------


def write_csv(results: dict[tuple[str, str], dict], path: Path) -> Path:
    """``grades.csv``: student, chapter, score, max_score, problem; one row per submission."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "assignment", "score", "max_score", "problem"])
        for (student, chapter), r in sorted(results.items()):
            w.writerow([student, chapter, f"{r['score']:g}", f"{r['max_score']:g}", r["problem"]])
    return path


def grade_table(results: dict[tuple[str, str], dict]) -> str:
    """A plain-text table: one row per student, one column per chapter (score/max)."""
    students = sorted({s for s, _ in results})
    chapter_ids = sorted({c for _, c in results})
    header = ["student", *chapter_ids, "total"]
    rows = [header]
    for s in students:
        row, total, total_max = [s], 0.0, 0.0
        for c in chapter_ids:
            r = results.get((s, c))
            if r is None:
                row.append("-")
                continue
            total, total_max = total + r["score"], total_max + r["max_score"]
            row.append(f"{r['score']:g}/{r['max_score']:g}" + (" !" if r["problem"] else ""))
        row.append(f"{total:g}/{total_max:g}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    notes = [f"! {s}/{c}: {r['problem']}" for (s, c), r in sorted(results.items()) if r["problem"]]
    return "\n".join(lines + notes)


def exercise_stats(results: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """{(chapter, grade_id): {n, pass_rate, mean_score, points}}; a cell passes at full points."""
    stats: dict[tuple[str, str], dict] = {}
    for (_, chapter), r in results.items():
        for grade_id, (score, points) in r.get("cells", {}).items():
            s = stats.setdefault((chapter, grade_id), {"n": 0, "passed": 0, "total": 0.0, "points": points})
            s["n"] += 1
            s["passed"] += score >= points
            s["total"] += score
    return {k: {"n": s["n"], "pass_rate": s["passed"] / s["n"], "mean_score": s["total"] / s["n"],
                "points": s["points"]} for k, s in sorted(stats.items())}


def solution_tokens(course_root: Path, chapter: str, students: list[str]) -> dict[str, list[str]]:
    """{student: normalised tokens of the solution cells}, the release's stub code removed."""
    import nbformat

    release = course_root / "release" / chapter / f"{chapter}.ipynb"
    stubs = {}
    if release.exists():
        stubs = {_nbgrader_meta(c).get("grade_id"): c.source for c in nbformat.read(release, as_version=4).cells}
    tokens = {}
    for student in students:
        path = course_root / "submitted" / student / chapter / f"{chapter}.ipynb"
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        cells = [c for c in nb.cells if c.cell_type == "code" and _nbgrader_meta(c).get("solution")]
        tokens[student] = [t for c in cells for t in similarity.code_tokens(
            c.source, stubs.get(_nbgrader_meta(c).get("grade_id"), ""))]
    return tokens


def _histogram_png(scores: list[float], max_score: float, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.hist(scores, bins=min(20, max(1, int(max_score) + 1)), range=(0, max(max_score, 1)), color="#4c72b0")
    ax.set(title=title, xlabel="score", ylabel="students")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_report(results: dict[tuple[str, str], dict], course_root: Path, path: Path,
                 threshold: float = SIMILARITY_THRESHOLD) -> Path:
    """``grades.html``: per-exercise pass rates and mean scores, the score distribution of each
    chapter, the problems, and the pairs whose solution cells look alike, side by side."""
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>qair-course grades</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em}pre{background:#f6f6f6;padding:.5em;overflow:auto;"
             "max-height:30em;font-size:80%}.pair{display:flex;gap:1em}.pair>div{flex:1;min-width:0}</style>",
             "<h1>Grades</h1>"]
    if results and not all(r.get("sandboxed") for r in results.values()):
        parts.append("<p><strong>Warning: graded without a sandbox.</strong></p>")
    parts.append("<h2>Exercises</h2><table><tr><th>chapter</th><th>exercise</th><th>submissions</th>"
                 "<th>pass rate</th><th>mean score</th><th>points</th></tr>")
    for (chapter, grade_id), s in exercise_stats(results).items():
        parts.append(f"<tr><td>{esc(chapter)}</td><td>{esc(grade_id)}</td><td>{s['n']}</td>"
                     f"<td>{s['pass_rate']:.0%}</td><td>{s['mean_score']:.2f}</td><td>{s['points']:g}</td></tr>")
    parts.append("</table><h2>Score distribution</h2>")
    for chapter in sorted({c for _, c in results}):
        rows = [r for (_, c), r in results.items() if c == chapter]
        png = _histogram_png([r["score"] for r in rows], max(r["max_score"] for r in rows), chapter)
        parts.append(f"<img alt='score distribution of {esc(chapter)}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>Problems</h2><ul>")
    parts += [f"<li>{esc(s)}/{esc(c)}: {esc(r['problem'])}</li>" for (s, c), r in sorted(results.items()) if r["problem"]]
    parts.append(f"</ul><h2>Similar submissions (tf-idf cosine &ge; {threshold:g})</h2>")
    for chapter in sorted({c for _, c in results}):
        students = sorted(s for s, c in results if c == chapter)
        tokens = solution_tokens(course_root, chapter, students)
        for a, b, cos in similarity.similar_pairs(tokens, threshold):
            sources = [_solution_source(course_root, s, chapter) for s in (a, b)]
            parts.append(f"<h3 class='similar'>{esc(chapter)}: {esc(a)} and {esc(b)}, cosine {cos:.2f}</h3>"
                         "<div class='pair'>" + "".join(f"<div><b>{esc(s)}</b><pre>{esc(src)}</pre></div>"
                                                        for s, src in zip((a, b), sources)) + "</div>")
    path.write_text("\n".join(parts) + "\n")
    return path


def _solution_source(course_root: Path, student: str, chapter: str) -> str:
    import nbformat

    nb = nbformat.read(course_root / "submitted" / student / chapter / f"{chapter}.ipynb", as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "code" and _nbgrader_meta(c).get("solution"))


def _nbgrader_meta(cell) -> dict:
    """A submitted cell's nbgrader metadata, or {} when it has none or a submission garbled it."""
    meta = cell.metadata.get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def autograde_check(course_root: Path, release, chapters: list[str], **grade_args) -> dict[tuple[str, str], dict]:
    """Grade the solutions and the untouched release as two students in a scratch copy of the course."""
    with tempfile.TemporaryDirectory(prefix="qair-grade-") as tmp:
        scratch = Path(tmp) / "course"
        shutil.copytree(course_root, scratch, ignore=shutil.ignore_patterns("submitted", "autograded", "feedback",
                                                                               "gradebook.db", "exchange"))
        for chapter in chapters:
            for student, folder in (("solutions", "source"), ("blank", "release")):
                shutil.copytree(scratch / folder / chapter, scratch / "submitted" / student / chapter)
        release(scratch)
        return grade(scratch, csv_path=Path(tmp) / "grades.csv", **grade_args)
