"""course_lib.squad (chapter 5): preprocessing and post-processing on the real SQuAD dev
set, planted logits, inference over long contexts, the two training paths on a tiny BERT."""
from __future__ import annotations

import gc
import types
import weakref

import numpy as np
import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForQuestionAnswering, AutoTokenizer
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from course_lib import env, squad
from course_lib.data import load_squad_json
from course_lib.data.features import SQUAD_FEATURES
from course_lib.metrics import normalize_answer
from course_lib.models import packaged_minilm, tiny_bert

SMALL = dict(max_length=48, stride=16)  # windows for the synthetic examples


class PlantedModel(torch.nn.Module):
    """A stand-in QA model: logit 10 on the first and last token of ``target`` ids wherever
    they occur in a row (question included), 0 elsewhere."""

    def __init__(self, target_ids):
        super().__init__()
        self.target = torch.tensor(target_ids)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        start_logits = torch.zeros(input_ids.shape)
        end_logits = torch.zeros(input_ids.shape)
        n = len(self.target)
        for row, col in (input_ids.unfold(1, n, 1) == self.target).all(-1).nonzero().tolist():
            start_logits[row, col] = 10.0
            end_logits[row, col + n - 1] = 10.0
        return QuestionAnsweringModelOutput(start_logits=start_logits, end_logits=end_logits)


class RandomModel(torch.nn.Module):
    """A stand-in QA model with seeded random logits."""

    def __init__(self, seed: int):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        shape = input_ids.shape
        return QuestionAnsweringModelOutput(
            start_logits=torch.randn(shape, generator=self.generator),
            end_logits=torch.randn(shape, generator=self.generator),
        )


def synthetic_examples(n: int = 16) -> Dataset:
    """Short made-up examples: "Where did <name> move to?" -> a city."""
    names = ["Ada", "Boris", "Chen", "Dara", "Emil", "Fatou", "Gus", "Hana"]
    cities = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Perth", "Riga", "Lima"]
    rows = []
    for i in range(n):
        name, city = names[i % len(names)], cities[(3 * i + 1) % len(cities)]
        context = f"{name} grew up near the old harbour. Years later {name} moved to {city} and opened a bakery."
        rows.append(
            {
                "id": f"s{i}",
                "title": "synthetic",
                "context": context,
                "question": f"Where did {name} move to?",
                "answers": {"text": [city], "answer_start": [context.index(city)]},
            }
        )
    return Dataset.from_list(rows, features=SQUAD_FEATURES)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(packaged_minilm())


# ------------------------------------------------------------------ SQuAD dev set
@pytest.fixture(scope="module")
def dev(squad_dev_path):
    return load_squad_json(squad_dev_path)


@pytest.fixture(scope="module")
def dev_train_features(dev, tokenizer):
    return dev.map(
        squad.prepare_train_features, batched=True, remove_columns=dev.column_names, fn_kwargs={"tokenizer": tokenizer}
    )


@pytest.fixture(scope="module")
def dev_validation_features(dev, tokenizer):
    return dev.map(
        squad.prepare_validation_features,
        batched=True,
        remove_columns=dev.column_names,
        fn_kwargs={"tokenizer": tokenizer},
    )


@pytest.fixture(scope="module")
def dev_arrays(dev, dev_train_features, dev_validation_features):
    """Per feature: its example's row, the labels, and the validation offsets as arrays."""
    assert len(dev_train_features) == len(dev_validation_features)  # the same windows
    row = {example_id: k for k, example_id in enumerate(dev["id"])}
    feature = dev_validation_features.with_format("numpy")
    return types.SimpleNamespace(
        example=np.array([row[i] for i in dev_validation_features["example_id"]]),
        start=np.array(dev_train_features["start_positions"]),
        end=np.array(dev_train_features["end_positions"]),
        input_ids=feature["input_ids"][:],
        token_type_ids=feature["token_type_ids"][:],
        offsets=squad._offsets(squad._arrow(dev_validation_features, "offset_mapping", "features")),
    )


def test_every_dev_example_keeps_a_feature(dev, dev_validation_features, dev_arrays):
    assert len(dev) == 10_570
    assert set(dev_validation_features["example_id"]) == set(dev["id"])
    assert np.all(np.diff(dev_arrays.example) >= 0), "features come in example order"
    labelled = np.unique(dev_arrays.example[dev_arrays.start > 0])
    assert len(labelled) == len(dev), "every answer fits in at least one window"


