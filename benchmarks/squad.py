"""Time course_lib.squad (chapter 5) against the Hugging Face course's loop-based code
(the seed notebook) on the SQuAD v1.1 dev set, in one run, and print a table of ratios.

* preprocessing: training features (labels) and validation features, examples/s;
* post-processing: logits -> answer texts, examples/s (logits: the gold span planted
  in Gaussian noise, so the top candidates cluster as a trained model's do);
* fine-tuning the packaged all-MiniLM-L6-v2 on the CPU, training features/s: the seed's
  loop (batches padded to max_length) against ``train_with_accelerate`` (trimmed batches).

Every pair is also checked for equal output. The seed's functions below are the
reference only; the course uses ``course_lib.squad``.

    .venv/bin/python benchmarks/squad.py [--steps 24] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json.zip"


# ---------------------------------------------------------------- the seed's code (HF course)
def seed_preprocess_training_examples(examples, tokenizer, max_length=384, stride=128):
    questions = [q.strip() for q in examples["question"]]
    inputs = tokenizer(
        questions,
        examples["context"],
        max_length=max_length,
        truncation="only_second",
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    offset_mapping = inputs.pop("offset_mapping")
    sample_map = inputs.pop("overflow_to_sample_mapping")
    answers = examples["answers"]
    start_positions = []
    end_positions = []
    for i, offset in enumerate(offset_mapping):
        sample_idx = sample_map[i]
        answer = answers[sample_idx]
        start_char = answer["answer_start"][0]
        end_char = answer["answer_start"][0] + len(answer["text"][0])
        sequence_ids = inputs.sequence_ids(i)
        idx = 0
        while sequence_ids[idx] != 1:
            idx += 1
        context_start = idx
        while sequence_ids[idx] == 1:
            idx += 1
        context_end = idx - 1
        if offset[context_start][0] > start_char or offset[context_end][1] < end_char:
            start_positions.append(0)
            end_positions.append(0)
        else:
            idx = context_start
            while idx <= context_end and offset[idx][0] <= start_char:
                idx += 1
            start_positions.append(idx - 1)
            idx = context_end
            while idx >= context_start and offset[idx][1] >= end_char:
                idx -= 1
            end_positions.append(idx + 1)
    inputs["start_positions"] = start_positions
    inputs["end_positions"] = end_positions
    return inputs


def seed_preprocess_validation_examples(examples, tokenizer, max_length=384, stride=128):
    questions = [q.strip() for q in examples["question"]]
    inputs = tokenizer(
        questions,
        examples["context"],
        max_length=max_length,
        truncation="only_second",
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    sample_map = inputs.pop("overflow_to_sample_mapping")
    example_ids = []
    for i in range(len(inputs["input_ids"])):
        sample_idx = sample_map[i]
        example_ids.append(examples["id"][sample_idx])
        sequence_ids = inputs.sequence_ids(i)
        offset = inputs["offset_mapping"][i]
        inputs["offset_mapping"][i] = [o if sequence_ids[k] == 1 else None for k, o in enumerate(offset)]
    inputs["example_id"] = example_ids
    return inputs


def seed_postprocess(start_logits, end_logits, features, examples, n_best=20, max_answer_length=30):
    """The seed's compute_metrics without the metric call."""
    example_to_features = collections.defaultdict(list)
    for idx, feature in enumerate(features):
        example_to_features[feature["example_id"]].append(idx)
    predicted_answers = []
    for example in examples:
        example_id = example["id"]
        context = example["context"]
        answers = []
        for feature_index in example_to_features[example_id]:
            start_logit = start_logits[feature_index]
            end_logit = end_logits[feature_index]
            offsets = features[feature_index]["offset_mapping"]
            start_indexes = np.argsort(start_logit)[-1 : -n_best - 1 : -1].tolist()
            end_indexes = np.argsort(end_logit)[-1 : -n_best - 1 : -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if offsets[start_index] is None or offsets[end_index] is None:
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    answers.append(
                        {
                            "text": context[offsets[start_index][0] : offsets[end_index][1]],
                            "logit_score": start_logit[start_index] + end_logit[end_index],
                        }
                    )
        if len(answers) > 0:
            best_answer = max(answers, key=lambda x: x["logit_score"])
            predicted_answers.append({"id": example_id, "prediction_text": best_answer["text"]})
        else:
            predicted_answers.append({"id": example_id, "prediction_text": ""})
    return predicted_answers


def seed_train_steps(model, train_dataset, batch_size, mixed_precision):
    """The seed's custom loop, training part only (Accelerator(fp16=True) is mixed_precision today)."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import default_data_collator, get_scheduler

    train_dataset.set_format("torch")
    train_dataloader = DataLoader(train_dataset, shuffle=True, collate_fn=default_data_collator, batch_size=batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    accelerator = Accelerator(mixed_precision=mixed_precision)
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    lr_scheduler = get_scheduler(
        "linear", optimizer=optimizer, num_warmup_steps=0, num_training_steps=len(train_dataloader)
    )
    model.train()
    for batch in train_dataloader:
        outputs = model(**batch)
        accelerator.backward(outputs.loss)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()


# ---------------------------------------------------------------- harness
def race(seed_fn, ours_fn, repeat):
    """Run the two in turn ``repeat`` times (turns share the machine's load, which others vary):
    (seed result, course result, best seed time, best course time)."""
    best = [float("inf"), float("inf")]
    results = [None, None]
    for _ in range(repeat):
        for k, fn in enumerate((seed_fn, ours_fn)):
            start = time.perf_counter()
            results[k] = fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return (*results, *best)


def in_batches(fn, batch, size=1000):
    """``fn`` over slices of a dict of columns, as Dataset.map(batched=True) calls it; outputs concatenated."""
    out = collections.defaultdict(list)
    for i in range(0, len(batch["id"]), size):
        part = fn({k: v[i : i + size] for k, v in batch.items()})
        for k, v in part.items():
            out[k].extend(v)
    return dict(out)


class Pretokenized:
    """The tokenizer, except that a question/context pair call returns a copy of a stored
    result: preprocessing then costs its own work only (labels, offsets), not tokenising."""

    def __init__(self, tokenizer, tokenize, batch, size=1000):
        self.tokenizer = tokenizer
        self.stored = {}
        for i in range(0, len(batch["id"]), size):
            part = {k: v[i : i + size] for k, v in batch.items()}
            self.stored[tuple(q.strip() for q in part["question"])] = tokenize(part)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, questions, contexts=None, **options):
        if contexts is None:
            return self.tokenizer(questions, **options)
        from transformers import BatchEncoding

        stored = self.stored[tuple(questions)]
        return BatchEncoding({k: list(v) for k, v in stored.items()}, encoding=stored.encodings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEV, help="SQuAD v1.1 dev JSON (zip)")
    parser.add_argument("--steps", type=int, default=24, help="fine-tuning steps for each loop, over all turns")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="turns: each stage reports its best")
    options = parser.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from course_lib import env, squad
    from course_lib.data import load_squad_json
    from course_lib.models import packaged_minilm

    env.quiet()
    dev = load_squad_json(options.data)
    batch = dev[:]
    n = len(dev)
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    print(f"SQuAD dev: {n} examples; tokenizer all-MiniLM-L6-v2; torch threads {torch.get_num_threads()}")
    rows = []

    def tokenize(part):
        return tokenizer(
            [q.strip() for q in part["question"]], part["context"], max_length=384, truncation="only_second",
            stride=128, return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length",
        )

    def compare(name, seed_fn, ours_fn, same, tokenizer):
        seed_out, ours_out, t_seed, t_ours = race(
            lambda: in_batches(lambda p: seed_fn(p, tokenizer), batch),
            lambda: in_batches(lambda p: ours_fn(p, tokenizer), batch),
            options.repeat,
        )
        rows.append((name, n / t_seed, n / t_ours, same(seed_out, ours_out)))
        return ours_out

    def same_labels(seed_out, ours_out):
        return all(seed_out[k] == ours_out[k] for k in ("input_ids", "start_positions", "end_positions"))

    def same_validation(seed_out, ours_out):
        return seed_out["example_id"] == ours_out["example_id"] and all(
            [None if o is None else tuple(o) for o in a] == [None if o is None else tuple(o) for o in b]
            for a, b in zip(seed_out["offset_mapping"], ours_out["offset_mapping"])
        )

    pretokenized = Pretokenized(tokenizer, tokenize, batch)
    train_steps = (seed_preprocess_training_examples, squad.prepare_train_features, same_labels)
    validation_steps = (seed_preprocess_validation_examples, squad.prepare_validation_features, same_validation)
    ours_train = compare("preprocess train: tokenise + labels (ex/s)", *train_steps, tokenizer)
    compare("  labels alone (tokeniser output given) (ex/s)", *train_steps, pretokenized)
    ours_val = compare("preprocess validation (ex/s)", *validation_steps, tokenizer)
    compare("  offsets alone (tokeniser output given) (ex/s)", *validation_steps, pretokenized)
    n_features = len(ours_train["input_ids"])

    features = Dataset.from_dict(ours_val)
    rng = np.random.default_rng(0)
    start_logits = rng.normal(size=(n_features, 384)).astype(np.float32)
    end_logits = rng.normal(size=(n_features, 384)).astype(np.float32)
    labelled = np.flatnonzero(np.array(ours_train["start_positions"]) > 0)
    start_logits[labelled, np.array(ours_train["start_positions"])[labelled]] += 6
    end_logits[labelled, np.array(ours_train["end_positions"])[labelled]] += 6
    seed_pred, ours_pred, t_seed, t_ours = race(
        lambda: seed_postprocess(start_logits, end_logits, features, dev),
        lambda: squad.postprocess(dev, features, start_logits, end_logits),
        options.repeat,
    )
    agree = np.mean([a == b for a, b in zip(seed_pred, ours_pred)])
    rows.append(("postprocess, n_best 20 (ex/s)", n / t_seed, n / t_ours, f"{agree:.2%} same"))

    steps = options.steps // options.repeat
    train = Dataset.from_dict(ours_train).shuffle(seed=0).select(range(steps * options.batch_size))
    precision = squad._mixed_precision()

    def fresh_model():
        env.set_seed(0)
        return AutoModelForQuestionAnswering.from_pretrained(packaged_minilm())

    def course_loop(model):
        with tempfile.TemporaryDirectory() as tmp:
            squad.train_with_accelerate(
                model, tokenizer, train.with_format(None), tmp, num_train_epochs=1,
                batch_size=options.batch_size, mixed_precision=precision,
            )

    t_seed = t_ours = float("inf")
    for _ in range(options.repeat):
        seed_model, course_model = fresh_model(), fresh_model()  # loaded before the clock starts
        _, _, seed_time, course_time = race(
            lambda: seed_train_steps(seed_model, train, options.batch_size, precision),
            lambda: course_loop(course_model),
            1,
        )
        t_seed, t_ours = min(t_seed, seed_time), min(t_ours, course_time)
    m = len(train)
    rows.append((f"fine-tune MiniLM, {steps} steps of {options.batch_size} (feat/s)", m / t_seed, m / t_ours, "n/a"))
    lengths = np.array(train["attention_mask"]).sum(1)
    widths = [lengths[np.random.default_rng(k).permutation(m)].reshape(-1, options.batch_size).max(1) for k in range(100)]

    width = max(len(r[0]) for r in rows)
    print(f"\n{'stage':<{width}}  {'seed':>9}  {'course':>9}  {'ratio':>6}  same output")
    for name, seed_rate, ours_rate, same in rows:
        same = {True: "yes", False: "NO"}.get(same, same)
        print(f"{name:<{width}}  {seed_rate:9.1f}  {ours_rate:9.1f}  {ours_rate / seed_rate:5.1f}x  {same}")
    print(
        f"\n{n} examples -> {n_features} features. Best of {options.repeat} turns, taken in alternation. Fine-tuning: "
        f"the seed pads batches to 384 tokens, the course trims them to about {np.mean(widths):.0f} on average "
        "here; its time includes saving the model and a checkpoint."
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
