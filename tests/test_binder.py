"""Binder's environment resolves as written: the server from conda-forge, pip's part from the pinned set."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "binder"))
from pins import missing_pins  # noqa: E402

SERVER = ("jupyterlab", "nbgrader")  # what conda-forge installs, with the rest of the Jupyter server


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