def test_dev_labels_decode_to_the_answer(dev, tokenizer, dev_train_features, dev_arrays):
    """The labelled tokens, decoded, give the answer (both through the same tokenizer, so
    that case, accents, [UNK] and the spaces decode puts around punctuation agree).

    Measured: 10,580 of 10,612 labelled features (99.70%). The other 32 are answers whose
    first or last character falls inside a word piece, which whole-token labels cannot
    match: "gold" in "golden", "8" of "20-18", "Japan" in "Japanese", "20,980" after "£".
    """
    inside = np.flatnonzero(dev_arrays.start > 0)
    ids = dev_arrays.input_ids
    decoded = tokenizer.batch_decode([ids[i, dev_arrays.start[i] : dev_arrays.end[i] + 1] for i in inside])
    answers = [dev[int(k)]["answers"]["text"][0] for k in dev_arrays.example[inside]]
    gold = tokenizer.batch_decode(tokenizer(answers, add_special_tokens=False)["input_ids"])
    rate = np.mean([normalize_answer(d) == normalize_answer(g) for d, g in zip(decoded, gold)])
    print(f"labelled spans that decode to the answer: {rate:.4%} of {len(inside)}")
    assert rate >= 0.995, f"only {rate:.4%} of labelled spans decode to the answer"


def test_dev_features_without_the_answer_are_labelled_cls(dev, dev_arrays):
    offsets, in_context = dev_arrays.offsets
    rows = np.arange(len(offsets))
    first = in_context.argmax(1)
    last = in_context.shape[1] - 1 - in_context[:, ::-1].argmax(1)
    answers = dev.select_columns(["answers"])[:]["answers"]
    start_char = np.array([a["answer_start"][0] for a in answers])[dev_arrays.example]
    end_char = start_char + np.array([len(a["text"][0]) for a in answers])[dev_arrays.example]
    holds = (offsets[rows, first, 0] <= start_char) & (end_char <= offsets[rows, last, 1])
    np.testing.assert_array_equal(dev_arrays.start > 0, holds)
    assert np.all(dev_arrays.end[~holds] == 0)
    assert np.all((dev_arrays.start <= dev_arrays.end) & (dev_arrays.end - dev_arrays.start < 128))


def test_dev_validation_offsets_are_context_only(tokenizer, dev_arrays):
    _, in_context = dev_arrays.offsets
    context_tokens = (dev_arrays.token_type_ids == 1) & (dev_arrays.input_ids != tokenizer.sep_token_id)
    np.testing.assert_array_equal(in_context, context_tokens)


def test_dev_postprocess_returns_context_substrings(dev, dev_validation_features, dev_arrays):
    _, in_context = dev_arrays.offsets
    rng = np.random.default_rng(0)
    start_logits = rng.normal(size=in_context.shape).astype(np.float32) + 5 * in_context
    end_logits = rng.normal(size=in_context.shape).astype(np.float32) + 5 * in_context
    predictions = squad.postprocess(dev, dev_validation_features, start_logits, end_logits)
    assert [p["id"] for p in predictions] == dev["id"]
    texts = [p["prediction_text"] for p in predictions]
    assert all(text in context for text, context in zip(texts, dev["context"]))
    assert all(text == text.strip() for text in texts)
    assert np.mean([bool(t) for t in texts]) > 0.99


def test_dev_planted_logits_give_the_planted_answer(dev, dev_validation_features, dev_arrays):
    offsets, in_context = dev_arrays.offsets
    start_logits = np.zeros(in_context.shape, dtype=np.float32)
    end_logits = np.zeros(in_context.shape, dtype=np.float32)
    planted = np.flatnonzero(dev_arrays.start > 0)
    start_logits[planted, dev_arrays.start[planted]] = 10
    end_logits[planted, dev_arrays.end[planted]] = 10
    # some dev answers are longer than the default max_answer_length=30 tokens
    predictions = squad.postprocess(dev, dev_validation_features, start_logits, end_logits, max_answer_length=384)
    contexts = dev["context"]
    expected = {}
    for f in planted:
        k = int(dev_arrays.example[f])  # datasets 4.0 (the lower bound) indexes a column by int, not numpy.int64
        text = contexts[k][offsets[f, dev_arrays.start[f], 0] : offsets[f, dev_arrays.end[f], 1]]
        assert expected.setdefault(k, text) == text  # every window labels the same span
    assert len(expected) == len(dev)
    assert all(predictions[k]["prediction_text"] == text for k, text in expected.items())


# ------------------------------------------------------------------ small examples by hand
def test_context_span_and_label_positions_by_hand():
    # [CLS] who ? [SEP] ada lived in rome [SEP] [PAD]; context "Ada lived in Rome"
    sequence_ids = [None, 0, 0, None, 1, 1, 1, 1, None, None]
    offsets = [(0, 0), (0, 3), (3, 4), (0, 0), (0, 3), (4, 9), (10, 12), (13, 17), (0, 0), (0, 0)]
    assert squad.context_span(sequence_ids) == (4, 7)
    assert squad.label_positions(offsets, sequence_ids, 13, 17) == (7, 7)  # "Rome"
    assert squad.label_positions(offsets, sequence_ids, 4, 12) == (5, 6)  # "lived in"
    assert squad.label_positions(offsets, sequence_ids, 5, 9) == (5, 5)  # "ived": inside one token
    assert squad.label_positions(offsets, sequence_ids, 13, 20) == (0, 0)  # runs past the window


