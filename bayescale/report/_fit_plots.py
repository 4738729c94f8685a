"""Figures of the fit itself: the joint distribution, the residuals, the methods side by side.

Re-exported by :mod:`bayescale.report.plots` (``plot_pair``, ``plot_residuals``,
``plot_methods``), where the module docstring describes all six figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayescale.laws.chinchilla import BESIROGLU_2024, HOFFMANN_2022_UNROUNDED, LawParams
from bayescale.laws.chinchilla import allocation_exponents
from bayescale.report._plotting import (
    LOG_PARAMS,
    METHOD_COLORS,
    PARAMS,
    band,
    figure,
    fmt_level,
    human_ticks,
    law_loss,
    params_array,
    thin,
)

__all__ = ["plot_pair", "plot_residuals", "plot_methods"]


def plot_pair(fit, *, huber=None, bootstrap=None, max_points: int = 1500, level: float = 0.9):
    """Pair plot of the law's parameters (``E, A, B, alpha, beta`` for Chinchilla) over
    draws, others overlaid.

    Lower triangle: the bootstrap resamples (orange) underneath, the posterior draws
    (blue) on top, so neither hides the other, and the Huber estimate (red star).
    Diagonal: outline histograms (overlapping filled ones mix into brown). ``A`` and
    ``B`` (Kaplan's ``N_c`` and ``D_c``) on log axes; at most three labelled ticks per axis.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.drawn`` holds ``clouds`` (label -> ``(draw, k)`` array drawn) and ``huber``.
    """
    main = params_array(fit.params, max_points, seed=1)
    boot = params_array(bootstrap.params, max_points, seed=2) if bootstrap is not None else None
    hub = params_array(huber.params)[0] if huber is not None else None
    # drawn first = underneath: the bootstrap, then the posterior
    clouds = []
    if boot is not None:
        clouds.append((boot, METHOD_COLORS["bootstrap"], "bootstrap resamples", 0.25, 1))
    clouds.append((main, METHOD_COLORS["bayes"], f"{fit.method} draws", 0.35, 2))
    names = tuple(fit.param_names)
    n = len(names)
    fig = figure(10, 10)
    fig.drawn.update(clouds={lab: arr for arr, _, lab, _, _ in clouds}, huber=hub)
    axes = fig.subplots(n, n, squeeze=False)
    limits = []
    for i, name in enumerate(names):
        vals = np.concatenate([c[0][:, i] for c in clouds]
                              + ([np.array([hub[i]])] if hub is not None else []))
        lo, hi = np.quantile(vals, [0.002, 0.998])
        if name in LOG_PARAMS:
            lo, hi = lo / 1.05, hi * 1.05
        else:
            pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 0.05
            lo, hi = lo - pad, hi + pad
        limits.append((lo, hi))
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            xlog = names[j] in LOG_PARAMS
            if i == j:
                lo, hi = limits[i]
                bins = np.geomspace(lo, hi, 40) if xlog else np.linspace(lo, hi, 40)
                for arr, color, _, _, z in clouds:
                    ax.hist(np.clip(arr[:, i], lo, hi), bins=bins, color=color, density=True,
                            histtype="step", lw=1.5, zorder=z)
                if hub is not None:
                    ax.axvline(hub[i], color=METHOD_COLORS["huber"], lw=1.5)
                ax.set_yticks([])
            else:
                for arr, color, _, alpha, z in clouds:
                    ax.scatter(arr[:, j], arr[:, i], s=3, color=color, alpha=alpha, lw=0,
                               rasterized=True, zorder=z)
                if hub is not None:
                    ax.scatter([hub[j]], [hub[i]], marker="*", s=90, color=METHOD_COLORS["huber"],
                               edgecolors="k", linewidths=0.5, zorder=3)
                if names[i] in LOG_PARAMS:
                    ax.set_yscale("log")
                ax.set_ylim(*limits[i])
            if xlog:
                ax.set_xscale("log")
            ax.set_xlim(*limits[j])
            _few_ticks(ax)
            ax.tick_params(labelsize=7)
            if i == n - 1:
                ax.set_xlabel(names[j])
                ax.tick_params(axis="x", labelrotation=45)
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            elif j > 0 or i == 0:
                ax.tick_params(labelleft=False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=lab)
               for _, c, lab, _, _ in reversed(clouds)]
    if hub is not None:
        handles.append(Line2D([], [], ls="", marker="*", markersize=10,
                              color=METHOD_COLORS["huber"], label="Huber estimate"))
    fig.legend(handles=handles, loc="upper right", fontsize=10)
    fig.suptitle("Joint distribution of the law's parameters")
    return fig


def _few_ticks(ax) -> None:
    """Small panels: at most three plain tick labels per axis, so they cannot collide
    (on log axes too: a parameter's posterior spans well under a decade, where a log
    locator would label every 100)."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    human_ticks(ax, nbins=3)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=2, min_n_ticks=2))
        axis.set_minor_locator(NullLocator())


def _predictive_log_loss(fit) -> np.ndarray | None:
    idata = getattr(fit, "idata", None)
    if idata is None or not hasattr(idata, "posterior_predictive"):
        return None
    pp = np.asarray(idata.posterior_predictive["log_loss"])
    return pp.reshape(-1, pp.shape[-1])


def plot_residuals(fit, *, level: float = 0.9, max_draws: int = 2000):
    """Residuals of log loss (observed minus the median fitted log loss) vs N and vs D.

    Error bars are the central ``level`` posterior-predictive interval of each run's
    log loss (from ``fit.idata.posterior_predictive`` when present, else the
    interval of the fitted mean alone), shifted by the same median; runs outside
    their interval are marked red. The title gives the share inside, which should be
    close to ``level``.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.drawn`` holds ``residuals`` and ``fitted_median`` (log loss, per run).
    """
    runs = fit.runs
    U = runs.U if "U" in fit.law.inputs else None
    mu = np.log(law_loss(thin(fit.params, max_draws), runs.N, runs.D, U))
    centre = np.median(mu, axis=0)
    resid = runs.log_loss - centre
    pp = _predictive_log_loss(fit)
    kind = "posterior-predictive"
    if pp is None:
        pp, kind = mu, "fitted-mean"
    _, lo, hi = band(pp - centre[None, :], level)
    outside = (resid < lo) | (resid > hi)
    inside = 1.0 - float(outside.mean())
    fig = figure(12, 4.5)
    fig.drawn.update(residuals=resid, fitted_median=centre)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, name in zip(axes, (runs.N, runs.D), ("model size N (parameters)",
                                                     "training tokens D")):
        # a run's interval need not contain 0: with run offsets it is centred on its run
        ax.vlines(x, lo, hi, colors="0.6", linewidths=0.8, alpha=0.7,
                  label=f"{fmt_level(level)} {kind} interval")
        ax.scatter(x[~outside], resid[~outside], s=12, color="tab:blue", zorder=3,
                   label="inside")
        ax.scatter(x[outside], resid[outside], s=16, color="tab:red", zorder=3,
                   label="outside")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name)
        ax.grid(True, alpha=0.3)
        human_ticks(ax)
    axes[0].set_ylabel("log loss residual (observed - fitted median)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Residuals: {100 * inside:.1f}% of runs inside their "
                 f"{fmt_level(level)} {kind} interval")
    return fig


