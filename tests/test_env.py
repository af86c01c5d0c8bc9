"""course_lib.env: platform detection, profiles, the fast hub check, seeds, report."""
from __future__ import annotations

import random
import socket
import sys
import time

import numpy as np
import pytest
import torch

from course_lib import env, project

PLATFORM_VARS = (
    "COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE",
    "BINDER_REPO_URL", "BINDER_LAUNCH_HOST", "JUPYTERHUB_USER", "JUPYTERHUB_API_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Each test starts on a plain laptop: no platform, no profile, no offline flags, no cache."""
    for var in PLATFORM_VARS + env._OFFLINE_VARS + ("COURSE_PROFILE", "NBGRADER_EXECUTION", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(env, "_hub_answer", None)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)


@pytest.mark.parametrize(
    "var, expected",
    [
        ("COLAB_RELEASE_TAG", "colab"),
        ("KAGGLE_KERNEL_RUN_TYPE", "kaggle"),
        ("BINDER_REPO_URL", "binder"),
        ("JUPYTERHUB_USER", "jupyterhub"),
    ],
)
def test_platform_from_environment(monkeypatch, var, expected):
    assert env.platform() == "local"
    monkeypatch.setenv(var, "x")
    assert env.platform() == expected


def test_binder_wins_over_its_jupyterhub(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "jovyan")
    monkeypatch.setenv("BINDER_REPO_URL", "https://example.org/repo")
    assert env.platform() == "binder"


def test_grading_detection(monkeypatch):
    assert not env.in_grading()
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert env.in_grading()


def test_profile_from_variable(monkeypatch):
    for name in env.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name.upper())
        assert env.profile() == name
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="COURSE_PROFILE must be one of"):
        env.profile()


def test_profile_is_tiny_under_nbgrader_and_pytest(monkeypatch):
    assert env.profile() == "tiny"  # PYTEST_CURRENT_TEST is set while a test runs
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    assert env.profile() == "tiny"


@pytest.mark.parametrize(
    "gpu, hub, expected", [("cuda", True, "full"), ("cuda", False, "cpu"), ("cpu", True, "cpu"), ("mps", True, "cpu")]
)
def test_profile_from_device_and_hub(monkeypatch, gpu, hub, expected):
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(env, "device", lambda **_: gpu)
    monkeypatch.setattr(env, "hub_available", lambda **_: hub)
    assert env.profile() == expected


def test_device_hint_names_the_platform_menu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
    assert env.device(want_gpu=True) == "cpu"
    assert "Runtime > Change runtime type" in capsys.readouterr().out
    assert "Settings > Accelerator" in env.gpu_hint("kaggle")
    assert env.device() == "cpu" and capsys.readouterr().out == ""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_unreachable_is_decided_fast_and_switches_libraries_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    assert env.hub_available() is False
    assert time.perf_counter() - start < 2.0
    assert all(__import__("os").environ[v] == "1" for v in env._OFFLINE_VARS)
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True


def test_hub_check_gives_up_on_a_host_that_never_answers(monkeypatch):
    """A lookup or connect that hangs (the 20-70 s retries measured here) is cut at the timeout."""
    def never_answers(*args, **kwargs):
        time.sleep(30)
        raise TimeoutError("timed out")   # what a real connect does in the end (the thread outlives the test)

    monkeypatch.setattr(socket, "create_connection", never_answers)
    start = time.perf_counter()
    assert env.hub_available() is False
    assert time.perf_counter() - start < env.HUB_TIMEOUT_S + 0.5


def test_hub_reachable_on_a_listening_loopback_server(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert env.hub_available() is True
        assert __import__("os").environ.get("HF_HUB_OFFLINE") is None


def test_hub_answer_is_cached_and_offline_flag_short_circuits(monkeypatch):
    calls = []
    monkeypatch.setattr(env, "_can_connect", lambda *a, **k: calls.append(1) or True)
    assert env.hub_available() and env.hub_available()
    assert len(calls) == 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert env.hub_available(refresh=True) is False
    assert len(calls) == 1


def test_bad_endpoint_is_named(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "not a url")
    with pytest.raises(ValueError, match="HF_ENDPOINT"):
        env.hub_available()


def test_offline_model_load_fails_at_once_after_the_check(monkeypatch):
    """The point of the check: no 47 s of retries in AutoTokenizer once we know."""
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert env.hub_available() is False
    start = time.perf_counter()
    with pytest.raises(OSError):
        AutoTokenizer.from_pretrained("qair-course/no-such-model")
    assert time.perf_counter() - start < 5.0


def test_set_seed_is_reproducible():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    env.set_seed(7)
    first = draw()
    env.set_seed(7)
    assert draw() == first
    env.set_seed(8)
    assert draw() != first
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed must be"):
            env.set_seed(bad)


def test_report_lists_versions_and_warns_outside_tested_range(monkeypatch):
    text = env.report()
    for row in ("platform", "profile", "device", "torch", "transformers", "nbgrader"):
        assert row in text
    assert "WARNING" not in text, text
    monkeypatch.setitem(env.TESTED_VERSIONS, "numpy", ("0.1", "0.2"))
    monkeypatch.setitem(env.TESTED_VERSIONS, "no-such-dist-qair", ("1", "2"))
    warnings = env.version_warnings()
    assert any("numpy" in w and "outside the tested range" in w for w in warnings)
    assert any("no-such-dist-qair is not installed" in w for w in warnings)


def test_setup_notebook_quiets_grading_mode(monkeypatch, capsys):
    import logging

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(logging.getLogger("transformers"), "level", logging.NOTSET)
    assert env.setup_notebook(seed=3) == "tiny"
    assert "profile" in capsys.readouterr().out
    assert logging.getLogger("transformers").level == logging.ERROR
    assert sys.modules["matplotlib"].rcParams["axes.grid"] is True


def test_project_urls_come_from_one_place():
    path = "notebooks/release/01_tfidf/01_tfidf.ipynb"
    assert project.colab_url(path).endswith(f"{project.OWNER}/{project.NAME}/blob/{project.BRANCH}/{path}")
    assert project.kaggle_url(path) == f"https://kaggle.com/kernels/welcome?src={project.REPO_URL}/blob/main/{path}"
    assert project.binder_url().startswith("https://mybinder.org/v2/gh/")
    assert project.PIP_SPEC == f"git+{project.REPO_URL}@{project.BRANCH}"


def test_memory_limit_is_the_least_of_ram_cgroup_and_binder(monkeypatch, tmp_path):
    ram = __import__("os").sysconf("SC_PAGE_SIZE") * __import__("os").sysconf("SC_PHYS_PAGES")
    unlimited = tmp_path / "memory.max"
    unlimited.write_text("max\n")
    monkeypatch.setattr(env, "CGROUP_LIMITS", (str(unlimited), str(tmp_path / "missing")))
    monkeypatch.delenv("MEM_LIMIT", raising=False)
    assert env.memory_limit() == ram
    capped = tmp_path / "limit_in_bytes"
    capped.write_text(f"{3 * 2**30}\n")
    monkeypatch.setattr(env, "CGROUP_LIMITS", (str(unlimited), str(capped)))
    assert env.memory_limit() == min(ram, 3 * 2**30)
    monkeypatch.setenv("MEM_LIMIT", str(2 * 2**30))   # what mybinder.org sets
    assert env.memory_limit() == min(ram, 2 * 2**30)
