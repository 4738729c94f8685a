"""Drawing helpers shared by the figure modules: law curves, bands, human tick labels.

Curves come from the law (:func:`bayescale.laws.registry.loss`, any law) and the frontier
solver (:func:`bayescale.planning.frontier.compute_optimal`), never a formula written
here.
"""

from __future__ import annotations

import math

import numpy as np

from bayescale.laws.chinchilla import LawParams
from bayescale.laws.registry import loss
from bayescale.planning.frontier import compute_optimal
from bayescale.report._format import human

METHOD_COLORS = {"bayes": "tab:blue", "bootstrap": "tab:orange", "huber": "tab:red",
                 "huber_mle": "tab:purple"}
DATA_SHADE = dict(color="#f2e6c9", alpha=1.0, lw=0, zorder=0)  # sand: not a band colour
PARAMS = ("E", "A", "B", "alpha", "beta")
#: Scale parameters drawn on log axes (Chinchilla's A and B, Kaplan's N_c and D_c).
LOG_PARAMS = ("A", "B", "N_c", "D_c")
MAX_CURVE_DRAWS = 400


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.drawn = {}
    return fig


def thin(params: LawParams, max_draws: int | None = None, seed: int = 0) -> LawParams:
    """``params`` with leaves ``(draw,)`` (a point estimate: one draw), thinned to ``max_draws``."""
    leaves = [np.atleast_1d(np.asarray(v, dtype=float)) for v in params]
    n = leaves[0].shape[0]
    if max_draws is not None and n > max_draws:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_draws, replace=False))
        leaves = [v[idx] for v in leaves]
    return type(params)(*leaves)


def params_array(params: LawParams, max_draws: int | None = None, seed: int = 0) -> np.ndarray:
    """``(draw, k)`` array of the law's parameters (``E, A, B, alpha, beta`` for Chinchilla)."""
    return np.stack(list(thin(params, max_draws, seed)), axis=-1)


def law_loss(params: LawParams, N, D, U=None) -> np.ndarray:
    """The law's loss for draws ``(draw,)`` at points ``N, D (k,)`` (and ``U``, for a
    law that takes unique tokens): shape ``(draw, k)``."""
    p = type(params)(*(np.asarray(v)[:, None] for v in params))
    extra = () if U is None else (np.asarray(U, float)[None, :],)
    return np.asarray(loss(p, np.asarray(N, float)[None, :], np.asarray(D, float)[None, :],
                           *extra))


def optimal(params: LawParams, C, unique_tokens=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``N_opt, D_opt, L_opt`` of the frontier solver, each ``(draw, budget)``."""
    opt = compute_optimal(params, np.asarray(C, dtype=float), unique_tokens)
    return tuple(np.asarray(v, dtype=float) for v in (opt.N_opt, opt.D_opt, opt.L_opt))


def band(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.quantile(values, [0.5, (1 - level) / 2, (1 + level) / 2], axis=0)
    return q[0], q[1], q[2]


def draw_band(ax, x, values, level, *, color, label=None, alpha=0.25, lw=1.5, ls="-",
               gid=None):
    """Median line and (over several draws) the band; returns ``(median, lower, upper)``."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    med, lo, hi = band(values, level)
    ax.plot(x, med, color=color, lw=lw, ls=ls, label=label, gid=gid, zorder=3)
    if values.shape[0] > 1:
        ax.fill_between(x, lo, hi, facecolor=color, alpha=alpha, lw=0, zorder=2,
                        gid=None if gid is None else f"band:{gid}")
    return med, lo, hi


def draw_bounds(ax, x, values, level, *, color, label=None, lw=1.0, gid=None):
    """Median line and the band's bounds as thin dashed lines, unfilled: a second band
    drawn over the first would mix their colours (blue over orange reads grey)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    med, lo, hi = band(values, level)
    ax.plot(x, med, color=color, lw=lw, label=label, gid=gid, zorder=3)
    if values.shape[0] > 1:
        for v in (lo, hi):
            ax.plot(x, v, color=color, lw=0.8, ls="--", zorder=3)
    return med, lo, hi


def band_legend(ax, **kwargs):
    """Legend whose band entries show the band's colour with its line."""
    from matplotlib.collections import PolyCollection

    handles, labels = ax.get_legend_handles_labels()
    bands = {c.get_gid()[5:]: c for c in ax.collections
             if isinstance(c, PolyCollection) and (c.get_gid() or "").startswith("band:")}
    for k, h in enumerate(handles):
        gid = h.get_gid() if hasattr(h, "get_gid") else None
        if gid in bands:
            handles[k] = (bands[gid], h)
    ax.legend(handles, labels, **kwargs)


def fmt_level(level: float) -> str:
    return f"{100 * level:g}%"


def human_ticks(ax, nbins: int = 5) -> None:
    """Plain tick labels (``2``, ``2.5``, ``100M``, ``1B``, ``1e21``), never ``2 x 10^1``.

    Log axes spanning less than a factor of 4 get evenly spaced round ticks (a decade
    tick alone would leave the axis unlabelled), up to a few decades 1-2-5 ticks, wider
    ones ticks at powers of ten.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _: human(v))
    for axis, scale, lim in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                             (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log":
            continue
        lo, hi = sorted(float(v) for v in lim)
        if lo > 0 and hi / lo < 4:
            axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10],
                                               min_n_ticks=3))
        elif lo > 0 and hi / lo < 300:  # 1, 2, 5 per decade
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0),
                                              numticks=nbins + 2))
        else:
            axis.set_major_locator(LogLocator(base=10, numticks=nbins + 2))
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())


def human_figure(fig, nbins: int = 5) -> None:
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            human_ticks(ax, nbins)


def human_formatter(minor: bool = False):
    from matplotlib.ticker import FuncFormatter

    if minor:  # colour bars: label 2x and 5x between decades
        return FuncFormatter(lambda v, _: human(v) if round(v / 10 ** math.floor(
            math.log10(v)), 6) in (2.0, 5.0) else "")
    return FuncFormatter(lambda v, _: human(v))


def set_loss_ylim(ax, values):
    lo, hi = float(np.min(values)), float(np.max(values))
    ax.set_ylim(lo / 1.08, hi * 1.08)


def cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]
