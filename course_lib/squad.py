"""Extractive question answering on SQuAD (chapter 5), after the Hugging Face course.

A question and a long context do not fit in one model input, so the context is cut
into windows of ``max_length`` tokens that overlap by ``stride`` tokens; each window
is a *feature*. A training feature is labelled with the answer's start and end token,
or ``(0, 0)`` (the ``[CLS]`` token) when the answer is not inside its window. A
prediction scores each span ``(s, e)`` of a feature by
``start_logits[s] + end_logits[e]`` and keeps the best valid span over all the
features of an example.

Labels come from a binary search in each feature's offsets; post-processing scores
the candidate spans of all features at once with NumPy (reading ``datasets`` columns
through Arrow). Training runs the ``Trainer`` or a custom ``accelerate`` loop. Batches
are trimmed of the padding columns all their rows share, so short contexts train and
predict faster than their ``max_length`` padding suggests.
"""
from __future__ import annotations

import bisect
import json
import math
import shutil
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import env
from .checks import check_int, check_text
from .ranking import top_k

MAX_LENGTH = 384
STRIDE = 128
N_BEST = 20
MAX_ANSWER_LENGTH = 30
EVAL_BATCH = 8  # windows per forward pass in evaluation: 32 windows of 384 tokens hold 350 MB more of attention maps
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
LABELS = ("start_positions", "end_positions")
_OFFSETS = pa.list_(pa.list_(pa.int64()))  # the Arrow type of offset_mapping


# ---------------------------------------------------------------- argument checks




def _columns(data) -> list[str]:
    return list(data.column_names if hasattr(data, "column_names") else data.keys())


def _column(data, name: str, what: str) -> list:
    """Column ``name`` as a Python list (through Arrow for a ``datasets.Dataset``: row by row is slow)."""
    if hasattr(data, "with_format"):
        return _arrow(data, name, what).to_pylist()
    if name not in _columns(data):
        raise ValueError(f"{what} must have a {name!r} column, got columns {_columns(data)}")
    return list(data[name])


def _arrow(data, name: str, what: str) -> pa.Array:
    """Column ``name`` of a ``datasets.Dataset`` (no copy) or of a dict of lists, as one Arrow array."""
    if name not in _columns(data):
        raise ValueError(f"{what} must have a {name!r} column, got columns {_columns(data)}")
    if hasattr(data, "with_format"):
        column = data.with_format("arrow")[name]
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return pa.array(data[name], type=_OFFSETS if name == "offset_mapping" else None)


def _same_length_rows(column: pa.Array, name: str) -> int:
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        raise ValueError(f"{name} rows must all have one length (prepare_*_features pads them to max_length)")
    return int(lengths[0]) if len(lengths) else 0


def _matrix(column: pa.Array, name: str) -> np.ndarray:
    """A list<int> Arrow column as an ``(n_features, length)`` int64 array."""
    width = _same_length_rows(column, name)
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.int64).reshape(len(column), width)


