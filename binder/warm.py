"""A warm start for Binder: postBuild runs the chapters whose one-off work later sessions reuse.

Executing a chapter once fills ``course_lib.models.cache_dir()`` exactly as the chapter reads
it back: the SmolLM2 conversion, the MiniLM embeddings of the bundled collection, chapter 3's
fine-tuned cross-encoder, chapter 4's chunk embeddings. Chapter 5 runs before chapter 4, whose
extractive reader needs a fine-tuned span model: its reader is kept as ``cache_dir()/squad-minilm``
and its own folder is removed, so that a student's chapter 5 still trains from the start.

    COURSE_PROFILE=cpu python binder/warm.py [chapter ...]   (default: chapters 3, 4 and 5)
"""
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib import course, models, squad

os.environ.setdefault("COURSE_PROFILE", "cpu")
for chapter in course.execution_order(sys.argv[1:] or ["03_dense_retrieval", "04_rag", "05_squad_finetuning"]):
    source = course.COURSE_ROOT / "source" / chapter / f"{chapter}.ipynb"
    started = time.perf_counter()
    nb = nbformat.read(source, as_version=4)
    NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}).execute()
    if chapter == "05_squad_finetuning":
        trained = squad.output_dir(os.environ["COURSE_PROFILE"])
        shutil.rmtree(models.cache_dir() / "squad-minilm", ignore_errors=True)
        shutil.copytree(trained / "loop", models.cache_dir() / "squad-minilm",
                        ignore=shutil.ignore_patterns("checkpoint-*"))
        shutil.rmtree(trained)
    print(f"warmed {chapter} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
print(f"cache: {models.cache_dir()} ({sum(f.stat().st_size for f in Path(models.cache_dir()).rglob('*') if f.is_file()) / 2**20:.0f} MB)")
