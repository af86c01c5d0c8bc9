"""Shared test settings: offline, one thread, a repo-local model cache, shared data."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("COURSE_CACHE", str(ROOT / ".cache" / "course"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_file(relative: str) -> Path:
    """A file under ../shared/data: missing fails under CI=true, else skips with the reason."""
    path = SHARED_DATA / relative
    if not path.is_file():
        missing(f"shared test data {path} is missing (it sits beside the repository in CI)")
    return path


def missing(reason: str) -> None:
    """Something a test needs is absent: a failure under CI=true (CI must have it), else a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def squad_dev_path() -> Path:
    """The official SQuAD v1.1 dev set (zip), used only in tests, never copied."""
    return shared_file("squad/dev-v1.1.json.zip")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bubblewrap() -> None:
    """The grading sandbox (bubblewrap, apt-get installs it as root when missing): missing fails under CI=true, else skips."""
    from course_lib import sandbox

    why = sandbox.install_bubblewrap()
    if why:
        missing(why)


PLATFORMS = tuple(tomllib.loads((ROOT / "platforms.toml").read_text()))
HUB_REHEARSALS = ("full", "cpu")  # the profiles tests/test_full_profile.py executes against the hub emulator


def worker_group(nodeid: str) -> str:
    """The work unit a pytest-xdist worker takes whole (`make test` runs one worker per core).

    A test file is one unit, so its module fixtures are built once; the platform rehearsals split by
    the platform a test is parametrized with (``test_x[colab-01_tfidf]``): each builds its own environment;
    the hub rehearsals by profile (``test_full_profile[cpu-04_rag]``): each has its own caches.
    """
    path, _, name = nodeid.partition("::")
    group = Path(path).stem
    if group == "test_prose":  # it reads test_notebooks' executed chapters (cached per process)
        group = "test_notebooks"
    params = name.partition("[")[2].rstrip("]").split("-")
    platform = next((p for p in params if p in PLATFORMS), None)
    if group == "test_full_profile" and params[0] in HUB_REHEARSALS:
        platform = params[0]
    return f"{group}-{platform}" if platform else group


# The longest units, started first so that no worker is left with one at the end (from --durations).
LONGEST_FIRST = ("test_course_grading", "test_platforms-colab", "test_platforms-kaggle", "test_platforms",
                 "test_full_profile-full", "test_full_profile-cpu", "test_course", "test_hostile")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Schedule by :func:`worker_group`, units in collection order (:data:`LONGEST_FIRST`). (xdist's
    ``--dist loadgroup`` reads a suffix that pytest 9 no longer lets it add to node ids: every test
    became a unit of its own, and two workers built one platform's environment at once.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False
    return ByGroup(config, log)