def _offsets(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``offset_mapping`` as ``(n_features, length, 2)`` char offsets and an ``in_context`` mask
    (False where the offset is None)."""
    width = _same_length_rows(column, "offset_mapping")
    pairs = column.flatten()
    in_context = pairs.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros((len(pairs), 2), np.int64)
    offsets[in_context] = pairs.flatten().to_numpy(zero_copy_only=False).reshape(-1, 2)
    return offsets.reshape(len(column), width, 2), in_context.reshape(len(column), width)


# ---------------------------------------------------------------- preprocessing
def context_span(sequence_ids) -> tuple[int, int]:
    """First and last token index of the context (sequence id 1) in one feature (chapter 5)."""
    ids = list(sequence_ids)
    if 1 not in ids:
        raise ValueError("sequence_ids must contain context tokens (sequence id 1), got none")
    return ids.index(1), len(ids) - 1 - ids[::-1].index(1)


def _label(offsets, first: int, last: int, start_char: int, end_char: int) -> tuple[int, int]:
    """Token labels of one feature by binary search over its context offsets (in text order):

    start = the last context token whose offset start <= start_char,
    end   = the first context token whose offset end >= end_char,
    (0, 0) unless offsets[first][0] <= start_char and end_char <= offsets[last][1].
    """
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = bisect.bisect_right(offsets, start_char, first, last + 1, key=itemgetter(0)) - 1
    end = bisect.bisect_left(offsets, end_char, first, last + 1, key=itemgetter(1))
    return start, end


def label_positions(offsets, sequence_ids, start_char: int, end_char: int) -> tuple[int, int]:
    """Token labels ``(start, end)`` of the answer ``context[start_char:end_char]`` in one training
    feature (chapter 5); ``(0, 0)`` when the answer is not fully inside the feature's context."""
    for name, value in (("start_char", start_char), ("end_char", end_char)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if end_char < start_char:
        raise ValueError(f"end_char must be >= start_char, got start_char={start_char}, end_char={end_char}")
    if any(o is None for o in offsets):
        raise ValueError("offsets must be (start, end) pairs with no None (a training feature's offset_mapping)")
    if np.shape(offsets) != (len(sequence_ids), 2):
        raise ValueError(f"offsets must be {len(sequence_ids)} (start, end) pairs, one per token, got shape {np.shape(offsets)}")
    return _label(np.asarray(offsets).tolist(), *context_span(sequence_ids), start_char, end_char)


def _tokenize(examples, tokenizer, max_length: int, stride: int):
    """Question/context windows with offsets, after checking every argument."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tokenizer must be a fast tokenizer (is_fast=True): offsets and sequence_ids need one")
    check_int(max_length, "max_length", 1)
    check_int(stride, "stride", 0)
    if max_length <= stride:
        raise ValueError(f"max_length must be greater than stride, got max_length={max_length}, stride={stride}")
    questions = _column(examples, "question", "examples")
    contexts = _column(examples, "context", "examples")
    for i, (question, context) in enumerate(zip(questions, contexts)):
        check_text(question, f"examples['question'][{i}]", blank=False)
        check_text(context, f"examples['context'][{i}]", blank=False)
    questions = [q.strip() for q in questions]
    special = tokenizer.num_special_tokens_to_add(pair=True)
    # A window must keep more than `stride` context tokens. A question has at most 2 tokens per
    # UTF-8 byte (WordPiece, BPE, SentencePiece), so only the long ones need counting.
    room = max_length - special - stride
    suspects = [i for i, q in enumerate(questions) if 2 * len(q.encode("utf-8")) >= room]
    counted = tokenizer([questions[i] for i in suspects], add_special_tokens=False)["input_ids"] if suspects else []
    for i, ids in zip(suspects, counted):
        if len(ids) >= room:
            raise ValueError(
                f"examples['question'][{i}] is {len(ids)} tokens long: with max_length={max_length} that leaves "
                f"{max_length - special - len(ids)} tokens per window for the context, which must be more than "
                f"stride={stride}; raise max_length or lower stride"
            )
    return tokenizer(
        questions,
        contexts,
        max_length=max_length,
        truncation="only_second",
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def _context_spans(inputs) -> list[tuple[int, int]]:
    return [context_span(inputs.sequence_ids(i)) for i in range(len(inputs["input_ids"]))]


def prepare_train_features(examples, tokenizer, max_length: int = MAX_LENGTH, stride: int = STRIDE) -> dict:
    """Training features of a batch of SQuAD examples (chapter 5).

    Each example gives one or more windows ``[CLS] question [SEP] context part [SEP]``,
    padded to ``max_length`` and overlapping by ``stride`` tokens, labelled with
    ``start_positions``/``end_positions`` of the first answer, (0, 0) when the window
    does not hold it. Use it as ``Dataset.map(..., batched=True, remove_columns=...)``.
    """
    inputs = _tokenize(examples, tokenizer, max_length, stride)
    offset_mapping = inputs.pop("offset_mapping")
    sample_map = inputs.pop("overflow_to_sample_mapping")
    answers = _column(examples, "answers", "examples")
    chars = [(a["answer_start"][0], a["answer_start"][0] + len(a["text"][0])) if a["text"] else (-1, -1) for a in answers]
    labels = [
        _label(offsets, first, last, *chars[sample])
        for offsets, (first, last), sample in zip(offset_mapping, _context_spans(inputs), sample_map)
    ]
    features = dict(inputs)
    features["start_positions"] = [start for start, _ in labels]
    features["end_positions"] = [end for _, end in labels]
    return features


def prepare_validation_features(examples, tokenizer, max_length: int = MAX_LENGTH, stride: int = STRIDE) -> dict:
    """Validation features of a batch of examples (chapter 5): the same windows as
    :func:`prepare_train_features`, each with its ``example_id`` and an ``offset_mapping``
    that is None outside the context, so that post-processing picks context spans only."""
    inputs = _tokenize(examples, tokenizer, max_length, stride)
    ids = _column(examples, "id", "examples")
    sample_map = inputs.pop("overflow_to_sample_mapping")
    offset_mapping = inputs["offset_mapping"]
    for i, (first, last) in enumerate(_context_spans(inputs)):
        offsets = offset_mapping[i]
        offset_mapping[i] = [None] * first + list(offsets[first : last + 1]) + [None] * (len(offsets) - 1 - last)
    features = dict(inputs)
    features["example_id"] = [ids[i] for i in sample_map]
    return features


# ---------------------------------------------------------------- post-processing
def _best_spans(start_logits, end_logits, in_context, n_best: int, max_answer_length: int):
    """Best valid span of every feature at once: start, end token and summed logit (-inf: none).

    Candidates are the ``n_best`` highest starts times the ``n_best`` highest ends, scored
    ``start_logits[s] + end_logits[e]``; valid when both are context tokens and
    ``1 <= e - s + 1 <= max_answer_length``.
    """
    n = min(n_best, start_logits.shape[1])
    rows = np.arange(len(start_logits))[:, None]
    starts, ends = top_k(start_logits, n)[0], top_k(end_logits, n)[0]
    score = start_logits[rows, starts][:, :, None] + end_logits[rows, ends][:, None, :]
    length = ends[:, None, :] - starts[:, :, None] + 1
    valid = (length >= 1) & (length <= max_answer_length)
    valid &= in_context[rows, starts][:, :, None]
    valid &= in_context[rows, ends][:, None, :]
    score[~valid] = -np.inf
    score = score.reshape(len(start_logits), n * n)
    best = score.argmax(1)
    rows = rows[:, 0]
    return starts[rows, best // n], ends[rows, best % n], score[rows, best]


def _check_logits(logits, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Logits as a float array of ``shape``; narrower rows (trimmed padding) are padded with -inf."""
    logits = np.asarray(logits.detach().float().cpu() if hasattr(logits, "detach") else logits)
    if logits.ndim != 2 or logits.shape[0] != shape[0] or logits.shape[1] > shape[1]:
        raise ValueError(f"{name} must have shape (n_features, length) = {shape}, got {logits.shape}")
    if np.isnan(logits).any():
        raise ValueError(f"{name} must not contain NaN")
    return np.pad(logits, ((0, 0), (0, shape[1] - logits.shape[1])), constant_values=-np.inf)


def _check_search(n_best: int, max_answer_length: int) -> None:
    check_int(n_best, "n_best", 1)
    check_int(max_answer_length, "max_answer_length", 1)


def best_span(start_logits, end_logits, offsets, n_best: int = N_BEST, max_answer_length: int = MAX_ANSWER_LENGTH):
    """The best answer span of one feature (chapter 5): ``(start_token, end_token, score)``.

    score = start_logits[s] + end_logits[e], maximised over the ``n_best`` highest starts and
    ends with both tokens in the context (``offsets[s]`` and ``offsets[e]`` not None) and
    1 <= e - s + 1 <= max_answer_length; None when no span is valid. The answer text is
    ``context[offsets[s][0]:offsets[e][1]]``.
    """
    _check_search(n_best, max_answer_length)
    in_context = np.array([o is not None for o in offsets])
    if not len(start_logits) == len(end_logits) == len(in_context):
        raise ValueError(
            "start_logits, end_logits and offsets must have one entry per token, got lengths "
            f"{len(start_logits)}, {len(end_logits)} and {len(in_context)}"
        )
    shape = (1, len(in_context))
    start_logits = _check_logits(np.reshape(start_logits, shape), "start_logits", shape)
    end_logits = _check_logits(np.reshape(end_logits, shape), "end_logits", shape)
    start, end, score = _best_spans(start_logits, end_logits, in_context[None], n_best, max_answer_length)
    return None if np.isneginf(score[0]) else (int(start[0]), int(end[0]), float(score[0]))


def _example_answers(example_ids, features, start_logits, end_logits, n_best, max_answer_length):
    """For each example id, its best span over all its features: the feature (-1: no valid span),
    the span's first and end char, and its probability within its window: softmax(start_logits)[s]
    * softmax(end_logits)[e] over the window's context tokens."""
    _check_search(n_best, max_answer_length)
    offsets, in_context = _offsets(_arrow(features, "offset_mapping", "features"))
    start_logits = _check_logits(start_logits, "start_logits", in_context.shape)
    end_logits = _check_logits(end_logits, "end_logits", in_context.shape)
    start, end, score = _best_spans(start_logits, end_logits, in_context, n_best, max_answer_length)
    index = {example_id: k for k, example_id in enumerate(example_ids)}
    owner = np.array([index.get(i, -1) for i in _column(features, "example_id", "features")], dtype=np.int64)
    order = np.lexsort((-score, owner))  # by example, best score first, ties in feature order
    leaders = order[np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1]])]
    leaders = leaders[(owner[leaders] >= 0) & np.isfinite(score[leaders])]
    feature = np.full(len(example_ids), -1, dtype=np.int64)
    feature[owner[leaders]] = leaders
    first_char, end_char = np.zeros(len(feature), np.int64), np.zeros(len(feature), np.int64)
    probability = np.zeros(len(feature))
    found = feature >= 0
    f, s, e = feature[found], start[feature[found]], end[feature[found]]
    first_char[found], end_char[found] = offsets[f, s, 0], offsets[f, e, 1]
    context = in_context[f]
    log_p = (
        start_logits[f, s]
        - np.logaddexp.reduce(np.where(context, start_logits[f], -np.inf), axis=1)
        + end_logits[f, e]
        - np.logaddexp.reduce(np.where(context, end_logits[f], -np.inf), axis=1)
    )
    probability[found] = np.exp(log_p)
    return feature, first_char, end_char, probability


