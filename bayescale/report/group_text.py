"""Groups side by side for people: the table ``bayescale fit --group`` prints and the
grouped report shows, and (with ``--pool``) the lines on shrinkage, the population and LOO
of the hierarchical model."""

from __future__ import annotations

__all__ = ["human_table", "pooled_lines"]


def human_table(table):
    """The side-by-side table for people: ``0.342 [0.295, 0.406]``, ``8.77B [6.22B, 14.4B]``."""
    import pandas as pd

    from bayescale.report._format import human

    shown = {}
    for col in table.columns:
        if col.endswith(("_lower", "_upper")):
            continue
        values = table[col]
        if f"{col}_lower" in table.columns:
            values = [f"{human(v)} [{human(lo)}, {human(hi)}]" for v, lo, hi in
                      zip(table[col], table[f"{col}_lower"], table[f"{col}_upper"])]
        elif col != "n_runs":
            values = [human(v) for v in values]
        shown[col] = list(values)
    out = pd.DataFrame(shown, index=table.index)
    out.attrs["intervals"] = any(c.endswith("_lower") for c in table.columns)
    return out


def pooled_lines(pooled: dict, level: float) -> list[str]:
    """Shrinkage, the population and LOO of a pooled fit, for people."""
    from bayescale.report._format import human

    pct = f"{100 * level:g}%"
    lines = ["", f"with and without pooling (median [{pct}]); width ratio < 1: pooling "
                 "narrowed the interval"]
    for row in pooled["shrinkage"]:
        lines.append(f"  {row['group']:>12} {row['parameter']:<8} separate "
                     f"{human(row['separate'])} [{human(row['separate_lower'])}, "
                     f"{human(row['separate_upper'])}]  pooled {human(row['pooled'])} "
                     f"[{human(row['pooled_lower'])}, {human(row['pooled_upper'])}]  "
                     f"width ratio {row['width_ratio']:.2f}")
    lines.append("population (mean mu and spread tau across groups): " + ", ".join(
        f"{k} {human(v['median'])} [{human(v['lower'])}, {human(v['upper'])}]"
        for k, v in pooled["population"].items()))
    loo = pooled["loo"]
    better = "pooled" if loo["difference"] > 0 else "separate"
    lines.append(f"PSIS-LOO: elpd pooled {loo['elpd_pooled']:.1f}, separate "
                 f"{loo['elpd_separate']:.1f}; difference {loo['difference']:+.1f} "
                 f"(se {loo['difference_se']:.1f}), favouring {better}"
                 + ("" if max(loo["pareto_k_max_pooled"], loo["pareto_k_max_separate"]) <= 0.7
                    else "; some Pareto k > 0.7: the estimate is rough"))
    retry = pooled["settings"].get("retry")
    lines.append(f"sampler: {pooled['settings']['parameterisation']} parameterisation"
                 + (" (after the centred one failed the diagnostics)" if retry else "")
                 + f"; diagnostics {'pass' if pooled['diagnostics']['ok'] else 'FAIL'}")
    return lines
