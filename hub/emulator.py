"""A Hugging Face Hub emulator on loopback: the part of the Hub's HTTP API that the installed
``huggingface_hub`` (2.4), ``transformers`` (5.x) and ``datasets`` (5.x) request to download.

Routes (``{type}`` is ``models``, ``datasets`` or ``spaces``; a model id has no ``models/`` prefix in file URLs):

| request | read by | answer |
|---|---|---|
| ``HEAD/GET [/datasets or /spaces]/{id}/resolve/{rev}/{path}`` | ``file_download.get_hf_file_metadata``, ``http_get``; ``evaluate.load`` (a metric's Space) | the file, with ``X-Repo-Commit``, ``ETag``, ``Content-Length``, ``Accept-Ranges``; ``Range`` gives 206 |
| ``GET /api/{type}/{id}[/revision/{rev}]`` | ``HfApi.model_info`` / ``dataset_info`` / ``repo_info`` | ``id``, ``sha``, ``siblings`` |
| ``GET /api/{type}/{id}/tree/{rev}[/{path}]`` | ``HfApi.list_repo_tree``, ``HfFileSystem.ls/glob`` | files (``oid``, ``size``) and directories, one page |
| ``POST /api/{type}/{id}/paths-info/{rev}`` | ``HfApi.get_paths_info``, ``HfFileSystem.info`` | the same entries for the posted ``paths`` |
| ``GET /api/{type}/{id}/refs`` | ``HfApi.list_repo_refs`` | branches and ``converts`` (``refs/convert/parquet``) |
| ``GET /api/agent-harnesses`` | ``utils._detect_agent`` (any request's user agent) | the empty registry |

A renamed repository (``aliases``: ``bert-base-cased`` is ``google-bert/bert-base-cased`` now)
answers 307 to the same request under its new id, as the Hub does. Files are served directly, without
the Hub's Xet headers or CDN redirect, so the clients download them over plain HTTP.

Errors use the headers ``utils._http.hf_raise_for_status`` reads: a missing file is 404
``X-Error-Code: EntryNotFound``, a missing repository 401 ``RepoNotFound`` (the Hub answers 401, not
404, for a repository it will not show), a gated one 401 ``GatedRepo``, a missing revision 404
``RevisionNotFound``. Anything else is 404 and is recorded in :attr:`HubEmulator.unknown`, so a test can
see a request the emulator does not answer.

Failures as students meet them, switched on :attr:`HubEmulator.fault` (from a test, or over HTTP with
``POST /_emulator/fault`` and a JSON body ``{"mode": ..., "seconds": ...}``):

* ``slow``: every answer waits ``seconds`` first;
* ``missing``: every repository answers 401 ``RepoNotFound`` (what a wrong or deleted id gets);
* ``gated``: every repository answers 401 ``GatedRepo`` (not logged in, conditions not accepted);
* ``broken``: every file download sends its headers and half its bytes, then the connection drops;
* ``server-error``: every request answers 503 (an overloaded or failing hub; clients retry 5xx);
* ``None``: normal service. "Unreachable" needs no mode: stop the server, or point ``HF_ENDPOINT``
  at a closed port.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

FAULTS = (None, "slow", "missing", "gated", "broken", "server-error")


def git_sha(data: bytes) -> str:
    """The git blob id of ``data``: sha1(b"blob <size>\\0" + data), as the Hub's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """One repository: ``revisions`` maps a revision name (``main``, ``refs/convert/parquet``)
    to its files, ``{path: bytes}``. Each revision gets a commit sha derived from its content."""

    repo_id: str
    repo_type: str = "model"
    revisions: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def commit(self, revision: str) -> str:
        digest = hashlib.sha1(f"{self.repo_type}/{self.repo_id}@{revision}".encode())
        for path, data in sorted(self.revisions[revision].items()):
            digest.update(path.encode() + b"\0" + git_sha(data).encode())
        return digest.hexdigest()

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """``(revision name, files)`` for a revision given by name or by commit sha."""
        if revision in self.revisions:
            return revision, self.revisions[revision]
        for name in self.revisions:
            if self.commit(name) == revision:
                return name, self.revisions[name]
        return None


class HubEmulator:
    """A threaded HTTP server on ``127.0.0.1`` serving ``repos``; use as a context manager
    (``with HubEmulator(repos) as hub: os.environ["HF_ENDPOINT"] = hub.url``) or call
    :meth:`start` / :meth:`stop`."""

    def __init__(self, repos: list[Repo], port: int = 0, aliases: dict[tuple[str, str], str] | None = None):
        self.repos = {(repo.repo_type, repo.repo_id): repo for repo in repos}
        self.aliases = dict(aliases or {})
        self.fault: str | None = None
        self.seconds = 0.0
        self.unknown: list[str] = []
        self.requests: list[str] = []
        emulator = self

        class Handler(_Handler):
            hub = emulator

        self.server = _Server(("127.0.0.1", port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_fault(self, mode: str | None, seconds: float = 0.0) -> None:
        if mode not in FAULTS:
            raise ValueError(f"mode must be one of {FAULTS}, got {mode!r}")
        self.fault, self.seconds = mode, float(seconds)

    def start(self) -> HubEmulator:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout, retry) closes its end: not an error of the emulator."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: HubEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: requests are kept in hub.requests
        pass

    # ------------------------------------------------------------ dispatch
    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        hub = self.hub
        url = urlsplit(self.path)
        hub.requests.append(f"{method} {self.path}")
        body = b""
        if method == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/_emulator/fault" and method == "POST":
            try:
                request = json.loads(body or b"{}")
                hub.set_fault(request.get("mode"), request.get("seconds", 0))
            except (ValueError, AttributeError) as err:
                return self._json(400, {"error": str(err)})
            return self._json(200, {"mode": hub.fault, "seconds": hub.seconds})
        if hub.fault == "slow":
            time.sleep(hub.seconds)
        if hub.fault == "server-error":
            return self._error(503, "", "Service Unavailable")
        if url.path == "/api/agent-harnesses":
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:1] == ["api"] and len(parts) >= 3 and parts[1] in ("models", "datasets", "spaces"):
            return self._api(method, parts[1][:-1], parts[2:], parse_qs(url.query), body)
        if "resolve" in parts and method in ("GET", "HEAD"):
            at = parts.index("resolve")
            prefixed = {"datasets": "dataset", "spaces": "space"}
            repo_type, id_parts = (prefixed[parts[0]], parts[1:at]) if parts[0] in prefixed else ("model", parts[:at])
            if len(parts) > at + 2:
                return self._resolve(method, repo_type, "/".join(id_parts), parts[at + 1], "/".join(parts[at + 2:]))
        hub.unknown.append(f"{method} {self.path}")
        self._error(404, "", "Not found in the hub emulator")

    # ------------------------------------------------------------ answers
    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
        self._json(status, {"error": message}, extra)

    def _repo(self, repo_type: str, repo_id: str, revision: str):
        """``(repo, revision name, files)``, or None after answering the error a client reads
        (or the redirect of a renamed repository)."""
        if (repo_type, repo_id) in self.hub.aliases and self.hub.fault != "missing":
            path, _, query = self.path.partition("?")
            moved = (path + "/").replace(f"/{repo_id}/", f"/{self.hub.aliases[repo_type, repo_id]}/", 1)[:-1]
            self.send_response(307)
            self.send_header("Location", moved + (f"?{query}" if query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        repo = self.hub.repos.get((repo_type, repo_id))
        if self.hub.fault == "gated" and repo is not None:
            self._error(401, "GatedRepo", "Access to this repository is restricted: log in and accept its conditions.")
            return None
        if repo is None or self.hub.fault == "missing":
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        found = repo.files_at(revision)
        if found is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo, found[0], found[1]

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        found = self._repo(repo_type, repo_id, revision)
        if found is None:
            return
        repo, name, files = found
        commit = repo.commit(name)
        if path not in files:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", {"X-Repo-Commit": commit})
        data = files[path]
        status, start, end = 200, 0, len(data)
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[len("bytes="):].split(",")[0].partition("-")
            if first:
                start, end = int(first), (min(int(last) + 1, len(data)) if last else len(data))
            else:  # a suffix: the last N bytes
                start = max(len(data) - int(last), 0)
            if start >= len(data) and len(data) > 0:
                return self._error(416, "", "Range not satisfiable", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
        self.send_response(status)
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{git_sha(data)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if method == "GET":
            chunk = data[start:end]
            if self.hub.fault == "broken":
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    def _api(self, method: str, repo_type: str, rest: list[str], query: dict, body: bytes) -> None:
        # rest = id parts + optional ("revision"|"tree"|"paths-info"|"refs", revision, path...)
        for at, word in enumerate(rest):
            if word in ("revision", "tree", "paths-info", "refs") and at in (1, 2):
                id_parts, action, tail = rest[:at], word, rest[at + 1:]
                break
        else:
            id_parts, action, tail = rest, "info", []
        repo_id = "/".join(id_parts)
        if action == "refs":
            found = self._repo(repo_type, repo_id, "main")
            if found is None:
                return
            repo = found[0]
            entries = {"branches": [], "converts": [], "tags": []}
            for name in repo.revisions:
                kind = "converts" if name.startswith("refs/convert/") else "branches"
                entries[kind].append({"name": name.rsplit("/", 1)[-1], "ref": name if kind == "converts"
                                      else f"refs/heads/{name}", "targetCommit": repo.commit(name)})
            return self._json(200, entries)
        revision = tail[0] if tail else "main"
        found = self._repo(repo_type, repo_id, revision)
        if found is None:
            return
        repo, name, files = found
        commit = repo.commit(name)
        if action in ("info", "revision"):
            return self._json(200, {
                "id": repo_id, "_id": commit[:24], "sha": commit, "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": path} for path in sorted(files)],
            }, {"X-Repo-Commit": commit})
        if action == "tree":
            folder = "/".join(tail[1:]).strip("/")
            recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
            entries = _tree(files, folder, recursive)
            if entries is None:
                return self._error(404, "EntryNotFound", f"{folder} does not exist on {revision}")
            return self._json(200, entries, {"X-Repo-Commit": commit})
        if method != "POST":
            return self._error(405, "", "paths-info is POST only")
        form = parse_qs(body.decode())
        wanted = form.get("paths", [])
        entries = []
        for path in wanted:
            path = path.strip("/")
            if path in files:
                entries.append(_file_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                entries.append(_folder_entry(path))
        self._json(200, entries, {"X-Repo-Commit": commit})


def _file_entry(path: str, data: bytes) -> dict:
    return {"type": "file", "path": path, "size": len(data), "oid": git_sha(data)}


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict] | None:
    """The entries under ``folder`` (one level, or every level when ``recursive``), as the Hub lists them."""
    prefix = f"{folder}/" if folder else ""
    below = sorted(p for p in files if p.startswith(prefix))
    if folder and not below:
        return None
    entries, folders = [], set()
    for path in below:
        rest = path[len(prefix):].split("/")
        for depth in range(1, len(rest)):
            sub = prefix + "/".join(rest[:depth])
            if sub not in folders and (recursive or depth == 1):
                folders.add(sub)
                entries.append(_folder_entry(sub))
        if recursive or len(rest) == 1:
            entries.append(_file_entry(path, files[path]))
    return entries
