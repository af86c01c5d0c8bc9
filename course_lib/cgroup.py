"""A real memory limit for the main job: chapters run inside a memory cgroup, as on Binder.

mybinder.org gives a session 2 GB for the Jupyter server and the kernel together and
stops it above that. :func:`create` makes a cgroup with that limit (cgroup v2 where the
machine has a writable one with the memory controller, else v1 under
``/sys/fs/cgroup/memory``); :meth:`MemoryCgroup.command` wraps a command so that it starts
inside it, and every process it starts (the Jupyter server, the kernel) stays inside.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shlex
from pathlib import Path

BINDER_LIMIT = 2 * 2**30  # bytes: a Binder session (server + kernel) is stopped above 2 GB
V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
V1_ROOT = Path("/sys/fs/cgroup/memory")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


class MemoryCgroup:
    """One memory cgroup: ``version`` 1 or 2, at ``path``, limited to ``limit`` bytes."""

    def __init__(self, path: Path, version: int, limit: int):
        self.path, self.version, self.limit = path, version, limit

    def _read(self, v2_name: str, v1_name: str) -> str:
        return (self.path / (v2_name if self.version == 2 else v1_name)).read_text()

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the cgroup (the shell moves itself in, then becomes ``argv``)."""
        procs = shlex.quote(str(self.path / "cgroup.procs"))
        return ["/bin/sh", "-c", f'echo $$ > {procs} && exec "$@"', "cgroup", *argv]

    def peak(self) -> int:
        """Highest memory use of the cgroup so far, in bytes (process memory and page cache)."""
        return int(self._read("memory.peak", "memory.max_usage_in_bytes"))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the limit."""
        text = self._read("memory.events", "memory.oom_control")
        fields = dict(line.split() for line in text.splitlines() if line.strip())
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        """Delete the cgroup (its processes must have exited)."""
        self.path.rmdir()


def _v2_root() -> Path | None:
    for root in V2_ROOTS:
        controllers = root / "cgroup.controllers"
        if controllers.is_file() and "memory" in controllers.read_text().split():
            return root
    return None


def _make(root: Path, name: str, version: int, limit: int) -> MemoryCgroup:
    path = root / name
    path.mkdir()
    try:
        limit_file = path / ("memory.max" if version == 2 else "memory.limit_in_bytes")
        if version == 2 and not limit_file.exists():
            (root / "cgroup.subtree_control").write_text("+memory")  # let children have a memory limit
        limit_file.write_text(str(limit))
        if version == 2:
            (path / "memory.swap.max").write_text("0")  # Binder has no swap to spill into
        return MemoryCgroup(path, version, limit)
    except OSError:
        path.rmdir()
        raise


def create(limit: int = BINDER_LIMIT, name: str | None = None) -> tuple[MemoryCgroup | None, str]:
    """A new memory cgroup of ``limit`` bytes and a one-line description, or ``(None, reason)``
    when neither cgroup v2 with a memory controller nor v1 is writable here."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2**20:
        raise ValueError(f"limit must be an int number of bytes >= 1 MiB, got {limit!r}")
    name = name or f"qair-course-{os.getpid()}"
    reasons = []
    attempts = [(root, 2) for root in [_v2_root()] if root] + [(V1_ROOT, 1)]
    for root, version in attempts:
        if version == 1 and not (root / "memory.limit_in_bytes").is_file():
            reasons.append(f"no cgroup v1 memory hierarchy at {root}")
            continue
        try:
            group = _make(root, name, version, limit)
        except OSError as err:
            reasons.append(f"cgroup v{version} at {root} is not writable ({err.strerror or err})")
            continue
        return group, f"cgroup v{version} {group.path} limited to {limit / 2**30:g} GiB"
    if not attempts[:-1]:
        reasons.insert(0, "no cgroup v2 with the memory controller")
    return None, "; ".join(reasons)


def return_freed_memory(mmap_threshold: int = 64 * 2**10) -> bool:
    """Make this process give freed memory back to the system (glibc only; False elsewhere).

    glibc serves a block smaller than its mmap threshold from the heap, and raises that threshold
    (up to 32 MiB) each time it unmaps a larger block; a kernel that trains on batches of varying
    width then keeps its freed activations as heap fragments and its memory only grows (chapter 5:
    16 batches of 2 windows peaked at 1355 MB and climbing, 1014 MB flat with this set). A fixed
    threshold of ``mmap_threshold`` bytes gives every larger block its own mapping, unmapped when
    it is freed, and the heap's top is returned above twice that."""
    if isinstance(mmap_threshold, bool) or not isinstance(mmap_threshold, int) or not 4096 <= mmap_threshold <= 2**25:
        raise ValueError(f"mmap_threshold must be an int number of bytes in [4096, 2**25], got {mmap_threshold!r}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator is left as it is
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold))
