"""Hoffmann et al.'s three approaches side by side, with intervals.

Hoffmann et al. (2022) estimated the compute-optimal allocation three ways and leaned on
their agreement (their Table 2 and Figure 1):

* Approach 1, the lower envelope of training curves (``method="envelope"``,
  :mod:`bayescale.estimators.envelope`): a = 0.50 (0.488, 0.502), b = 0.50;
* Approach 2, parabolas through isoFLOP profiles (``method="isoflop"``,
  :mod:`bayescale.estimators.isoflop`): a = 0.49 (0.462, 0.534), b = 0.51;
* Approach 3, the parametric loss law (``method="bootstrap"`` by default here, or
  ``"bayes"``): a = 0.46 (0.454, 0.455), b = 0.54.

:func:`compare_approaches` fits each approach the data allow, and reports ``a``, ``b``
with intervals and ``N_opt``, ``D_opt`` at reference budgets; an approach the data do
not support is skipped with the reason. :func:`plot_approaches` draws ``N_opt(C)`` from
each with its band, as in Hoffmann et al.'s Figure 1, with Kaplan et al.'s (2020)
allocation for reference.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Section 3, Table 2, Figure 1.
J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale._util import as_budgets, check_level, median_interval, to_jsonable
from bayescale.data.runs import Runs, load_runs
from bayescale.errors import BayescaleError
from bayescale.estimators.fit import fit

__all__ = ["APPROACHES", "ApproachComparison", "compare_approaches", "plot_approaches"]

# approach -> (name, fit method)
APPROACHES = {1: ("envelope", "envelope"), 2: ("isoFLOP profiles", "isoflop"),
              3: ("parametric law", "bootstrap")}
DEFAULT_BUDGETS = (1e22, 1e24)
# Hoffmann et al. (2022), Table 2: a, (interval), b for each approach.
HOFFMANN_TABLE_2 = {1: (0.50, (0.488, 0.502), 0.50), 2: (0.49, (0.462, 0.534), 0.51),
                    3: (0.46, (0.454, 0.455), 0.54)}


def _exponents(result) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the allocation exponents ``a`` and ``b`` of any fit."""
    d = result.draws()
    if "a" in d.columns:
        return d["a"].to_numpy(float), d["b"].to_numpy(float)
    if "a_opt" not in d.columns:
        raise BayescaleError(f"the {result.law.name} law has no constant allocation exponents; "
                             "compare approaches with the Chinchilla law.")
    return d["a_opt"].to_numpy(float), d["b_opt"].to_numpy(float)


