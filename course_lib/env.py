"""Where a chapter runs, and what it may use there.

Every chapter's first cell calls :func:`setup_notebook`. The rest of
``course_lib`` asks :func:`profile` which data and models to use:

* ``full``: hub models and full datasets (Colab or Kaggle with a GPU and internet),
* ``cpu``:  the embedded default: bundled data, packaged models, minutes on 2 cores,
* ``tiny``: tests and autograding: tiny models built offline in seconds.

Each chapter takes its sizes (rows, steps, epochs, generation length) from :func:`sizes`: the
profile's own, or ``tiny``'s in a rehearsal (``COURSE_REHEARSAL=1``), where a test executes the
``full`` or ``cpu`` code path (the same loaders, models, Trainer and accelerate code) in minutes.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import random
import socket
import sys
import threading
import warnings
from urllib.parse import urlparse

PROFILES = ("full", "cpu", "tiny")
REHEARSAL_VAR = "COURSE_REHEARSAL"
HUB_TIMEOUT_S = 1.5
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")

# Versions this course is tested with: lower bound inclusive (pyproject.toml's, the platforms'
# oldest: tests/test_setup.py checks they agree), upper bound exclusive.
TESTED_VERSIONS = {
    "torch": ("2.10", "2.14"),
    "transformers": ("5.0", "6.0"),
    "datasets": ("4.0", "6.0"),
    "evaluate": ("0.4.3", "0.5"),
    "accelerate": ("1.13", "2.0"),
    "numpy": ("2.0.2", "3.0"),
    "scipy": ("1.16.3", "2.0"),
    "matplotlib": ("3.10", "4.0"),
    "faiss-cpu": ("1.8", "2.0"),
    "nbgrader": ("0.9", "0.10"),
    "jupyterlab": ("4.0", "5.0"),
}
# What only an instructor runs: never reported on a student platform.
INSTRUCTOR_ONLY = ("nbgrader", "jupyterlab")
STUDENT_PLATFORMS = ("colab", "kaggle")

_hub_answer: bool | None = None
_cuda_answer: tuple[bool, str] | None = None


def platform() -> str:
    """``colab``, ``kaggle``, ``binder``, ``jupyterhub`` or ``local``, read from the environment."""
    env = os.environ
    if "COLAB_RELEASE_TAG" in env or "COLAB_GPU" in env:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in env or "KAGGLE_URL_BASE" in env:
        return "kaggle"
    if "BINDER_REPO_URL" in env or "BINDER_LAUNCH_HOST" in env:
        return "binder"
    if "JUPYTERHUB_USER" in env or "JUPYTERHUB_API_URL" in env:
        return "jupyterhub"
    return "local"


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit() -> int:
    """Bytes of memory this process may use: the least of the machine's RAM, the
    container's cgroup limit (v2 or v1) and Binder's ``MEM_LIMIT``."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for path in CGROUP_LIMITS:
        try:
            with open(path) as limit_file:
                value = limit_file.read().strip()
        except OSError:
            continue
        if value.isdigit():          # "max" (v2) means no limit
            limits.append(int(value))
    if os.environ.get("MEM_LIMIT", "").isdigit():
        limits.append(int(os.environ["MEM_LIMIT"]))
    return min(limits)


def in_grading() -> bool:
    """True while nbgrader validates or autogrades this kernel (``NBGRADER_EXECUTION`` is set)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def gpu_hint(where: str | None = None) -> str:
    """The platform's own way to switch a GPU on, in plain words."""
    where = where or platform()
    if where == "colab":
        return "No GPU found. In Colab: Runtime > Change runtime type > Hardware accelerator: GPU, then rerun."
    if where == "kaggle":
        return "No GPU found. In Kaggle: Settings > Accelerator > GPU (phone-verified account needed), then rerun."
    chosen = profile()
    return "No GPU found: this chapter runs on the CPU" + (
        " with the smaller 'cpu' profile." if chosen == "cpu" else f", on the '{chosen}' profile all the same.")


def cuda_usable(*, refresh: bool = False) -> tuple[bool, str]:
    """``(usable, why)``: can this torch run one small operation on the CUDA device?

    ``torch.cuda.is_available()`` is not enough: a GPU older than the installed build
    supports (Kaggle's P100 with today's cu12x wheels) is "available", then the first
    kernel fails. Decided once, by a tiny multiplication on the device, then cached.
    """
    global _cuda_answer
    if _cuda_answer is not None and not refresh:
        return _cuda_answer
    try:
        import torch
    except ImportError:
        _cuda_answer = (False, "torch is not installed")
        return _cuda_answer
    if not torch.cuda.is_available():
        _cuda_answer = (False, "no CUDA device")
        return _cuda_answer
    try:
        name = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 (any driver error means the same: unusable)
        name = "CUDA"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch warns about unsupported capabilities; we say it plainly
            probe = torch.ones(2, device="cuda") * 2
            ok = float(probe.sum().item()) == 4.0
    except Exception as err:  # noqa: BLE001 (RuntimeError or AcceleratorError, by torch version)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _cuda_answer = (False, f"a {name} GPU is attached, but torch {torch.__version__} cannot run on it "
                               f"({first_line}); the chapter runs on the CPU")
        return _cuda_answer
    _cuda_answer = (ok, name if ok else f"a {name} GPU is attached, but it computed 2 x [1, 1] wrongly; "
                                        "the chapter runs on the CPU")
    return _cuda_answer


