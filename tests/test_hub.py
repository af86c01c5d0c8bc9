"""The hub emulator (``hub/``): its protocol, the installed clients against it, the course's
loaders and hub models on the ``full`` path, and hub failures as students meet them.

Clients run in a subprocess: huggingface_hub and datasets read ``HF_ENDPOINT`` and the offline
switches at import, and this test process is offline (conftest). The stand-ins are built once
into ``COURSE_CACHE`` (``.cache/``, outside git)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from course_lib import env
from hub import fixtures
from hub.emulator import HubEmulator, Repo, git_sha

ROOT = Path(__file__).resolve().parents[1]
MAX_TRIES = 6  # downloads of one file that breaks half-way: the first and huggingface_hub http_get's 5 resumes, 1 s apart
SMALL = Repo("course/tiny", "model", {"main": {"config.json": b'{"a": 1}', "sub/dir/w.bin": bytes(range(100))}})


SPACE = Repo("course/metric", "space", {"main": {"metric.py": b"x = 1\n"}})


@pytest.fixture(scope="module")
def small_hub():
    with HubEmulator([SMALL, SPACE], aliases={("model", "tiny"): "course/tiny"}) as hub:
        yield hub


@pytest.fixture(scope="module")
def stand_ins():
    return fixtures.repos()


@pytest.fixture
def hub(stand_ins):
    with HubEmulator(stand_ins, aliases=fixtures.ALIASES) as emulator:
        yield emulator


def _request(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# ------------------------------------------------------------------ protocol
def test_resolve_answers_the_headers_the_client_reads(small_hub):
    status, headers, body = _request(f"{small_hub.url}/course/tiny/resolve/main/config.json", "HEAD")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == SMALL.commit("main")
    config = SMALL.revisions["main"]["config.json"]
    assert headers["ETag"] == f'"{git_sha(config)}"' and headers["Content-Length"] == str(len(config))
    status, headers, body = _request(f"{small_hub.url}/course/tiny/resolve/{SMALL.commit('main')}/sub/dir/w.bin",
                                     headers={"Range": "bytes=10-19"})
    assert status == 206 and body == bytes(range(10, 20)) and headers["Content-Range"] == "bytes 10-19/100"


def test_a_space_serves_its_files_as_evaluate_load_asks(small_hub):
    """``evaluate.load("squad")`` reads ``/spaces/evaluate-metric/squad/resolve/<tag>/squad.py``, then ``main``."""
    status, headers, _ = _request(f"{small_hub.url}/spaces/course/metric/resolve/v0.4.6/metric.py", "HEAD")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert _request(f"{small_hub.url}/spaces/course/metric/resolve/main/metric.py")[2] == b"x = 1\n"
    assert _request(f"{small_hub.url}/course/metric/resolve/main/metric.py", "HEAD")[0] == 401  # not a model


def test_errors_carry_the_codes_hf_raise_for_status_reads(small_hub):
    status, headers, _ = _request(f"{small_hub.url}/course/tiny/resolve/main/nope.json", "HEAD")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound") and "X-Repo-Commit" in headers
    status, headers, _ = _request(f"{small_hub.url}/course/other/resolve/main/config.json", "HEAD")
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
    status, headers, _ = _request(f"{small_hub.url}/api/models/course/tiny/revision/v9")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    assert small_hub.unknown == []
    assert _request(f"{small_hub.url}/course/tiny/blob/main/config.json")[0] == 404
    assert small_hub.unknown == ["GET /course/tiny/blob/main/config.json"]
    small_hub.unknown.clear()


def test_a_renamed_repository_redirects_to_its_new_id(small_hub):
    request = urllib.request.Request(f"{small_hub.url}/api/models/tiny/tree/main?recursive=True")
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                              {"redirect_request": lambda *args: None}))
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(request, timeout=10)
    assert answer.value.code == 307
    assert answer.value.headers["Location"] == "/api/models/course/tiny/tree/main?recursive=True"
    assert _request(f"{small_hub.url}/tiny/resolve/main/config.json")[2] == SMALL.revisions["main"]["config.json"]


def test_repo_info_tree_and_paths_info(small_hub):
    _, _, body = _request(f"{small_hub.url}/api/models/course/tiny")
    info = json.loads(body)
    assert info["sha"] == SMALL.commit("main") and [s["rfilename"] for s in info["siblings"]] == ["config.json",
                                                                                                    "sub/dir/w.bin"]
    _, _, body = _request(f"{small_hub.url}/api/models/course/tiny/tree/main")
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [("file", "config.json"), ("directory", "sub")]
    _, _, body = _request(f"{small_hub.url}/api/models/course/tiny/tree/main/sub?recursive=True")
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [("directory", "sub/dir"), ("file", "sub/dir/w.bin")]
    _, _, body = _request(f"{small_hub.url}/api/models/course/tiny/paths-info/main", "POST",
                          data=b"paths=sub%2Fdir%2Fw.bin&paths=sub&paths=absent&expand=False")
    assert [(e["type"], e["path"], e.get("size")) for e in json.loads(body)] == [
        ("file", "sub/dir/w.bin", 100), ("directory", "sub", None)]


def test_faults_answer_as_the_hub_does(small_hub):
    url = f"{small_hub.url}/course/tiny/resolve/main/sub/dir/w.bin"
    try:
        small_hub.set_fault("gated")
        status, headers, _ = _request(url, "HEAD")
        assert (status, headers["X-Error-Code"]) == (401, "GatedRepo")
        small_hub.set_fault("missing")
        assert _request(url, "HEAD")[1]["X-Error-Code"] == "RepoNotFound"
        small_hub.set_fault("server-error")
        assert _request(url, "HEAD")[0] == 503
        small_hub.set_fault("broken")
        with pytest.raises(Exception, match="IncompleteRead|incomplete"):  # http.client.IncompleteRead
            _request(url)
        with pytest.raises(ValueError, match="mode must be one of"):
            small_hub.set_fault("down")
    finally:
        small_hub.set_fault(None)
    assert _request(url)[2] == bytes(range(100))


# ------------------------------------------------------------------ clients, in a subprocess
def _client(code: str, endpoint: str, tmp_path: Path, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTEST_CURRENT_TEST")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT), COURSE_PROFILE="full",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_installed_clients_download_from_the_emulator(hub, tmp_path):
    out = _client("""
        from huggingface_hub import hf_hub_download
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        from datasets import load_dataset

        print(open(hf_hub_download("bert-base-cased", "config.json")).read().count("BertForMaskedLM"))
        tokenizer = AutoTokenizer.from_pretrained("bert-base-cased")
        model = AutoModelForMaskedLM.from_pretrained("bert-base-cased")
        print(type(tokenizer).__name__, type(model).__name__, tokenizer.tokenize("Magellan")[0])
        squad = load_dataset("rajpurkar/squad", "plain_text", split="validation")
        print(squad.num_rows, list(squad.features))
        stream = load_dataset("google-research-datasets/natural_questions", split="validation", streaming=True)
        print(sorted(next(iter(stream))["question"]))
    """, hub.url, tmp_path)
    assert out.splitlines() == ["1", "BertTokenizer BertForMaskedLM Magellan",
                                "24 ['id', 'title', 'context', 'question', 'answers']", "['text', 'tokens']"]
    assert hub.unknown == []


def test_full_profile_loaders_and_hub_models(hub, tmp_path):
    """Every loader in course_lib.data and every hub model the course names, on the hub path."""
    out = _client("""
        from course_lib import data, env
        from transformers import (AutoModel, AutoModelForCausalLM, AutoModelForQuestionAnswering,
                                  AutoModelForSequenceClassification, AutoTokenizer)

        assert env.hub_available() and env.profile() == "full"
        for name, rows in [("squad", data.load_squad("train")), ("ms_marco", data.load_ms_marco(limit=5)),
                           ("nq", data.load_natural_questions(limit=3)), ("tydiqa", data.load_tydiqa(limit=5)),
                           ("dureader", data.load_dureader("validation")), ("mmlu", data.load_mmlu(limit=5))]:
            print(name, rows.num_rows, ",".join(rows.column_names))
        beir = data.load_beir(limit=20)
        print("beir", *(f"{k}:{v.num_rows}:{','.join(v.column_names)}" for k, v in beir.items()))
        for repo_id, auto in [("bert-base-cased", AutoModelForQuestionAnswering),
                              ("distilbert-base-cased-distilled-squad", AutoModelForQuestionAnswering),
                              ("Qwen/Qwen2.5-0.5B-Instruct", AutoModelForCausalLM),
                              ("cross-encoder/ms-marco-MiniLM-L6-v2", AutoModelForSequenceClassification),
                              ("colbert-ir/colbertv2.0", AutoModel), ("sentence-transformers/all-MiniLM-L6-v2", AutoModel),
                              ("HuggingFaceTB/SmolLM2-135M-Instruct", AutoModelForCausalLM)]:
            tokenizer, model = AutoTokenizer.from_pretrained(repo_id), auto.from_pretrained(repo_id)
            chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                 add_generation_prompt=True) if tokenizer.chat_template else ""
            print(repo_id, type(tokenizer).__name__, type(model).__name__, chat.endswith("<|im_start|>assistant\\n"))
    """, hub.url, tmp_path)
    assert "bundled" not in out, out
    assert out.splitlines() == [
        "squad 48 id,title,context,question,answers",
        "ms_marco 5 answers,passages,query,query_id,query_type,wellFormedAnswers",
        "nq 3 id,document,question,long_answer_candidates,annotations",
        "tydiqa 5 id,title,context,question,answers",
        "dureader 2 id,context,question,answers",
        "mmlu 5 question,subject,choices,answer",
        "beir corpus:20:_id,title,text queries:215:_id,title,text qrels:354:query-id,corpus-id,score",
        "bert-base-cased BertTokenizer BertForQuestionAnswering False",
        "distilbert-base-cased-distilled-squad DistilBertTokenizer DistilBertForQuestionAnswering False",
        "Qwen/Qwen2.5-0.5B-Instruct Qwen2Tokenizer Qwen2ForCausalLM True",
        "cross-encoder/ms-marco-MiniLM-L6-v2 BertTokenizer BertForSequenceClassification False",
        "colbert-ir/colbertv2.0 BertTokenizer BertModel False",
        "sentence-transformers/all-MiniLM-L6-v2 BertTokenizer BertModel False",
        "HuggingFaceTB/SmolLM2-135M-Instruct GPT2Tokenizer LlamaForCausalLM True",
    ]
    assert hub.unknown == []


FAULT_CLIENT = """
    from course_lib import data
    for name, load in [("squad", lambda: data.load_squad(limit=2)), ("nq", lambda: data.load_natural_questions(limit=2)),
                       ("dureader", lambda: data.load_dureader(limit=2))]:
        print(name, load().num_rows)
