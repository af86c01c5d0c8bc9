"""course_lib.data: bundled loaders with hub features, offline fallbacks, SQuAD JSON, download cache."""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
import zipfile
from pathlib import Path

import pytest
from datasets import ClassLabel

from course_lib import data, env
from course_lib.data import bundled
from course_lib.data.features import SQUAD_FEATURES


def test_corpus_queries_qrels_have_beir_features():
    corpus, queries, qrels = data.load_corpus(), data.load_queries(), data.load_qrels()
    assert list(corpus.features) == ["_id", "title", "text"]
    assert list(queries.features) == ["_id", "title", "text"]
    assert list(qrels.features) == ["query-id", "corpus-id", "score"]
    ids = set(corpus["_id"])
    assert len(ids) == len(corpus) >= 400
    assert set(qrels["corpus-id"]) <= ids and set(qrels["query-id"]) <= set(queries["_id"])
    assert set(qrels["score"]) == {0, 1, 2}


def test_qrels_dict_matches_the_dataset():
    as_dict = data.qrels_dict()
    qrels = data.load_qrels()
    assert sum(len(v) for v in as_dict.values()) == len(qrels)
    row = qrels[0]
    assert as_dict[row["query-id"]][row["corpus-id"]] == row["score"]
    assert set(data.paraphrase_query_ids()) <= set(as_dict) and len(data.paraphrase_query_ids()) >= 40


def test_squad_like_has_squad_features_and_every_answer_start_points_at_its_answer():
    squad = data.load_squad_like()
    assert set(squad) == {"train", "validation"}
    for split in squad.values():
        assert split.features == SQUAD_FEATURES
        for ex in split:
            for text, start in zip(ex["answers"]["text"], ex["answers"]["answer_start"]):
                assert ex["context"][start : start + len(text)] == text, ex["id"]
    assert all(len(ex["answers"]["text"]) == 1 for ex in squad["train"])
    assert max(len(ex["answers"]["text"]) for ex in squad["validation"]) > 1
    assert len(squad["train"]) + len(squad["validation"]) >= 600


def test_splits_share_no_passage_and_no_context():
    squad = data.load_squad_like()
    train, validation = set(squad["train"]["context"]), set(squad["validation"]["context"])
    assert not train & validation
    topic_of = {t["topic"]: t["split"] for t in bundled.topics()}
    for split, rows in squad.items():
        for qa_id in rows["id"]:
            assert topic_of[qa_id.rsplit("-qa", 1)[0]] == split


def test_some_contexts_overflow_a_384_token_window():
    from transformers import AutoTokenizer

    from course_lib.models import packaged_minilm

    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
    contexts = set(data.load_squad_like()["train"]["context"])
    long = [c for c in contexts if len(tokenizer(c)["input_ids"]) > 384]
    assert len(long) >= 10


def test_multihop_and_mcq_layouts():
    multihop = data.load_multihop()
    assert len(multihop) >= 40
    passages = data.passages()
    for row in multihop:
        first, second = row["passage_ids"]
        assert row["answer"] in passages[second]["text"] and first != second
    mcq = data.load_mcq()
    assert isinstance(mcq.features["answer"], ClassLabel) and mcq.features["answer"].names == list("ABCD")
    assert len(mcq) >= 60 and all(len(c) == 4 for c in mcq["choices"])


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(env, "_hub_answer", False)


@pytest.mark.parametrize(
    "loader, kwargs, bundled_len",
    [
        (data.load_squad, {"split": "validation"}, lambda: len(data.load_squad_like()["validation"])),
        (data.load_ms_marco, {"limit": 5}, lambda: 5),
        (data.load_natural_questions, {"limit": 7}, lambda: 7),
        (data.load_tydiqa, {"limit": 3}, lambda: 3),
        (data.load_dureader, {"split": "train", "limit": 4}, lambda: 4),
        (data.load_mmlu, {}, lambda: len(data.load_mcq())),
    ],
)
def test_hub_loaders_fall_back_at_once_with_one_plain_message(offline, capsys, loader, kwargs, bundled_len):
    start = time.perf_counter()
    result = loader(**kwargs)
    assert time.perf_counter() - start < 5
    assert len(result) == bundled_len()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "The dataset hub is not available, so " in out and "bundled" in out


