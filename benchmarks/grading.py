"""Grading throughput: submissions per minute on 1 and 2 workers, and 300 students x 5 chapters.

Grades N copies of chapter 1's solution (sandboxed, as ``make grade`` does) in a scratch
course with 1 and then 2 workers in this one process, prints submissions per minute, the
speed-up (target >= 1.8x on 2 workers; it needs 2 free cores) and the projected wall time
of a 300-student class on 5 chapters at the 2-worker rate (chapter 1's job time stands in
for every chapter: later chapters are longer, so this is a lower bound).
No assertion: read the table. Run: python benchmarks/grading.py [N] (default 8).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib import course  # noqa: E402

CH = "01_tfidf"


def main(n: int = 8) -> None:
    rates = {}
    with tempfile.TemporaryDirectory(prefix="qair-bench-") as tmp:
        for workers in (1, 2):
            root = Path(tmp) / f"course{workers}"
            shutil.copytree(course.COURSE_ROOT, root, ignore=shutil.ignore_patterns(
                "submitted", "autograded", "feedback", "gradebook.db", "exchange", "release"))
            course.release(root, only=[CH])
            for i in range(n):
                shutil.copytree(root / "source" / CH, root / "submitted" / f"student{i:03d}" / CH)
            start = time.perf_counter()
            results = course.grade(root, workers=workers)
            seconds = time.perf_counter() - start
            full = sum(r["score"] == r["max_score"] for r in results.values())
            rates[workers] = n / seconds * 60
            print(f"{workers} worker(s): {n} submissions in {seconds:.1f} s = {rates[workers]:.1f} submissions/min "
                  f"({full}/{n} at full marks)", flush=True)
    print(f"speed-up on 2 workers: {rates[2] / rates[1]:.2f}x (target >= 1.8x)")
    hours = 300 * 5 / rates[2] / 60
    print(f"projected 300 students x 5 chapters on 2 workers: {hours:.1f} h; "
          f"on {os.cpu_count()} cores (linear): {hours * 2 / max(os.cpu_count() or 1, 2):.1f} h")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
