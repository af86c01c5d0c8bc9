"""Batches and progress bars shared by the encoders (chapters 3-4)."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from .checks import check_int


def iter_batches(texts: Sequence[str], batch_size: int, progress: bool, desc: str) -> Iterator[list[int]]:
    """Positions of ``texts`` in batches, longest texts first (less padding), with a progress bar."""
    check_int(batch_size, "batch_size")
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    starts = range(0, len(order), batch_size)
    for start in progress_bar(starts, show=progress and len(starts) > 1, desc=desc, unit="batch"):
        yield order[start : start + batch_size]


def progress_bar(iterable=None, *, show: bool = True, **kwargs):
    """A tqdm bar, shown unless ``show`` is false or ``TQDM_DISABLE`` is set (as
    :func:`course_lib.env.quiet` does under nbgrader, where stderr costs the points).
    The variable is read here, at each call: tqdm itself reads it only when imported."""
    from tqdm.auto import tqdm

    disabled = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no", "off")
    return tqdm(iterable, disable=not show or disabled, **kwargs)
