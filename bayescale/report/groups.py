"""The figure of groups fitted side by side: exponents and ``N_opt`` per group.

Drawn from :meth:`bayescale.estimators.groups.GroupFits.table`, so the figure shows the
numbers the table and ``--json`` give.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_groups"]


def plot_groups(result, *, level: float | None = None):
    """Exponents (left) and ``N_opt`` at the reference budget (right), one row per group,
    with intervals where the fits have draws.

    Parameters
    ----------
    result : :class:`~bayescale.estimators.groups.GroupFits`.
    level : interval level (default the fits' level).

    Returns
    -------
    matplotlib Figure whose ``drawn`` maps ``"exponents"`` to ``{group: {name: (estimate,
    lower, upper)}}`` and ``"N_opt"`` to ``{group: (estimate, lower, upper)}`` (lower and
    upper equal the estimate for a point fit, where nothing but the point is drawn).
    """
    from bayescale.report._format import human
    from bayescale.report._plotting import figure, human_ticks

    table = result.table(level)
    level = table.attrs["level"]
    names = [k for k in ("a_opt", "b_opt", "a", "b", "alpha", "beta") if k in table.columns]
    names = [k for k in names if k in ("a_opt", "b_opt", "a", "b")] or names
    groups = list(table.index)
    y = np.arange(len(groups))[::-1]
    fig = figure(9, 1.2 + 0.45 * len(groups))
    ax_e, ax_n = fig.subplots(1, 2, sharey=True)
    fig.drawn["exponents"] = {g: {} for g in groups}
    for j, name in enumerate(names):
        offset = (j - (len(names) - 1) / 2) * 0.18
        est, lo, hi = _bounds(table, name)
        _draw(ax_e, est, lo, hi, y + offset, f"C{j}", name)
        for g, e, l, h in zip(groups, est, lo, hi):
            fig.drawn["exponents"][g][name] = (e, l, h)
    if "N_opt" in table.columns:
        est, lo, hi = _bounds(table, "N_opt")
        _draw(ax_n, est, lo, hi, y, "C3", None)
        fig.drawn["N_opt"] = {g: (e, l, h) for g, e, l, h in zip(groups, est, lo, hi)}
        ax_n.set_xscale("log")
        human_ticks(ax_n)
    ax_e.set_yticks(y, [str(g) for g in groups])
    what = ("a_opt, b_opt: N_opt ~ C^a_opt, D_opt ~ C^b_opt" if "a_opt" in names else
            "a, b: N_opt ~ C^a, D_opt ~ C^b" if "a" in names else "exponents")
    ax_e.set(xlabel=what, title=f"exponents by group ({result.method})")
    ax_e.legend(fontsize=8, loc="best")
    ax_n.set(xlabel=f"N_opt at C = {human(result.reference_budget)} FLOPs",
             title="compute-optimal parameters by group")
    has_draws = any(c.endswith("_lower") for c in table.columns)
    if has_draws:
        fig.suptitle(f"each group fitted on its own; bars: {100 * level:g}% intervals",
                     fontsize=9)
    for ax in (ax_e, ax_n):
        ax.grid(True, axis="x", alpha=0.3)
    return fig


def _bounds(table, name):
    est = table[name].to_numpy(dtype=float)
    lo = table[f"{name}_lower"].to_numpy(dtype=float) if f"{name}_lower" in table else est
    hi = table[f"{name}_upper"].to_numpy(dtype=float) if f"{name}_upper" in table else est
    return est, np.where(np.isfinite(lo), lo, est), np.where(np.isfinite(hi), hi, est)


def _draw(ax, est, lo, hi, y, color, label):
    ax.errorbar(est, y, xerr=np.vstack([est - lo, hi - est]), fmt="o", color=color,
                capsize=3, ms=5, lw=1.2, label=label)