def device(*, want_gpu: bool = False) -> str:
    """``cuda`` (when a small operation runs there, :func:`cuda_usable`), ``mps`` or ``cpu``;
    with ``want_gpu`` print how to enable a GPU, or why the attached one is not used."""
    try:
        import torch
    except ImportError:
        return "cpu"
    usable, why = cuda_usable()
    if usable:
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    if want_gpu:
        print(why[0].upper() + why[1:] + "." if torch.cuda.is_available() else gpu_hint())
    return "cpu"


def _hub_endpoint() -> str:
    """``HF_ENDPOINT`` (default ``https://huggingface.co``), checked to be a URL."""
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = urlparse(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"HF_ENDPOINT must be a URL such as https://huggingface.co, got {endpoint!r}")
    return endpoint


def hub_check_repo() -> str:
    """The repository :func:`hub_available` asks for: the model every profile but tiny loads first."""
    from .models import MINILM_HUB  # models imports env: a late import

    return MINILM_HUB


def hub_check_path() -> str:
    """What :func:`hub_available` asks the hub for: a small file of :func:`hub_check_repo`."""
    return f"/{hub_check_repo()}/resolve/main/config.json"


def _probe(endpoint: str, timeout: float) -> str | None:
    """``None`` when ``endpoint`` serves the course's first download, else why not, in plain words.

    One ``HEAD`` of :func:`hub_check_path` (what ``hf_hub_download`` asks first), no redirect
    followed (a redirect to a CDN means "served"), no retry; ``timeout`` seconds for the connection
    and the answer, and the whole probe runs in a daemon thread, so a DNS lookup that hangs cannot hold us.
    """
    import urllib.error
    import urllib.request

    repo_id, path = hub_check_repo(), hub_check_path()
    answer: list[str | None] = []

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def attempt() -> None:
        request = urllib.request.Request(endpoint + path, method="HEAD",
                                         headers={"User-Agent": "qair-course hub check"})
        try:
            urllib.request.build_opener(NoRedirect).open(request, timeout=timeout).close()
            answer.append(None)
        except urllib.error.HTTPError as error:
            code = error.headers.get("X-Error-Code", "")
            if 300 <= error.code < 400:
                answer.append(None)
            elif code == "GatedRepo":
                answer.append(f"{endpoint} answered HTTP {error.code}: {repo_id} is gated; "
                              "log in with huggingface_hub.login() and accept its conditions on its page")
            elif error.code in (401, 403, 404):
                answer.append(f"{endpoint} answered HTTP {error.code}{' ' + code if code else ''}: "
                              f"it does not serve {repo_id}")
            elif error.code >= 500:
                answer.append(f"{endpoint} answered HTTP {error.code}, a server error; "
                              "restart the kernel later to try again")
            else:
                answer.append(f"{endpoint} answered HTTP {error.code}")
        except (TimeoutError, socket.timeout):
            answer.append(f"{endpoint} did not answer within {timeout:g} s")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                answer.append(f"{endpoint} did not answer within {timeout:g} s")
            else:
                answer.append(f"{endpoint} is unreachable ({reason})")

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return answer[0] if answer else f"{endpoint} did not answer within {timeout:g} s"


def go_offline() -> None:
    """Tell every Hugging Face library to use local files only, even if already imported."""
    for var in _OFFLINE_VARS:
        os.environ[var] = "1"
    if "huggingface_hub.constants" in sys.modules:
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        config = sys.modules["datasets.config"]
        config.HF_HUB_OFFLINE = config.HF_DATASETS_OFFLINE = True


def hub_available(*, refresh: bool = False) -> bool:
    """Does the model/dataset hub serve the course? Decided once, within ~2 s, then cached.

    :func:`_probe` asks ``HF_ENDPOINT`` for the course's first download, once: a hub that is
    unreachable, slower than ``HUB_TIMEOUT_S``, or answers 401/404 (missing, gated) or 5xx
    means "no", said in one plain sentence. Then :func:`go_offline` sets ``HF_HUB_OFFLINE=1``
    (and friends) so that later ``from_pretrained`` / ``load_dataset`` calls fail at once instead
    of retrying for 20-70 s. ``HF_HUB_OFFLINE=1`` set beforehand means "no" at once, silently.
    Past the probe, downloads wait the clients' own timeouts (``HF_HUB_ETAG_TIMEOUT``,
    ``HF_HUB_DOWNLOAD_TIMEOUT``: 10 s each in huggingface_hub 2.4).
    """
    global _hub_answer
    if _hub_answer is not None and not refresh:
        return _hub_answer
    if any(os.environ.get(v, "").upper() in ("1", "TRUE", "YES", "ON") for v in _OFFLINE_VARS):
        _hub_answer = False
    else:
        why = _probe(_hub_endpoint(), HUB_TIMEOUT_S)
        _hub_answer = why is None
        if why:
            print(f"The hub is not used ({why}): the course runs on its bundled data and packaged models.")
    if not _hub_answer:
        go_offline()
    return _hub_answer


