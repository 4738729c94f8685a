"""The six figures of :mod:`bayescale.report.plots`: each a Figure that renders to a non-empty PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from _report_fits import small_fits

from bayescale.report import plots as plot


@pytest.fixture(scope="module")
def fits():
    return small_fits()


@pytest.fixture(scope="module")
def frontiers(fits):
    C = np.geomspace(1e18, 1e24, 30)
    return {m: fits[m].frontier(C) for m in ("bayes", "bootstrap")}


def _png(fig) -> bytes:
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    assert fig.axes, "a figure without axes"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return data


def test_plot_runs(fits):
    fig = plot.plot_runs(fits["bayes"], num_sizes=3, num_budgets=3)
    _png(fig)
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 2


def test_plot_frontier_and_tokens(fits, frontiers):
    C_range = (float(fits["bayes"].runs.C.min()), float(fits["bayes"].runs.C.max()))
    fig = plot.plot_frontier(frontiers["bayes"], data_C_range=C_range,
                             others={"bootstrap": frontiers["bootstrap"]})
    _png(fig)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("Hoffmann" in s for s in labels) and any("Epoch" in s for s in labels)
    assert "compute range of the runs" in labels
    fig = plot.plot_tokens_per_param(frontiers["bayes"], data_C_range=C_range)
    _png(fig)
    assert "20 tokens per parameter" in fig.axes[0].get_legend_handles_labels()[1]


def test_plot_point_estimate_frontier_has_no_band(fits):
    from matplotlib.collections import PolyCollection

    fr = fits["huber"].frontier(np.geomspace(1e19, 1e23, 10))
    fig = plot.plot_frontier(fr, label="Huber", references=False)
    _png(fig)
    # One draw: a line and no credible band (bands are filled PolyCollections).
    assert all(not isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
    assert any(line.get_label().startswith("Huber") for ax in fig.axes for line in ax.get_lines())
    # ... whereas the posterior's frontier has one.
    fb = plot.plot_frontier(fits["bayes"].frontier(np.geomspace(1e19, 1e23, 10)),
                            label="Bayes", references=False)
    assert any(isinstance(c, PolyCollection) for ax in fb.axes for c in ax.collections)


def test_plot_pair(fits):
    fig = plot.plot_pair(fits["bayes"], huber=fits["huber"], bootstrap=fits["bootstrap"],
                         max_points=200)
    _png(fig)
    assert sum(ax.get_visible() for ax in fig.axes) == 15  # lower triangle + diagonal


def test_plot_residuals_uses_posterior_predictive(fits):
    fig = plot.plot_residuals(fits["bayes"])
    _png(fig)
    assert "posterior-predictive" in fig.get_suptitle()


def test_plot_methods(fits):
    fig = plot.plot_methods(fits)
    _png(fig)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == \
        ["E", "A", "B", "alpha", "beta", "a_opt"]


def test_no_pyplot_state(fits):
    import sys

    before = sys.modules["matplotlib.pyplot"].get_fignums() \
        if "matplotlib.pyplot" in sys.modules else []
    plot.plot_methods(fits)
    after = sys.modules["matplotlib.pyplot"].get_fignums() \
        if "matplotlib.pyplot" in sys.modules else []
    assert before == after
