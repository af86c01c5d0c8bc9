"""SQuAD v1.1 exact match and F1 as a local ``evaluate`` metric (chapter 5).

``evaluate.load(course_lib.metrics.squad_metric_path())`` loads it offline, where
``evaluate.load("squad")`` needs the hub; same inputs, same numbers (0-100 scale).
"""
import datasets
import evaluate

from course_lib.metrics import squad_score

_DESCRIPTION = """SQuAD v1.1 exact match and token F1 with the official answer normalisation
(lower-case, no punctuation, no articles a/an/the, single spaces), best over the references."""

_CITATION = """@inproceedings{rajpurkar-etal-2016-squad,
  title = {{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text},
  author = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of EMNLP},
  year = {2016}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str}
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}
Returns:
    {"exact_match": float, "f1": float}, percentages (0-100); a reference without a
    prediction scores 0.
Example:
    >>> squad = evaluate.load(squad_metric_path())
    >>> squad.compute(predictions=[{"id": "q1", "prediction_text": "the Eiffel Tower"}],
    ...               references=[{"id": "q1", "answers": {"text": ["Eiffel Tower"], "answer_start": [0]}}])
    {'exact_match': 100.0, 'f1': 100.0}
"""


class SquadV1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references):
        return squad_score(predictions, references)
