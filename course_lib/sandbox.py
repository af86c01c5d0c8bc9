"""The grading kernel's sandbox: a student's code runs alone, with no route to anything but its work.

nbgrader (trusted) runs outside; only the kernel runs inside, connected to it over unix
sockets (``KernelManager.transport = "ipc"``). On Linux the kernel gets
(``bubblewrap``, else nothing and a printed warning):

- its own mount, pid, network, ipc and user namespaces: the file system read-only, with
  the job folders, the course folder (``source/``, the gradebook, every student's
  folder), ``$HOME`` and the temporary folder hidden behind empty ``tmpfs`` mounts; it
  writes only its scratch folder (where its notebook runs) and a private ``/tmp``; no
  network interface but its own loopback;
- cgroup v1 limits (where ``/sys/fs/cgroup/{memory,pids}`` are writable): memory and
  number of processes; rlimits: CPU seconds, file size, core dumps (and address space
  when there is no memory cgroup);
- :class:`SandboxedExecute`: a kernel that dies (``os._exit``, ``kill -9``, out of memory,
  out of CPU time) or that a cell-time interrupt does not free costs the cells after it,
  never the cells before; output beyond ``max_output_chars`` per cell is dropped.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
import uuid
import warnings
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Dict, Integer

CGROUP = Path("/sys/fs/cgroup")
GIB = 2**30
# Per-chapter sandbox limits (course_lib.course.CELL_TIMEOUTS has the per-cell time limit).
SANDBOX_LIMITS = {
    "01_tfidf": {"memory": 3 * GIB, "cpu_s": 600, "pids": 64, "output_chars": 2_000_000},
    "02_bm25": {"memory": 3 * GIB, "cpu_s": 600, "pids": 64, "output_chars": 2_000_000},
    "03_dense_retrieval": {"memory": 6 * GIB, "cpu_s": 3600, "pids": 128, "output_chars": 2_000_000},
    "04_rag": {"memory": 8 * GIB, "cpu_s": 7200, "pids": 128, "output_chars": 2_000_000},
    "05_squad_finetuning": {"memory": 8 * GIB, "cpu_s": 7200, "pids": 128, "output_chars": 2_000_000},
}
DEFAULT_LIMITS = {"memory": 4 * GIB, "cpu_s": 1800, "pids": 64, "output_chars": 2_000_000}


def limits(chapter: str) -> dict:
    """The sandbox limits of ``chapter`` (:data:`SANDBOX_LIMITS`, else :data:`DEFAULT_LIMITS`)."""
    return dict(SANDBOX_LIMITS.get(chapter, DEFAULT_LIMITS))


def available() -> str:
    """"" when kernels can be sandboxed here, else why not (the grader prints it as a warning)."""
    if platform.system() != "Linux":
        return f"no Linux namespaces on {platform.system()}"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return ""


def install_bubblewrap() -> str:
    """Install Debian's ``bubblewrap`` with apt-get when it is missing and this process is root
    with apt-get (a CI machine, a grading server); returns :func:`available` afterwards."""
    if platform.system() == "Linux" and shutil.which("bwrap") is None and shutil.which("apt-get") and os.geteuid() == 0:
        import subprocess

        print("bubblewrap is missing: installing it with apt-get (the grading sandbox)", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "bubblewrap"], env=env, capture_output=True, timeout=600)
    return available()


def warn_if_unavailable() -> bool:
    """True when sandboxed (bubblewrap installed first where :func:`install_bubblewrap` can);
    otherwise print (and warn) that student code runs unconfined."""
    why = install_bubblewrap()
    if why:
        msg = (f"WARNING: student code runs WITHOUT a sandbox ({why}): it can read and write what you can. "
               "Grade on Linux with bubblewrap for untrusted submissions.")
        print(msg, file=sys.stderr, flush=True)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return not why


def bwrap_argv(work: Path, writable: list[Path], hidden: list[Path], readable: list[Path] = ()) -> list[str]:
    """bubblewrap arguments: the root read-only; ``$HOME`` and the temporary folders empty except
    for the Python installation and ``sys.path`` (re-bound read-only, with ``readable``);
    then ``hidden`` empty (and read-only) again; ``writable`` read-write; no network; cwd ``work``."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-all", "--die-with-parent", "--new-session"]
    tmp = {Path("/tmp"), Path(os.environ.get("TMPDIR", "/tmp")), Path.home(), Path("/dev/shm")}
    argv += [a for p in sorted(p.resolve() for p in tmp if p.exists()) for a in ("--tmpfs", str(p))]
    python = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1],
              *(Path(p) for p in sys.path if p and os.path.isabs(p)), *readable}
    argv += [a for p in sorted({p.resolve() for p in python if p.exists()}) for a in ("--ro-bind", str(p), str(p))]
    hidden = sorted({Path(p).resolve() for p in hidden if Path(p).exists()})
    argv += [a for p in hidden for a in ("--tmpfs", str(p))]
    argv += [a for p in writable for a in ("--bind", str(p), str(p))]
    argv += [a for p in hidden for a in ("--remount-ro", str(p))]  # after the binds inside them
    # JPY_PARENT_PID names a process outside the pid namespace: the kernel would think it orphaned
    return argv + ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--unsetenv", "JPY_PARENT_PID",
                   "--chdir", str(work), "--"]