def test_best_span_by_hand():
    offsets = [None, None, (0, 3), (4, 9), (10, 12), None]
    start = [9.0, 0.0, 1.0, 3.0, 0.5, 8.0]  # the best starts are [CLS] and [SEP]: not context
    end = [9.0, 0.0, 0.0, 0.2, 2.0, 8.0]
    assert squad.best_span(start, end, offsets) == (3, 4, 5.0)
    assert squad.best_span(start, end, offsets, max_answer_length=1) == (3, 3, 3.2)
    assert squad.best_span(start, end, offsets, n_best=2) is None  # only [CLS] and [SEP] considered


# ------------------------------------------------------------------ inference
def long_context(answer_sentence: str, filler_sentences: int = 60) -> str:
    filler = " ".join(f"Sentence {i} of the filler says nothing in particular." for i in range(filler_sentences))
    return f"{filler} {answer_sentence} The end."


def test_answer_finds_the_answer_in_a_later_window(tokenizer):
    context = long_context("The keeper painted the lighthouse violet last spring.")
    question = "What colour is the lighthouse?"
    features = squad.prepare_validation_features(
        {"id": ["q"], "question": [question], "context": [context]}, tokenizer
    )
    assert len(features["input_ids"]) >= 2
    first_window_end = max(o[1] for o in features["offset_mapping"][0] if o is not None)
    assert context.index("violet") > first_window_end, "the answer must lie beyond the first window"

    model = PlantedModel(tokenizer("violet", add_special_tokens=False)["input_ids"])
    result = squad.answer(question, context, model, tokenizer)
    assert result["answer"] == "violet"
    assert context[result["start"] : result["end"]] == "violet"
    assert 0.5 < result["score"] <= 1.0


def test_answer_ignores_question_tokens_and_can_be_empty(tokenizer):
    model = PlantedModel(tokenizer("lighthouse", add_special_tokens=False)["input_ids"])
    questions = ["Where is the lighthouse?", "Where is the lighthouse?"]
    contexts = ["The lighthouse stands on the cliff.", "A quiet harbour with no tower at all."]
    first, second = squad.answer_batch(questions, contexts, model, tokenizer, n_best=2)
    assert first["answer"] == "lighthouse" and contexts[0][first["start"] : first["end"]] == "lighthouse"
    # the only planted span is in the question; the next best start and end are both [CLS]
    assert second == {"answer": "", "score": 0.0, "start": 0, "end": 0}


def test_predict_trimmed_batches_match_full_padding(tokenizer):
    env.set_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_bert()).eval()
    examples = synthetic_examples(6)
    features = squad.prepare_validation_features(examples[:], tokenizer, **SMALL)
    start_logits, end_logits = squad.predict(model, features, batch_size=4)
    inputs = {k: torch.tensor(features[k]) for k in squad.MODEL_INPUTS}
    with torch.no_grad():
        full = model(**inputs)
    real = inputs["attention_mask"].bool().numpy()
    np.testing.assert_allclose(start_logits[real], full.start_logits.numpy()[real], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(end_logits[real], full.end_logits.numpy()[real], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ properties
@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    length=st.integers(1, 24),
    n_best=st.integers(1, 30),
    max_answer_length=st.integers(1, 8),
)
def test_best_span_is_the_best_valid_candidate(data, length, n_best, max_answer_length):
    logits = st.lists(st.floats(-50, 50), min_size=length, max_size=length, unique=True)
    start, end = data.draw(logits), data.draw(logits)
    in_context = data.draw(st.lists(st.booleans(), min_size=length, max_size=length))
    offsets = [(i, i + 1) if keep else None for i, keep in enumerate(in_context)]
    top_starts = sorted(range(length), key=lambda i: -start[i])[:n_best]
    top_ends = sorted(range(length), key=lambda i: -end[i])[:n_best]
    candidates = [
        start[s] + end[e]
        for s in top_starts
        for e in top_ends
        if in_context[s] and in_context[e] and 0 <= e - s < max_answer_length
    ]
    found = squad.best_span(start, end, offsets, n_best, max_answer_length)
    if not candidates:
        assert found is None
        return
    s, e, score = found
    assert in_context[s] and in_context[e] and 0 <= e - s < max_answer_length
    assert s in top_starts and e in top_ends
    assert score == pytest.approx(start[s] + end[e]) == pytest.approx(max(candidates))


@settings(max_examples=100, deadline=None)
@given(
    widths=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=30),
    question_tokens=st.integers(1, 5),
    data=st.data(),
)
def test_label_positions_match_a_brute_force_oracle(widths, question_tokens, data):
    """Context tokens of random widths separated by random gaps; any answer char range."""
    context, position = [], 0
    for gap, width in widths:
        context.append((position + gap, position + gap + width))
        position += gap + width
    offsets = [(0, 0)] + [(0, 1)] * question_tokens + [(0, 0)] + context + [(0, 0)]
    sequence_ids = [None] + [0] * question_tokens + [None] + [1] * len(context) + [None]
    start_char = data.draw(st.integers(0, position))
    end_char = data.draw(st.integers(start_char, position + 1))
    first = question_tokens + 2
    ids = range(first, first + len(context))
    if offsets[first][0] <= start_char and end_char <= offsets[ids[-1]][1]:
        expected = (max(i for i in ids if offsets[i][0] <= start_char), min(i for i in ids if offsets[i][1] >= end_char))
    else:
        expected = (0, 0)
    assert squad.label_positions(offsets, sequence_ids, start_char, end_char) == expected


