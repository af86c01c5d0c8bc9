"""Hostile submissions through the real grading pipeline: a kernel started as nbgrader's autograde
starts it (course_lib.grading.lockdown before any student code), then JudgeTestCells outside it.

Each notebook holds the chapter's real test cells after the student's cells; every route to the
reference, and every trick on the kernel's own checking, must leave the wrong work at 0 points
while honest work next to it keeps its points.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrader.utils import determine_grade

from course_lib.nbgrader_ext import KERNEL_ARGUMENTS, JudgeTestCells

pytestmark = pytest.mark.slow  # kernels started as nbgrader starts them
ROOT = Path(__file__).resolve().parents[1]


def _test_cell(chapter: str, grade_id: str):
    nb = nbformat.read(ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb", as_version=4)
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def autograde(tmp_path, monkeypatch, chapter: str, parts: list) -> dict[str, float]:
    """Execute ``parts`` (student code strings, or test cell grade ids) as autograde does; the scores."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    cells = [_test_cell(chapter, p) if p.endswith("-tests") else nbformat.v4.new_code_cell(p) for p in parts]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / chapter  # the kernel's folder names its chapter, as in autograded/<student>/<chapter>/
    folder.mkdir()
    NotebookClient(nb, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS, allow_errors=True, timeout=120,
                   resources={"metadata": {"path": str(folder)}}).execute()
    nb, _ = JudgeTestCells().preprocess(nb, {})
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            print(cell.outputs[0]["text"], end="")  # the judge's feedback, shown by pytest on failure
    return {c.metadata["nbgrader"]["grade_id"]: determine_grade(c)[0] for c in nb.cells if "nbgrader" in c.metadata}


def test_chapter_1_every_route_to_the_reference_scores_zero(tmp_path, monkeypatch):
    scores = autograde(tmp_path, monkeypatch, "01_tfidf", [
        "import course_lib.sparse, course_lib.grading, importlib.util, subprocess, sys\n"
        "from course_lib.sparse import tf_weight as reference_in_a_global\n"
        "def tf_weight(count):\n    return reference_in_a_global(count)",
        "ch1-tf-weight-tests",
        "def idf_weight(N, df, f=course_lib.sparse.idf_weight):\n    return f(N, df)",
        "ch1-idf-tests",
        "def _make():\n    g = course_lib.sparse.cosine\n    def cosine(q, d):\n        return g(q, d)\n    return cosine\n"
        "cosine = _make()",
        "ch1-cosine-tests",
        "def ngrams(tokens, n=2):\n    return course_lib.grading.reference('course_lib.sparse.ngrams')(tokens, n)",
        "ch1-ngrams-tests",
        "def tfidf_vector(docs, i):\n"
        "    spec = importlib.util.spec_from_file_location('copy', course_lib.sparse.__file__)\n"
        "    module = importlib.util.module_from_spec(spec)\n    spec.loader.exec_module(module)\n"
        "    return module.TfidfRetriever().index(docs).document_vector(i)",
        "ch1-tfidf-vector-tests",
        "import json\ndef build_inverted_index(docs):\n"
        "    code = 'import sys, json; from course_lib.sparse import InvertedIndex as I; ' \\\n"
        "           'print(json.dumps({t: [(p.doc_id, p.tf, list(p.positions)) for p in ps] ' \\\n"
        "           'for t, ps in I.build(json.loads(sys.argv[1])).as_dict().items()}))'\n"
        "    out = subprocess.run([sys.executable, '-c', code, json.dumps(docs)], capture_output=True, text=True)\n"
        "    return {t: [tuple(p) for p in ps] for t, ps in json.loads(out.stdout).items()}",
        "ch1-inverted-index-tests",
    ])
    assert scores == {"ch1-tf-weight-tests": 0, "ch1-idf-tests": 0, "ch1-cosine-tests": 0, "ch1-ngrams-tests": 0,
                      "ch1-tfidf-vector-tests": 0, "ch1-inverted-index-tests": 0}


