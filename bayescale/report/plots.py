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
Every curve comes from the law (:func:`bayescale.laws.chinchilla.loss`) and the
frontier solver (:func:`bayescale.planning.frontier.compute_optimal`); nothing here
writes the formula again. Each figure exposes what it draws as ``fig.drawn`` (a dict
of arrays) and tags its main lines with a ``gid``, so tests can check the pictures
against the law. Tick labels are plain numbers with k, M, B, T suffixes.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayescale.laws.chinchilla import (
    BESIROGLU_2024,
    HOFFMANN_2022,
    HOFFMANN_2022_UNROUNDED,
    LawParams,
)
from bayescale.planning.frontier import compute_optimal
from bayescale.report._fit_plots import plot_methods, plot_pair, plot_residuals
from bayescale.report._format import human
from bayescale.report._plotting import (
    DATA_SHADE,
    METHOD_COLORS,
    MAX_CURVE_DRAWS,
    band_legend,
    cmap,
    draw_band,
    draw_bounds,
    figure,
    fmt_level,
    human_figure,
    human_formatter,
    law_loss,
    optimal,
    set_loss_ylim,
    thin,
)

__all__ = [
    "plot_runs",
    "plot_frontier",
    "plot_tokens_per_param",
    "plot_pair",
    "plot_residuals",
    "plot_methods",
    "REFERENCE_FITS",
    "REFERENCE_POINTS",
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
#: Models actually trained, drawn as points: label -> (N, D) (Hoffmann et al. 2022, Table 3).
REFERENCE_POINTS: dict[str, tuple[float, float]] = {
    "Chinchilla (70B, 1.4T tokens)": (70e9, 1.4e12),
    "Gopher (280B, 300B tokens)": (280e9, 300e9),
}
# ---------------------------------------------------------------------------
# 1. Runs, fitted curves and isoFLOP profiles
# ---------------------------------------------------------------------------

def plot_runs(fit, *, level: float = 0.9, num_sizes: int = 6, num_budgets: int = 5,
              max_draws: int = MAX_CURVE_DRAWS):
    """The runs on loss vs compute, coloured by model size, with fitted curves.

    Left: each run at ``(C = 6 N D, loss)``, coloured by ``N``; for ``num_sizes``
    model sizes spanning the data, the fitted ``L(N, C / 6N)`` as ``C`` grows (median
    and band over draws), and the compute-optimal envelope ``L_opt(C)``. Right: the
    isoFLOP profiles, loss vs ``N`` at ``num_budgets`` budgets spanning the data, with
    the runs whose compute is near each budget and a marker at each profile's minimum
    (the median compute-optimal ``N_opt`` and the loss there).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.drawn`` holds ``sizes`` (N of each curve), ``size_curves`` (``(C,
        median loss)`` per size), ``optimal`` (``(C, median L_opt)``), ``isoflop``
        (``(C, N, median loss)`` per budget) and ``minima`` (``(C, N_opt, L)``).
    """
    from matplotlib.colors import LogNorm

    runs = fit.runs
    params = thin(fit.params, max_draws)
    fig = figure(12, 4.8)
    ax, ax2 = fig.subplots(1, 2)
    size_cmap = cmap("viridis")
    norm = LogNorm(vmin=float(runs.N.min()), vmax=float(runs.N.max()))
    C_lo, C_hi = float(runs.C.min()), float(runs.C.max())
    drawn = fig.drawn

    drawn["sizes"] = np.geomspace(float(runs.N.min()), float(runs.N.max()), num_sizes)
    drawn["size_curves"] = []
    for k, N in enumerate(drawn["sizes"]):
        # from 1 token per parameter (well left of any run) to the data's top compute
        C = np.geomspace(max(6.0 * N * N * 1.0, C_lo / 3), C_hi * 3, 120)
        med, _, _ = draw_band(ax, C, law_loss(params, np.full_like(C, N), C / (6 * N)), level,
                               color=size_cmap(norm(N)), lw=1.0, alpha=0.2, gid=f"size:{k}")
        drawn["size_curves"].append((C, med))
    C = np.geomspace(C_lo / 3, C_hi * 3, 150)
    med, _, _ = draw_band(ax, C, optimal(params, C)[2], level, color="black", ls="--",
                           label="compute-optimal $L_{opt}(C)$", alpha=0.15, gid="optimal")
    drawn["optimal"] = (C, med)
    sc = ax.scatter(runs.C, runs.loss, c=runs.N, cmap=size_cmap, norm=norm, s=14,
                    edgecolors="k", linewidths=0.3, zorder=4, label="runs")
    ax.set(xscale="log", yscale="log", xlabel="training compute C = 6ND (FLOPs)",
           ylabel="final loss (nats/token)",
           title=f"Runs and fitted loss curves ({fmt_level(level)} bands)")
    set_loss_ylim(ax, runs.loss)
    ax.legend(loc="upper right", fontsize=8)
    cb = fig.colorbar(sc, ax=ax, label="model size N (parameters)")
    cb.ax.yaxis.set_major_formatter(human_formatter())
    cb.ax.yaxis.set_minor_formatter(human_formatter(minor=True))

    budgets = np.geomspace(C_lo * 1.2, C_hi / 1.2, num_budgets)
    bcmap = cmap("plasma")
    near = np.abs(np.log10(runs.C[None, :] / budgets[:, None]))
    N_opt, _, L_opt = optimal(params, budgets)
    drawn["isoflop"], drawn["minima"] = [], []
    for k, Cb in enumerate(budgets):
        color = bcmap(0.1 + 0.75 * k / max(num_budgets - 1, 1))
        mask = near[k] <= 0.15
        N_lo = float(runs.N[mask].min()) / 2 if mask.any() else float(runs.N.min())
        N_hi = float(runs.N[mask].max()) * 2 if mask.any() else float(runs.N.max())
        N = np.geomspace(N_lo, N_hi, 100)
        med, _, _ = draw_band(ax2, N, law_loss(params, N, Cb / (6 * N)), level, color=color,
                               lw=1.2, label=f"C = {human(Cb)}", gid=f"isoflop:{k}")
        drawn["isoflop"].append((Cb, N, med))
        n_star = float(np.median(N_opt[:, k]))
        l_star = float(np.median(law_loss(params, [n_star], [Cb / (6 * n_star)])))
        ax2.plot([n_star], [l_star], marker="D", ms=7, color=color, mec="k", ls="",
                 zorder=5, gid=f"minimum:{k}")
        drawn["minima"].append((Cb, n_star, l_star))
        if mask.any():
            ax2.scatter(runs.N[mask], runs.loss[mask], color=color, s=14, edgecolors="k",
                        linewidths=0.3, zorder=4)
    ax2.plot([], [], marker="D", color="0.5", mec="k", ls="", label="minimum (median N_opt)")
    ax2.set(xscale="log", yscale="log", xlabel="model size N (parameters)",
            ylabel="final loss (nats/token)",
            title="isoFLOP profiles (runs within 0.15 decades of C)")
    set_loss_ylim(ax2, runs.loss)
    ax2.legend(fontsize=8)
    human_figure(fig, nbins=7)
    return fig


# ---------------------------------------------------------------------------
# 2-3. Frontier
# ---------------------------------------------------------------------------

def _reference_allocations(C: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name, params in REFERENCE_FITS.items():
        opt = compute_optimal(params, np.asarray(C, dtype=float))
        out[name] = (np.asarray(opt.N_opt, float), np.asarray(opt.D_opt, float))
    return out


def _shade_data(ax, data_C_range):
    if data_C_range is not None:
        ax.axvspan(float(data_C_range[0]), float(data_C_range[1]),
                   label="compute range of the runs", **DATA_SHADE)


def _span(ax, C, data_C_range) -> None:
    lo, hi = float(np.min(C)), float(np.max(C))
    if data_C_range is not None:
        lo, hi = min(lo, float(data_C_range[0])), max(hi, float(data_C_range[1]))
    ax.set_xlim(lo, hi)


def plot_frontier(frontier, *, data_C_range: Sequence[float] | None = None,
                  others: Mapping[str, Any] | None = None, label: str = "Bayes posterior",
                  level: float = 0.9, references: bool = True,
                  reference_points: bool | None = None):
    """The compute-optimal frontier ``N_opt(C)`` and ``D_opt(C)`` on log-log axes.

    Top row: median lines and ``level`` bands; bottom row: the width of each band as
    the ratio of its upper to its lower bound (a band a few per cent wide is invisible
    over seven decades, its ratio is not).

    Parameters
    ----------
    frontier : Frontier
        The main frontier (e.g. of the posterior); median line and ``level`` band.
    data_C_range : (C_min, C_max) of the runs, shaded; the axes span it and the budgets.
    others : more frontiers by label (e.g. ``{"bootstrap": ...}``), drawn as bands.
    label : legend label of ``frontier``.
    references : draw Hoffmann et al.'s published (rounded and unrounded) and
        Besiroglu et al.'s refit allocations (they are fits of the Chinchilla data).
    reference_points : mark the models trained at those budgets (Chinchilla, 70B on
        1.4T tokens; Gopher); default ``references``.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.drawn`` maps ``"<label>:<N_opt|D_opt>"`` to ``(C, median, lower, upper)``.
    """
    C = np.asarray(frontier.budgets, dtype=float)
    points = references if reference_points is None else reference_points
    fig = figure(12, 6.8)
    axes = fig.subplots(2, 2, sharex="col", height_ratios=[3, 1.3])
    refs = _reference_allocations(C) if references else {}
    series = [(label, frontier, "tab:blue", 0.3, 1.6)]
    series += [(olabel, other, METHOD_COLORS.get(olabel, f"C{k + 1}"), 0.2, 1.0)
               for k, (olabel, other) in enumerate((others or {}).items())]
    for j, (key, name) in enumerate((("N_opt", "optimal model size N_opt (parameters)"),
                                     ("D_opt", "optimal training tokens D_opt"))):
        ax, rax = axes[0, j], axes[1, j]
        _shade_data(ax, data_C_range)
        _shade_data(rax, data_C_range)
        for lab, fr, color, alpha, lw in series:
            x = np.asarray(fr.budgets, dtype=float)
            text = f"{lab} ({fmt_level(level)})" if fr is frontier else \
                f"{lab} (dashed: {fmt_level(level)})"
            draw = draw_band if fr is frontier else draw_bounds
            med, lo, hi = draw(ax, x, np.asarray(getattr(fr, key)), level, color=color,
                               label=text, lw=lw, gid=f"{lab}:{key}",
                               **({"alpha": alpha} if fr is frontier else {}))
            fig.drawn[f"{lab}:{key}"] = (x, med, lo, hi)
            if np.shape(getattr(fr, key))[0] > 1:
                rax.plot(x, hi / lo, color=color, lw=lw, gid=f"ratio:{lab}:{key}",
                         label=lab)
        for rname, (N, D) in refs.items():
            ax.plot(C, N if j == 0 else D, lw=1.2, label=rname, zorder=4,
                    **_REFERENCE_STYLES[rname])
        if points:
            for (pname, (N, D)), marker in zip(REFERENCE_POINTS.items(), ("*", "P")):
                ax.plot([6 * N * D], [N if j == 0 else D], marker=marker, ms=12, ls="",
                        color="k", mfc="gold", label=pname, zorder=6, gid=f"point:{pname}")
        ax.set(xscale="log", yscale="log", ylabel=name)
        ax.grid(True, which="major", alpha=0.3)
        rax.set(xscale="log", xlabel="training compute C (FLOPs)",
                ylabel=f"band width\n(upper / lower)")
        rax.axhline(1.0, color="0.5", lw=0.8)
        rax.grid(True, which="major", alpha=0.3)
        _span(ax, C, data_C_range)
    axes[0, 0].set_title("Compute-optimal model size")
    axes[0, 1].set_title("Compute-optimal training tokens")
    band_legend(axes[0, 0], fontsize=8, loc="upper left")
    if any((ln.get_gid() or "").startswith("ratio:") for ln in axes[1, 0].get_lines()):
        axes[1, 0].legend(fontsize=7, loc="upper left")
    human_figure(fig)
    return fig


def plot_tokens_per_param(frontier, *, data_C_range: Sequence[float] | None = None,
                          others: Mapping[str, Any] | None = None,
                          label: str = "Bayes posterior", level: float = 0.9,
                          references: bool = True):
    """Tokens per parameter ``D_opt / N_opt`` vs ``C`` with its band and the 20 line.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.drawn`` maps a label to ``(C, median, lower, upper)``.
    """
    C = np.asarray(frontier.budgets, dtype=float)
    fig = figure(8, 4.8)
    ax = fig.subplots()
    _shade_data(ax, data_C_range)
    series = [(label, frontier, "tab:blue", 0.3, 1.6)]
    series += [(olabel, other, METHOD_COLORS.get(olabel, f"C{k + 1}"), 0.2, 1.0)
               for k, (olabel, other) in enumerate((others or {}).items())]
    for lab, fr, color, alpha, lw in series:
        x = np.asarray(fr.budgets, dtype=float)
        text = f"{lab} ({fmt_level(level)})" if fr is frontier else \
                f"{lab} (dashed: {fmt_level(level)})"
        draw = draw_band if fr is frontier else draw_bounds
        fig.drawn[lab] = (x,) + draw(ax, x, np.asarray(fr.tokens_per_param), level,
                                     color=color, label=text, lw=lw,
                                     gid=f"{lab}:tokens_per_param",
                                     **({"alpha": alpha} if fr is frontier else {}))
    if references:
        for rname, (N, D) in _reference_allocations(C).items():
            ax.plot(C, D / N, lw=1.2, label=rname, **_REFERENCE_STYLES[rname])
    ax.axhline(20.0, color="k", lw=1.0, label="20 tokens per parameter")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="tokens per parameter D_opt / N_opt",
           title="Compute-optimal tokens per parameter")
    ax.grid(True, which="major", alpha=0.3)
    _span(ax, C, data_C_range)
    band_legend(ax, fontsize=8)
    human_figure(fig)
    return fig
