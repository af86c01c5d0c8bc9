"""The course's main job and the instructor's commands.

``python -m course_lib.course run``      (``make course``): execute every chapter on the
    embedded default, regenerate the release, autograde the solutions (full marks
    expected) and the blank release (zero expected), write ``build/report.md`` and ``.html``.
``python -m course_lib.course release``  (``make release``): stamp badges and the set-up
    cell into every source notebook, then ``nbgrader generate_assignment`` into ``release/``.
``python -m course_lib.course grade``    (``make grade``): autograde ``submitted/`` (sandboxed,
    in parallel: :mod:`course_lib.grader`), write feedback, ``grades.csv`` and ``grades.html``,
    print a student x chapter table.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from . import __version__, cgroup, grader, project
from .grader import grade_table, nbgrader, preflight_kernel, submissions  # noqa: F401 (the instructor's API)

ROOT = Path(__file__).resolve().parents[1]
COURSE_ROOT = ROOT / "notebooks"
BUILD = ROOT / "build"
DEFAULT_CELL_TIMEOUT = 120
# Longest single cell a chapter may need under nbgrader (seconds), set on Execute.timeout.
CELL_TIMEOUTS = {"01_tfidf": 60, "02_bm25": 60, "03_dense_retrieval": 300, "04_rag": 600, "05_squad_finetuning": 900}
# Chapters that read what another chapter leaves in the cache: chapter 4's extractive
# reader uses the span-prediction model chapter 5 fine-tunes.
NEEDS = {"04_rag": ("05_squad_finetuning",)}
KERNEL_BUDGET_MB = 1536  # every chapter's kernel on the cpu profile: 1.5 GiB, leaving room for the server
REPORT_TAG = "report"  # cells whose outputs the report shows as the chapter's key results


# ---- notebooks ------------------------------------------------------------------------


def chapters(course_root: Path = COURSE_ROOT) -> list[str]:
    """Chapter ids (``01_tfidf`` ...) found in ``<course_root>/source``, in order."""
    source = course_root / "source"
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def execution_order(found: list[str]) -> list[str]:
    """``found`` in course order, except that a chapter runs after the chapters it
    :data:`NEEDS` (when they are among ``found``)."""
    order: list[str] = []

    def visit(chapter: str, path: tuple[str, ...]) -> None:
        if chapter in path:
            raise ValueError(f"NEEDS has a cycle: {' -> '.join(path + (chapter,))}")
        if chapter in order:
            return
        for needed in NEEDS.get(chapter, ()):
            if needed in found:
                visit(needed, path + (chapter,))
        order.append(chapter)

    for chapter in found:
        visit(chapter, ())
    return order


def badge_cell_source(chapter: str) -> str:
    """The first cell of every notebook: Colab and Kaggle badges built from :mod:`course_lib.project`."""
    path = f"notebooks/release/{chapter}/{chapter}.ipynb"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({project.colab_url(path)})\n"
        f"[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({project.kaggle_url(path)})"
    )


def setup_cell_source() -> str:
    """The set-up cell: on Colab/Kaggle install this release of the course (keeping the
    platform's torch; ``$QAIR_COURSE_PIP_SPEC`` replaces the requirement in the rehearsal), then set up."""
    return (
        "# Set-up. On Colab and Kaggle this installs this release of the course (it keeps the platform's\n"
        "# torch and every other package the platform ships); elsewhere `make course` or Binder has installed it.\n"
        "import os\n"
        "if {'COLAB_RELEASE_TAG', 'KAGGLE_KERNEL_RUN_TYPE'} & set(os.environ):\n"
        f"    QAIR_COURSE = os.environ.get({project.PIP_SPEC_VARIABLE!r}, {project.PIP_SPEC!r})\n"
        "    %pip install -q \"$QAIR_COURSE\"\n"
        "from course_lib.env import setup_notebook\n"
        "PROFILE = setup_notebook()"
    )


def stamp(notebook_path: Path) -> bool:
    """Rewrite the badge cell (first) and the set-up cell (second) from the project settings,
    and record the course version in the notebook's metadata (``qair_course.version``).

    Returns True when the file changed. Both cells are locked nbgrader cells.
    """
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    chapter = notebook_path.stem
    wanted = [("markdown", badge_cell_source(chapter), f"{chapter}-badges"),
              ("code", setup_cell_source(), f"{chapter}-setup")]
    changed = False
    for i, (kind, source, grade_id) in enumerate(wanted):
        meta = {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": 3, "solution": False}
        cell = nb.cells[i] if i < len(nb.cells) else None
        if cell is None or cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") != grade_id:
            new = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
            new.metadata["nbgrader"] = meta
            new.id = grade_id  # stable ids keep the release free of spurious diffs
            nb.cells.insert(i, new)
            changed = True
        elif cell.source != source or cell.cell_type != kind:
            cell.source = source
            changed = True
    if nb.metadata.get(project.METADATA_KEY) != {"version": __version__}:
        nb.metadata[project.METADATA_KEY] = {"version": __version__}   # read by project.version_warning
        changed = True
    if changed:
        nbformat.write(nb, notebook_path)
    return changed


# ---- nbgrader -------------------------------------------------------------------------


def release(course_root: Path = COURSE_ROOT, only: list[str] | None = None) -> list[str]:
    """Stamp and release every chapter (or ``only`` these); returns the chapters released."""
    done = []
    for chapter in only or chapters(course_root):
        stamp(course_root / "source" / chapter / f"{chapter}.ipynb")
        out = nbgrader("generate_assignment", chapter, "--force", "--create", course_root=course_root)
        if out.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {chapter} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        print(f"released {chapter}", flush=True)
        done.append(chapter)
    return done


def grade(course_root: Path = COURSE_ROOT, *, csv_path: Path | None = None, workers: int | None = None,
          scheduler=None) -> dict[tuple[str, str], dict]:
    """:func:`course_lib.grader.grade` with the chapters' :data:`CELL_TIMEOUTS`."""
    return grader.grade(course_root, csv_path=csv_path, cell_timeouts=CELL_TIMEOUTS,
                        default_timeout=DEFAULT_CELL_TIMEOUT, workers=workers, scheduler=scheduler)


# ---- the main job -------------------------------------------------------------------------


def execute_chapter(chapter: str, profile: str = "cpu", course_root: Path = COURSE_ROOT,
                    memory_limit: int | None = cgroup.BINDER_LIMIT) -> dict:
    """Execute a source notebook headless in a child process, the way Binder runs it: inside a
    memory cgroup of ``memory_limit`` bytes (None: no limit) holding a Jupyter server too, with
    Binder's ``MEM_LIMIT`` set. Returns seconds, the kernel's peak MB, the cgroup's peak MB
    (None without one) and the output path; raises when the chapter fails or the limit kills it."""
    BUILD.joinpath("executed").mkdir(parents=True, exist_ok=True)
    target = BUILD / "executed" / f"{chapter}.ipynb"
    env = {**os.environ, "COURSE_PROFILE": profile}
    group, where = cgroup.create(memory_limit, f"qair-course-{os.getpid()}-{chapter}") if memory_limit else (None, "")
    if memory_limit:
        env["MEM_LIMIT"] = str(memory_limit)
        print(f"      inside {where}" if group else f"      no memory limit: {where}", flush=True)
    wrap = group.command if group else list
    server = _jupyter_server(wrap, env)
    start = time.perf_counter()
    try:
        out = subprocess.run(
            wrap([sys.executable, "-m", "course_lib.course", "_execute",
                  str(course_root / "source" / chapter / f"{chapter}.ipynb"), str(target)]),
            env=env, capture_output=True, text=True,
        )
        seconds = time.perf_counter() - start
        killed = group.oom_kills() if group else 0
        group_peak = group.peak() / 2**20 if group else None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy machine can keep it shutting down for long
            server.kill()
            server.wait()
        if group:
            group.remove()
    if out.returncode != 0:
        why = f" (the {memory_limit / 2**30:g} GiB memory limit killed {killed} process(es))" if killed else ""
        raise RuntimeError(f"{chapter} failed under COURSE_PROFILE={profile}{why}:\n{out.stderr[-4000:]}")
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, **measured, "cgroup_peak_mb": group_peak, "executed": str(target)}


def _jupyter_server(wrap, env: dict) -> subprocess.Popen:
    """A Jupyter server (with the lab and nbgrader extensions) running idle next to the kernel,
    as on Binder, where both share one memory limit; returns once it answers on its port."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        wrap([sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
              "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", f"--ServerApp.root_dir={COURSE_ROOT}"]),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"the Jupyter server did not start on port {port} (exit status {server.poll()})")


def _execute(source: str, target: str) -> None:
    """Child process of :func:`execute_chapter`: run, save, print the kernel's peak memory."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(Path(source).parent)}}).execute()
    nbformat.write(nb, target)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the kernel, once it has exited
    print(json.dumps({"peak_mb": peak_kb / 1024}))


def key_results(executed: Path, figures_dir: Path) -> list[str]:
    """Markdown for the outputs of the cells tagged ``report``: text as code blocks, images as files."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    parts = []
    for i, cell in enumerate(nb.cells):
        if REPORT_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if "image/png" in data:
                figures_dir.mkdir(parents=True, exist_ok=True)
                png = figures_dir / f"{executed.stem}-{i}-{j}.png"
                png.write_bytes(base64.b64decode(data["image/png"]))
                parts.append(f"![{executed.stem} figure]({png.relative_to(figures_dir.parent)})")
            elif "text/plain" in data or output.get("output_type") == "stream":
                text = data.get("text/plain") or output.get("text", "")
                parts.append("```\n" + text.strip() + "\n```")
    return parts


def autograde_check(course_root: Path = COURSE_ROOT) -> dict[tuple[str, str], dict]:
    """Grade the solutions and the untouched release as two students in a scratch copy of the course."""
    return grader.autograde_check(course_root, release, chapters(course_root), cell_timeouts=CELL_TIMEOUTS,
                                  default_timeout=DEFAULT_CELL_TIMEOUT)


def write_report(runs: dict[str, dict], grades: dict[tuple[str, str], dict]) -> Path:
    """``build/report.md`` and ``build/report.html``: runtime, the kernel's peak against
    :data:`KERNEL_BUDGET_MB`, the cgroup's peak against its limit, points, key results."""
    import mistune

    lines = ["# qair-course: main job report", "",
             f"Each chapter ran inside a memory cgroup of {cgroup.BINDER_LIMIT / 2**30:g} GiB together with a Jupyter server, "
             f"as on Binder (cgroup: kernel, server and page cache; - where no cgroup was writable). "
             f"Kernel budget: {KERNEL_BUDGET_MB} MB.", "",
             "| chapter | runtime (s) | kernel peak / budget (MB) | cgroup peak / limit (MB) | solutions | blank release |",
             "|---|---|---|---|---|---|"]
    limit_mb = cgroup.BINDER_LIMIT / 2**20
    for chapter, run in runs.items():
        sol, blank = grades.get(("solutions", chapter), {}), grades.get(("blank", chapter), {})
        over = " **over**" if run["peak_mb"] > KERNEL_BUDGET_MB else ""
        group = "-" if run.get("cgroup_peak_mb") is None else f"{run['cgroup_peak_mb']:.0f} / {limit_mb:.0f}"
        lines.append(f"| {chapter} | {run['seconds']:.1f} | {run['peak_mb']:.0f} / {KERNEL_BUDGET_MB}{over} | {group} | "
                     f"{sol.get('score', 0):g}/{sol.get('max_score', 0):g} | {blank.get('score', 0):g}/{blank.get('max_score', 0):g} |")
    for chapter, run in runs.items():
        lines += ["", f"## {chapter}", ""] + key_results(Path(run["executed"]), BUILD / "figures")
    md = "\n".join(lines) + "\n"
    BUILD.mkdir(exist_ok=True)
    (BUILD / "report.md").write_text(md)
    (BUILD / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>qair-course report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em}img{max-width:100%}</style>\n"
        + mistune.html(md)
    )
    return BUILD / "report.md"