WORDS = ["alpha", "beta", "lighthouse", "river", "1907", "x-ray", "naïve", "co-op", "o'clock", "42,000", "a", "the"]


@settings(max_examples=40, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=120),
    seed=st.integers(0, 2**16),
    max_answer_length=st.integers(1, 6),
)
def test_answers_are_short_context_substrings(tokenizer, words, seed, max_answer_length):
    context = " ".join(words)
    result = squad.answer(
        "what is it?", context, RandomModel(seed), tokenizer, max_length=32, stride=8, max_answer_length=max_answer_length
    )
    assert context[result["start"] : result["end"]] == result["answer"]
    assert result["answer"] and 0 < result["score"] <= 1
    offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    tokens = [o for o in offsets if result["start"] <= o[0] and o[1] <= result["end"]]
    assert 1 <= len(tokens) <= max_answer_length


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda b: b["question"].__setitem__(1, "  "), ValueError, r"examples\['question'\]\[1\] must be a non-empty"),
        (lambda b: b["context"].__setitem__(0, 42), TypeError, r"examples\['context'\]\[0\] must be a str"),
        (lambda b: b.pop("answers"), ValueError, r"examples must have a 'answers' column"),
        (lambda b: b["question"].__setitem__(2, "why " * 40), ValueError, r"examples\['question'\]\[2\] is \d+ tokens"),
    ],
)
def test_prepare_rejects_bad_examples(tokenizer, change, error, message):
    batch = synthetic_examples(4)[:]
    change(batch)
    with pytest.raises(error, match=message):
        squad.prepare_train_features(batch, tokenizer, **SMALL)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(max_length=16, stride=16), "max_length must be greater than stride"),
        (dict(max_length=48, stride=-1), "stride must be an int >= 0"),
        (dict(max_length=0, stride=0), "max_length must be an int >= 1"),
    ],
)
def test_prepare_rejects_bad_windows(tokenizer, options, message):
    with pytest.raises(ValueError, match=message):
        squad.prepare_validation_features(synthetic_examples(2)[:], tokenizer, **options)


def test_prepare_needs_a_fast_tokenizer():
    with pytest.raises(TypeError, match="tokenizer must be a fast tokenizer"):
        squad.prepare_train_features(synthetic_examples(2)[:], types.SimpleNamespace(is_fast=False))


def test_postprocess_rejects_bad_arguments(tokenizer):
    examples = synthetic_examples(2)
    features = squad.prepare_validation_features(examples[:], tokenizer, **SMALL)
    logits = np.zeros((len(features["input_ids"]), SMALL["max_length"]), dtype=np.float32)
    with pytest.raises(ValueError, match="n_best must be an int >= 1"):
        squad.postprocess(examples, features, logits, logits, n_best=0)
    with pytest.raises(ValueError, match="max_answer_length must be an int >= 1"):
        squad.postprocess(examples, features, logits, logits, max_answer_length=0)
    with pytest.raises(ValueError, match=r"start_logits must have shape \(n_features, length\)"):
        squad.postprocess(examples, features, logits[:1], logits)
    with pytest.raises(ValueError, match="end_logits must not contain NaN"):
        squad.postprocess(examples, features, logits, np.full_like(logits, np.nan))
    with pytest.raises(ValueError, match="features must have a 'example_id' column"):
        squad.postprocess(examples, {"offset_mapping": features["offset_mapping"]}, logits, logits)


