"""Figures of a fit: the only matplotlib import in bayescale.

Every function takes fits (:class:`~bayescale.estimators.fit.ScalingFit`) or frontiers
(:class:`~bayescale.planning.frontier.Frontier`) and returns a :class:`matplotlib.figure.Figure`
built directly (no ``pyplot`` state: nothing is shown, no global backend is
changed, figures are garbage-collected like any object). Save one with
``fig.savefig("x.png")`` (matplotlib picks its Agg canvas for PNG).

1. :func:`plot_runs` -- the runs on loss vs compute coloured by model size, with the
   fitted loss curves and their bands, and the isoFLOP profiles.
2. :func:`plot_frontier` -- ``N_opt(C)`` and ``D_opt(C)`` with credible bands, the
   data's range shaded, and the published Hoffmann and Epoch fits for reference.
3. :func:`plot_tokens_per_param` -- ``D_opt / N_opt`` vs ``C`` and the 20 line.
4. :func:`plot_pair` -- pair plot of ``E, A, B, alpha, beta`` with the Huber estimate
   and the bootstrap cloud overlaid.
5. :func:`plot_residuals` -- residuals of log loss vs N and vs D, with
   posterior-predictive intervals.
6. :func:`plot_methods` -- intervals for each parameter and ``a_opt`` by method.

Bands are central intervals at ``level`` over draws; a point estimate draws a line.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayescale.laws.chinchilla import BESIROGLU_2024, HOFFMANN_2022, HOFFMANN_2022_UNROUNDED, LawParams

__all__ = [
    "plot_runs",
    "plot_frontier",
    "plot_tokens_per_param",
    "plot_pair",
    "plot_residuals",
    "plot_methods",
    "REFERENCE_FITS",
    "METHOD_COLORS",
]

#: Published fits drawn for reference on the frontier figures.
REFERENCE_FITS: dict[str, LawParams] = {
    "Hoffmann 2022 (published, rounded)": HOFFMANN_2022,
    "Hoffmann 2022 (unrounded)": HOFFMANN_2022_UNROUNDED,
    "Epoch refit (Besiroglu 2024)": BESIROGLU_2024,
}
_REFERENCE_STYLES = {
    "Hoffmann 2022 (published, rounded)": dict(color="tab:red", ls="--"),
    "Hoffmann 2022 (unrounded)": dict(color="tab:red", ls=":"),
    "Epoch refit (Besiroglu 2024)": dict(color="tab:green", ls="-."),
}
METHOD_COLORS = {"bayes": "tab:blue", "bootstrap": "tab:orange", "huber": "tab:red",
                 "huber_mle": "tab:purple"}
_PARAMS = ("E", "A", "B", "alpha", "beta")
_LOG_PARAMS = ("A", "B")
_MAX_CURVE_DRAWS = 400


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _params_array(params: LawParams, max_draws: int | None = None, seed: int = 0) -> np.ndarray:
    """``(draw, 5)`` array of ``E, A, B, alpha, beta``, thinned to ``max_draws``."""
    arr = np.stack([np.atleast_1d(np.asarray(v, dtype=float)) for v in params], axis=-1)
    if max_draws is not None and arr.shape[0] > max_draws:
        idx = np.random.default_rng(seed).choice(arr.shape[0], max_draws, replace=False)
        arr = arr[np.sort(idx)]
    return arr


def _loss(p: np.ndarray, N, D) -> np.ndarray:
    """Loss for draws ``p (draw, 5)`` at points ``N, D (k,)``: shape ``(draw, k)``."""
    E, A, B, alpha, beta = (p[:, i:i + 1] for i in range(5))
    N = np.asarray(N, dtype=float)[None, :]
    D = np.asarray(D, dtype=float)[None, :]
    return E + A * N ** -alpha + B * D ** -beta


def _band(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.quantile(values, [0.5, (1 - level) / 2, (1 + level) / 2], axis=0)
    return q[0], q[1], q[2]


def _draw_band(ax, x, values, level, *, color, label=None, alpha=0.25, lw=1.5, ls="-"):
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    med, lo, hi = _band(values, level)
    ax.plot(x, med, color=color, lw=lw, ls=ls, label=label)
    if values.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0)


def _fmt_level(level: float) -> str:
    return f"{100 * level:g}%"


# ---------------------------------------------------------------------------
# 1. Runs, fitted curves and isoFLOP profiles
# ---------------------------------------------------------------------------

def plot_runs(fit, *, level: float = 0.9, num_sizes: int = 6, num_budgets: int = 5,
              max_draws: int = _MAX_CURVE_DRAWS):
    """The runs on loss vs compute, coloured by model size, with fitted curves.

    Left: each run at ``(C = 6 N D, loss)``, coloured by ``N``; for ``num_sizes``
    model sizes spanning the data, the fitted ``L(N, C / 6N)`` as ``C`` grows (median
    and band over draws), and the compute-optimal envelope ``L_opt(C)``. Right: the
    isoFLOP profiles, loss vs ``N`` at ``num_budgets`` budgets spanning the data, with
    the runs whose compute is near each budget.

    Parameters
    ----------
    fit : ScalingFit
    level : band level.
    num_sizes, num_budgets : curves drawn in each panel.
    max_draws : draws used for the bands (a random subset, seeded).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import LogNorm

    runs = fit.runs
    p = _params_array(fit.params, max_draws)
    fig = _figure(12, 4.8)
    ax, ax2 = fig.subplots(1, 2)
    cmap = _cmap("viridis")
    norm = LogNorm(vmin=float(runs.N.min()), vmax=float(runs.N.max()))
    C_lo, C_hi = float(runs.C.min()), float(runs.C.max())

    sizes = np.geomspace(float(runs.N.min()), float(runs.N.max()), num_sizes)
    for N in sizes:
        # from 1 token per parameter (well left of any run) to the data's top compute
        C = np.geomspace(max(6.0 * N * N * 1.0, C_lo / 3), C_hi * 3, 120)
        _draw_band(ax, C, _loss(p, np.full_like(C, N), C / (6 * N)), level,
                   color=cmap(norm(N)), lw=1.0, alpha=0.2)
    C = np.geomspace(C_lo / 3, C_hi * 3, 150)
    _draw_band(ax, C, _opt_loss(p, C), level, color="black", ls="--",
               label="compute-optimal $L_{opt}(C)$", alpha=0.15)
    sc = ax.scatter(runs.C, runs.loss, c=runs.N, cmap=cmap, norm=norm, s=14,
                    edgecolors="k", linewidths=0.3, zorder=3, label="runs")
    ax.set(xscale="log", yscale="log", xlabel="training compute C = 6ND (FLOPs)",
           ylabel="final loss (nats/token)",
           title=f"Runs and fitted loss curves ({_fmt_level(level)} bands)")
    _set_loss_ylim(ax, runs.loss)
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=ax, label="model size N (parameters)")

    budgets = np.geomspace(C_lo * 1.2, C_hi / 1.2, num_budgets)
    bcmap = _cmap("plasma")
    near = np.abs(np.log10(runs.C[None, :] / budgets[:, None]))
    for k, Cb in enumerate(budgets):
        color = bcmap(0.1 + 0.75 * k / max(num_budgets - 1, 1))
        mask = near[k] <= 0.15
        N_lo = float(runs.N[mask].min()) / 2 if mask.any() else float(runs.N.min())
        N_hi = float(runs.N[mask].max()) * 2 if mask.any() else float(runs.N.max())
        N = np.geomspace(N_lo, N_hi, 100)
        _draw_band(ax2, N, _loss(p, N, Cb / (6 * N)), level, color=color, lw=1.2,
                   label=f"C = {Cb:.1e}")
        if mask.any():
            ax2.scatter(runs.N[mask], runs.loss[mask], color=color, s=14, edgecolors="k",
                        linewidths=0.3, zorder=3)
    ax2.set(xscale="log", yscale="log", xlabel="model size N (parameters)",
            ylabel="final loss (nats/token)",
            title="isoFLOP profiles (runs within 0.15 decades of C)")
    _set_loss_ylim(ax2, runs.loss)
    ax2.legend(fontsize=8)
    return fig