"""
PROBE = f"HEAD {env.hub_check_path()}"


@pytest.mark.parametrize("mode, seconds, why", [
    ("missing", 0, "answered HTTP 401 RepoNotFound: it does not serve sentence-transformers/all-MiniLM-L6-v2"),
    ("gated", 0, "answered HTTP 401: sentence-transformers/all-MiniLM-L6-v2 is gated; log in with huggingface_hub.login()"),
    ("server-error", 0, "answered HTTP 503, a server error; restart the kernel later to try again"),
    ("slow", 4 * env.HUB_TIMEOUT_S, f"did not answer within {env.HUB_TIMEOUT_S:g} s"),
], ids=["missing", "gated", "server-error", "slow"])
def test_a_hub_that_answers_but_does_not_serve_is_left_after_one_request(hub, tmp_path, mode, seconds, why):
    """401 (missing, gated), 5xx and a hub slower than HUB_TIMEOUT_S: one sentence, the bundled data,
    and one request at the hub (the check's), no retry by any client."""
    hub.set_fault(mode, seconds)
    out = _client(FAULT_CLIENT, hub.url, tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith(f"The hub is not used ({hub.url} ") and why in lines[0], out
    assert lines[0].endswith("): the course runs on its bundled data and packaged models."), out
    assert lines[2::2] == ["squad 2", "nq 2", "dureader 2"], out
    assert all(line.startswith("The dataset hub is not available, so ") for line in lines[1::2]), out
    assert hub.requests == [PROBE]


def test_a_download_that_breaks_half_way_falls_back_with_one_sentence(hub, tmp_path):
    """The check's HEAD passes; each dataset's download breaks, gets the clients' few retries, then the bundled rows."""
    hub.set_fault("broken")
    out = _client(FAULT_CLIENT, hub.url, tmp_path)
    lines = out.splitlines()
    assert lines[1::2] == ["squad 2", "nq 2", "dureader 2"], out
    for line in lines[0::2]:
        assert line.startswith("The dataset hub did not serve ") and "the download failed" in line, out
    downloads = Counter(line for line in hub.requests if line.startswith("GET ") and "/resolve/" in line)
    assert downloads and max(downloads.values()) <= MAX_TRIES, downloads


def test_hub_available_when_it_serves_the_first_download(monkeypatch):
    """In this process: env.hub_available asks once for the course's first download and leaves the
    libraries online. (Here, not in test_env: the lower-bounds rehearsal runs test_env from the
    installed course, without this repository's hub package.)"""
    import huggingface_hub.constants

    for var in env._OFFLINE_VARS + ("HF_ENDPOINT",):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(env, "_hub_answer", None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    with HubEmulator([Repo(env.hub_check_repo(), "model", {"main": {"config.json": b"{}"}})]) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert env.hub_available() is True
        assert hub.requests == [PROBE]
    assert os.environ.get("HF_HUB_OFFLINE") is None


def test_an_unreachable_hub_falls_back_at_once(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = _client(FAULT_CLIENT, f"http://127.0.0.1:{port}", tmp_path)
    assert out.startswith(f"The hub is not used (http://127.0.0.1:{port} is unreachable (")
    assert out.count("The dataset hub is not available, so ") == 3 and out.count(" 2\n") == 3, out


def test_a_slow_hub_still_serves(hub, tmp_path):
    """Seconds per answer (under the clients' 10 s timeouts) make a load slow, not a fallback."""
    hub.set_fault("slow", 0.5)
    out = _client("""
        from course_lib import data
        print(data.load_squad(limit=2)["id"] == data.load_squad_like()["validation"]["id"][:2])
    """, hub.url, tmp_path)
    assert out == "True\n"


def test_python_m_hub_prints_the_endpoint_once_it_serves(stand_ins):
    server = subprocess.Popen([sys.executable, "-m", "hub"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("HF_ENDPOINT=http://127.0.0.1:")
        status, _, body = _request(line.split("=", 1)[1] + "/api/models/Qwen/Qwen2.5-0.5B-Instruct")
        assert status == 200 and json.loads(body)["id"] == "Qwen/Qwen2.5-0.5B-Instruct"
    finally:
        server.terminate()
        server.wait(timeout=30)
