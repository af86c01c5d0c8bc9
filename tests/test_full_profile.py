"""The ``full`` profile and the hub-backed ``cpu`` profile, every chapter executed against the hub
emulator (``hub/``) on this CPU: what a Colab or Kaggle student runs, before a student runs it.

``COURSE_REHEARSAL=1`` gives the chapters tiny's sizes (rows, steps, epochs) through
``env.sizes``; everything else is the profile's own: hub loaders, hub model classes, the Trainer and
the accelerate loop, mixed precision chosen by the device. Chapters run one kernel at a time, in
``course.execution_order`` (chapter 4 reads the reader chapter 5 fine-tunes), each profile with a
fresh ``COURSE_CACHE`` and ``HF_HOME``: nothing trained here reaches the course's own cache. Each
chapter must stay on the hub path (no fallback sentence), ask the emulator for nothing it does not
answer, and fetch the repositories :data:`FETCHES` names. `make test` runs the two profiles as two
units (``conftest.worker_group``)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib import course, env
from hub import fixtures
from hub.emulator import HubEmulator

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
MINILM, SCIFACT = ("model", "sentence-transformers/all-MiniLM-L6-v2"), {("dataset", "BeIR/scifact"),
                                                                        ("dataset", "BeIR/scifact-qrels")}
SQUAD, READER, METRIC = ("dataset", "rajpurkar/squad"), ("model", "distilbert/distilbert-base-cased-distilled-squad"), \
    ("space", "evaluate-metric/squad")
DATASETS = {SQUAD, ("dataset", "google-research-datasets/natural_questions"), ("dataset", "microsoft/ms_marco"),
            ("dataset", "PaddlePaddle/dureader_robust"), ("dataset", "google-research-datasets/tydiqa"),
            ("dataset", "cais/mmlu")}   # chapter 4's tour of the datasets, on every profile with the hub
# (profile, chapter) -> the repositories the chapter must fetch from the hub (besides env.hub_available's check)
FETCHES = {
    ("full", "01_tfidf"): SCIFACT, ("full", "02_bm25"): SCIFACT,
    ("full", "03_dense_retrieval"): {MINILM, ("model", "colbert-ir/colbertv2.0"), ("model", "cross-encoder/ms-marco-MiniLM-L6-v2")},
    ("full", "04_rag"): {MINILM, READER, ("model", "Qwen/Qwen2.5-0.5B-Instruct")} | DATASETS,
    ("full", "05_squad_finetuning"): {SQUAD, READER, ("model", "google-bert/bert-base-cased"), METRIC},
    ("cpu", "01_tfidf"): set(), ("cpu", "02_bm25"): set(),     # bundled data: the hub on changes nothing they fetch
    ("cpu", "03_dense_retrieval"): {MINILM},
    ("cpu", "04_rag"): {MINILM, ("model", "HuggingFaceTB/SmolLM2-135M-Instruct")} | DATASETS,
    ("cpu", "05_squad_finetuning"): {MINILM, METRIC},
}
PROFILES = ("full", "cpu")
CHAPTERS = {profile: course.execution_order(course.chapters()) for profile in PROFILES}
# what a chapter or course_lib says when it leaves the hub path
FALLBACKS = ("The hub is not used", "The dataset hub is not available", "The dataset hub did not serve",
             "The model hub is unreachable", "The hub is unreachable", "SciFact could not be loaded", "Section 10 skipped")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub():
    with HubEmulator(fixtures.repos(), aliases=fixtures.ALIASES) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """Per profile: a fresh course cache and Hugging Face home, shared by its chapters."""
    return {profile: tmp_path_factory.mktemp(f"rehearsal-{profile}") for profile in PROFILES}


def _requested(hub: HubEmulator, requests: list[str]) -> set[tuple[str, str]]:
    """The repositories ``requests`` asked the emulator for (file resolutions and API calls), less
    the one request of ``env.hub_available``'s check in the opening cell."""
    known = set(hub.repos) | set(hub.aliases)
    asked = set()
    requests = list(requests)
    requests.remove(f"HEAD {env.hub_check_path()}")
    for line in requests:
        path = line.split(" ", 1)[1].split("?")[0]
        for repo_type, repo_id in known:
            prefix = f"/api/{repo_type}s/{repo_id}/" if path.startswith("/api/") else (
                f"/{repo_type}s/{repo_id}/" if repo_type != "model" else f"/{repo_id}/")
            if (path + "/").startswith(prefix):
                asked.add((repo_type, hub.aliases.get((repo_type, repo_id), repo_id)))
    return asked


@pytest.mark.parametrize("profile, chapter", [(p, c) for p in PROFILES for c in CHAPTERS[p]])
def test_chapter_executes_against_the_hub(profile, chapter, hub, homes, monkeypatch, tmp_path):
    for var in OFFLINE + ("NBGRADER_EXECUTION",):
        monkeypatch.delenv(var, raising=False)
    home = homes[profile]
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("COURSE_CACHE", str(home / "course"))
    monkeypatch.setenv("COURSE_PROFILE", profile)
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    source = ROOT / "notebooks" / "source" / chapter / f"{chapter}.ipynb"
    nb = nbformat.read(source, as_version=4)
    first = len(hub.requests)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(source.parent)}}).execute()
    finally:
        nbformat.write(nb, tmp_path / f"{chapter}.ipynb")   # to read after a failure
    fetched = _requested(hub, hub.requests[first:])
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells for o in c.get("outputs", []))
    assert f"{profile} (COURSE_PROFILE is set), tiny sizes (COURSE_REHEARSAL is set)" in text
    fallbacks = [line for line in text.splitlines() if line.startswith(FALLBACKS) or "could not load" in line]
    assert not fallbacks, fallbacks
    assert hub.unknown == [], hub.unknown
    assert FETCHES[profile, chapter] <= fetched, FETCHES[profile, chapter] - fetched