def test_helpers_reject_bad_arguments():
    with pytest.raises(ValueError, match="sequence_ids must contain context tokens"):
        squad.context_span([None, 0, 0, None])
    with pytest.raises(ValueError, match="offsets must be .* with no None"):
        squad.label_positions([None, (0, 2)], [None, 1], 0, 2)
    with pytest.raises(ValueError, match="end_char must be >= start_char"):
        squad.label_positions([(0, 0), (0, 2)], [None, 1], 2, 0)
    with pytest.raises(ValueError, match="one entry per token"):
        squad.best_span([0.0, 1.0], [0.0], [None, (0, 1)])


def test_answer_rejects_bad_input(tokenizer):
    model = RandomModel(0)
    with pytest.raises(ValueError, match="question must be a non-empty string"):
        squad.answer("", "Some context.", model, tokenizer)
    with pytest.raises(TypeError, match="context must be a str, got int"):
        squad.answer("Why?", 42, model, tokenizer)
    with pytest.raises(TypeError, match="questions must be a list of str"):
        squad.answer_batch("Why?", ["Some context."], model, tokenizer)
    with pytest.raises(ValueError, match="questions and contexts must have one length"):
        squad.answer_batch(["Why?"], ["a", "b"], model, tokenizer)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        squad.answer("Why?", "Some context.", model, tokenizer, batch_size=0)


def test_training_rejects_bad_arguments(tokenizer, tmp_path):
    model = RandomModel(0)
    features = synthetic_examples(2).map(
        squad.prepare_train_features, batched=True, remove_columns=list(SQUAD_FEATURES), fn_kwargs={"tokenizer": tokenizer, **SMALL}
    )
    with pytest.raises(TypeError, match="train_features must be a datasets.Dataset"):
        squad.train_with_accelerate(model, tokenizer, features[:], tmp_path)
    with pytest.raises(ValueError, match="train_features must have the columns"):
        squad.train_with_trainer(model, tokenizer, features.remove_columns("end_positions"), tmp_path)
    with pytest.raises(ValueError, match="eval_examples and eval_features go together"):
        squad.train_with_accelerate(model, tokenizer, features, tmp_path, eval_examples=synthetic_examples(2))
    with pytest.raises(ValueError, match="mixed_precision must be"):
        squad.train_with_accelerate(model, tokenizer, features, tmp_path, mixed_precision="fp8")
    with pytest.raises(ValueError, match="resume_from_checkpoint must be a checkpoint-epoch-N folder"):
        squad.train_with_accelerate(model, tokenizer, features, tmp_path, resume_from_checkpoint=tmp_path)


# ------------------------------------------------------------------ training on the tiny BERT
@pytest.fixture(scope="module")
def train_set(tokenizer):
    examples = synthetic_examples(16)
    features = examples.map(
        squad.prepare_train_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, **SMALL},
    )
    return examples, features


def tiny_model():
    env.set_seed(0)
    return AutoModelForQuestionAnswering.from_pretrained(tiny_bert())


def _checkpointing(model) -> bool:
    """Whether activation checkpointing is on (transformers 5.0, Kaggle's, has only the old name)."""
    name = "is_activation_checkpointing" if hasattr(model, "is_activation_checkpointing") else "is_gradient_checkpointing"
    return getattr(model, name)


def parameters(model) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


QUIET = dict(disable_tqdm=True, logging_steps=1, save_strategy="no")


def test_trainer_loss_falls_and_model_round_trips(tokenizer, train_set, tmp_path):
    _, features = train_set
    trainer = squad.train_with_trainer(
        tiny_model(), tokenizer, features, tmp_path, max_steps=12, learning_rate=3e-3, batch_size=4, **QUIET
    )
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 12 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses

    reloaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    examples = train_set[0].select(range(4))
    validation = squad.prepare_validation_features(examples[:], reloaded_tokenizer, **SMALL)
    logits = squad.predict(trainer.model, validation)
    for got, want in zip(squad.predict(reloaded, validation), logits):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # the course's way: trainer.predict (trimmed batches, padded with -100 between them) then postprocess
    start_logits, end_logits = trainer.predict(Dataset.from_dict(validation)).predictions
    assert squad.postprocess(examples, validation, start_logits, end_logits) == squad.postprocess(
        examples, validation, *logits
    )


def test_trainer_resumes_from_a_checkpoint(tokenizer, train_set, tmp_path):
    _, features = train_set
    run = dict(max_steps=4, learning_rate=3e-3, batch_size=4, disable_tqdm=True, save_strategy="steps", save_steps=2,
               save_total_limit=2)
    straight = squad.train_with_trainer(tiny_model(), tokenizer, features, tmp_path / "straight", **run)
    resumed = squad.train_with_trainer(
        tiny_model(), tokenizer, features, tmp_path / "resumed",
        resume_from_checkpoint=str(tmp_path / "straight" / "checkpoint-2"), **run,
    )
    assert resumed.state.global_step == 4
    np.testing.assert_allclose(parameters(resumed.model), parameters(straight.model), rtol=1e-5, atol=1e-6)


