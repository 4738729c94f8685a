"""The six figures of :mod:`bayescale.report.plots`: what they draw agrees with the law.

The curves are checked against :func:`bayescale.laws.chinchilla.loss` and
:func:`bayescale.planning.frontier.compute_optimal` through the artists' data (lines are
tagged with a ``gid``), the published allocations against the published numbers, and
the look (colours, tick labels that are plain numbers and do not collide) on the
rendered figure.
"""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import numpy as np
import pytest
from _report_fits import small_fits

from bayescale.laws.chinchilla import loss
from bayescale.planning.frontier import compute_optimal
from bayescale.report import plots as plot


@pytest.fixture(scope="module")
def fits():
    return small_fits()


@pytest.fixture(scope="module")
def frontiers(fits):
    C = np.geomspace(1e18, 1e24, 31)  # 31 points: 5.76e23 is not on it, 1e21 is
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


def _line(fig, gid):
    found = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == gid]
    assert found, f"no line {gid!r}"
    return found[0]


def _tick_texts(fig):
    fig.canvas.draw()
    return [t.get_text() for ax in fig.axes if ax.get_visible()
            for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]


def _assert_plain_ticks(fig):
    texts = _tick_texts(fig)
    assert texts
    bad = [t for t in texts if "times" in t or "^" in t or "$" in t]
    assert not bad, f"tick labels in 'a x 10^b' style: {bad}"


def _params(fit):
    return type(fit.params)(*(np.asarray(v, dtype=float) for v in fit.params))


def test_runs_curves_are_the_law_and_minima_marked(fits):
    huber = fits["huber"]
    p = _params(huber)
    fig = plot.plot_runs(huber, num_sizes=3, num_budgets=3)
    _png(fig)
    for k, N in enumerate(fig.drawn["sizes"]):
        C, L = _line(fig, f"size:{k}").get_data()
        np.testing.assert_allclose(L, loss(p, N, C / (6 * N)), rtol=1e-6)
    for k, (Cb, _, _) in enumerate(fig.drawn["isoflop"]):
        N, L = _line(fig, f"isoflop:{k}").get_data()
        np.testing.assert_allclose(L, loss(p, N, Cb / (6 * N)), rtol=1e-6)
        # the marker sits at the profile's minimum: the closed-form N_opt, below the curve
        (x,), (y,) = _line(fig, f"minimum:{k}").get_data()
        np.testing.assert_allclose(x, compute_optimal(p, Cb).N_opt, rtol=1e-6)
        assert y <= L.min() * (1 + 1e-9)
        # brute force in float64 NumPy: in float32 the profile is flat to rounding over
        # about 0.2% of N around its minimum
        E, A, B, alpha, beta = (float(v) for v in p)
        dense = np.geomspace(N.min(), N.max(), 20001)
        brute = dense[np.argmin(A / dense**alpha + B / (Cb / (6 * dense))**beta)]
        np.testing.assert_allclose(x, brute, rtol=2e-3)
    C, L = _line(fig, "optimal").get_data()
    np.testing.assert_allclose(L, compute_optimal(p, C).L_opt, rtol=1e-6)


def test_runs_loss_axis_is_labelled_in_plain_numbers(fits):
    fig = plot.plot_runs(fits["bayes"], num_sizes=3, num_budgets=3)
    _assert_plain_ticks(fig)
    # the loss axis spans less than a decade: several labelled ticks, not just "2" and "3"
    loss_labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert len(loss_labels) >= 3, loss_labels
    # the posterior's median curve is the median of the law over the draws
    p = _params(fits["bayes"])
    C, L = _line(fig, "optimal").get_data()
    expected = np.median(np.asarray(compute_optimal(p, C).L_opt), axis=0)
    np.testing.assert_allclose(L, expected, rtol=1e-6)


def test_frontier_curves_and_references(fits, frontiers):
    C_range = (float(fits["bayes"].runs.C.min()), float(fits["bayes"].runs.C.max()))
    fr = frontiers["bayes"]
    fig = plot.plot_frontier(fr, data_C_range=C_range, others={"bootstrap": frontiers["bootstrap"]})
    _png(fig)
    _assert_plain_ticks(fig)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("Hoffmann" in s for s in labels) and any("Epoch" in s for s in labels)
    assert "compute range of the runs" in labels
    opt = compute_optimal(_params(fits["bayes"]), fr.budgets)
    for key in ("N_opt", "D_opt"):
        C, med = _line(fig, f"Bayes posterior:{key}").get_data()
        draws = np.asarray(getattr(opt, key))
        np.testing.assert_allclose(med, np.median(draws, axis=0), rtol=1e-6)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        _, ratio = _line(fig, f"ratio:Bayes posterior:{key}").get_data()
        np.testing.assert_allclose(ratio, hi / lo, rtol=1e-6)
    # published allocations at Gopher's budget: 40.4B (Hoffmann, unrounded), 72.2B (Epoch)
    gopher = plot.plot_frontier(fits["huber"].frontier([1e22, 5.76e23]), references=True)
    for name, N in (("Hoffmann 2022 (unrounded)", 40.4e9),
                    ("Epoch refit (Besiroglu 2024)", 72.2e9)):
        line = [ln for ln in gopher.axes[0].get_lines() if ln.get_label() == name][0]
        assert line.get_ydata()[-1] == pytest.approx(N, rel=2e-3)
    # Chinchilla itself: 70B parameters on 1.4T tokens, at 6 N D
    (x,), (y,) = _line(fig, "point:Chinchilla (70B, 1.4T tokens)").get_data()
    assert (x, y) == pytest.approx((6 * 70e9 * 1.4e12, 70e9))