# ---- inside the job: the kernel's launcher and the executor --------------------------


def enter(spec: dict, argv: list[str]) -> None:
    """Join this job's cgroups, set the rlimits, then exec ``argv`` (bubblewrap and the kernel)."""
    for controller, files in (("memory", {"memory.limit_in_bytes": spec["memory"]}),
                              ("pids", {"pids.max": spec["pids"]})):
        group = CGROUP / controller / spec["cgroup"]
        if spec["cgroup"] and group.is_dir():
            for name, value in files.items():
                (group / name).write_text(str(value))
            (group / "cgroup.procs").write_text(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_CPU, (spec["cpu_s"], spec["cpu_s"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["memory"], spec["memory"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not (spec["cgroup"] and (CGROUP / "memory" / spec["cgroup"]).is_dir()):
        resource.setrlimit(resource.RLIMIT_AS, (spec["memory"] + 2 * GIB, spec["memory"] + 2 * GIB))
    if os.getuid() != 0:  # root ignores RLIMIT_NPROC; the pids cgroup covers it
        resource.setrlimit(resource.RLIMIT_NPROC, (spec["pids"], spec["pids"]))
    os.execvp(argv[0], argv)


def make_cgroups(name: str) -> list[Path]:
    """Create this job's memory and pids cgroups where cgroup v1 is writable; returns them."""
    made = []
    for controller in ("memory", "pids"):
        try:
            (CGROUP / controller / name).mkdir()
            made.append(CGROUP / controller / name)
        except OSError:
            pass
    return made


def remove_cgroups(groups: list[Path]) -> None:
    """Kill what is left in the job's cgroups and remove them."""
    for group in groups:
        for _ in range(50):
            try:
                pids = (group / "cgroup.procs").read_text().split()
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
                group.rmdir()
                break
            except OSError:
                import time
                time.sleep(0.1)


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through :func:`enter` and bubblewrap; interrupts it by message."""

    sandbox = Dict(help="spec for enter(): cgroup, memory, cpu_s, pids; bwrap: the bubblewrap argv").tag(config=True)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        spec = {k: v for k, v in self.sandbox.items() if k != "bwrap"}
        bwrap = list(self.sandbox.get("bwrap", []))
        if bwrap:  # the connection file, read-only, where the kernel's argv names it
            connection = os.path.realpath(self.connection_file)
            at = bwrap.index("--remount-ro") if "--remount-ro" in bwrap else len(bwrap) - 1
            bwrap[at:at] = ["--ro-bind", connection, connection]
        return [sys.executable, "-m", "course_lib.sandbox", json.dumps(spec), *bwrap, *cmd]

    async def _async_pre_start_kernel(self, **kw):
        out = await super()._async_pre_start_kernel(**kw)
        self.kernel_spec.interrupt_mode = "message"  # a signal would reach bubblewrap, not the kernel
        return out


class SandboxedExecute(Execute):
    """nbgrader's Execute with the kernel in the sandbox; a dead or stuck kernel fails the
    remaining cells (with a message) instead of the whole submission."""

    sandbox = Dict(help="passed to SandboxedKernelManager.sandbox").tag(config=True)
    max_output_chars = Integer(2_000_000, help="characters of output kept per cell").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self._stopped, self._chars, self._cut = "", 0, False

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.sandbox = self.sandbox
        return km

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell
        if self._stopped:
            cell.outputs = [_error("NotRun", self._stopped)]
            return cell
        self._chars, self._cut = 0, False
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            self._stopped = "the kernel died (exit, kill, memory or CPU-time limit); this cell was not run"
            cell.outputs.append(_error("DeadKernelError", "the kernel died while running this cell"))
            return cell
        except CellTimeoutError:  # nbclient raises it when the interrupt did not free the kernel
            self._stopped = "an earlier cell ran past its time limit and ignored the interrupt; this cell was not run"
            cell.outputs.append(_error("CellTimeoutError", "this cell ran past its time limit and ignored the interrupt"))
            return cell
        if any(o.get("ename") == "CellTimeoutError" for o in cell.outputs) and not await self._responsive():
            self._stopped = "an earlier cell ran past its time limit and ignored the interrupt; this cell was not run"
        return cell

    # nbclient binds execute_cell to its own async_execute_cell: point it at the override
    execute_cell = run_sync(async_execute_cell)

    async def _responsive(self, timeout: float = 10) -> bool:
        """True when the kernel answers a no-op within ``timeout`` s after an interrupt."""
        msg_id = self.kc.execute("pass", silent=True, store_history=False)
        try:
            while True:
                reply = await self.kc._async_get_shell_msg(timeout=timeout)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return True
        except Exception:
            return False

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return None
        self._chars += len(out.get("text", "")) + len(json.dumps(out.get("data", {})))
        if self._chars > self.max_output_chars:
            if outs and outs[-1] is out:
                outs.pop()
            if not self._cut:
                self._cut = True
                outs.append(NotebookNode(output_type="stream", name="stderr",
                                         text=f"[output cut: more than {self.max_output_chars:,} characters]\n"))
            return None
        return out


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def new_cgroup_name() -> str:
    return f"qair-grade-{uuid.uuid4().hex[:12]}"


if __name__ == "__main__":
    enter(json.loads(sys.argv[1]), sys.argv[2:])