class ApproachComparison:
    """The result of :func:`compare_approaches`.

    Attributes
    ----------
    table : one row per approach fitted: ``a``, ``a_lower``, ``a_upper``, ``b`` (and
        bounds), ``N_opt@C``, ``D_opt@C`` medians and bounds for each budget.
    fits : the fit of each approach, by approach number.
    skipped : ``{approach: reason}`` for the approaches the data do not allow.
    budgets : the reference budgets; ``level`` the interval level.
    notes : messages worth showing beside the table (set by the report).
    """

    def __init__(self, table: pd.DataFrame, fits: dict[int, Any], skipped: dict[int, str],
                 budgets: np.ndarray, level: float, runs: Runs):
        self.table, self.fits, self.skipped = table, fits, skipped
        self.budgets, self.level, self.runs = budgets, level, runs
        self.notes: list[str] = []  # what the fits warned about, for a report

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"level", "budgets", "approaches": [{"approach", "name",
        "method", "a": {"median", "lower", "upper"}, "b": ..., "at_budgets": [{"C",
        "N_opt": {...}, "D_opt": {...}}]}], "skipped": {...}, "hoffmann_2022": ...}``."""
        rows = []
        for k, row in self.table.iterrows():
            at = [{"C": float(C), **{q: {s: row[f"{q}@{C:.3g}_{s}"] for s in
                                         ("median", "lower", "upper")}
                                     for q in ("N_opt", "D_opt")}} for C in self.budgets]
            rows.append({"approach": int(k), "name": row["name"], "method": row["method"],
                         "a": {"median": row["a"], "lower": row["a_lower"],
                               "upper": row["a_upper"]},
                         "b": {"median": row["b"], "lower": row["b_lower"],
                               "upper": row["b_upper"]},
                         "at_budgets": at})
        return to_jsonable({
            "level": self.level, "budgets": list(self.budgets), "n_runs": len(self.runs),
            "approaches": rows, "skipped": {str(k): v for k, v in self.skipped.items()},
            "hoffmann_2022_table_2": {str(k): {"a": a, "a_interval": list(ai), "b": b}
                                      for k, (a, ai, b) in HOFFMANN_TABLE_2.items()}})


def compare_approaches(runs: Runs | Any, approaches: Sequence[int] = (1, 2, 3), *,
                       budgets: Sequence[float] = DEFAULT_BUDGETS, level: float = 0.9,
                       seed: int = 0, options: dict[int, dict] | None = None,
                       fits: dict[int, Any] | None = None) -> ApproachComparison:
    """Fit Hoffmann et al.'s Approaches 1, 2 and 3 to ``runs`` and compare them.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` or anything :func:`~bayescale.load_runs` takes.
    approaches : which of 1 (envelope), 2 (isoFLOP) and 3 (parametric law) to fit.
    budgets : reference budgets (FLOPs) for ``N_opt`` and ``D_opt``.
    level : interval level.
    seed : seed of the bootstraps (and NUTS).
    options : per-approach options for :func:`bayescale.fit`, e.g.
        ``{3: {"method": "bayes", "chains": 4}, 2: {"resamples": 1000}}``.
    fits : fits already made, by approach (e.g. ``{3: bootstrap_fit}``), used as they are.

    Returns
    -------
    ApproachComparison
        Approaches the data do not allow (say, Approach 1 on runs with one length per
        model size, or Approach 2 with fewer than three usable budgets) are listed in
        ``skipped`` with the reason, not raised, unless none is left.
    """
    level = check_level(level)
    C = as_budgets(budgets)
    if not isinstance(runs, Runs):
        runs = load_runs(runs)
    bad = sorted(set(approaches) - set(APPROACHES))
    if bad or not approaches:
        raise BayescaleError(f"approaches are 1 (envelope), 2 (isoFLOP profiles) and 3 "
                             f"(parametric law); got {list(approaches)!r}.")
    options = dict(options or {})
    fitted, skipped, rows = {}, {}, {}
    for k in sorted(set(approaches)):
        name, method = APPROACHES[k]
        opts = dict(options.get(k, {}))
        method = opts.pop("method", method)
        if fits and k in fits:
            result = fits[k]
            method = result.method
        else:
            try:
                result = fit(runs, method=method, level=level, seed=seed, **opts)
            except BayescaleError as exc:
                skipped[k] = str(exc)
                continue
        a, b = _exponents(result)
        fr = result.frontier(C)
        row: dict[str, Any] = {"name": name, "method": method}
        for q, v in (("a", a), ("b", b)):
            med, lo, hi = median_interval(v, level)
            row.update({q: float(med), f"{q}_lower": float(lo), f"{q}_upper": float(hi)})
        for j, c in enumerate(C):
            for q in ("N_opt", "D_opt"):
                med, lo, hi = median_interval(np.asarray(getattr(fr, q))[:, j], level)
                row.update({f"{q}@{c:.3g}_median": float(med), f"{q}@{c:.3g}_lower": float(lo),
                            f"{q}@{c:.3g}_upper": float(hi)})
        fitted[k], rows[k] = result, row
    if not fitted:
        raise BayescaleError("none of the approaches could be fitted to these runs: "
                             + "; ".join(f"Approach {k}: {v}" for k, v in skipped.items()))
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("approach")
    return ApproachComparison(table, fitted, skipped, C, level, runs)


def plot_approaches(comparison: ApproachComparison, *, C_range: Sequence[float] | None = None,
                    kaplan: bool = True, num: int = 60):
    """``N_opt(C)`` from each approach with its band, as in Hoffmann et al.'s Figure 1.

    The compute axis spans the runs and the reference budgets (or ``C_range``); the
    runs' compute range is shaded. Kaplan et al.'s (2020) allocation is drawn for
    reference. Returns a matplotlib Figure whose ``drawn`` maps ``"Approach k"`` to
    ``(C, median, lower, upper)`` of what was drawn.
    """
    from bayescale.planning.rules import kaplan_2020
    from bayescale.report._plotting import DATA_SHADE, band_legend, draw_band, figure, \
        human_figure

    data = (float(comparison.runs.C.min()), float(comparison.runs.C.max()))
    lo, hi = C_range if C_range is not None else (
        min(data[0], float(comparison.budgets.min())), max(data[1], float(comparison.budgets.max())))
    C = np.geomspace(lo, hi, num)
    fig = figure(7.5, 5)
    ax = fig.subplots()
    ax.axvspan(*data, label="compute range of the runs", **DATA_SHADE)
    for k, result in comparison.fits.items():
        N = np.asarray(result.frontier(C).N_opt, dtype=float)
        med, l, h = draw_band(ax, C, N, comparison.level, color=f"C{k - 1}",
                              label=f"Approach {k}: {APPROACHES[k][0]} "
                                    f"({100 * comparison.level:g}%)",
                              gid=f"Approach {k}")
        fig.drawn[f"Approach {k}"] = (C, med, l, h)
    if kaplan:
        plan = kaplan_2020(C)
        ax.plot(C, plan.N, color="0.3", ls=":", lw=1.2, label="Kaplan et al. (2020)")
        fig.drawn["Kaplan et al. (2020)"] = (C, plan.N, plan.N, plan.N)
    for c in comparison.budgets:
        ax.axvline(float(c), color="0.6", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), xlabel="training compute C (FLOPs)",
           ylabel="compute-optimal parameters N_opt",
           title=f"N_opt(C) by approach ({comparison.runs.source})")
    ax.grid(True, which="major", alpha=0.3)
    band_legend(ax, fontsize=8, loc="upper left")
    human_figure(fig)
    return fig