def test_frontier_spans_the_data_with_custom_budgets(fits):
    runs = fits["bayes"].runs
    C_range = (float(runs.C.min()), float(runs.C.max()))
    fig = plot.plot_frontier(fits["bayes"].frontier([1e23, 1e24]), data_C_range=C_range,
                             references=False)
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= C_range[0] and hi >= 1e24
    assert not [ln for ln in fig.axes[0].get_lines() if (ln.get_gid() or "").startswith("point:")]


def test_point_estimate_frontier_has_no_band(fits):
    from matplotlib.collections import PolyCollection

    fr = fits["huber"].frontier(np.geomspace(1e19, 1e23, 10))
    fig = plot.plot_frontier(fr, label="Huber", references=False)
    _png(fig)
    # One draw: a line and no credible band (bands are filled PolyCollections).
    assert all(not isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
    _, med = _line(fig, "Huber:N_opt").get_data()
    # float32 (the default): the closed form's few roundings, times log N ~ 20 in the
    # exponentiation, give relative differences up to ~20 eps = 2.4e-6
    np.testing.assert_allclose(med, compute_optimal(_params(fits["huber"]), fr.budgets).N_opt,
                               rtol=1e-5)
    fb = plot.plot_frontier(fits["bayes"].frontier(np.geomspace(1e19, 1e23, 10)),
                            label="Bayes", references=False)
    assert any(isinstance(c, PolyCollection) for ax in fb.axes for c in ax.collections)


def test_tokens_per_param_band_is_blue_and_in_the_legend(fits, frontiers):
    from matplotlib.collections import PolyCollection

    C_range = (float(fits["bayes"].runs.C.min()), float(fits["bayes"].runs.C.max()))
    fig = plot.plot_tokens_per_param(frontiers["bayes"], data_C_range=C_range,
                                     others={"bootstrap": frontiers["bootstrap"]})
    _png(fig)
    _assert_plain_ticks(fig)
    ax = fig.axes[0]
    assert "20 tokens per parameter" in ax.get_legend_handles_labels()[1]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    # one filled band (the posterior's, blue); the bootstrap's bounds are lines, so no
    # second band mixes with it into grey
    assert len(bands) == 1
    blue = mcolors.to_rgb("tab:blue")
    assert tuple(bands[0].get_facecolor()[0][:3]) == pytest.approx(blue)
    shade = [p for p in ax.patches if p.get_label() == "compute range of the runs"][0]
    assert np.abs(np.subtract(shade.get_facecolor()[:3], blue)).max() > 0.3
    # the legend entry of the posterior shows its band
    legend_handles = ax.get_legend().legend_handles
    assert any(isinstance(h, PolyCollection) or (hasattr(h, "get_facecolor") and
               tuple(np.ravel(h.get_facecolor())[:3]) == pytest.approx(blue))
               for h in legend_handles)
    _, med = _line(fig, "Bayes posterior:tokens_per_param").get_data()
    opt = compute_optimal(_params(fits["bayes"]), frontiers["bayes"].budgets)
    np.testing.assert_allclose(med, np.median(np.asarray(opt.D_opt / opt.N_opt), axis=0),
                               rtol=1e-6)


def _overlaps(labels):
    boxes = [t.get_window_extent() for t in labels if t.get_text()]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


def test_pair_posterior_on_top_outline_histograms_ticks_apart(fits):
    from matplotlib.patches import Polygon

    fig = plot.plot_pair(fits["bayes"], huber=fits["huber"], bootstrap=fits["bootstrap"],
                         max_points=200)
    _png(fig)
    assert sum(ax.get_visible() for ax in fig.axes) == 15  # lower triangle + diagonal
    _assert_plain_ticks(fig)
    bayes_rgb, boot_rgb = mcolors.to_rgb("tab:blue"), mcolors.to_rgb("tab:orange")
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        z = {}
        for c in ax.collections:
            rgb = tuple(np.round(c.get_facecolor()[0][:3], 3)) if len(c.get_facecolor()) else None
            z[rgb] = c.get_zorder()
        if tuple(np.round(bayes_rgb, 3)) in z and tuple(np.round(boot_rgb, 3)) in z:
            assert z[tuple(np.round(bayes_rgb, 3))] > z[tuple(np.round(boot_rgb, 3))]
        for patch in ax.patches:  # histograms: outlines, no filled overlap turning brown
            assert not (isinstance(patch, Polygon) and patch.get_fill())
        assert not _overlaps(ax.get_xticklabels()), [t.get_text() for t in ax.get_xticklabels()]
        assert not _overlaps(ax.get_yticklabels()), [t.get_text() for t in ax.get_yticklabels()]


def test_plot_residuals_uses_posterior_predictive_and_the_law(fits):
    fig = plot.plot_residuals(fits["bayes"])
    _png(fig)
    assert "posterior-predictive" in fig.get_suptitle()
    runs = fits["bayes"].runs
    p = _params(fits["bayes"])
    mu = np.log(np.asarray(loss(type(p)(*(v[:, None] for v in p)), runs.N[None], runs.D[None])))
    np.testing.assert_allclose(fig.drawn["fitted_median"], np.median(mu, axis=0), rtol=1e-6)


def test_plot_methods(fits):
    fig = plot.plot_methods(fits)
    _png(fig)
    _assert_plain_ticks(fig)
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
