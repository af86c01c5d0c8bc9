"""Stand-in repositories under the exact ids the course names, for :mod:`hub.emulator`.

Models are tiny (2 layers, 32 wide, random weights) but of the real architecture, with the real
tokenizer type and special tokens. Datasets have the real configs, splits, features and column names;
each schema's source is cited beside it (written from the cards' YAML, not fetched: no machine here
reaches the hub). Every data file is parquet, as on the hub for most of these sets (BEIR ships
``.jsonl.gz`` and ``.tsv``; the loaders do not depend on the format). Every row is written for this course: the bundled
collection (``course_lib.data.bundled``) or the literal rows below, never text from the real sets.

:func:`repos` builds everything once into ``course_lib.models.cache_dir()/hub-fixtures/<VERSION>``
(outside git; about 30 MB, tens of seconds) and reads it back from there afterwards.
"""
from __future__ import annotations

import io
import json
import tempfile
from collections import Counter
from pathlib import Path

from .emulator import Repo

VERSION = "3"
CONVERT = "refs/convert/parquet"
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


# ------------------------------------------------------------------ datasets
def _features():
    from datasets import ClassLabel, Features, Sequence, Value

    squad_like = Features({  # squad (plain_text), tydiqa (secondary_task): the cards' dataset_info
        "id": Value("string"), "title": Value("string"), "context": Value("string"), "question": Value("string"),
        "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")}),
    })
    span = {"start_token": Value("int64"), "end_token": Value("int64"),
            "start_byte": Value("int64"), "end_byte": Value("int64")}
    return {
        "squad": squad_like,
        # huggingface.co/datasets/PaddlePaddle/dureader_robust, dureader_robust.py: _info()
        "dureader": Features({"id": Value("string"), "context": Value("string"), "question": Value("string"),
                              "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")})}),
        # huggingface.co/datasets/microsoft/ms_marco README.md, dataset_info of config v2.1
        "ms_marco": Features({
            "answers": Sequence(Value("string")),
            "passages": Sequence({"is_selected": Value("int32"), "passage_text": Value("string"), "url": Value("string")}),
            "query": Value("string"), "query_id": Value("int32"), "query_type": Value("string"),
            "wellFormedAnswers": Sequence(Value("string")),
        }),
        # huggingface.co/datasets/google-research-datasets/natural_questions README.md, config default
        "natural_questions": Features({
            "id": Value("string"),
            "document": {"title": Value("string"), "url": Value("string"), "html": Value("string"),
                         "tokens": Sequence({"token": Value("string"), "is_html": Value("bool"),
                                         "start_byte": Value("int64"), "end_byte": Value("int64")})},
            "question": {"text": Value("string"), "tokens": Sequence(Value("string"))},
            "long_answer_candidates": Sequence({**span, "top_level": Value("bool")}),
            "annotations": Sequence({
                "id": Value("string"),
                "long_answer": {**span, "candidate_index": Value("int64")},
                "short_answers": Sequence({**span, "text": Value("string")}),
                "yes_no_answer": ClassLabel(names=["NO", "YES"]),
            }),
        }),
        # huggingface.co/datasets/cais/mmlu README.md, config all
        "mmlu": Features({"question": Value("string"), "subject": Value("string"),
                          "choices": Sequence(Value("string")), "answer": ClassLabel(names=["A", "B", "C", "D"])}),
        # huggingface.co/datasets/BeIR/scifact README.md, configs corpus and queries
        "beir_text": Features({"_id": Value("string"), "title": Value("string"), "text": Value("string")}),
        # huggingface.co/datasets/BeIR/scifact-qrels: {train,test}.tsv, typed by the dataset viewer
        "beir_qrels": Features({"query-id": Value("int64"), "corpus-id": Value("int64"), "score": Value("int64")}),
    }


def _parquet(rows: list[dict], features) -> bytes:
    from datasets import Dataset

    buffer = io.BytesIO()
    Dataset.from_list(rows, features=features).to_parquet(buffer)
    return buffer.getvalue()


