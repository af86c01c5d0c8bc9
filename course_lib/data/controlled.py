"""The controlled collection of chapter 2: 30 documents of very different lengths (15 to about 630 words), some
repeating a query term many times without being about it (a shop's list, an essay that mentions everything),
others short and precise, with 14 queries and graded judgments (2 answers, 1 partly, 0 judged not relevant).
Written for this course (CC BY 4.0) to isolate what the bundled passages, all of similar length, cannot show:
BM25's saturation ($k_1$) and length normalisation ($b$) changing rankings. Layout: ``controlled/lengths.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

PATH = Path(__file__).with_name("controlled") / "lengths.json"


class Collection(NamedTuple):
    """``documents`` {doc id: (title, text)}, ``queries`` {query id: text}, ``qrels`` {query id: {doc id: grade}}."""

    documents: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_controlled() -> Collection:
    """The controlled collection, read afresh (the caller may change what it gets)."""
    raw = json.loads(PATH.read_text(encoding="utf-8"))
    return Collection(documents={d["id"]: (d["title"], d["text"]) for d in raw["documents"]},
                      queries={q["id"]: q["text"] for q in raw["queries"]},
                      qrels={q["id"]: dict(q["qrels"]) for q in raw["queries"]})
