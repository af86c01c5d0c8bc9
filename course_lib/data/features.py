"""``datasets.Features`` shared by the bundled loaders and their hub counterparts."""
from datasets import Features, Sequence, Value

SQUAD_FEATURES = Features(
    {
        "id": Value("string"),
        "title": Value("string"),
        "context": Value("string"),
        "question": Value("string"),
        "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")}),
    }
)