def test_accelerate_loop_trains_evaluates_and_saves(tokenizer, train_set, tmp_path):
    examples, features = train_set
    validation = examples.map(
        squad.prepare_validation_features,
        batched=True,
        remove_columns=examples.column_names,
        fn_kwargs={"tokenizer": tokenizer, **SMALL},
    )
    model, history = squad.train_with_accelerate(
        tiny_model(), tokenizer, features, tmp_path, eval_examples=examples, eval_features=validation,
        num_train_epochs=3, learning_rate=3e-3, batch_size=4, mixed_precision="no",
    )
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], history
    assert all(0 <= h["exact_match"] <= h["f1"] <= 100 for h in history)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-epoch-3"]

    reloaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).vocab == tokenizer.vocab
    for got, want in zip(squad.predict(reloaded, validation), squad.predict(model, validation)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_accelerate_loop_resumes_after_a_crash(tokenizer, train_set, tmp_path, monkeypatch):
    examples, features = train_set
    run = dict(num_train_epochs=2, learning_rate=3e-3, batch_size=4, mixed_precision="no")
    straight, _ = squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "straight", **run)

    calls = []

    def evaluate_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kernel dies in epoch 2, before its checkpoint
        return {"exact_match": 0.0, "f1": 0.0}

    monkeypatch.setattr(squad, "evaluate_model", evaluate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        squad.train_with_accelerate(
            tiny_model(), tokenizer, features, tmp_path / "crashed", eval_examples=examples, eval_features=features, **run
        )
    checkpoint = tmp_path / "crashed" / "checkpoint-epoch-1"
    assert checkpoint.is_dir()
    monkeypatch.undo()

    resumed, history = squad.train_with_accelerate(
        tiny_model(), tokenizer, features, tmp_path / "resumed", resume_from_checkpoint=checkpoint, **run
    )
    assert [h["epoch"] for h in history] == [1, 2]
    np.testing.assert_allclose(parameters(resumed), parameters(straight), rtol=1e-5, atol=1e-6)


def test_accelerate_loop_after_a_trainer_with_another_precision(tokenizer, train_set, tmp_path):
    """A Trainer leaves accelerate's state at mixed_precision="no"; a bf16 loop must still start."""
    _, features = train_set
    squad.train_with_trainer(tiny_model(), tokenizer, features, tmp_path / "trainer", max_steps=1, **QUIET)
    _, history = squad.train_with_accelerate(
        tiny_model(), tokenizer, features, tmp_path / "loop", num_train_epochs=1, batch_size=8, mixed_precision="bf16"
    )
    assert np.isfinite(history[0]["loss"])


def test_activation_checkpointing_gives_the_same_training_in_both_paths(tokenizer, train_set, tmp_path):
    """Recomputing activations in the backward pass (less memory, chapter 5 on a 2 GB Binder) changes no weight."""
    _, features = train_set
    run = dict(num_train_epochs=1, learning_rate=3e-3, batch_size=4, mixed_precision="no")
    plain, _ = squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "plain", **run)
    checkpointed, _ = squad.train_with_accelerate(
        tiny_model(), tokenizer, features, tmp_path / "checkpointed", activation_checkpointing=True, **run
    )
    assert _checkpointing(checkpointed) and not _checkpointing(plain)
    np.testing.assert_allclose(parameters(checkpointed), parameters(plain), rtol=1e-5, atol=1e-6)

    trainer_run = dict(max_steps=3, learning_rate=3e-3, batch_size=4, **QUIET)
    by_trainer = squad.train_with_trainer(tiny_model(), tokenizer, features, tmp_path / "t1", **trainer_run)
    by_trainer_checkpointed = squad.train_with_trainer(
        tiny_model(), tokenizer, features, tmp_path / "t2", activation_checkpointing=True, **trainer_run
    )
    assert _checkpointing(by_trainer_checkpointed.model)
    np.testing.assert_allclose(parameters(by_trainer_checkpointed.model), parameters(by_trainer.model),
                               rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ chapter 5 survives a disconnect
@pytest.mark.parametrize("variables, folder, expected", [
    ({"COLAB_RELEASE_TAG": "r"}, "drive", "drive/qair-course/05_squad_finetuning/cpu"),
    ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "kaggle", "kaggle/qair-course/05_squad_finetuning/cpu"),
    ({"COLAB_RELEASE_TAG": "r"}, None, "cache/05_squad_finetuning/cpu"),   # Drive not mounted
    ({}, None, "cache/05_squad_finetuning/cpu"),
])
def test_output_dir_is_where_the_next_session_finds_it(tmp_path, monkeypatch, variables, folder, expected):
    for name in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(squad, "COLAB_DRIVE", tmp_path / "drive")
    monkeypatch.setattr(squad, "KAGGLE_WORKING", tmp_path / "kaggle")
    if folder:
        (tmp_path / folder).mkdir()
    assert squad.output_dir("cpu") == tmp_path / expected
    with pytest.raises(TypeError, match="profile must be a str"):
        squad.output_dir(None)