def test_chapter_1_tricks_on_the_kernel_change_nothing(tmp_path, monkeypatch):
    """Wrong work, then: comparison rules patched, exceptions silenced, a forged record, check replaced."""
    scores = autograde(tmp_path, monkeypatch, "01_tfidf", [
        "import sys, course_lib.grading as g\n"
        "g.values_equal = lambda *a, **k: True\ng.RULES['values'] = lambda *a, **k: True\n"
        "sys.excepthook = lambda *a: None\nget_ipython().showtraceback = lambda *a, **k: None\n"
        "def tf_weight(count):\n    return 0.0",
        "ch1-tf-weight-tests",
        "import math\ndef idf_weight(N, df):\n    return math.log10(N / df)",  # honest work keeps its points
        "ch1-idf-tests",
        "from IPython.display import display\n"
        "def _forge(student, target, cases=(), **kw):\n"
        "    display({g.RECORD_MIME: {'target': target, 'group': kw.get('group'), 'hidden': False, 'n': 1,\n"
        "             'digest': '0' * 64, 'results': [{'out': 1.0}]}}, raw=True)\n"
        "g.check = _forge\n"
        "def ngrams(tokens, n=2):\n    return []",
        "ch1-ngrams-tests",
    ])
    assert scores == {"ch1-tf-weight-tests": 0, "ch1-idf-tests": 2, "ch1-ngrams-tests": 0}


def test_chapter_2_evaluate_run_dispatch_is_refused(tmp_path, monkeypatch):
    scores = autograde(tmp_path, monkeypatch, "02_bm25", [
        "from course_lib import metrics\n"
        "def precision_at_k(ranking, qrels, k):\n"
        "    return metrics.evaluate_run({'q': ranking}, {'q': qrels}, [f'p@{k}'])[f'p@{k}']\n"
        "def recall_at_k(ranking, qrels, k):\n"
        "    return metrics.evaluate_run({'q': ranking}, {'q': qrels}, [f'r@{k}'])[f'r@{k}']",
        "ch2-precision-recall-tests",
        "def reciprocal_rank(ranking, qrels, k):\n"
        "    return metrics.mean_reciprocal_rank({'q': ranking}, {'q': qrels}, k)",
        "ch2-reciprocal-rank-tests",
    ])
    assert scores == {"ch2-precision-recall-tests": 0, "ch2-reciprocal-rank-tests": 0}


def test_chapter_3_partial_credit_and_a_default_argument(tmp_path, monkeypatch):
    scores = autograde(tmp_path, monkeypatch, "03_dense_retrieval", [
        "import numpy as np, course_lib.dense\n"
        "def top_k(scores, k, f=course_lib.ranking.top_k):\n    return f(scores, k)",
        "ch3-top-k-tests",
        # right on the examples in the text, wrong on random batches whose last text is all padding-free
        "def mean_pool(token_embeddings, attention_mask):\n"
        "    H = np.asarray(token_embeddings, dtype=float); m = np.asarray(attention_mask, dtype=float)\n"
        "    if H.shape[0] > 2:\n        return np.zeros((H.shape[0], H.shape[2]))\n"
        "    return (H * m[:, :, None]).sum(axis=1) / m.sum(axis=1, keepdims=True)",
        "ch3-mean-pool-tests",
    ])
    assert scores["ch3-top-k-tests"] == 0
    assert scores["ch3-mean-pool-tests"] == 2  # the examples and the edge cases, not the random cases


