"""course_lib.env: platform detection, profiles, the fast hub check, seeds, report."""
from __future__ import annotations

import random
import socket
import sys
import time

import numpy as np
import pytest
import torch

import course_lib
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
    monkeypatch.setattr(env, "_cuda_answer", None)
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


@pytest.mark.parametrize("profile, said", [("cpu", "runs on the CPU with the smaller 'cpu' profile."),
                                           ("full", "runs on the CPU, on the 'full' profile all the same.")])
def test_the_local_hint_names_the_profile_that_runs(monkeypatch, profile, said):
    """COURSE_PROFILE=full on a CPU (a maintainer against `make hub`) is not the 'cpu' profile."""
    monkeypatch.setenv("COURSE_PROFILE", profile)
    assert env.gpu_hint("local") == f"No GPU found: this chapter {said}"


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


def test_a_server_that_accepts_but_never_answers_is_not_a_hub(monkeypatch, capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert env.hub_available() is False
    assert f"did not answer within {env.HUB_TIMEOUT_S:g} s" in capsys.readouterr().out


def test_hub_answer_is_cached_and_offline_flag_short_circuits(monkeypatch):
    calls = []
    monkeypatch.setattr(env, "_probe", lambda *a, **k: calls.append(1) or None)
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
    assert project.TAG == f"v{course_lib.__version__}"
    assert project.colab_url(path).endswith(f"{project.OWNER}/{project.NAME}/blob/{project.TAG}/{path}")
    assert project.kaggle_url(path) == f"https://kaggle.com/kernels/welcome?src={project.REPO_URL}/blob/{project.TAG}/{path}"
    assert project.binder_url() == f"https://mybinder.org/v2/gh/{project.OWNER}/{project.NAME}/{project.TAG}"
    assert project.PIP_SPEC == f"qair-course @ git+{project.REPO_URL}@{project.TAG}"


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


def _fake_cuda(monkeypatch, *, kernels: bool):
    """A CUDA device torch reports as available; with ``kernels=False`` its first operation fails
    the way a Kaggle P100 does with today's cu12x builds."""
    real_ones = torch.ones

    def ones(*size, device=None, **kwargs):
        if device == "cuda":
            if not kernels:
                raise RuntimeError("CUDA error: no kernel image is available for execution on the device\n"
                                   "CUDA kernel errors might be asynchronously reported")
            return real_ones(*size, **kwargs)
        return real_ones(*size, device=device, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Tesla P100-PCIE-16GB")
    monkeypatch.setattr(torch, "ones", ones)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_a_gpu_torch_cannot_drive_is_reported_plainly_and_the_cpu_used(monkeypatch, capsys):
    _fake_cuda(monkeypatch, kernels=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert env.device(want_gpu=True) == "cpu"
    said = capsys.readouterr().out.strip()
    assert said.splitlines() == [said]
    assert "Tesla P100-PCIE-16GB" in said and f"torch {torch.__version__} cannot run on it" in said
    assert "no kernel image" in said and "runs on the CPU" in said
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(env, "hub_available", lambda **_: True)
    assert env.profile_reason() == ("cpu", "no usable GPU")


def test_a_gpu_that_computes_is_used(monkeypatch):
    _fake_cuda(monkeypatch, kernels=True)
    assert env.cuda_usable() == (True, "Tesla P100-PCIE-16GB")
    assert env.device() == "cuda"
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setattr(env, "hub_available", lambda **_: True)
    assert env.profile_reason() == ("full", "a usable CUDA GPU and the model hub")


def test_the_probe_runs_once(monkeypatch):
    _fake_cuda(monkeypatch, kernels=True)
    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: calls.append(1) or "GPU")
    env.device(), env.device(), env.profile()
    assert len(calls) == 1


@pytest.mark.parametrize("where", ["COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE"])
def test_student_platforms_hear_nothing_about_instructor_packages(monkeypatch, where):
    monkeypatch.setattr(env, "_version", lambda dist: None if dist in env.INSTRUCTOR_ONLY else env.TESTED_VERSIONS[dist][0])
    assert any("nbgrader" in w for w in env.version_warnings())     # on a laptop the instructor hears it
    monkeypatch.setenv(where, "x")
    assert env.version_warnings() == []
    assert "nbgrader" not in env.report() and "jupyterlab" not in env.report()


def test_first_cell_says_platform_profile_why_device_and_gpu_hint_once(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    assert env.setup_notebook() == "cpu"
    out = capsys.readouterr().out
    assert "platform      colab" in out and "profile       cpu (no usable GPU, no model hub)" in out
    assert "device        cpu" in out and f"qair-course   {course_lib.__version__}" in out
    assert out.count("Runtime > Change runtime type") == 1
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    env.setup_notebook()
    assert "Change runtime type" not in capsys.readouterr().out     # no platform menu off the platforms


def test_profile_reason_names_the_variable_and_grading(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert env.profile_reason() == ("cpu", "COURSE_PROFILE is set")
    monkeypatch.delenv("COURSE_PROFILE")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert env.profile_reason() == ("tiny", "nbgrader is grading")


def test_a_submission_from_another_release_is_flagged():
    assert project.version_warning({"metadata": {"qair_course": {"version": course_lib.__version__}}}) is None
    other = project.version_warning({"metadata": {"qair_course": {"version": "0.0.9"}}}, installed="0.1.0")
    assert "'0.0.9'" in other and "0.1.0" in other
    for hostile in ({}, {"metadata": None}, {"metadata": {"qair_course": "0.1.0"}},
                    {"metadata": {"qair_course": {"version": 1}}}, [], None):
        assert "records no course version" in project.version_warning(hostile, installed="0.1.0")
    assert len(project.version_warning({"metadata": {"qair_course": {"version": "x" * 10_000}}})) < 300


@pytest.mark.parametrize("value, rehearsal", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False)])
def test_a_rehearsal_takes_tiny_sizes_and_keeps_the_profile(monkeypatch, value, rehearsal):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv(env.REHEARSAL_VAR, value)
    assert env.rehearsal() is rehearsal
    assert env.sizes() == ("tiny" if rehearsal else "full") and env.profile() == "full"
    assert env.sizes("cpu") == ("tiny" if rehearsal else "cpu")
    assert ("tiny sizes (COURSE_REHEARSAL is set)" in env.report()) is rehearsal


def test_sizes_names_a_bad_profile():
    with pytest.raises(ValueError, match="profile must be one of"):
        env.sizes("gpu")
