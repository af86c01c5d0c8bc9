"""Shared test settings: offline, one thread, a repo-local model cache, shared data."""
from __future__ import annotations

import os
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


def _worker_group(item: pytest.Item) -> str:
    """The pytest-xdist group a test runs in (`make test` uses --dist loadgroup).

    A test file is one group, so its module fixtures are built once; the long files are split where
    their fixtures split: the platform rehearsals by platform (each builds its own environment), and
    chapter grading's graded class apart from the rest of test_course."""
    group = item.module.__name__.rpartition(".")[2]
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "rehearsed" in params:
        return f"{group}-{params['rehearsed']}"
    if group == "test_course" and "graded" in getattr(item, "fixturenames", ()):
        return f"{group}-graded"
    return group


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):   # the lower-bounds environment runs tests without it
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_worker_group(item)))