def test_last_checkpoint_is_the_latest_complete_one(tmp_path):
    assert squad.last_checkpoint(tmp_path / "missing") is None
    for name, state in [("checkpoint-9", "trainer_state.json"), ("checkpoint-10", "trainer_state.json"),
                        ("checkpoint-12", None), ("checkpoint-epoch-3", "loop_state.json"), ("checkpoint-x", None)]:
        (tmp_path / name).mkdir()
        if state:
            (tmp_path / name / state).write_text("{}")
    assert squad.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"   # 12 has no state: written half-way
    assert squad.last_checkpoint(tmp_path / "checkpoint-epoch-3") is None


class _Disconnect(Exception):
    """The session ends (Colab's idle timeout, a closed Kaggle tab)."""


def test_trainer_rerun_in_the_same_folder_resumes_to_the_same_weights(tokenizer, train_set, tmp_path):
    from transformers import TrainerCallback

    _, features = train_set
    run = dict(num_train_epochs=2, learning_rate=3e-3, batch_size=4, disable_tqdm=True)
    straight = squad.train_with_trainer(tiny_model(), tokenizer, features, tmp_path / "straight", **run)

    class DisconnectAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise _Disconnect

    with pytest.raises(_Disconnect):
        _train_with_callback(tokenizer, features, tmp_path / "out", DisconnectAfterFirstCheckpoint(), run)
    checkpoint = squad.last_checkpoint(tmp_path / "out")
    assert checkpoint is not None and not (tmp_path / "out" / "model.safetensors").exists()

    resumed = squad.train_with_trainer(tiny_model(), tokenizer, features, tmp_path / "out",
                                       resume_from_checkpoint=checkpoint, **run)
    assert resumed.state.global_step == straight.state.global_step
    np.testing.assert_allclose(parameters(resumed.model), parameters(straight.model), rtol=1e-5, atol=1e-6)


