"""No markdown cell quotes a number the run did not produce (issue #17).

The rule, for every number written in a chapter's markdown cells:

1. the chapter's own run printed it: it is among the numbers of the outputs of the tiny execution in
   tests/test_notebooks.py (reused here, not executed again), or
2. the run was given it: it is a literal of one of the chapter's code cells (``K1 = 1.5``, a grid bound,
   the hand example's documents), or
3. it names a part of the course, not a quantity: chapter 3, section 6, exercise 2, "3 points", a
   numbered heading or list item, or it is part of a name (BM25, nDCG@10, $k_1$, SQuAD v1.1), or
4. it is on the chapter's allow-list below, with the reason (a year or a figure cited with its source,
   a constant the course teaches).

"What it showed" text whose numbers depend on the run is printed by a code cell, so the markdown holds none.
"""
from __future__ import annotations

import re

import nbformat
import pytest

from course_lib import course
from test_notebooks import ROOT, executed_under_tiny


# A number: digits with optional thousands commas and decimals (not a comma-separated list: "1,600" is one
# number, "1, 2" two). Skipped when glued to a name: preceded by a letter, digit, "_", "@", "^", "{", "-", "."
# ("BM25", "nDCG@10", "k_1", "log_{10}", "TREC-3", "v1.1"), or followed by a letter ("3D", "2nd").
NUMBER = re.compile(r"(?<![\w@^{\-.\\])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w.]\w|[a-zA-Z])")
PART = re.compile(r"(?i)\b(?:chapters?|sections?|exercises?|steps?|tables?|figures?|points?|part|items?|"
                  r"version|issue|cells?)\s+(?:\d+(?:[.,]\d+)?(?:\s*(?:-|,|and|or|to)\s*)?)+")
POINTS = re.compile(r"(?i)\d+\s*(?:points?|exercises?)\b|\(\d+\)")  # "17 points", "(3)" after an exercise name
ENUMERATION = re.compile(r"(?m)^\s*(?:#+\s*\d+(?:\.\d+)*\.?|\d+\.)\s")  # "## 5. Title", "### 5.2 Title", "3. item"
URL = re.compile(r"https?://\S+|\]\([^)]*\)")

HAND = "a step of a hand-computed example; the exercise's visible test or the cell under it computes the result"
ALLOWED: dict[str, dict[str, str]] = {
    "01_tfidf": {
        "1.5": "the cpu memory budget in GB (a target the course sets, not a measurement)",
        "1.301": f"1 + log10 2, {HAND}", "0.392": f"1.301 x log10 2, {HAND}",
        "0.615": f"|q| of the query *red planet*, {HAND}", "0.685": f"|d0|, {HAND}",
        "2017": "DrQA: Chen, Fisch, Weston and Bordes (2017), cited in section 10",
    },
    "02_bm25": {
        "1.429": f"1 + 1.5 / 3.5, {HAND}", "2.5": f"df + 0.5 and N - df + 0.5, {HAND}",
        "0.9375": f"k1 x 0.625, {HAND}", "2.0625": f"k1 x 1.375, {HAND}",
        "0.02": "MRR of a system answering 2 of 100 queries, both at rank 1: 2/100 (an argument, not a measurement)",
        "0.278": f"(1/2 + 1/3 + 0) / 3, {HAND}", "0.417": f"(1/2 + 1/3) / 2, {HAND}",
        "1.262": f"2 / log2 3, {HAND}", "0.431": f"1 / log2 5, {HAND}", "1.693": f"DCG@5, {HAND}",
        "3.131": f"IDCG@5, {HAND}", "0.541": f"nDCG@5, {HAND}",
        "2005": "Burges et al. (2005), cited for the exponential gain",
        "2020": "Kamphuis, de Vries, Boytsov and Lin (ECIR 2020), cited", "2014": "Trotman et al. (2014), cited",
        "2011": "Lv and Zhai (2011), cited", "2021": "Thakur et al. (NeurIPS 2021), the BEIR paper, cited",
    },
    "03_dense_retrieval": {
        "1.5": "the cpu memory budget in GB (a target the course sets, not a measurement)",
        "0.707": f"1 / sqrt 2, {HAND}",
        "61": f"k + rank with k = 60, {HAND}", "62": f"k + rank, {HAND}", "63": f"k + rank, {HAND}",
        "0.03252": f"1/62 + 1/61, {HAND}", "0.03100": f"1/63 + 1/62, {HAND}",
        "0.01639": f"1/61, {HAND}", "0.01587": f"1/63, {HAND}",
        "1.6": f"0.6 + 1, the MaxSim {HAND}",
        "2009": "Cormack, Clarke and Buettcher (2009), the RRF paper, cited",
        "2020": "Khattab and Zaharia (SIGIR 2020), the ColBERT paper, cited",
        "2017": "Johnson, Douze and Jegou (2017), the FAISS paper, cited",
        "0.75": f"the recall of the exercise's {HAND}",
    },
    "04_rag": {
        "1.5": "the cpu memory budget in GB (a target the course sets, not a measurement)",
        "13": f"the end offset of the text 'a bb ccc dd e' in the chunking {HAND}",
        "0.8333": f"(1 + 2/3) / 2, the F1 of the evaluation {HAND}",
        "57": "MMLU's 57 subjects (Hendrycks et al., ICLR 2021), a property of the dataset in section 7's table",
    },
    "05_squad_finetuning": {
        "1.5": "the cpu memory budget in GB (a target the course sets, not a measurement)",
        "87599": "SQuAD v1.1's training questions (Rajpurkar et al. 2016), the size of the full profile's data",
        "10570": "SQuAD v1.1's validation questions (Rajpurkar et al. 2016), the size of the full profile's data",
        "512": "BERT's maximum input length (Devlin et al. 2019), a constant the course teaches",
        "5.95": "ln 384, the loss of a uniform guess over a window (the dashed line of the loss plot)",
        "66.67": f"F1 of the one-question example, {HAND}",
        "83.33": f"(66.67 + 100) / 2, with a second question answered exactly, {HAND}",
    },
}