def postprocess(
    examples, features, start_logits, end_logits, n_best: int = N_BEST, max_answer_length: int = MAX_ANSWER_LENGTH
) -> list[dict]:
    """Predicted answers (chapter 5): for each example, the valid span with the highest
    ``start_logits[s] + end_logits[e]`` over all its features (see :func:`best_span`), or ""
    when none is valid. Returns ``[{"id", "prediction_text"}]`` (the ``evaluate`` squad format)."""
    ids = _column(examples, "id", "examples")
    contexts = _column(examples, "context", "examples")
    _, first_char, end_char, _ = _example_answers(ids, features, start_logits, end_logits, n_best, max_answer_length)
    return [
        {"id": example_id, "prediction_text": context[a:b]}
        for example_id, context, a, b in zip(ids, contexts, first_char.tolist(), end_char.tolist())
    ]


# ---------------------------------------------------------------- inference
def _trim(batch: dict) -> dict:
    """Drop the padding columns that every row of a batch of tensors shares."""
    mask = batch.get("attention_mask")
    if mask is None:
        return batch
    width = int(mask.any(0).nonzero().max()) + 1
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


def _collate(rows: list[dict]) -> dict:
    from transformers import default_data_collator

    return _trim(default_data_collator(rows))


def predict(model, features, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of a QA model for every feature (chapter 5), as two
    ``(n_features, max_length)`` arrays, computed on the model's device in batches of
    features of similar length, trimmed of their shared padding (-inf there)."""
    import torch

    check_int(batch_size, "batch_size", 1)
    inputs = {k: _matrix(_arrow(features, k, "features"), k) for k in MODEL_INPUTS if k in _columns(features)}
    if "input_ids" not in inputs:
        raise ValueError(f"features must have an 'input_ids' column, got columns {_columns(features)}")
    start_logits = np.full(inputs["input_ids"].shape, -np.inf, dtype=np.float32)
    end_logits = start_logits.copy()
    lengths = inputs["attention_mask"].sum(1) if "attention_mask" in inputs else np.zeros(len(start_logits))
    order = np.argsort(lengths, kind="stable")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            rows = order[i : i + batch_size]
            batch = _trim({k: torch.from_numpy(v[rows]) for k, v in inputs.items()})
            outputs = model(**{k: v.to(device) for k, v in batch.items()})
            width = outputs.start_logits.shape[1]
            start_logits[rows, :width] = outputs.start_logits.float().cpu().numpy()
            end_logits[rows, :width] = outputs.end_logits.float().cpu().numpy()
    model.train(was_training)
    return start_logits, end_logits


def evaluate_model(
    model, examples, features, batch_size: int = EVAL_BATCH, n_best: int = N_BEST, max_answer_length: int = MAX_ANSWER_LENGTH
) -> dict:
    """SQuAD exact match and F1 (0-100) of a QA model on examples and their validation features (chapter 5)."""
    from .metrics import squad_score

    start_logits, end_logits = predict(model, features, batch_size)
    predictions = postprocess(examples, features, start_logits, end_logits, n_best, max_answer_length)
    ids = _column(examples, "id", "examples")
    references = [{"id": i, "answers": a} for i, a in zip(ids, _column(examples, "answers", "examples"))]
    return squad_score(predictions, references)


def answer_batch(
    questions,
    contexts,
    model,
    tokenizer,
    max_length: int = MAX_LENGTH,
    stride: int = STRIDE,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    batch_size: int = EVAL_BATCH,
) -> list[dict]:
    """Answers to ``questions[i]`` from ``contexts[i]`` (chapter 5), replacing the removed
    ``pipeline("question-answering")``: ``[{"answer", "score", "start", "end"}]`` with
    ``contexts[i][start:end] == answer``; contexts of any length (sliding windows).

    The span is chosen as in :func:`postprocess`; ``score`` is its probability within its
    window, softmax(start_logits)[s] * softmax(end_logits)[e] over the context tokens.
    An empty answer has score 0 and start = end = 0.
    """
    for name, value in (("questions", questions), ("contexts", contexts)):
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list of str, got {type(value).__name__}")
    if len(questions) != len(contexts):
        raise ValueError(f"questions and contexts must have one length, got {len(questions)} and {len(contexts)}")
    examples = {"id": [str(i) for i in range(len(questions))], "question": list(questions), "context": list(contexts)}
    for name, key in (("questions", "question"), ("contexts", "context")):
        for i, text in enumerate(examples[key]):
            check_text(text, f"{name}[{i}]", blank=False)
    _check_search(n_best, max_answer_length)
    features = prepare_validation_features(examples, tokenizer, max_length, stride)
    start_logits, end_logits = predict(model, features, batch_size)
    answers = _example_answers(examples["id"], features, start_logits, end_logits, n_best, max_answer_length)
    return [
        {"answer": context[a:b], "score": float(p), "start": a, "end": b}
        for context, a, b, p in zip(examples["context"], *(x.tolist() for x in answers[1:]))
    ]


def answer(
    question: str,
    context: str,
    model,
    tokenizer,
    max_length: int = MAX_LENGTH,
    stride: int = STRIDE,
    n_best: int = N_BEST,
    max_answer_length: int = MAX_ANSWER_LENGTH,
    batch_size: int = EVAL_BATCH,
) -> dict:
    """The answer to ``question`` from ``context`` (chapter 5): ``{"answer", "score", "start", "end"}``,
    as :func:`answer_batch` gives it."""
    check_text(question, "question", blank=False)
    check_text(context, "context", blank=False)
    options = dict(max_length=max_length, stride=stride, n_best=n_best, max_answer_length=max_answer_length)
    return answer_batch([question], [context], model, tokenizer, batch_size=batch_size, **options)[0]


# ---------------------------------------------------------------- training
COLAB_DRIVE = Path("/content/drive/MyDrive")
KAGGLE_WORKING = Path("/kaggle/working")


def output_dir(profile: str) -> Path:
    """Where chapter 5 keeps its checkpoints and fine-tuned models, so that the next session
    finds them: ``MyDrive/qair-course/05_squad_finetuning/<profile>`` on Colab with Google
    Drive mounted, ``/kaggle/working/qair-course/...`` on Kaggle (kept with a saved version),
    else ``models.cache_dir()/05_squad_finetuning/<profile>``."""
    from . import models

    check_text(profile, "profile", blank=False)
    where = env.platform()
    if where == "colab" and COLAB_DRIVE.is_dir():
        base = COLAB_DRIVE / "qair-course"
    elif where == "kaggle" and KAGGLE_WORKING.is_dir():
        base = KAGGLE_WORKING / "qair-course"
    else:
        base = models.cache_dir()
    return base / "05_squad_finetuning" / profile


def last_checkpoint(folder) -> Path | None:
    """The latest checkpoint in ``folder`` (``checkpoint-<step>`` of the Trainer or
    ``checkpoint-epoch-<n>`` of :func:`train_with_accelerate`), None when there is none:
    pass it as ``resume_from_checkpoint`` to continue an interrupted training."""
    folder = Path(folder)
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()
             and ((p / "trainer_state.json").is_file() or (p / "loop_state.json").is_file())]
    return max(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


def _mixed_precision() -> str:
    """``bf16`` or ``fp16`` on a CUDA GPU that supports it, ``no`` elsewhere."""
    import torch

    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _fresh_accelerator_state(mixed_precision: str) -> None:
    """A Trainer or an earlier loop leaves accelerate's process-wide state behind, and a new
    ``Accelerator`` with another ``mixed_precision`` then raises: reset it in that case
    (accelerate has no public reset; its own tests call this one)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()


def _check_train_features(train_features) -> None:
    if not hasattr(train_features, "select_columns"):
        raise TypeError(
            "train_features must be a datasets.Dataset (Dataset.map(prepare_train_features, batched=True, ...)), "
            f"got {type(train_features).__name__}"
        )
    missing = [c for c in ("input_ids", "attention_mask", *LABELS) if c not in train_features.column_names]
    if missing:
        raise ValueError(f"train_features must have the columns {missing} (from prepare_train_features)")


def saved_activation_bytes(model, train_features) -> int:
    """Bytes of activations one training forward pass of ``model`` on ``train_features`` (one batch)
    keeps for its backward pass (chapter 5): the memory training needs on top of the model, its
    gradients and the optimiser state. Each tensor the autograd graph saves counts once (by storage);
    the model's own parameters are not counted. No backward pass runs and no weight changes."""
    import torch

    _check_train_features(train_features)
    if len(train_features) == 0:
        raise ValueError("train_features must hold at least one feature (one batch is measured)")
    columns = [c for c in MODEL_INPUTS + LABELS if c in train_features.column_names]
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in _collate(list(train_features.select_columns(columns))).items()}
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, object] = {}  # storages by address, held here (not by the graph) until the count is done

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage
        # a pack that returns the tensor makes a cycle through its grad_fn that Python's gc cannot see:
        # the graph and its activations would never be freed
        return None

    def unpack(_):
        raise RuntimeError("saved_activation_bytes runs no backward pass")

    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            model(**batch)
        return sum(storage.nbytes() for storage in saved.values())
    finally:
        model.train(was_training)