def profile_reason() -> tuple[str, str]:
    """``(profile, why)``: ``COURSE_PROFILE`` if set, else chosen from where we run.

    ``tiny`` under nbgrader and pytest; ``full`` with a usable CUDA GPU and the hub; ``cpu`` otherwise.
    """
    chosen = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if chosen:
        if chosen not in PROFILES:
            raise ValueError(f"COURSE_PROFILE must be one of {PROFILES}, got {chosen!r}")
        return chosen, "COURSE_PROFILE is set"
    if in_grading():
        return "tiny", "nbgrader is grading"
    if "PYTEST_CURRENT_TEST" in os.environ:
        return "tiny", "running under pytest"
    gpu, hub = device() == "cuda", hub_available()
    if gpu and hub:
        return "full", "a usable CUDA GPU and the model hub"
    return "cpu", "no usable GPU" if hub else ("a GPU but no model hub" if gpu else "no usable GPU, no model hub")


def profile() -> str:
    """``full``, ``cpu`` or ``tiny``: the first item of :func:`profile_reason`."""
    return profile_reason()[0]


def rehearsal() -> bool:
    """True when ``COURSE_REHEARSAL`` is set (``1``, ``true``, ``yes``, ``on``): a test rehearses a profile on small sizes."""
    return os.environ.get(REHEARSAL_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def sizes(chosen: str | None = None) -> str:
    """The profile whose sizes a chapter uses (its ``{"full": ..., "cpu": ..., "tiny": ...}[SIZES]``
    tables): ``chosen`` (default: :func:`profile`), or ``tiny`` in a :func:`rehearsal`. Only sizes:
    which data, models and code run is still ``chosen``'s."""
    chosen = chosen or profile()
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {chosen!r}")
    return "tiny" if rehearsal() else chosen


def set_seed(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and (if installed) torch, CPU and GPU."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)  # seeds every CUDA device too


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_warnings() -> list[str]:
    """Plain-words warnings for required packages missing or outside :data:`TESTED_VERSIONS`
    (on Colab and Kaggle, nothing about :data:`INSTRUCTOR_ONLY` packages)."""
    from packaging.version import Version

    student = platform() in STUDENT_PLATFORMS
    notes = []
    for dist, (low, high) in TESTED_VERSIONS.items():
        if student and dist in INSTRUCTOR_ONLY:
            continue
        found = _version(dist)
        if found is None:
            notes.append(f"{dist} is not installed; some cells will fail.")
        elif not Version(low) <= Version(found) < Version(high):
            notes.append(f"{dist} {found} is outside the tested range {low} <= v < {high}; results may differ.")
    return notes


def report() -> str:
    """One plain-text table: platform, profile and why, device, Python, course and package versions."""
    from . import __version__

    chosen, why = profile_reason()
    usable, cuda_why = cuda_usable()
    rows = [
        ("platform", platform()),
        ("profile", f"{chosen} ({why})" + (f", tiny sizes ({REHEARSAL_VAR} is set)" if rehearsal() else "")),
        ("device", device() + (f" ({cuda_why})" if usable or _has_cuda() else "")),
        ("grading", "yes" if in_grading() else "no"),
        ("python", sys.version.split()[0]),
        ("qair-course", __version__),
    ]
    shown = [d for d in TESTED_VERSIONS if not (platform() in STUDENT_PLATFORMS and d in INSTRUCTOR_ONLY)]
    rows += [(dist, _version(dist) or "not installed") for dist in shown]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"WARNING: {note}" for note in version_warnings()]
    return "\n".join(lines)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def quiet() -> None:
    """Silence warnings, logging and progress bars (nbgrader scores a test cell with stderr output 0)."""
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("transformers", "datasets", "evaluate", "accelerate", "huggingface_hub", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _matplotlib_defaults() -> None:
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def setup_notebook(seed: int = 0, *, show: bool = True) -> str:
    """The one call every chapter's first cell makes.

    Seeds everything, decides the hub question once (so offline fails fast),
    silences logs in grading mode and tiny profile, sets plot defaults, and
    prints :func:`report` once; on Colab and Kaggle without a usable GPU, also the
    platform's own way to switch one on (or why the attached one is not used).
    Returns the chosen profile.
    """
    set_seed(seed)
    hub_available()
    chosen = profile()
    if in_grading() or chosen == "tiny":
        quiet()
    _matplotlib_defaults()
    if show:
        print(report())
        if platform() in STUDENT_PLATFORMS and not in_grading():
            device(want_gpu=True)
    return chosen
