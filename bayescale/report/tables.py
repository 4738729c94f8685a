"""The report's tables formatted for people: estimates with intervals, sizes with suffixes.

Numbers read as people write them (``71.3B [60.1B, 84.2B]``, ``1.33T``,
``19.4 [13.1, 27.2]``); a law's parameters keep four plain digits, whatever the law.
Re-exported by :mod:`bayescale.report.render`.
"""

from __future__ import annotations

import math

import pandas as pd

from bayescale.report._format import human, interval
from bayescale.report.compare import AT_BUDGET, PUBLISHED

__all__ = ["methods_display", "frontier_display", "decisions_display", "diagnostics_display"]


def _cell(quantity: str, median, lower=math.nan, upper=math.nan) -> str:
    # Parameters (any law's) keep 4 plain digits (A = 482.0, not 482); sizes get suffixes.
    if quantity not in AT_BUDGET:
        return interval(median, lower, upper, 4, si=False)
    return interval(median, lower, upper)


def methods_display(table: pd.DataFrame) -> pd.DataFrame:
    """Estimate [lower, upper] per method, published values as they are."""
    out = {}
    for col in table.columns:
        if col.endswith(("_lower", "_upper")):
            continue
        if col in PUBLISHED:
            out[col] = [_cell(q, v) for q, v in table[col].items()]
        else:
            out[col] = [_cell(q, m, lo, hi) for q, m, lo, hi in
                        zip(table.index, table[col], table[f"{col}_lower"],
                            table[f"{col}_upper"])]
    return pd.DataFrame(out, index=table.index)


def frontier_display(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per budget: N_opt, D_opt, L_opt and tokens per parameter with intervals."""
    def ci(r, q, digits=3):
        return interval(r[f"{q}_median"], r[f"{q}_lower"], r[f"{q}_upper"], digits)

    rows = {}
    for C, r in summary.iterrows():
        rows[human(C)] = {"N_opt": ci(r, "N_opt"), "D_opt": ci(r, "D_opt"),
                          "L_opt": ci(r, "L_opt", 4), "tokens/param": ci(r, "tokens_per_param"),
                          "extrapolation (decades)": human(r["extrapolation"], 2)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("C (FLOPs)")


def decisions_display(table: pd.DataFrame) -> pd.DataFrame:
    """The decision table per budget and plan, formatted."""
    t = table.reset_index()
    within = table.attrs.get("within", 0.01)
    return pd.DataFrame({
        "C (FLOPs)": [human(v) for v in t["C"]],
        "plan": t["plan"],
        "N": [human(v) for v in t["N"]],
        "D": [human(v) for v in t["D"]],
        "tokens/param": [human(v) for v in t["tokens_per_param"]],
        "expected loss": [f"{v:.5f}" for v in t["expected_loss"]],
        "regret": [human(v, 2) for v in t["regret"]],
        f"P(within {100 * within:g}% of optimal loss)": [f"{v:.2f}" for v in t["p_within_loss"]],
        "compute efficiency": [interval(m, lo, hi) for m, lo, hi in zip(
            t["compute_efficiency_median"], t["compute_efficiency_lower"],
            t["compute_efficiency_upper"])],
    })


def diagnostics_display(bayes) -> pd.DataFrame:
    per = getattr(bayes.diagnostics, "per_param", None)
    if per is None:
        return pd.DataFrame()
    return per.map(lambda v: human(v, 4, si=False) if isinstance(v, float) else v)