def test_beir_fallback_and_bad_limits(offline, capsys):
    beir = data.load_beir("scifact", limit=10)
    assert len(beir["corpus"]) == 10 and list(beir["qrels"].features) == ["query-id", "corpus-id", "score"]
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="limit must be a positive int"):
            data.load_squad(limit=bad)
    with pytest.raises(ValueError, match="split must be 'train' or 'validation'"):
        data.load_dureader("dev")


def test_load_squad_json_flattens_the_official_dev_set(squad_dev_path):
    ds = data.load_squad_json(squad_dev_path)
    assert len(ds) == 10_570 and ds.features == SQUAD_FEATURES
    assert len(set(ds["title"])) == 48 and len(set(ds["context"])) == 2_067
    counts = [len(a["text"]) for a in ds["answers"]]  # reference answers per question, as published
    assert (min(counts), max(counts), counts.count(3)) == (1, 6, 8_490)
    ok = sum(ex["context"][s : s + len(t)] == t for ex in ds for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"]))
    total = sum(len(a["text"]) for a in ds["answers"])
    assert ok / total > 0.99


def _tiny_squad() -> dict:
    return {"version": "1.1", "data": [{"title": "Lighthouses", "paragraphs": [{
        "context": "The lamp was lit at dusk by the keeper.",
        "qas": [{"id": "q1", "question": "When was the lamp lit?", "answers": [{"text": "at dusk", "answer_start": 13}]}],
    }]}]}


def test_load_squad_json_reads_plain_and_zipped_files_and_rejects_others(tmp_path):
    plain = tmp_path / "mini.json"
    plain.write_text(json.dumps(_tiny_squad()))
    zipped = tmp_path / "mini.json.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.write(plain, "mini.json")
    for path in (plain, zipped):
        (row,) = data.squad_rows(path)
        assert row == {"id": "q1", "title": "Lighthouses", "context": "The lamp was lit at dusk by the keeper.",
                       "question": "When was the lamp lit?", "answers": {"text": ["at dusk"], "answer_start": [13]}}
    with pytest.raises(FileNotFoundError, match="path must be a SQuAD JSON file"):
        data.squad_rows(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not SQuAD JSON"):
        data.squad_rows(tmp_path / "other.json")


@pytest.fixture
def file_server(tmp_path):
    """A loopback HTTP server over tmp_path/www that counts its requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_download_once_with_checksum(file_server, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    root, url, hits = file_server
    payload = b"passage\tvector\n" * 100
    (root / "vectors.tsv").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    first = data.download(f"{url}/vectors.tsv", digest)
    second = data.download(f"{url}/vectors.tsv", digest)
    assert first == second and first.read_bytes() == payload and len(hits) == 1
    first.write_bytes(b"corrupted")
    assert data.download(f"{url}/vectors.tsv", digest).read_bytes() == payload and len(hits) == 2
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.download(f"{url}/vectors.tsv", "0" * 64, filename="other.tsv")
    assert not (tmp_path / "cache" / "downloads" / "other.tsv").exists()
    with pytest.raises(ValueError, match="sha256_hex must be 64 hex digits"):
        data.download(f"{url}/vectors.tsv", "abc")


def test_datasheet_counts_match_the_collection():
    import re

    sheet = (Path(bundled.__file__).parent / "README.md").read_text()

    def stated(part: str) -> int:
        return int(re.search(rf"^\| {part} \| (\d+)", sheet, re.M).group(1))

    squad = data.load_squad_like()
    assert stated("topics") == len(bundled.topics())
    assert stated("passages") == len(data.load_corpus())
    assert stated("retrieval queries") == len(data.load_queries())
    assert stated("relevance judgments") == len(data.load_qrels())
    assert stated("extractive QA") == len(squad["train"]) + len(squad["validation"])
    assert stated("multi-hop questions") == len(data.load_multihop())
    assert stated("multiple-choice questions") == len(data.load_mcq())
