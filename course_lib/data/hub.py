"""The real datasets, from the Hugging Face hub when it is reachable (Colab, Kaggle).

Each loader takes ``limit=`` (rows kept; the full sets are large) and, when the hub
cannot be reached, prints one plain sentence and returns the bundled counterpart
instead: no stack trace, no minute of retries (``course_lib.env.hub_available``
switches the libraries offline first).

| loader | hub id | size (full) |
|---|---|---|
| ``load_squad`` | ``squad`` | 87,599 train / 10,570 validation questions, 35 MB |
| ``load_ms_marco`` | ``microsoft/ms_marco`` (v2.1) | 808,731 queries with 10 passages each, 1.1 GB |
| ``load_natural_questions`` | ``google-research-datasets/natural_questions`` | 307,373 questions, 45 GB: streamed |
| ``load_tydiqa`` | ``google-research-datasets/tydiqa`` (secondary_task) | 49,881 questions in 9 languages |
| ``load_dureader`` | ``PaddlePaddle/dureader_robust`` (its parquet conversion) | 14,520 train / 1,417 dev questions, Chinese |
| ``load_mmlu`` | ``cais/mmlu`` | 14,042 test questions in 57 subjects |
| ``load_beir`` | ``BeIR/<name>`` + ``BeIR/<name>-qrels`` | scifact: 5,183 abstracts, 300 test queries |
"""
from __future__ import annotations

from itertools import islice

from .. import env
from . import bundled


def _fallback(what: str, bundled_name: str):
    print(f"The dataset hub is unreachable, so {what} is replaced by the bundled {bundled_name}.")


def _limited(dataset, limit: int | None):
    if limit is None:
        return dataset
    if not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    return dataset.select(range(min(limit, len(dataset))))


def _load(path: str, *args, limit: int | None = None, **kwargs):
    from datasets import load_dataset

    split = kwargs.pop("split")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    return load_dataset(path, *args, split=split if limit is None else f"{split}[:{limit}]", **kwargs)


def load_squad(split: str = "validation", limit: int | None = None):
    """SQuAD v1.1 (``squad``); offline: the bundled QA split of the same name."""
    if env.hub_available():
        return _load("squad", split=split, limit=limit)
    _fallback(f"SQuAD {split}", f"QA {split} split")
    return _limited(bundled.load_squad_like()[split], limit)


def load_ms_marco(split: str = "validation", limit: int | None = 1000):
    """MS MARCO v2.1 (Bing queries, 10 candidate passages each, human answers); offline: bundled queries."""
    if env.hub_available():
        return _load("microsoft/ms_marco", "v2.1", split=split, limit=limit)
    _fallback("MS MARCO", "queries")
    return _limited(bundled.load_queries(), limit)


def load_natural_questions(limit: int = 100):
    """The first ``limit`` Natural Questions (Google queries on Wikipedia pages), streamed:
    the full set is about 45 GB. Offline: the bundled QA validation split."""
    if not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if env.hub_available():
        from datasets import Dataset, load_dataset

        stream = load_dataset("google-research-datasets/natural_questions", split="validation", streaming=True)
        return Dataset.from_list(list(islice(stream, limit)))
    _fallback("Natural Questions", "QA validation split")
    return _limited(bundled.load_squad_like()["validation"], limit)


def load_tydiqa(split: str = "validation", limit: int | None = 1000):
    """TyDi QA's gold-passage task (SQuAD layout, 9 languages); offline: the bundled QA split."""
    if env.hub_available():
        return _load("google-research-datasets/tydiqa", "secondary_task", split=split, limit=limit)
    _fallback("TyDi QA", f"QA {split} split")
    return _limited(bundled.load_squad_like()[split], limit)


DUREADER_PARQUET = "hf://datasets/PaddlePaddle/dureader_robust@refs%2Fconvert%2Fparquet/plain_text/{split}/*.parquet"


def load_dureader(split: str = "validation", limit: int | None = 1000):
    """DuReader-robust (Baidu search queries in Chinese, answers as spans, SQuAD layout);
    offline: the bundled QA split.

    The hub repository holds a loading script, which ``datasets`` 4 no longer runs,
    so the files come from the hub's own parquet conversion of it.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    if env.hub_available():
        return _load("parquet", data_files={split: DUREADER_PARQUET.format(split=split)}, split=split, limit=limit)
    _fallback("DuReader", f"QA {split} split")
    return _limited(bundled.load_squad_like()[split], limit)


def load_mmlu(subject: str = "all", split: str = "test", limit: int | None = None):
    """MMLU (``cais/mmlu``): exam questions with four choices; offline: the bundled MCQ set."""
    if env.hub_available():
        return _load("cais/mmlu", subject, split=split, limit=limit)
    _fallback("MMLU", "multiple-choice questions")
    return _limited(bundled.load_mcq(), limit)


def load_beir(name: str = "scifact", limit: int | None = None) -> dict:
    """A BEIR retrieval set as {"corpus", "queries", "qrels"} Datasets; offline: the bundled collection."""
    if env.hub_available():
        return {
            "corpus": _load(f"BeIR/{name}", "corpus", split="corpus", limit=limit),
            "queries": _load(f"BeIR/{name}", "queries", split="queries"),
            "qrels": _load(f"BeIR/{name}-qrels", split="test"),
        }
    _fallback(f"BEIR {name}", "collection")
    return {"corpus": _limited(bundled.load_corpus(), limit), "queries": bundled.load_queries(),
            "qrels": bundled.load_qrels()}