def _enable_activation_checkpointing(model) -> None:
    # transformers 5 renamed gradient checkpointing to activation checkpointing; 5.0 has only the old name
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def train_with_trainer(
    model,
    tokenizer,
    train_features,
    output_dir,
    num_train_epochs: float = 3,
    learning_rate: float = 2e-5,
    weight_decay: float = 0.01,
    batch_size: int = 8,
    seed: int = 0,
    resume_from_checkpoint=None,
    activation_checkpointing: bool = False,
    **training_args,
):
    """Fine-tune a QA model with the ``Trainer`` (chapter 5) and return the trainer.

    The HF course settings with today's names (``eval_strategy``, ``processing_class``),
    fp16/bf16 only on a GPU that supports it, a checkpoint each epoch in ``output_dir`` (the
    latest kept) and the final model saved there. ``resume_from_checkpoint``: a checkpoint folder, or
    True for the latest in ``output_dir``. ``activation_checkpointing``: keep only each
    layer's input and recompute the rest in the backward pass (the same gradients, about
    40% less memory and 45% more time for chapter 5 on CPU). Other keywords go to
    ``TrainingArguments``.
    """
    from transformers import Trainer, TrainingArguments

    _check_train_features(train_features)
    precision = _mixed_precision()
    _fresh_accelerator_state(precision)
    env.set_seed(seed)
    if activation_checkpointing:
        _enable_activation_checkpointing(model)
    settings = dict(
        output_dir=str(output_dir),
        eval_strategy="no",
        save_strategy="epoch",
        learning_rate=learning_rate,
        num_train_epochs=num_train_epochs,
        weight_decay=weight_decay,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        seed=seed,
        dataloader_pin_memory=precision != "no",  # pinned memory helps a GPU only
        save_total_limit=1,  # resuming needs the latest checkpoint only (a BERT one is 1.3 GB)
        report_to="none",
    )
    args = TrainingArguments(**{**settings, **training_args})
    trainer = Trainer(
        model=model, args=args, train_dataset=train_features, data_collator=_collate, processing_class=tokenizer
    )
    if resume_from_checkpoint:
        checkpoint = last_checkpoint(output_dir) if resume_from_checkpoint is True else Path(resume_from_checkpoint)
        if checkpoint is not None:
            _load_checkpoint_weights(model, checkpoint)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model()
    return trainer


