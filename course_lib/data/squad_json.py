"""Read the official SQuAD v1.1 JSON into the flat Hugging Face ``squad`` layout.

The official file nests ``data -> articles -> paragraphs -> qas``; loading it with
``load_dataset("json", field="data")`` keeps that nesting, so we flatten it here
into one row per question: ``id``, ``title``, ``context``, ``question``,
``answers: {text: [...], answer_start: [...]}`` (chapter 5).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path


def _read_json(path: Path) -> dict:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".json")]
            if len(members) != 1:
                raise ValueError(f"path {path} must hold exactly one .json file, found {members}")
            return json.loads(archive.read(members[0]).decode("utf-8"))
    return json.loads(path.read_text(encoding="utf-8"))


def squad_rows(path: str | Path) -> list[dict]:
    """The questions of a SQuAD v1.1 JSON file (plain or zipped) as flat dict rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a SQuAD JSON file (.json or .zip), got {str(path)!r}")
    data = _read_json(path)
    if not isinstance(data, dict) or "data" not in data:
        raise ValueError(f"path {path} is not SQuAD JSON: no top-level 'data' list")
    rows = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in qa["answers"]],
                            "answer_start": [int(a["answer_start"]) for a in qa["answers"]],
                        },
                    }
                )
    return rows


def load_squad_json(path: str | Path):
    """A ``datasets.Dataset`` with the features of ``load_dataset("squad")``'s splits."""
    from datasets import Dataset

    from .features import SQUAD_FEATURES

    return Dataset.from_list(squad_rows(path), features=SQUAD_FEATURES)
