"""The bundled collection: passages, queries, qrels, SQuAD-style QA, multi-hop and
multiple-choice questions, all written for this course (``collection/*.json``,
format in ``FORMAT.md``), returned as ``datasets`` objects with the features of
their hub counterparts: BEIR (corpus, queries, qrels), SQuAD, MMLU.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from .features import SQUAD_FEATURES

COLLECTION = Path(__file__).resolve().parent / "collection"

CORPUS_FEATURES = Features({"_id": Value("string"), "title": Value("string"), "text": Value("string")})
QUERY_FEATURES = Features({"_id": Value("string"), "title": Value("string"), "text": Value("string")})
QRELS_FEATURES = Features({"query-id": Value("string"), "corpus-id": Value("string"), "score": Value("int32")})
MCQ_FEATURES = Features(
    {
        "question": Value("string"),
        "subject": Value("string"),
        "choices": List(Value("string")),
        "answer": ClassLabel(names=["A", "B", "C", "D"]),
    }
)
MULTIHOP_FEATURES = Features(
    {
        "id": Value("string"),
        "question": Value("string"),
        "answer": Value("string"),
        "passage_ids": List(Value("string")),
        "bridge": Value("string"),
    }
)


@lru_cache(maxsize=1)
def topics() -> tuple[dict, ...]:
    """Every topic file, parsed, in file-name order."""
    files = sorted(COLLECTION.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no topic files in {COLLECTION}: the package data is missing")
    return tuple(json.loads(p.read_text(encoding="utf-8")) for p in files)


@lru_cache(maxsize=1)
def passages() -> dict[str, dict]:
    """Passage id -> {id, title, text, topic}."""
    return {p["id"]: {**p, "topic": t["topic"]} for t in topics() for p in t["passages"]}


def load_corpus() -> Dataset:
    """The passages in BEIR's corpus layout: ``_id``, ``title``, ``text``."""
    rows = [{"_id": p["id"], "title": p["title"], "text": p["text"]} for p in passages().values()]
    return Dataset.from_list(rows, features=CORPUS_FEATURES)


def load_queries() -> Dataset:
    """The retrieval queries in BEIR's layout: ``_id``, ``title`` (empty), ``text``."""
    rows = [{"_id": q["id"], "title": "", "text": q["text"]} for t in topics() for q in t["queries"]]
    return Dataset.from_list(rows, features=QUERY_FEATURES)


def load_qrels() -> Dataset:
    """Graded relevance judgments in BEIR's layout: ``query-id``, ``corpus-id``, ``score`` (0, 1, 2)."""
    rows = [
        {"query-id": q["id"], "corpus-id": pid, "score": grade}
        for t in topics()
        for q in t["queries"]
        for pid, grade in q["qrels"].items()
    ]
    return Dataset.from_list(rows, features=QRELS_FEATURES)


def qrels_dict() -> dict[str, dict[str, int]]:
    """The judgments TREC-style, as ``course_lib.metrics`` takes them: {query id: {passage id: grade}}."""
    return {q["id"]: dict(q["qrels"]) for t in topics() for q in t["queries"]}


def paraphrase_query_ids() -> list[str]:
    """Queries written to share no content word with their relevant passages (vocabulary mismatch)."""
    return [q["id"] for t in topics() for q in t["queries"] if q["paraphrase"]]


def _article(passage_id: str) -> tuple[str, int]:
    """The article (passages sharing a title, in id order, joined by a blank line) holding
    ``passage_id``, and the character offset of that passage inside it."""
    topic = passages()[passage_id]["topic"]
    title = passages()[passage_id]["title"]
    members = [p for p in passages().values() if p["topic"] == topic and p["title"] == title]
    offset, parts = 0, []
    for p in members:
        if p["id"] == passage_id:
            start = offset
        parts.append(p["text"])
        offset += len(p["text"]) + 2
    return "\n\n".join(parts), start


def _qa_row(example: dict, title: str) -> dict:
    passage = passages()[example["passage"]]
    if example["context"] == "article":
        context, offset = _article(example["passage"])
    else:
        context, offset = passage["text"], 0
    starts = []
    for answer in example["answers"]:
        position = passage["text"].find(answer)
        if position < 0:
            raise ValueError(f"{example['id']}: answer {answer!r} is not in passage {example['passage']}")
        starts.append(offset + position)
    return {
        "id": example["id"],
        "title": passage["title"] or title,
        "context": context,
        "question": example["question"],
        "answers": {"text": list(example["answers"]), "answer_start": starts},
    }


def load_squad_like() -> DatasetDict:
    """Extractive QA in the ``squad`` layout, split by topic: ``train`` (one answer each) and
    ``validation`` (up to three reference answers). Some contexts are whole articles,
    longer than a 384-token window."""
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    for t in topics():
        splits[t["split"]] += [_qa_row(ex, t["title"]) for ex in t["qa"]]
    return DatasetDict({name: Dataset.from_list(rows, features=SQUAD_FEATURES) for name, rows in splits.items()})


def load_multihop() -> Dataset:
    """Two-hop questions: the first passage gives the bridge, the second holds the answer."""
    rows = [
        {"id": m["id"], "question": m["question"], "answer": m["answer"], "passage_ids": list(m["passages"]),
         "bridge": m["bridge"]}
        for t in topics()
        for m in t["multihop"]
    ]
    return Dataset.from_list(rows, features=MULTIHOP_FEATURES)


def load_mcq() -> Dataset:
    """Multiple-choice questions in MMLU's layout (``answer`` is a ClassLabel A-D), the
    subject being the topic; each is answerable from one passage of the corpus."""
    rows = [
        {"question": m["question"], "subject": t["topic"], "choices": list(m["choices"]), "answer": m["answer"]}
        for t in topics()
        for m in t["mcq"]
    ]
    return Dataset.from_list(rows, features=MCQ_FEATURES)
