"""Figures the chapters show (chapters 1-3): each function draws what it is given on a matplotlib Axes and
returns it, so a notebook cell is one call and a test can read the drawing back."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _finite(name: str, values: Sequence[float]) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}")
    return out


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=size)[1]


def time_against_size(sizes: Sequence[float], times: Mapping[str, Sequence[float]], ax: Axes | None = None,
                      ylabel: str = "ms per query", xlabel: str = "documents in the collection, N") -> Axes:
    """One line per method: ``times[method][i]`` measured on a collection of ``sizes[i]`` documents, on log-log
    axes, where a cost proportional to N is a straight line of slope 1 (chapter 1's index against a scan)."""
    x = _finite("sizes", sizes)
    if any(v <= 0 for v in x):
        raise ValueError(f"sizes must be positive for a log axis, got {sizes!r}")
    if not times:
        raise ValueError("times must map at least one method to its measurements")
    ax = _axes(ax, (7, 4.2))
    for method, values in times.items():
        y = _finite(f"times[{method!r}]", values)
        if len(y) != len(x):
            raise ValueError(f"times[{method!r}] has {len(y)} values for {len(x)} sizes")
        if any(v <= 0 for v in y):
            raise ValueError(f"times[{method!r}] must be positive for a log axis, got {values!r}")
        ax.plot(x, y, marker="o", label=method)
    ax.set(xscale="log", yscale="log", xlabel=f"{xlabel} (log scale)", ylabel=f"{ylabel} (log scale)")
    ax.legend()
    return ax


def dot_plot(values: Mapping[str, float], ax: Axes | None = None, xlabel: str = "nDCG@10",
             reference: str | None = None) -> Axes:
    """One dot per configuration at ``values[name]``, sorted from best (top) to worst, the names on the y axis;
    ``reference`` (one of the names) gets a dotted vertical line, so the spread around it reads at a glance."""
    if not values:
        raise ValueError("values must map at least one configuration to its score")
    if reference is not None and reference not in values:
        raise ValueError(f"reference must be one of the configurations {list(values)}, got {reference!r}")
    names = sorted(values, key=lambda n: values[n])
    x = _finite("values", [values[n] for n in names])
    ax = _axes(ax, (7, 0.35 * len(names) + 1.2))
    ax.plot(x, range(len(names)), "o", color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    if reference is not None:
        ax.axvline(values[reference], color="grey", linestyle=":", label=reference)
        ax.legend(loc="lower right")
    ax.set(xlabel=xlabel)
    return ax


def group_bars(table: Mapping[str, Mapping[str, float]], ax: Axes | None = None, ylabel: str = "nDCG@10",
               fmt: str = "%.2f") -> Axes:
    """Grouped bars: one group per key of ``table`` (a query group), one bar per system within it,
    ``table[group][system]`` high, each bar labelled with its value."""
    if not table:
        raise ValueError("table must map at least one group to {system: value}")
    systems = list(next(iter(table.values())))
    if not systems:
        raise ValueError("table's groups must name at least one system")
    for group, row in table.items():
        if list(row) != systems:
            raise ValueError(f"table[{group!r}] names systems {list(row)}, expected {systems} in every group")
        _finite(f"table[{group!r}]", list(row.values()))
    ax = _axes(ax, (max(6.0, 1.6 * len(table) * len(systems) / 2), 4))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        offsets = [g + (i - (len(systems) - 1) / 2) * width for g in range(len(table))]
        bars = ax.bar(offsets, [row[system] for row in table.values()], width, label=system)
        ax.bar_label(bars, fmt=fmt, fontsize=8)
    ax.set_xticks(range(len(table)), list(table))
    ax.set(ylabel=ylabel)
    ax.legend(fontsize=8)
    return ax


DESIGNS = {
    "cross-encoder": "query and passage read together: N passes per query",
    "bi-encoder": "each encoded alone: one vector each, a dot product",
    "late interaction": "each encoded alone: one vector per token, MaxSim",
}


def encoder_designs(fig: Figure | None = None) -> Figure:
    """A schematic of the three ways to score a (query, passage) pair with a BERT encoder (chapter 3):
    the cross-encoder, the bi-encoder and late interaction (ColBERT), one panel each, boxes and arrows."""
    fig = fig if fig is not None else plt.figure(figsize=(13, 4.2))
    axes = fig.subplots(1, 3)

    def box(ax, x, y, w, h, text, colour):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", facecolor=colour,
                                    edgecolor="black"))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(ax, start, end):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="black"))

    cross, bi, late = axes
    box(cross, 0.5, 0.12, 0.8, 0.1, "[CLS] query [SEP] passage", "#dbe9f6")
    box(cross, 0.5, 0.45, 0.8, 0.22, "BERT (every query token\nattends to every passage token)", "#f6e3c8")
    box(cross, 0.5, 0.82, 0.4, 0.1, "score = w · z[CLS]", "#d9f0d3")
    arrow(cross, (0.5, 0.17), (0.5, 0.34))
    arrow(cross, (0.5, 0.56), (0.5, 0.77))
    for ax, pooled in ((bi, True), (late, False)):
        for x, side in ((0.27, "query"), (0.73, "passage")):
            box(ax, x, 0.12, 0.36, 0.1, side, "#dbe9f6")
            box(ax, x, 0.4, 0.36, 0.16, "BERT", "#f6e3c8")
            box(ax, x, 0.64, 0.36, 0.1, "mean pool: 1 vector" if pooled else "1 vector per token", "#eeeeee")
            arrow(ax, (x, 0.17), (x, 0.32))
            arrow(ax, (x, 0.48), (x, 0.59))
            arrow(ax, (x, 0.69), (0.5 + (x - 0.5) * 0.3, 0.79))
        box(ax, 0.5, 0.85, 0.5, 0.1, "score = cosine" if pooled else "score = Σ max cosine (MaxSim)", "#d9f0d3")
    for ax, (name, caption) in zip(axes, DESIGNS.items()):
        ax.set(xlim=(0, 1), ylim=(0, 1), title=name)
        ax.text(0.5, -0.04, caption, ha="center", va="top", fontsize=9, transform=ax.transAxes)
        ax.axis("off")
    return fig