def _load_checkpoint_weights(model, checkpoint: Path) -> None:
    """Load a Trainer checkpoint's weights into ``model`` by their current names.

    transformers 5.0 (Kaggle's) saves BERT's LayerNorm parameters under the legacy names
    ``gamma``/``beta`` and its Trainer, resuming, loads the checkpoint non-strictly by the new
    names ``weight``/``bias``: every LayerNorm silently restarted from its initial values. The
    Trainer's own load that follows leaves these values in place."""
    from safetensors.torch import load_file

    files = sorted(Path(checkpoint).glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"resume_from_checkpoint: {checkpoint} holds no model*.safetensors")
    legacy = {".gamma": ".weight", ".beta": ".bias"}
    state = {}
    for file in files:
        for key, value in load_file(str(file)).items():
            suffix = next((s for s in legacy if key.endswith(s)), None)
            state[key[: -len(suffix)] + legacy[suffix] if suffix else key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"resume_from_checkpoint: {checkpoint} does not fit the model: unexpected {unexpected[:5]}")


def train_with_accelerate(
    model,
    tokenizer,
    train_features,
    output_dir,
    eval_examples=None,
    eval_features=None,
    num_train_epochs: int = 3,
    learning_rate: float = 2e-5,
    batch_size: int = 8,
    seed: int = 0,
    mixed_precision: str | None = None,
    resume_from_checkpoint=None,
    activation_checkpointing: bool = False,
    gradient_accumulation_steps: int = 1,
):
    """Fine-tune a QA model with a custom ``accelerate`` loop (chapter 5); returns ``(model, history)``.

    AdamW, a linear schedule without warm-up, a progress bar; after each epoch the mean
    training loss (and exact match and F1 when ``eval_examples`` and ``eval_features`` are
    given) goes to ``history``, the model and tokenizer are saved to ``output_dir`` with
    ``save_pretrained``, and a resumable checkpoint to ``output_dir/checkpoint-epoch-N``
    (only the latest is kept). ``mixed_precision``: "no", "fp16" or "bf16" (default: what the GPU supports).
    ``activation_checkpointing``: see :func:`train_with_trainer`. ``gradient_accumulation_steps``:
    one optimiser step per that many batches of ``batch_size``, on the mean of their losses
    (the gradient of one batch of ``batch_size * gradient_accumulation_steps``, in less memory).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    _check_train_features(train_features)
    check_int(num_train_epochs, "num_train_epochs", 1)
    check_int(batch_size, "batch_size", 1)
    check_int(gradient_accumulation_steps, "gradient_accumulation_steps", 1)
    if (eval_examples is None) != (eval_features is None):
        raise ValueError("eval_examples and eval_features go together: pass both or neither")
    mixed_precision = mixed_precision or _mixed_precision()
    if mixed_precision not in ("no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {mixed_precision!r}")
    _fresh_accelerator_state(mixed_precision)
    env.set_seed(seed)
    if activation_checkpointing:
        _enable_activation_checkpointing(model)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
    )
    columns = [c for c in MODEL_INPUTS + LABELS if c in train_features.column_names]
    train_dataloader = DataLoader(
        train_features.select_columns(columns), shuffle=True, collate_fn=_collate, batch_size=batch_size
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    num_training_steps = num_train_epochs * len(train_dataloader)  # batches (the schedule counts optimiser steps)
    lr_scheduler = get_scheduler(
        "linear", optimizer=optimizer, num_warmup_steps=0,
        num_training_steps=num_train_epochs * math.ceil(len(train_dataloader) / gradient_accumulation_steps),
    )
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, lr_scheduler
    )
    output_dir = Path(output_dir)
    history, first_epoch = [], 0
    if resume_from_checkpoint is not None:
        loop_state = Path(resume_from_checkpoint) / "loop_state.json"
        if not loop_state.is_file():
            raise ValueError(
                "resume_from_checkpoint must be a checkpoint-epoch-N folder written by train_with_accelerate, "
                f"got {str(resume_from_checkpoint)!r}"
            )
        accelerator.load_state(str(resume_from_checkpoint))
        state = json.loads(loop_state.read_text())
        first_epoch, history = state["epochs_done"], state["history"]
    progress_bar = tqdm(
        total=num_training_steps,
        initial=first_epoch * len(train_dataloader),
        disable=not accelerator.is_local_main_process,
    )
    for epoch in range(first_epoch, num_train_epochs):
        train_dataloader.set_epoch(epoch)
        model.train()
        total_loss = 0.0
        for batch in train_dataloader:
            with accelerator.accumulate(model):  # steps the optimiser on every gradient_accumulation_steps-th batch
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            total_loss += loss.item()
            progress_bar.update(1)
        record = {"epoch": epoch + 1, "loss": total_loss / len(train_dataloader)}
        unwrapped = accelerator.unwrap_model(model)
        if eval_examples is not None:
            with accelerator.autocast():
                record.update(evaluate_model(unwrapped, eval_examples, eval_features, batch_size=batch_size))
        history.append(record)
        accelerator.print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        accelerator.wait_for_everyone()
        checkpoint = output_dir / f"checkpoint-epoch-{epoch + 1}"
        accelerator.save_state(str(checkpoint))
        if accelerator.is_main_process:
            unwrapped.save_pretrained(output_dir)
            tokenizer.save_pretrained(output_dir)
            (checkpoint / "loop_state.json").write_text(json.dumps({"epochs_done": epoch + 1, "history": history}))
            for old in output_dir.glob("checkpoint-epoch-*"):
                if old != checkpoint:
                    shutil.rmtree(old)
    progress_bar.close()
    return accelerator.unwrap_model(model), history
