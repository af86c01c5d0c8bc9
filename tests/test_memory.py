"""The main job's memory limit: a real cgroup kills what exceeds it, and chapters run inside it."""
import subprocess
import sys

import nbformat
import pytest

from course_lib import cgroup, course

MiB = 2**20


@pytest.fixture
def group():
    made, reason = cgroup.create(256 * MiB, "qair-course-test")
    if made is None:
        pytest.skip(f"no writable memory cgroup here: {reason}")
    yield made
    made.remove()


def _allocate(mb: int) -> list[str]:
    return [sys.executable, "-c", f"b = bytearray({mb} * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"]


def test_cgroup_kills_what_exceeds_its_limit_and_measures_what_fits(group):
    fits = subprocess.run(group.command(_allocate(100)), capture_output=True, text=True)
    assert fits.returncode == 0 and fits.stdout.strip() == "ok"
    assert group.peak() >= 100 * MiB and group.oom_kills() == 0
    over = subprocess.run(group.command(_allocate(400)), capture_output=True, text=True)
    assert over.returncode == -9 or over.returncode == 137
    assert group.oom_kills() >= 1


def test_create_says_why_without_a_writable_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroup, "V2_ROOTS", (tmp_path / "v2",))
    monkeypatch.setattr(cgroup, "V1_ROOT", tmp_path / "v1")
    made, reason = cgroup.create(cgroup.BINDER_LIMIT)
    assert made is None
    assert "no cgroup v2 with the memory controller" in reason and "no cgroup v1 memory hierarchy" in reason


@pytest.mark.parametrize("limit", [0, 1000, 2.5e9, True, "2G"])
def test_create_rejects_a_bad_limit(limit):
    with pytest.raises(ValueError, match="limit must be an int number of bytes"):
        cgroup.create(limit)


def _course(tmp_path, source: str):
    chapter = tmp_path / "source" / "01_x"
    chapter.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, chapter / "01_x.ipynb")
    return tmp_path


def test_a_chapter_runs_inside_the_limit_with_a_jupyter_server(tmp_path, monkeypatch, group):
    monkeypatch.setattr(course, "BUILD", tmp_path / "build")
    root = _course(tmp_path, "import os\nb = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])\n"
                             "assert os.environ['MEM_LIMIT'] == str(2**31)")
    run = course.execute_chapter("01_x", "tiny", root, memory_limit=2**31)
    assert run["peak_mb"] >= 200                      # the kernel's own peak
    assert run["cgroup_peak_mb"] >= run["peak_mb"]    # the cgroup also holds the Jupyter server
    assert (tmp_path / "build" / "executed" / "01_x.ipynb").is_file()


def test_a_chapter_over_the_limit_fails_naming_it(tmp_path, monkeypatch, group):
    monkeypatch.setattr(course, "BUILD", tmp_path / "build")
    root = _course(tmp_path, "b = bytearray(600 * 2**20); b[::4096] = b'x' * len(b[::4096])")
    with pytest.raises(RuntimeError, match=r"01_x failed .*0\.5 GiB memory limit killed"):
        course.execute_chapter("01_x", "tiny", root, memory_limit=512 * MiB)


_FRAGMENTS = """
import gc, sys
from course_lib import cgroup
fixed = sys.argv[1] == "fixed" and cgroup.return_freed_memory()
def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
def touched(mb):
    b = bytearray(mb * 2**20); b[::4096] = b"x" * len(b[::4096]); return b
del_me = touched(16); del del_me                    # glibc raises its mmap threshold to 16 MiB here
blocks, small = [], []
for _ in range(20):                                 # 8 MiB blocks, each followed by a small live one
    blocks.append(touched(8)); small.append(bytearray(1000))
held = rss_mb(); del blocks; gc.collect()
print(fixed, held - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator is what is tested")
def test_return_freed_memory_gives_freed_blocks_back_to_the_system():
    def freed_mb(mode):
        out = subprocess.run([sys.executable, "-c", _FRAGMENTS, mode], capture_output=True, text=True, check=True)
        fixed, mb = out.stdout.split()
        return fixed, int(mb)
    assert freed_mb("fixed") == ("True", pytest.approx(160, abs=16))   # 20 blocks of 8 MiB went back
    fixed, freed = freed_mb("default")
    assert fixed == "False" and freed < 16                             # without it glibc keeps them as fragments


@pytest.mark.parametrize("threshold", [0, 4095, 2**26, 1.5, True, "64k"])
def test_return_freed_memory_rejects_a_bad_threshold(threshold):
    with pytest.raises(ValueError, match="mmap_threshold must be an int number of bytes"):
        cgroup.return_freed_memory(threshold)
