"""Data for every chapter: the bundled collection written for this course, loaders for
the real datasets on the hub (falling back to the bundled ones offline), the official
SQuAD JSON reader and a checksummed download cache."""
from .bundled import (
    load_corpus,
    load_mcq,
    load_multihop,
    load_qrels,
    load_queries,
    load_squad_like,
    paraphrase_query_ids,
    passages,
    qrels_dict,
)
from .controlled import load_controlled
from .download import download
from .hub import load_beir, load_dureader, load_mmlu, load_ms_marco, load_natural_questions, load_squad, load_tydiqa
from .squad_json import load_squad_json, squad_rows

__all__ = [
    "download", "load_beir", "load_controlled", "load_corpus", "load_dureader", "load_mcq", "load_mmlu", "load_ms_marco", "load_multihop",
    "load_natural_questions", "load_qrels", "load_queries", "load_squad", "load_squad_json", "load_squad_like",
    "load_tydiqa", "paraphrase_query_ids", "passages", "qrels_dict", "squad_rows",
]
