"""course_lib.plots draws what it is given: the data read back from the drawing equals the input."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from course_lib import plots  # noqa: E402

SCORES = st.floats(0, 1, allow_nan=False)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_time_against_size_draws_one_line_per_method_through_the_measurements():
    sizes, times = [100, 1000, 10000], {"scan": [1.0, 10.0, 100.0], "index": [0.1, 0.3, 0.9]}
    ax = plots.time_against_size(sizes, times)
    assert [line.get_label() for line in ax.lines] == ["scan", "index"]
    for line, values in zip(ax.lines, times.values()):
        assert list(line.get_xdata()) == sizes and list(line.get_ydata()) == values
    assert ax.get_xscale() == ax.get_yscale() == "log"


@pytest.mark.parametrize("sizes, times, match", [
    ([1, 2], {"a": [1.0]}, "1 values for 2 sizes"),
    ([0, 2], {"a": [1.0, 2.0]}, "sizes must be positive"),
    ([1, 2], {"a": [1.0, float("nan")]}, r"times\['a'\] must be a non-empty sequence of finite"),
    ([1, 2], {}, "times must map"),
    ([1, 2], {"a": [1.0, 0.0]}, r"times\['a'\] must be positive"),
])
def test_time_against_size_names_the_bad_argument(sizes, times, match):
    with pytest.raises(ValueError, match=match):
        plots.time_against_size(sizes, times)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=6), SCORES, min_size=1, max_size=8))
def test_dot_plot_puts_each_configuration_at_its_value_best_on_top(values):
    ax = plots.dot_plot(values)
    (dots,) = ax.lines
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(values)
    assert list(dots.get_xdata()) == [values[name] for name in labels]
    assert list(dots.get_xdata()) == sorted(dots.get_xdata())
    plt.close("all")


def test_dot_plot_marks_the_reference_and_rejects_an_unknown_one():
    ax = plots.dot_plot({"lucene": 0.5, "atire": 0.4}, reference="lucene")
    assert list(ax.lines[1].get_xdata()) == [0.5, 0.5]
    with pytest.raises(ValueError, match="reference must be one of"):
        plots.dot_plot({"lucene": 0.5}, reference="bm25l")
    with pytest.raises(ValueError, match="values must map"):
        plots.dot_plot({})


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_group_bars_draws_every_value_in_its_group(n_groups, n_systems, data):
    table = {f"group {g}": {f"system {s}": data.draw(SCORES) for s in range(n_systems)} for g in range(n_groups)}
    ax = plots.group_bars(table)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table)
    for s, container in enumerate(ax.containers):
        heights = [bar.get_height() for bar in container]
        assert heights == [row[f"system {s}"] for row in table.values()]
        centres = [bar.get_x() + bar.get_width() / 2 for bar in container]
        assert np.allclose(np.round(centres), range(n_groups))    # each bar sits in its group
    plt.close("all")


def test_group_bars_rejects_groups_that_name_different_systems():
    with pytest.raises(ValueError, match=r"table\['b'\] names systems \['y'\]"):
        plots.group_bars({"a": {"x": 0.1}, "b": {"y": 0.2}})


def test_encoder_designs_draws_the_three_designs():
    fig = plots.encoder_designs()
    assert [ax.get_title() for ax in fig.axes] == list(plots.DESIGNS)
    texts = [" ".join(t.get_text() for t in ax.texts) for ax in fig.axes]
    assert "[CLS] query [SEP] passage" in texts[0] and "MaxSim" in texts[2] and "mean pool" in texts[1]
    assert all(len(ax.patches) >= 5 for ax in fig.axes)   # boxes and arrows in every panel