def plot_methods(fits: Mapping[str, Any], *, level: float = 0.9,
                 quantities: Sequence[str] = ("E", "A", "B", "alpha", "beta", "a_opt"),
                 references: bool = True):
    """Estimates and ``level`` intervals of each parameter and ``a_opt``, by method.

    Parameters
    ----------
    fits : fits by label, e.g. ``{"bayes": ..., "bootstrap": ..., "huber": ...}``; a
        point estimate draws a dot without an interval.
    references : mark Hoffmann et al.'s and Besiroglu et al.'s published values (fits
        of the Chinchilla data).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ncols = 3
    nrows = math.ceil(len(quantities) / ncols)
    fig = figure(12, 2.6 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).reshape(-1)
    labels = list(fits)
    refs = {"Hoffmann 2022": HOFFMANN_2022_UNROUNDED, "Epoch 2024": BESIROGLU_2024}
    for ax, q in zip(axes, quantities):
        for k, lab in enumerate(labels):
            f = fits[lab]
            est = f.point_estimate()[q]
            color = METHOD_COLORS.get(lab, f"C{k}")
            ivals = f.intervals(level) if not f.is_point else {}
            if q in ivals:
                lo, hi = ivals[q]
                ax.errorbar([est], [k], xerr=[[est - lo], [hi - est]], fmt="o", color=color,
                            capsize=4, lw=2)
            else:
                ax.plot([est], [k], "D", color=color)
        if references:
            for (rname, rp), ls in zip(refs.items(), ("--", "-.")):
                ax.axvline(_quantity(rp, q), color="0.4", ls=ls, lw=1,
                           label=rname if q == quantities[0] else None)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.invert_yaxis()
        lo_x, hi_x = ax.get_xlim()
        if q in LOG_PARAMS and lo_x > 0 and hi_x / lo_x > 5:
            ax.set_xscale("log")
            human_ticks(ax, nbins=4)
        else:
            ax.locator_params(axis="x", nbins=4)  # small panels: labels must not collide
        ax.set_title(q)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes[len(quantities):]:
        ax.set_visible(False)
    if references:
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Estimates and {fmt_level(level)} intervals by method "
                 "(Huber: point estimate)")
    return fig


def _quantity(params: LawParams, q: str) -> float:
    a_opt, b_opt = allocation_exponents(params)
    values = dict(zip(PARAMS, (float(v) for v in params)), a_opt=float(a_opt),
                  b_opt=float(b_opt))
    return values[q]