def _opt_loss(p: np.ndarray, C: np.ndarray) -> np.ndarray:
    E, A, B, alpha, beta = (p[:, i:i + 1] for i in range(5))
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C[None, :] / 6) ** (beta / (alpha + beta))
    D = C[None, :] / (6 * N)
    return E + A * N ** -alpha + B * D ** -beta


def _set_loss_ylim(ax, loss):
    lo, hi = float(np.min(loss)), float(np.max(loss))
    ax.set_ylim(lo / 1.08, hi * 1.08)


def _cmap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


# ---------------------------------------------------------------------------
# 2-3. Frontier
# ---------------------------------------------------------------------------

def _reference_allocations(C: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, params in REFERENCE_FITS.items():
        E, A, B, alpha, beta = (float(v) for v in params)
        G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
        N = G * (C / 6) ** (beta / (alpha + beta))
        out[name] = (N, C / (6 * N))
    return out


def _shade_data(ax, data_C_range):
    if data_C_range is not None:
        ax.axvspan(float(data_C_range[0]), float(data_C_range[1]), color="0.85", alpha=0.6,
                   lw=0, label="compute range of the runs")


def plot_frontier(frontier, *, data_C_range: Sequence[float] | None = None,
                  others: Mapping[str, Any] | None = None, label: str = "Bayes posterior",
                  level: float = 0.9, references: bool = True):
    """The compute-optimal frontier ``N_opt(C)`` and ``D_opt(C)`` on log-log axes.

    Parameters
    ----------
    frontier : Frontier
        The main frontier (e.g. of the posterior); median line and ``level`` band.
    data_C_range : (C_min, C_max) of the runs, shaded.
    others : more frontiers by label (e.g. ``{"bootstrap": ...}``), drawn as bands.
    label : legend label of ``frontier``.
    references : draw Hoffmann et al.'s published (rounded and unrounded) and
        Besiroglu et al.'s refit allocations.

    Returns
    -------
    matplotlib.figure.Figure
    """
    C = np.asarray(frontier.budgets, dtype=float)
    fig = _figure(12, 4.8)
    axes = fig.subplots(1, 2)
    refs = _reference_allocations(C) if references else {}
    for j, (ax, key, name) in enumerate(zip(axes, ("N_opt", "D_opt"),
                                            ("optimal model size N_opt (parameters)",
                                             "optimal training tokens D_opt"))):
        _shade_data(ax, data_C_range)
        _draw_band(ax, C, np.asarray(getattr(frontier, key)), level, color="tab:blue",
                   label=f"{label} ({_fmt_level(level)})")
        for k, (olabel, other) in enumerate((others or {}).items()):
            color = METHOD_COLORS.get(olabel, f"C{k + 1}")
            _draw_band(ax, np.asarray(other.budgets), np.asarray(getattr(other, key)), level,
                       color=color, label=olabel, alpha=0.15, lw=1.0)
        for rname, (N, D) in refs.items():
            ax.plot(C, N if j == 0 else D, lw=1.2, label=rname, **_REFERENCE_STYLES[rname])
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=name)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title("Compute-optimal model size")
    axes[1].set_title("Compute-optimal training tokens")
    axes[0].legend(fontsize=8, loc="upper left")
    return fig