def _card(pretty_name: str, configs: dict[str, dict[str, tuple[str, list[dict]]]], features_of: dict) -> bytes:
    """A dataset card whose YAML declares each config's data files and features, as the hub's do."""
    from datasets import DatasetInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    card = DatasetCardData(pretty_name=pretty_name)
    infos = {name: DatasetInfo(features=features_of[name], config_name=name,
                               splits=[{"name": split, "num_examples": len(rows)}
                                       for split, (_, rows) in splits.items()])
             for name, splits in configs.items()}
    DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs({name: {"data_files": [{"split": split, "path": path} for split, (path, _) in splits.items()]}
                     for name, splits in configs.items()}).to_dataset_card_data(card)
    text = DatasetCard.from_template(card, template_str="---\n{{ card_data }}\n---\n\n# {{ pretty_name }}\n\n"
                                     "Stand-in written for the qair-course hub emulator.\n").content
    return text.encode()


def _dataset_repo(repo_id: str, configs: dict[str, dict[str, list[dict]]], features_of: dict) -> Repo:
    layout = {name: {split: (f"{name}/{split}-00000-of-00001.parquet", rows) for split, rows in splits.items()}
              for name, splits in configs.items()}
    files = {"README.md": _card(repo_id, layout, features_of)}
    for name, splits in layout.items():
        for split, (path, rows) in splits.items():
            files[path] = _parquet(rows, features_of[name])
    return Repo(repo_id, "dataset", {"main": files})


def _squad_rows(split: str, n: int) -> list[dict]:
    from course_lib.data import bundled

    rows = bundled.load_squad_like()[split].select(range(n))
    return [dict(row) for row in rows]


DUREADER_ROWS = [  # written for the course
    ("dr-1", "长城是中国古代的军事防御工程，总长度超过两万公里。", "长城总长度是多少？", "超过两万公里"),
    ("dr-2", "黄河是中国第二长河，全长约五千四百六十四公里。", "中国第二长河是哪条河？", "黄河"),
    ("dr-3", "故宫位于北京中轴线的中心，是明清两代的皇家宫殿。", "故宫位于哪个城市？", "北京"),
    ("dr-4", "大熊猫主要以竹子为食，生活在四川、陕西和甘肃的山区。", "大熊猫主要吃什么？", "竹子"),
]