def _train_with_callback(tokenizer, features, folder, callback, run):
    """train_with_trainer with a callback added to the Trainer it builds."""
    from transformers import Trainer

    original = Trainer.__init__

    def with_callback(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_callback(callback)

    Trainer.__init__ = with_callback
    try:
        return squad.train_with_trainer(tiny_model(), tokenizer, features, folder, **run)
    finally:
        Trainer.__init__ = original


def test_accelerate_rerun_in_the_same_folder_resumes_to_the_same_weights(tokenizer, train_set, tmp_path, monkeypatch):
    _, features = train_set
    run = dict(num_train_epochs=2, learning_rate=3e-3, batch_size=4, mixed_precision="no")
    straight, straight_history = squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "a", **run)

    saves = []
    original = squad.Path.write_text

    def disconnect_after_first_checkpoint(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if self.name == "loop_state.json":
            saves.append(self)
            raise _Disconnect
        return result

    monkeypatch.setattr(squad.Path, "write_text", disconnect_after_first_checkpoint)
    with pytest.raises(_Disconnect):
        squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "b", **run)
    monkeypatch.undo()
    assert squad.last_checkpoint(tmp_path / "b") == tmp_path / "b" / "checkpoint-epoch-1"

    resumed, history = squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "b",
                                                   resume_from_checkpoint=squad.last_checkpoint(tmp_path / "b"), **run)
    assert [h["epoch"] for h in history] == [1, 2]
    np.testing.assert_allclose(parameters(resumed), parameters(straight), rtol=1e-5, atol=1e-6)
    # a rerun after the training finished trains nothing and returns the same model and history
    again, again_history = squad.train_with_accelerate(tiny_model(), tokenizer, features, tmp_path / "b",
                                                       resume_from_checkpoint=squad.last_checkpoint(tmp_path / "b"), **run)
    assert again_history == history
    np.testing.assert_allclose(parameters(again), parameters(straight), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ memory-lean training
def test_gradient_accumulation_gives_the_weights_of_the_larger_batch(tokenizer, train_set, tmp_path):
    """Batches of 2 with 2 accumulation steps train as batches of 4 (without dropout, whose noise
    depends on the batch shape), in both paths. The features are full windows in whole batches: the
    loss spans a batch's width, which trimming its padding sets, and a last partial batch would weigh
    its rows differently."""
    windows = dict(max_length=24, stride=8)
    full = train_set[0].map(squad.prepare_train_features, batched=True, remove_columns=train_set[0].column_names,
                            fn_kwargs={"tokenizer": tokenizer, **windows})
    full = full.filter(lambda f: sum(f["attention_mask"]) == windows["max_length"])
    assert len(full) >= 8
    features = full.select(range(len(full) // 4 * 4))

    def model():
        env.set_seed(0)
        return AutoModelForQuestionAnswering.from_pretrained(tiny_bert(), hidden_dropout_prob=0.0,
                                                             attention_probs_dropout_prob=0.0)

    run = dict(num_train_epochs=1, learning_rate=3e-3, mixed_precision="no")
    whole, _ = squad.train_with_accelerate(model(), tokenizer, features, tmp_path / "whole", batch_size=4, **run)
    halves, _ = squad.train_with_accelerate(model(), tokenizer, features, tmp_path / "halves", batch_size=2,
                                            gradient_accumulation_steps=2, **run)
    def weights(trained):
        # qa_outputs.bias has a zero gradient in exact arithmetic (a softmax is shift-invariant): Adam turns
        # its rounding noise into steps of size lr, so it is left out; Adam also magnifies rounding on
        # near-zero gradients elsewhere, hence atol 1e-3
        return torch.cat([p.detach().flatten() for n, p in trained.named_parameters() if n != "qa_outputs.bias"]).numpy()

    np.testing.assert_allclose(weights(halves), weights(whole), rtol=1e-4, atol=1e-3)
    unaccumulated, _ = squad.train_with_accelerate(model(), tokenizer, features, tmp_path / "two", batch_size=2, **run)
    assert not np.allclose(weights(unaccumulated), weights(whole), rtol=1e-4, atol=1e-3)

    trainer_run = dict(num_train_epochs=1, learning_rate=3e-3, **QUIET)
    by_4 = squad.train_with_trainer(model(), tokenizer, features, tmp_path / "t4", batch_size=4, **trainer_run)
    by_2x2 = squad.train_with_trainer(model(), tokenizer, features, tmp_path / "t22", batch_size=2,
                                      gradient_accumulation_steps=2, **trainer_run)
    np.testing.assert_allclose(weights(by_2x2.model), weights(by_4.model), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be an int >= 1"):
        squad.train_with_accelerate(model(), tokenizer, features, tmp_path, gradient_accumulation_steps=0)


def test_saved_activation_bytes_counts_the_attention_maps_that_dropout_keeps(tokenizer, train_set):
    """With attention dropout the attention falls back to materialised L x L maps, kept for the backward pass
    (the probabilities and what the dropout made of them: at least two maps of float32 per layer and head);
    without it, PyTorch's fused attention keeps none. Counting runs no backward pass and changes no weight."""
    windows = dict(max_length=24, stride=8)
    full = train_set[0].map(squad.prepare_train_features, batched=True, remove_columns=train_set[0].column_names,
                            fn_kwargs={"tokenizer": tokenizer, **windows})
    full = full.filter(lambda f: sum(f["attention_mask"]) == windows["max_length"])

    def model(dropout):
        env.set_seed(0)
        return AutoModelForQuestionAnswering.from_pretrained(tiny_bert(), attention_probs_dropout_prob=dropout)

    with_dropout, fused = model(0.1), model(0.0)
    fused.eval()
    before = parameters(fused)
    config = fused.config
    for n in (1, 4):
        batch = full.select(range(n))
        maps = config.num_hidden_layers * n * config.num_attention_heads * windows["max_length"] ** 2 * 4
        kept, lean = squad.saved_activation_bytes(with_dropout, batch), squad.saved_activation_bytes(fused, batch)
        assert kept - lean >= 2 * maps
        assert 0 < lean
    assert not fused.training and all(p.grad is None for p in fused.parameters())
    np.testing.assert_array_equal(parameters(fused), before)
    # the activations are freed afterwards: a saved one (the input of a layer's output projection) is gone
    activations = []
    hook = fused.bert.encoder.layer[0].intermediate.register_forward_hook(
        lambda module, inputs, output: activations.append(weakref.ref(output)))
    squad.saved_activation_bytes(fused, full.select(range(2)))
    hook.remove()
    gc.collect()
    assert len(activations) == 1 and activations[0]() is None
    with pytest.raises(ValueError, match="train_features must hold at least one feature"):
        squad.saved_activation_bytes(fused, full.select([]))
    with pytest.raises(TypeError, match="train_features must be a datasets.Dataset"):
        squad.saved_activation_bytes(fused, {"input_ids": [[1, 2]]})
