"""The real datasets, from the Hugging Face hub when it is reachable (Colab, Kaggle).

Each loader takes ``limit=`` (rows kept; the full sets are large) and, when the hub
cannot be reached, prints one plain sentence and returns the bundled counterpart
instead: no stack trace, no minute of retries (``course_lib.env.hub_available``
switches the libraries offline first). A hub that answers but does not serve the
dataset (deleted or gated repository, a download cut off, a timeout) gets the same
fallback, with the reason and what to do in the sentence.

| loader | hub id | size (full) |
|---|---|---|
| ``load_squad`` | ``rajpurkar/squad`` | 87,599 train / 10,570 validation questions, 35 MB |
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


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a hub download raises when the hub does not serve a dataset: ``datasets``' own errors
    (missing or gated repository), OSError (``ConnectionError``, timeouts, ``HfHubHTTPError``) and
    the HTTP client's transport errors (a connection dropped half-way)."""
    from datasets.exceptions import DatasetsError

    errors: tuple[type[BaseException], ...] = (DatasetsError, OSError)
    try:
        import httpx2  # huggingface_hub 2.x's HTTP client

        errors += (httpx2.HTTPError,)
    except ImportError:
        pass
    try:
        import httpx

        errors += (httpx.HTTPError,)
    except ImportError:
        pass
    return errors


def _advice(error: BaseException) -> str:
    """What a student can do about ``error``, in plain words."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError) or (isinstance(error, DatasetNotFoundError) and " gated " in str(error)):
        return "it is gated: log in with huggingface_hub.login() and accept its conditions on its hub page"
    if isinstance(error, (RepositoryNotFoundError, DatasetNotFoundError, FileNotFoundError)):
        return "the hub does not have it under that name (a renamed or deleted repository)"
    return f"the download failed ({type(error).__name__}); rerun the cell later to try again"


def _hub_or_bundled(what: str, bundled_name: str, load, bundled_rows):
    """``load()`` from the hub; one plain sentence and ``bundled_rows()`` when the hub is
    unreachable or does not serve it."""
    if not env.hub_available():
        print(f"The dataset hub is not available, so {what} is replaced by the bundled {bundled_name}.")
        return bundled_rows()
    try:
        return load()
    except _hub_errors() as error:
        print(f"The dataset hub did not serve {what}: {_advice(error)}. Using the bundled {bundled_name} instead.")
        return bundled_rows()


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
    """SQuAD v1.1 (``rajpurkar/squad``; datasets 4+ rejects the legacy id ``squad``);
    offline: the bundled QA split of the same name."""

    def bundled_rows():
        return _limited(bundled.load_squad_like()[split], limit)

    return _hub_or_bundled(f"SQuAD {split}", f"QA {split} split",
                           lambda: _load("rajpurkar/squad", "plain_text", split=split, limit=limit), bundled_rows)


def load_ms_marco(split: str = "validation", limit: int | None = 1000):
    """MS MARCO v2.1 (Bing queries, 10 candidate passages each, human answers); offline: bundled queries."""

    def bundled_rows():
        return _limited(bundled.load_queries(), limit)

    return _hub_or_bundled("MS MARCO", "queries",
                           lambda: _load("microsoft/ms_marco", "v2.1", split=split, limit=limit), bundled_rows)


def load_natural_questions(limit: int = 100):
    """The first ``limit`` Natural Questions (Google queries on Wikipedia pages), streamed:
    the full set is about 45 GB. Offline: the bundled QA validation split."""
    if not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"limit must be a positive int, got {limit!r}")

    def streamed():
        from datasets import Dataset, load_dataset

        stream = load_dataset("google-research-datasets/natural_questions", split="validation", streaming=True)
        return Dataset.from_list(list(islice(stream, limit)))

    def bundled_rows():
        return _limited(bundled.load_squad_like()["validation"], limit)

    return _hub_or_bundled("Natural Questions", "QA validation split", streamed, bundled_rows)


def load_tydiqa(split: str = "validation", limit: int | None = 1000):
    """TyDi QA's gold-passage task (SQuAD layout, 9 languages); offline: the bundled QA split."""

    def bundled_rows():
        return _limited(bundled.load_squad_like()[split], limit)

    return _hub_or_bundled("TyDi QA", f"QA {split} split", lambda: _load(
        "google-research-datasets/tydiqa", "secondary_task", split=split, limit=limit), bundled_rows)


DUREADER_REPO, DUREADER_REVISION = "PaddlePaddle/dureader_robust", "refs/convert/parquet"
DUREADER_PARQUET = f"hf://datasets/{DUREADER_REPO}@refs%2Fconvert%2Fparquet/plain_text/{{split}}/*.parquet"


def load_dureader(split: str = "validation", limit: int | None = 1000):
    """DuReader-robust (Baidu search queries in Chinese, answers as spans, SQuAD layout);
    offline: the bundled QA split.

    The hub repository holds a loading script, which ``datasets`` 4 no longer runs,
    so the files come from the hub's own parquet conversion of it.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")

    def converted():
        from huggingface_hub import HfApi, HfFileSystem

        # a missing or gated repository globs to nothing: ask for it first, which raises the reason
        HfApi().dataset_info(DUREADER_REPO, revision=DUREADER_REVISION)
        pattern = DUREADER_PARQUET.format(split=split)
        files = HfFileSystem().glob(pattern)
        if not files:
            raise FileNotFoundError(f"no parquet files found at {pattern}")
        return _load("parquet", data_files={split: [f"hf://{f}" for f in files]}, split=split, limit=limit)

    def bundled_rows():
        return _limited(bundled.load_squad_like()[split], limit)

    return _hub_or_bundled("DuReader", f"QA {split} split", converted, bundled_rows)


def load_mmlu(subject: str = "all", split: str = "test", limit: int | None = None):
    """MMLU (``cais/mmlu``): exam questions with four choices; offline: the bundled MCQ set."""

    def bundled_rows():
        return _limited(bundled.load_mcq(), limit)

    return _hub_or_bundled("MMLU", "multiple-choice questions",
                           lambda: _load("cais/mmlu", subject, split=split, limit=limit), bundled_rows)


def load_beir(name: str = "scifact", limit: int | None = None) -> dict:
    """A BEIR retrieval set as {"corpus", "queries", "qrels"} Datasets; offline: the bundled collection."""

    def from_hub():
        return {
            "corpus": _load(f"BeIR/{name}", "corpus", split="corpus", limit=limit),
            "queries": _load(f"BeIR/{name}", "queries", split="queries"),
            "qrels": _load(f"BeIR/{name}-qrels", split="test"),
        }

    def bundled_rows():
        return {"corpus": _limited(bundled.load_corpus(), limit), "queries": bundled.load_queries(),
                "qrels": bundled.load_qrels()}

    return _hub_or_bundled(f"BEIR {name}", "collection", from_hub, bundled_rows)