def _dureader_rows(offset: int) -> list[dict]:
    rows = []
    for qid, context, question, answer in DUREADER_ROWS[offset:offset + 2]:
        rows.append({"id": qid, "context": context, "question": question,
                     "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
    return rows


def dataset_repos() -> list[Repo]:
    """The stand-in datasets: rajpurkar/squad, microsoft/ms_marco, google-research-datasets/natural_questions,
    google-research-datasets/tydiqa, cais/mmlu, BeIR/scifact, BeIR/scifact-qrels, PaddlePaddle/dureader_robust."""
    from course_lib.data import bundled

    f = _features()
    squad = {"train": _squad_rows("train", 48), "validation": _squad_rows("validation", 24)}
    repos = [
        _dataset_repo("rajpurkar/squad", {"plain_text": squad}, {"plain_text": f["squad"]}),
        _dataset_repo("google-research-datasets/tydiqa",
                      {"secondary_task": {"train": squad["train"][:16], "validation": squad["validation"][:8]}},
                      {"secondary_task": f["squad"]}),
    ]
    corpus, queries, qrels = bundled.load_corpus(), bundled.load_queries(), bundled.load_qrels()
    texts = {row["_id"]: row for row in corpus}
    relevant: dict[str, list[str]] = {}
    for row in qrels:
        relevant.setdefault(row["query-id"], []).append(row["corpus-id"])
    marco = []
    for number, query in enumerate(queries.select(range(24))):
        positives = relevant.get(query["_id"], [])[:2]
        others = [d for d in list(texts)[number * 7:] if d not in positives][: 10 - len(positives)]
        shown = positives + others
        passages = {"is_selected": [int(d in positives) for d in shown],
                    "passage_text": [texts[d]["text"] for d in shown], "url": [f"https://example.org/{d}" for d in shown]}
        marco.append({"answers": [texts[positives[0]]["title"]] if positives else ["No Answer Present."],
                      "passages": passages, "query": query["text"], "query_id": 1000 + number,
                      "query_type": "DESCRIPTION", "wellFormedAnswers": []})
    repos.append(_dataset_repo("microsoft/ms_marco",
                               {"v2.1": {"train": marco[:12], "validation": marco[12:], "test": marco[12:]}},
                               {"v2.1": f["ms_marco"]}))
    repos.append(_dataset_repo("google-research-datasets/natural_questions",
                               {"default": {"train": _nq_rows(squad["train"][:4]),
                                            "validation": _nq_rows(squad["validation"][:8])}},
                               {"default": f["natural_questions"]}))
    mcq = [dict(row) for row in bundled.load_mcq()]
    repos.append(_dataset_repo("cais/mmlu", {"all": {"test": mcq[:40], "validation": mcq[40:60], "dev": mcq[60:65],
                                                     "auxiliary_train": mcq[65:70]}}, {"all": f["mmlu"]}))
    # BEIR ids are numbers (corpus-id 31715818 in scifact); the qrels TSVs are typed int64 by the viewer
    corpus_number = {d: 4000 + i for i, d in enumerate(texts)}
    query_number = {q: 1 + i for i, q in enumerate(queries["_id"])}
    repos.append(_dataset_repo("BeIR/scifact", {
        "corpus": {"corpus": [{"_id": str(corpus_number[r["_id"]]), "title": r["title"], "text": r["text"]}
                              for r in corpus]},
        "queries": {"queries": [{"_id": str(query_number[r["_id"]]), "title": r["title"], "text": r["text"]}
                                for r in queries]},
    }, {"corpus": f["beir_text"], "queries": f["beir_text"]}))
    number_qrels = [{"query-id": query_number[r["query-id"]], "corpus-id": corpus_number[r["corpus-id"]],
                     "score": r["score"]} for r in qrels]
    half = len(number_qrels) // 2
    repos.append(_dataset_repo("BeIR/scifact-qrels", {"default": {"train": number_qrels[:half],
                                                                  "test": number_qrels[half:]}},
                               {"default": f["beir_qrels"]}))
    # DuReader-robust: main holds only a loading script; the parquet conversion lives on refs/convert/parquet
    dureader = {"plain_text": {"train": _dureader_rows(0), "validation": _dureader_rows(2), "test": _dureader_rows(2)}}
    converted = {f"plain_text/{split}/0000.parquet": _parquet(rows, f["dureader"])
                 for split, rows in dureader["plain_text"].items()}
    repos.append(Repo("PaddlePaddle/dureader_robust", "dataset", {
        "main": {"README.md": b"---\npretty_name: DuReader-robust\n---\n# DuReader-robust (stand-in)\n",
                 "dureader_robust.py": b"# the hub's loading script; datasets 4+ no longer runs it\n"},
        CONVERT: converted,
    }))
    return repos


def _nq_rows(squad_rows: list[dict]) -> list[dict]:
    """Natural Questions rows built from course-written SQuAD-layout rows: the context as a
    one-paragraph document, its tokens, one long answer (the paragraph) and one short answer."""
    rows = []
    for row in squad_rows:
        words = row["context"].split()
        html = ["<p>"] + words + ["</p>"]
        tokens, offset = [], 0
        for token in html:
            tokens.append({"token": token, "is_html": token in ("<p>", "</p>"),
                           "start_byte": offset, "end_byte": offset + len(token.encode())})
            offset += len(token.encode()) + 1
        answer = row["answers"]["text"][0].split()
        start = next((i for i in range(len(html)) if html[i:i + len(answer)] == answer), 1)
        end = start + len(answer)
        whole = {"start_token": 0, "end_token": len(html), "start_byte": 0, "end_byte": offset - 1}
        rows.append({
            "id": row["id"],
            "document": {"title": row["title"], "url": f"https://example.org/{row['id']}", "html": " ".join(html),
                         "tokens": {key: [t[key] for t in tokens] for key in tokens[0]}},
            "question": {"text": row["question"].rstrip("?").lower(), "tokens": row["question"].rstrip("?").lower().split()},
            "long_answer_candidates": {**{k: [v] for k, v in whole.items()}, "top_level": [True]},
            "annotations": {
                "id": [row["id"] + "-a"], "long_answer": [{**whole, "candidate_index": 0}],
                "short_answers": [{"start_token": [start], "end_token": [end],
                                   "start_byte": [tokens[start]["start_byte"]],
                                   "end_byte": [tokens[end - 1]["end_byte"]], "text": [" ".join(html[start:end])]}],
                "yes_no_answer": [-1],
            },
        })
    return rows


# ------------------------------------------------------------------ models
QWEN_CHAT_TEMPLATE = (  # the non-tool part of Qwen2.5-Instruct's tokenizer_config.json chat_template
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SMOLLM2_CHAT_TEMPLATE = (  # SmolLM2-135M-Instruct's tokenizer_config.json chat_template
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _corpus_text() -> list[str]:
    from course_lib.data import bundled

    return [row["text"] for row in bundled.load_corpus()]


def _cased_wordpiece(tmp: Path):
    """A cased WordPiece vocabulary laid out like bert-base-cased's ([PAD] 0, [unused1-99],
    [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103), then characters, then the corpus' frequent words."""
    from transformers import BertTokenizer

    words = Counter(w for text in _corpus_text() for w in text.replace(".", " . ").replace(",", " , ").split())
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + [f"##{c}" for c in chars]
    vocab += [w for w, _ in words.most_common(1500) if w not in vocab and w.isalnum()]
    path = tmp / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizer(vocab=str(path), do_lower_case=False, model_max_length=512)


def _uncased_wordpiece():
    """bert-base-uncased's vocabulary (the one all-MiniLM-L6-v2, the MS MARCO cross-encoder and
    ColBERTv2 use), read from the packaged MiniLM."""
    from transformers import AutoTokenizer

    from course_lib.models import packaged_minilm

    return AutoTokenizer.from_pretrained(packaged_minilm())


def _byte_bpe(special: list[str], vocab_size: int = 600) -> tuple[dict, list]:
    """A byte-level BPE trained on the bundled corpus, ``special`` tokens first (ids 0, 1, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_corpus_text(), trainer)
    state = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return state["vocab"], merges


def _build_model(repo_id: str, tmp: Path) -> None:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if repo_id == "google-bert/bert-base-cased":
        tokenizer = _cased_wordpiece(tmp)
        model = tf.BertForMaskedLM(tf.BertConfig(vocab_size=len(tokenizer), **TINY))
    elif repo_id == "distilbert/distilbert-base-cased-distilled-squad":
        bert = _cased_wordpiece(tmp)
        tokenizer = tf.DistilBertTokenizer(vocab=str(tmp / "vocab.txt"), do_lower_case=False, model_max_length=512)
        del bert
        model = tf.DistilBertForQuestionAnswering(tf.DistilBertConfig(
            vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64))
    elif repo_id in ("sentence-transformers/all-MiniLM-L6-v2", "cross-encoder/ms-marco-MiniLM-L6-v2",
                     "colbert-ir/colbertv2.0"):
        tokenizer = _uncased_wordpiece()
        config = tf.BertConfig(vocab_size=len(tokenizer), **TINY)
        if repo_id.startswith("cross-encoder"):
            config.num_labels = 1
            config.id2label, config.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}
            model = tf.BertForSequenceClassification(config)
        else:
            model = tf.BertModel(config)
    elif repo_id == "Qwen/Qwen2.5-0.5B-Instruct":
        vocab, merges = _byte_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tokenizer = tf.Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                                      pad_token="<|endoftext|>", model_max_length=131072)
        tokenizer.chat_template = QWEN_CHAT_TEMPLATE
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(
            vocab_size=len(tokenizer), num_key_value_heads=1, tie_word_embeddings=True,
            bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|im_end|>"], max_position_embeddings=4096, **TINY))
    elif repo_id == "HuggingFaceTB/SmolLM2-135M-Instruct":
        vocab, merges = _byte_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        tokenizer = tf.GPT2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                                     eos_token="<|im_end|>", pad_token="<|im_end|>", model_max_length=8192)
        tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
        model = tf.LlamaForCausalLM(tf.LlamaConfig(
            vocab_size=len(tokenizer), num_key_value_heads=1, tie_word_embeddings=True,
            bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|im_end|>"],
            max_position_embeddings=8192, **TINY))
    else:
        raise ValueError(f"no stand-in for model {repo_id!r}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if repo_id == "colbert-ir/colbertv2.0":
        _colbert_layout(tmp)
    if repo_id == "sentence-transformers/all-MiniLM-L6-v2":
        _sentence_transformers_layout(tmp)


def _colbert_layout(tmp: Path) -> None:
    """ColBERTv2's checkpoint: ``HF_ColBERT`` architecture, BERT weights under ``bert.`` and the
    ``linear.weight`` projection down to 128 dimensions (colbert-ir/colbertv2.0 on the hub)."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp / "model.safetensors"))
    weights = {f"bert.{name}": tensor for name, tensor in weights.items()}
    weights["linear.weight"] = torch.randn(128, TINY["hidden_size"]) * 0.1
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((tmp / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    (tmp / "artifact.metadata").write_text(json.dumps({"dim": 128, "query_maxlen": 32, "doc_maxlen": 180,
                                                       "similarity": "cosine", "checkpoint": "colbert-ir/colbertv2.0"}))


def _sentence_transformers_layout(tmp: Path) -> None:
    """sentence-transformers' files: modules.json (Transformer, Pooling, Normalize) and their configs."""
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": TINY["hidden_size"], "pooling_mode_mean_tokens": True,
                                  "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False},
    }
    for name, payload in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(json.dumps(payload, indent=2))


# the course's ids of renamed repositories -> their ids on the hub now (the hub redirects the old ones)
ALIASES = {("model", "bert-base-cased"): "google-bert/bert-base-cased",
           ("model", "distilbert-base-cased-distilled-squad"): "distilbert/distilbert-base-cased-distilled-squad",
           ("dataset", "squad"): "rajpurkar/squad"}
MODEL_IDS = ("google-bert/bert-base-cased", "distilbert/distilbert-base-cased-distilled-squad",
             "Qwen/Qwen2.5-0.5B-Instruct", "cross-encoder/ms-marco-MiniLM-L6-v2", "colbert-ir/colbertv2.0",
             "sentence-transformers/all-MiniLM-L6-v2", "HuggingFaceTB/SmolLM2-135M-Instruct")


def model_repos() -> list[Repo]:
    repos = []
    for repo_id in MODEL_IDS:
        with tempfile.TemporaryDirectory() as tmp:
            _build_model(repo_id, Path(tmp))
            files = {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
        repos.append(Repo(repo_id, "model", {"main": files}))
    return repos


# ------------------------------------------------------------------ the cache
def cache_root() -> Path:
    from course_lib.models import cache_dir

    return cache_dir() / "hub-fixtures" / VERSION


def _write(repos: list[Repo], root: Path) -> None:
    for repo in repos:
        for revision, files in repo.revisions.items():
            base = root / repo.repo_type / repo.repo_id / revision.replace("/", "%2F")
            for path, data in files.items():
                (base / path).parent.mkdir(parents=True, exist_ok=True)
                (base / path).write_bytes(data)


def _read(root: Path) -> list[Repo]:
    repos = []
    for repo_type in ("model", "dataset"):
        for revision_dir in sorted((root / repo_type).glob("**/*")):
            if not revision_dir.is_dir() or revision_dir.name not in ("main", CONVERT.replace("/", "%2F")):
                continue
            repo_id = str(revision_dir.parent.relative_to(root / repo_type))
            files = {str(p.relative_to(revision_dir)): p.read_bytes()
                     for p in sorted(revision_dir.rglob("*")) if p.is_file()}
            found = next((r for r in repos if r.repo_type == repo_type and r.repo_id == repo_id), None)
            if found is None:
                found = Repo(repo_id, repo_type)
                repos.append(found)
            found.revisions[revision_dir.name.replace("%2F", "/")] = files
    return repos


def repos() -> list[Repo]:
    """Every stand-in repository, built once into :func:`cache_root` (written beside it, then
    moved into place, so a half-built cache is never read)."""
    root = cache_root()
    root.parent.mkdir(parents=True, exist_ok=True)

    def build(tmp: Path) -> None:
        import datasets
        from transformers.utils import logging as hf_logging

        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
        try:
            _write(dataset_repos() + model_repos(), tmp)
            (tmp / "complete").write_text("")
        finally:
            if bars:
                datasets.enable_progress_bars()

    from course_lib.models import write_once

    write_once(root, build, marker="complete")
    return _read(root) + space_repos()


def space_repos() -> list[Repo]:
    """``evaluate-metric/squad``, the Space ``evaluate.load("squad")`` fetches ``squad.py`` from: the
    course's own SQuAD metric (``course_lib.metrics.squad_metric_path()``), the same inputs and outputs
    as the Space's (its README: predictions ``{id, prediction_text}``, references ``{id, answers}``)."""
    from course_lib.metrics import squad_metric_path

    script = (Path(squad_metric_path()) / "squad_v1.py").read_bytes()
    return [Repo("evaluate-metric/squad", "space", {"main": {"squad.py": script}})]