def plot_tokens_per_param(frontier, *, data_C_range: Sequence[float] | None = None,
                          others: Mapping[str, Any] | None = None,
                          label: str = "Bayes posterior", level: float = 0.9,
                          references: bool = True):
    """Tokens per parameter ``D_opt / N_opt`` vs ``C`` with its band and the 20 line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    C = np.asarray(frontier.budgets, dtype=float)
    fig = _figure(8, 4.8)
    ax = fig.subplots()
    _shade_data(ax, data_C_range)
    _draw_band(ax, C, np.asarray(frontier.tokens_per_param), level, color="tab:blue",
               label=f"{label} ({_fmt_level(level)})")
    for k, (olabel, other) in enumerate((others or {}).items()):
        color = METHOD_COLORS.get(olabel, f"C{k + 1}")
        _draw_band(ax, np.asarray(other.budgets), np.asarray(other.tokens_per_param), level,
                   color=color, label=olabel, alpha=0.15, lw=1.0)
    if references:
        for rname, (N, D) in _reference_allocations(C).items():
            ax.plot(C, D / N, lw=1.2, label=rname, **_REFERENCE_STYLES[rname])
    ax.axhline(20.0, color="k", lw=1.0, label="20 tokens per parameter")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="tokens per parameter D_opt / N_opt",
           title="Compute-optimal tokens per parameter")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------
# 4. Pair plot
# ---------------------------------------------------------------------------

def plot_pair(fit, *, huber=None, bootstrap=None, max_points: int = 1500, level: float = 0.9):
    """Pair plot of ``E, A, B, alpha, beta`` over draws, others overlaid.

    Lower triangle: posterior draws (blue), bootstrap resamples (orange), the Huber
    estimate (red star). Diagonal: histograms. ``A`` and ``B`` on log axes.

    Parameters
    ----------
    fit : ScalingFit with draws (the Bayesian fit).
    huber : ScalingFit point estimate, optional.
    bootstrap : ScalingFit bootstrap, optional.
    max_points : draws per cloud (a seeded random subset).

    Returns
    -------
    matplotlib.figure.Figure
    """
    main = _params_array(fit.params, max_points, seed=1)
    boot = _params_array(bootstrap.params, max_points, seed=2) if bootstrap is not None else None
    hub = _params_array(huber.params)[0] if huber is not None else None
    clouds = [(main, METHOD_COLORS["bayes"], f"{fit.method} draws")]
    if boot is not None:
        clouds.append((boot, METHOD_COLORS["bootstrap"], "bootstrap resamples"))
    n = len(_PARAMS)
    fig = _figure(10, 10)
    axes = fig.subplots(n, n, squeeze=False)
    limits = []
    for i, name in enumerate(_PARAMS):
        vals = np.concatenate([c[0][:, i] for c in clouds]
                              + ([np.array([hub[i]])] if hub is not None else []))
        lo, hi = np.quantile(vals, [0.002, 0.998])
        if name in _LOG_PARAMS:
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
            xlog = _PARAMS[j] in _LOG_PARAMS
            if i == j:
                lo, hi = limits[i]
                bins = np.geomspace(lo, hi, 40) if xlog else np.linspace(lo, hi, 40)
                for arr, color, _ in clouds:
                    ax.hist(np.clip(arr[:, i], lo, hi), bins=bins, color=color, alpha=0.5,
                            density=True)
                if hub is not None:
                    ax.axvline(hub[i], color=METHOD_COLORS["huber"], lw=1.5)
                ax.set_yticks([])
            else:
                for arr, color, _ in clouds:
                    ax.scatter(arr[:, j], arr[:, i], s=2, color=color, alpha=0.3,
                               rasterized=True)
                if hub is not None:
                    ax.scatter([hub[j]], [hub[i]], marker="*", s=90, color=METHOD_COLORS["huber"],
                               edgecolors="k", linewidths=0.5, zorder=3)
                if _PARAMS[i] in _LOG_PARAMS:
                    ax.set_yscale("log")
                ax.set_ylim(*limits[i])
            if xlog:
                ax.set_xscale("log")
            ax.set_xlim(*limits[j])
            _plain_log_ticks(ax)
            ax.tick_params(labelsize=7)
            if i == n - 1:
                ax.set_xlabel(_PARAMS[j])
            else:
                ax.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                ax.set_ylabel(_PARAMS[i])
            elif j > 0:
                ax.tick_params(labelleft=False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=c, label=lab) for _, c, lab in clouds]
    if hub is not None:
        handles.append(Line2D([], [], ls="", marker="*", markersize=10,
                              color=METHOD_COLORS["huber"], label="Huber estimate"))
    fig.legend(handles=handles, loc="upper right", fontsize=10)
    fig.suptitle("Joint distribution of the law's parameters")
    return fig


def _plain_log_ticks(ax) -> None:
    """On log axes of a small panel: major ticks only, labelled as plain numbers."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=4))
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------
# 5. Residuals
# ---------------------------------------------------------------------------

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
    """
    runs = fit.runs
    p = _params_array(fit.params, max_draws)
    mu = np.log(_loss(p, runs.N, runs.D))
    centre = np.median(mu, axis=0)
    resid = runs.log_loss - centre
    pp = _predictive_log_loss(fit)
    kind = "posterior-predictive"
    if pp is None:
        pp, kind = mu, "fitted-mean"
    _, lo, hi = _band(pp - centre[None, :], level)
    outside = (resid < lo) | (resid > hi)
    inside = 1.0 - float(outside.mean())
    fig = _figure(12, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, x, name in zip(axes, (runs.N, runs.D), ("model size N (parameters)",
                                                     "training tokens D")):
        ax.errorbar(x, np.zeros_like(x), yerr=np.stack([-lo, hi]), fmt="none",
                    ecolor="0.6", elinewidth=0.8, alpha=0.7,
                    label=f"{_fmt_level(level)} {kind} interval")
        ax.scatter(x[~outside], resid[~outside], s=12, color="tab:blue", zorder=3,
                   label="inside")
        ax.scatter(x[outside], resid[outside], s=16, color="tab:red", zorder=3,
                   label="outside")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=name)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("log loss residual (observed - fitted median)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Residuals: {100 * inside:.1f}% of runs inside their "
                 f"{_fmt_level(level)} {kind} interval")
    return fig


# ---------------------------------------------------------------------------
# 6. Method comparison
# ---------------------------------------------------------------------------

def plot_methods(fits: Mapping[str, Any], *, level: float = 0.9,
                 quantities: Sequence[str] = ("E", "A", "B", "alpha", "beta", "a_opt"),
                 references: bool = True):
    """Estimates and ``level`` intervals of each parameter and ``a_opt``, by method.

    Parameters
    ----------
    fits : fits by label, e.g. ``{"bayes": ..., "bootstrap": ..., "huber": ...}``; a
        point estimate draws a dot without an interval.
    references : mark Hoffmann et al.'s and Besiroglu et al.'s published values.

    Returns
    -------
    matplotlib.figure.Figure
    """
    ncols = 3
    nrows = math.ceil(len(quantities) / ncols)
    fig = _figure(12, 2.6 * nrows + 0.6)
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
                v = _quantity(rp, q)
                ax.axvline(v, color="0.4", ls=ls, lw=1,
                           label=rname if q == quantities[0] else None)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.invert_yaxis()
        lo_x, hi_x = ax.get_xlim()
        if q in _LOG_PARAMS and lo_x > 0 and hi_x / lo_x > 5:
            ax.set_xscale("log")
            _plain_log_ticks(ax)
        else:
            ax.locator_params(axis="x", nbins=4)  # small panels: labels must not collide
        ax.set_title(q)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes[len(quantities):]:
        ax.set_visible(False)
    if references:
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Estimates and {_fmt_level(level)} intervals by method "
                 "(Huber: point estimate)")
    return fig


def _quantity(params: LawParams, q: str) -> float:
    p = {k: float(v) for k, v in zip(_PARAMS, params)}
    if q == "a_opt":
        return p["beta"] / (p["alpha"] + p["beta"])
    if q == "b_opt":
        return p["alpha"] / (p["alpha"] + p["beta"])
    return p[q]