def numbers(text: str) -> list[str]:
    """The numbers quoted in ``text`` (markdown), thousands commas removed, parts and names left out."""
    for pattern in (URL, PART, POINTS, ENUMERATION):
        text = pattern.sub(" ", text)
    return [(whole + (fraction or "")).replace(",", "") for whole, fraction in NUMBER.findall(text)]


def canonical(number: str) -> str:
    """One spelling per value: 0.50 and .5 and 0.5 alike, 1600 and 1600.0 alike."""
    value = float(number)
    return str(int(value)) if value == int(value) else repr(value)


def produced(nb: nbformat.NotebookNode) -> set[str]:
    """Every number in the outputs of ``nb`` and in the literals of its code cells (rules 1 and 2)."""
    found: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = [cell.source]
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            for kind in ("text/plain", "text/markdown", "text/html"):
                value = output.get("data", {}).get(kind, "")
                texts.append("".join(value) if isinstance(value, list) else value)
        for text in texts:
            found.update(canonical(n.replace(",", "")) for n in (m.rstrip(",") for m in   # "stride=50," is 50
                         re.findall(r"\d[\d,]*(?:\.\d+)?(?:e-?\d+)?", text))
                         if re.fullmatch(r"\d{1,3}(?:,\d{3})*(?:\.\d+)?|\d+(?:\.\d+)?(?:e-?\d+)?", n))
    return found


def unproduced(nb: nbformat.NotebookNode, allowed: dict[str, str]) -> list[tuple[int, str]]:
    """(cell index, number) for each number of a markdown cell that breaks the rule."""
    have = produced(nb) | {canonical(n) for n in allowed}
    return [(i, n) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
            for n in numbers(cell.source) if canonical(n) not in have]


def test_numbers_are_found_and_parts_and_names_are_not():
    text = ("Section 6 measured 1,600 pairs and an nDCG@10 of 0.537 with BM25, $k_1 = 1.2$ and "
            "$\\log_{10}$; exercise 2 (3 points) in [SQuAD v1.1](https://x.org/a/2021).\n## 5. Tuning\n3. a step of 40%")
    assert numbers(text) == ["1600", "0.537", "1.2", "40"]


def test_a_stale_number_is_caught_and_a_produced_one_is_not():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("K1 = 1.2\nprint(pairs)", outputs=[nbformat.v4.new_output("stream", text="1,024 training pairs\n")]),
        nbformat.v4.new_markdown_cell("We trained on 1,024 pairs with $k_1 = 1.2$."),
        nbformat.v4.new_markdown_cell("We trained on 1,600 pairs in 1994."),
    ])
    assert unproduced(nb, {}) == [(2, "1600"), (2, "1994")]
    assert unproduced(nb, {"1994": "Okapi at TREC-3 (Robertson et al. 1994)"}) == [(2, "1600")]


CHAPTERS = course.chapters()
TITLE_WORDS = 200


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_title_cell_is_short(chapter):
    """What you will learn, exercises and points, the time it takes; operations detail goes to 'About this run'."""
    source = ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb"
    title = nbformat.read(source, as_version=4).cells[2]
    words = len(re.findall(r"[A-Za-z0-9][\w'.-]*", title.source))   # words and numbers, not symbols
    assert words <= TITLE_WORDS, f"{chapter}'s title cell has {words} words (at most {TITLE_WORDS})"
    assert "About this run" in title.source


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.slow
def test_no_markdown_cell_quotes_a_number_the_run_did_not_produce(chapter):
    nb = executed_under_tiny(chapter)
    bad = unproduced(nb, ALLOWED.get(chapter, {}))
    assert not bad, (f"{chapter}: markdown quotes numbers its run did not produce (print them from a code cell, "
                     f"or allow-list them with a reason): " + "; ".join(
                         f"cell {i} ({nb.cells[i].get('id')}): {n}" for i, n in bad))