def run(profile: str = "cpu") -> int:
    """The main job; returns a process exit code (non-zero when a chapter fails or grades are off).
    Each chapter runs inside Binder's memory limit (:func:`execute_chapter`)."""
    found = chapters()
    if not found:
        print("no chapter in notebooks/source yet: nothing to execute, release or grade")
        return 0
    runs = {}
    for i, chapter in enumerate(execution_order(found), start=1):
        print(f"[{i}/{len(found)}] executing {chapter} (COURSE_PROFILE={profile}) ...", flush=True)
        runs[chapter] = execute_chapter(chapter, profile)
        done = runs[chapter]
        group = "" if done["cgroup_peak_mb"] is None else f", cgroup peak {done['cgroup_peak_mb']:.0f} MB"
        print(f"      {done['seconds']:.1f} s, kernel peak {done['peak_mb']:.0f} MB of {KERNEL_BUDGET_MB}{group}", flush=True)
    print("regenerating the release ...", flush=True)
    release()
    print("autograding the solutions and the blank release ...", flush=True)
    grades = autograde_check()
    print(grade_table(grades))
    report = write_report({c: runs[c] for c in found}, grades)
    print(f"report: {report} and {report.with_suffix('.html')}")
    bad = [c for c in found if grades.get(("solutions", c), {}).get("score") != grades.get(("solutions", c), {}).get("max_score")
           or grades.get(("blank", c), {}).get("score", 1) != 0]
    if bad:
        print(f"unexpected grades (solutions must get full marks, the blank release zero): {bad}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="the main job (make course)").add_argument("--profile", default="cpu")
    sub.add_parser("release", help="regenerate notebooks/release (make release)")
    grading = sub.add_parser("grade", help="autograde notebooks/submitted (make grade)")
    grading.add_argument("--workers", type=int, default=None, help="jobs at once (default: every core)")
    grading.add_argument("--scheduler", default=None, help="a Dask scheduler address (tcp://host:8786) to run the jobs on")
    hidden = sub.add_parser("_execute")
    hidden.add_argument("source")
    hidden.add_argument("target")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.profile)
    if args.command == "release":
        release()
        return 0
    if args.command == "grade":
        results = grade(workers=args.workers, scheduler=args.scheduler)
        print(grade_table(results) if results else "no submissions in notebooks/submitted/<student>/<chapter>/")
        return 0
    _execute(args.source, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