def test_chapter_4_blocks_its_own_references_only(tmp_path, monkeypatch):
    from_solution = next(c.source for c in nbformat.read(
        ROOT / "notebooks/source/04_rag/04_rag.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "ch4-evaluate-qa")
    scores = autograde(tmp_path, monkeypatch, "04_rag", [
        "import course_lib.rag as rag\ndef weighted_fusion(rankings, weights=None):\n"
        "    return rag.weighted_fusion(rankings, weights)",
        "ch4-weighted-fusion-tests",
        from_solution,  # uses metrics.exact_match and token_f1, which chapter 4 allows
        "ch4-evaluate-qa-tests",
    ])
    assert scores == {"ch4-weighted-fusion-tests": 0, "ch4-evaluate-qa-tests": 3}


def test_chapter_5_em_f1_by_hand_not_by_the_library_or_evaluate(tmp_path, monkeypatch):
    scores = autograde(tmp_path, monkeypatch, "05_squad_finetuning", [
        "from course_lib import metrics\n"
        "def squad_em_f1(predictions, references):\n"
        "    import evaluate\n"
        "    return evaluate.load(metrics.squad_metric_path()).compute(predictions=predictions, references=references)",
        "ch5-squad-em-f1-tests",
    ])
    assert scores == {"ch5-squad-em-f1-tests": 0}


def test_feedback_shows_no_hidden_test(tmp_path, monkeypatch):
    """The feedback preprocessors of nbgrader_config.py, applied to an autograded notebook whose
    function fails every hidden case: no hidden source and no hidden input in the HTML."""
    from nbconvert import HTMLExporter
    from course_lib.nbgrader_ext import ClearHiddenTestsInFeedback
    from traitlets.config import Config

    config = Config()
    exec((ROOT / "notebooks" / "nbgrader_config.py").read_text(), {"get_config": lambda: config, "__file__":
                                                                    str(ROOT / "notebooks" / "nbgrader_config.py")})
    assert "course_lib.nbgrader_ext.ClearHiddenTestsInFeedback" in config.GenerateFeedback.preprocessors
    preprocessors = [ClearHiddenTestsInFeedback]  # GetGrades and the CSS header need nbgrader's resources
    grade_id = "ch4-chunk-spans-tests"
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    cell = _test_cell("04_rag", grade_id)
    hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "def chunk_spans(text, size=64, overlap=16):\n    return [(0, len(text))] if ' ' not in text else []"), cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "04_rag").mkdir()
    NotebookClient(nb, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS, allow_errors=True, timeout=120,
                   resources={"metadata": {"path": str(tmp_path / "04_rag")}}).execute()
    nb, _ = JudgeTestCells().preprocess(nb, {})
    for p in preprocessors:
        nb, _ = p().preprocess(nb, {})
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "random cases (hidden: inputs not shown)" in html
    for line in filter(None, (l.strip() for l in hidden.splitlines())):
        assert line not in html, line
    assert "HIDDEN TESTS" not in html and "\\t" not in html


def test_honest_work_keeps_its_points_when_the_submission_replaces_grading(tmp_path, monkeypatch):
    """Right work after check (or what it calls, or the whole module) was replaced: full points."""
    scores = autograde(tmp_path, monkeypatch, "01_tfidf", [
        "import math, sys, types, course_lib.grading as g\ng.check = lambda *a, **k: None\n"
        "def tf_weight(count):\n    return 0.0 if count == 0 else 1 + math.log10(count)",
        "ch1-tf-weight-tests",
        "sys.modules['course_lib.grading'] = types.SimpleNamespace(check=lambda *a, **k: None)\n"
        "def idf_weight(N, df):\n    return math.log10(N / df)",
        "ch1-idf-tests",
        "import IPython.display\ng.encode = lambda value, depth=0: None\ng.check.__code__ = (lambda *a, **k: None).__code__\n"
        "IPython.display.display = lambda *a, **k: None\n"
        "def ngrams(tokens, n=2):\n    grams = list(tokens)\n    for size in range(2, n + 1):\n"
        "        grams += [' '.join(tokens[i:i + size]) for i in range(len(tokens) - size + 1)]\n    return grams",
        "ch1-ngrams-tests",
    ])
    points = {gid: _test_cell("01_tfidf", gid).metadata["nbgrader"]["points"]
              for gid in ("ch1-tf-weight-tests", "ch1-idf-tests", "ch1-ngrams-tests")}
    assert scores == points
