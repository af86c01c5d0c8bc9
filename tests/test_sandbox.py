"""The grading sandbox on its own (no kernel): what a command inside it can read, write and reach."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import sandbox

needs_bwrap = pytest.mark.usefixtures("bubblewrap")


def _run(code: str, work: Path, hidden: list[Path], spec: dict | None = None) -> subprocess.CompletedProcess:
    argv = sandbox.bwrap_argv(work, writable=[work], hidden=hidden) + [sys.executable, "-c", code]
    if spec is not None:
        argv = [sys.executable, "-m", "course_lib.sandbox", json.dumps(spec), *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.fixture
def course(tmp_path):
    secret = tmp_path / "course" / "source" / "solution.txt"
    secret.parent.mkdir(parents=True)
    secret.write_text("the answer")
    work = tmp_path / "job" / "work"
    work.mkdir(parents=True)
    return tmp_path / "course", secret, work


@needs_bwrap
def test_hidden_course_cannot_be_read_or_written(course):
    root, secret, work = course
    out = _run(f"import os; print(os.path.exists({str(secret)!r}));"
               f"open({str(root / 'gradebook.db')!r}, 'w')", work, hidden=[root])
    assert out.stdout.split() == ["False"] and "Read-only file system" in out.stderr
    assert not (root / "gradebook.db").exists()


@needs_bwrap
def test_only_the_work_folder_and_a_private_tmp_are_writable(course):
    root, _, work = course
    out = _run("import course_lib, os; open('mine.txt', 'w').write('x'); open('/tmp/t', 'w').write('x');"
               f"open({str(Path(sys.prefix) / 'evil.txt')!r}, 'w')", work, hidden=[root])
    assert (work / "mine.txt").read_text() == "x"
    assert "Read-only file system" in out.stderr and not (Path(sys.prefix) / "evil.txt").exists()


@needs_bwrap
def test_no_network_not_even_the_hosts_loopback(course):
    root, _, work = course
    with socket.create_server(("127.0.0.1", 0)) as listener:
        out = _run(f"import socket; socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), timeout=3)",
                   work, hidden=[root])
    assert "ConnectionRefusedError" in out.stderr


@needs_bwrap
@pytest.mark.skipif(not all(os.access(sandbox.CGROUP / c, os.W_OK) for c in ("memory", "pids")),
                    reason="cgroup v1 is not writable")
def test_cgroup_caps_processes_and_memory(course):
    root, _, work = course
    name = sandbox.new_cgroup_name()
    groups = sandbox.make_cgroups(name)
    try:
        spec = {"cgroup": name, "memory": 512 * 2**20, "cpu_s": 60, "pids": 16}
        forks = _run("import os, time\nn = 0\ntry:\n    while n < 500:\n        if os.fork() == 0:\n"
                     "            time.sleep(2); os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)",
                     work, hidden=[root], spec=spec)
        assert int(forks.stdout.split()[-1]) < 16
        memory = _run("x = bytearray(2 * 2**30); print('allocated')", work, hidden=[root], spec=spec)
        assert "allocated" not in memory.stdout and memory.returncode != 0
    finally:
        sandbox.remove_cgroups(groups)
    assert not any(g.exists() for g in groups)


def test_without_bubblewrap_grading_warns_loudly(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"):
        assert sandbox.warn_if_unavailable() is False
    assert "WITHOUT a sandbox" in capsys.readouterr().err
