"""The report of groups fitted side by side: ``bayescale report DATA --group ...``.

:func:`build_group_report` fits the law to each group of the runs
(:func:`bayescale.estimators.groups.fit_groups`: each group on its own, or with
``pool=True`` one hierarchical model with the exponents partially pooled) and writes one
report folder whose page starts with the answer: the groups side by side (exponents,
``N_opt``, ``D_opt`` at one budget) and :func:`bayescale.report.groups.plot_groups`; with
pooling, :meth:`GroupFits.shrinkage` and :meth:`GroupFits.loo_comparison` with a sentence
saying which model is preferred and how strongly; then the diagnostics of every model.

``report.html`` (self-contained), ``report.md``, ``figures/groups.png``
    The page (rendered by :mod:`.render`, as the single-fit report's).
``groups.csv``
    :meth:`GroupFits.table` with ``D_opt`` beside ``N_opt`` (:func:`groups_table`).
``groups.json``
    :meth:`GroupFits.to_dict`: every group's fit as ``bayescale fit --json`` gives it.
``shrinkage.csv``, ``loo.csv``
    With pooling only.
``manifest.json``
    Written last (:func:`bayescale.report.folder.write_manifest`).

The folder is written as the single-fit report is (:func:`bayescale.io.atomic_folder`:
built aside, swapped into place, the user's files kept). A group's full report (frontier,
decision table, three methods) is ``bayescale report DATA --select group=VALUE``; it is
not built here, which would fit every group three times more.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale._atomic import InterruptGuard, check_destination, dumps_json
from bayescale._util import check_level
from bayescale.data.registry import DATASETS
from bayescale.data.runs import Runs, load_runs
from bayescale.errors import BayescaleError
from bayescale.report._format import human, interval
from bayescale.report.compare import Steps, show_progress
from bayescale.report.folder import MARKER, commit_report, png_bytes, tell_written, write_manifest
from bayescale.report.render import law_line, n_convention_line, page_html, page_markdown

__all__ = ["build_group_report", "groups_table", "loo_sentence", "CAPTIONS"]

CAPTIONS = {"groups": "Allocation exponents (left) and the compute-optimal model size N_opt at "
                      "the reference budget (right), one row per group: medians and central "
                      "intervals."}


def groups_table(result, level: float | None = None) -> pd.DataFrame:
    """:meth:`GroupFits.table` with ``D_opt`` (and its bounds) after ``N_opt``: the tokens of
    each draw's compute-optimal plan at the reference budget, from the fit's frontier."""
    table = result.table(level)
    level, C = table.attrs["level"], table.attrs["reference_budget"]
    if "N_opt" not in table.columns:
        return table
    cols = {"D_opt": [], "D_opt_lower": [], "D_opt_upper": []}
    for g in table.index:
        try:
            D = np.asarray(result.fits[g].frontier([C]).D_opt, dtype=float).reshape(-1)
        except BayescaleError:  # no frontier without more inputs (as GroupFits.table)
            return table
        D = D[np.isfinite(D)]
        q = (1 - level) / 2
        lo, hi = np.quantile(D, [q, 1 - q]) if D.size > 1 else (math.nan, math.nan)
        for k, v in zip(cols, (np.median(D) if D.size else math.nan, lo, hi)):
            cols[k].append(float(v))
    if "N_opt_lower" not in table.columns:
        del cols["D_opt_lower"], cols["D_opt_upper"]
    after = list(table.columns).index("N_opt_upper" if "N_opt_upper" in table else "N_opt")
    out = pd.concat([table.iloc[:, :after + 1], pd.DataFrame(cols, index=table.index),
                     table.iloc[:, after + 1:]], axis=1)
    out.attrs.update(table.attrs)
    return out


def loo_sentence(loo: Mapping[str, float]) -> str:
    """Which model PSIS-LOO prefers, pooled or separate, and how strongly.

    A difference in elpd below 4 nats, or within one standard error of the difference, is
    small (Sivula et al., arXiv:2008.10296): no clear preference. Beyond it, the preference
    is weak below 2 standard errors, clear below 5 and strong from 5."""
    d, se = loo["difference"], loo["difference_se"]
    z = abs(d) / se if se > 0 else math.inf
    better = "the pooled model" if d > 0 else "the groups fitted on their own"
    head = f"elpd difference (pooled - separate) {d:+.1f}, se {se:.1f}"
    if abs(d) < 4 or z < 1:
        text = (f"PSIS-LOO cannot tell the two apart: {head}; a difference below 4 nats or "
                f"within one standard error is small (Sivula et al., arXiv:2008.10296), so "
                f"{better} is at most slightly better at predicting held-out runs.")
    else:
        strength = "weakly" if z < 2 else "clearly" if z < 5 else "strongly"
        text = f"PSIS-LOO {strength} prefers {better}: {head} ({z:.1f} standard errors)."
    if max(loo["pareto_k_max_pooled"], loo["pareto_k_max_separate"]) > 0.7:
        text += (" Some Pareto k exceed 0.7, so the estimate is rough (Vehtari et al. 2017): "
                 "runs with high k are influential.")
    return text


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """``estimate [lower, upper]`` cells, numbers as people write them."""
    from bayescale.report.group_text import human_table

    return human_table(table)


def _diagnostics(result) -> tuple[pd.DataFrame, list[str]]:
    """One row per sampled model (each group; the pooled model), and what failed."""
    rows, problems = {}, []
    fits = dict(result.separate or result.fits)
    named = {f"{g} (on its own)" if result.pooled else g: f for g, f in fits.items()}
    if result.pooled:
        named = {"pooled model": result.fits[next(iter(result.fits))], **named}
    for name, f in named.items():
        diag = getattr(f, "diagnostics", None)
        if diag is None or not hasattr(diag, "to_dict"):
            continue
        d = diag.to_dict()
        rows[name] = {"R-hat max": human(d["rhat_max"], 4, si=False),
                      "bulk ESS min": human(d["ess_bulk_min"], 4, si=False),
                      "tail ESS min": human(d["ess_tail_min"], 4, si=False),
                      "divergences": str(d["divergences"]),
                      "E-BFMI min": human(d["ebfmi_min"], 3, si=False),
                      "passed": "yes" if d["ok"] else "NO"}
        problems += [f"{name}: {p}" for p in diag.problems()]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model"), problems


def _answer(result, table, runs: Runs, level: float) -> list[str]:
    C, pct = result.reference_budget, f"{100 * level:g}%"
    paras = [f"Per group: the compute-optimal model size N_opt and tokens D_opt at C = "
             f"{human(C)} FLOPs, the allocation exponents (N_opt ~ C^a_opt, D_opt ~ C^b_opt) "
             f"and the law's exponents, median [central {pct} interval]; n_runs: the group's "
             f"runs."]
    if result.pooled:
        paras.append("One hierarchical model: the law's exponents partially pooled across the "
                     "groups (each group keeps its own E and coefficients); the section on "
                     "pooling below compares every group with its fit on its own runs.")
    else:
        paras.append("Each group is fitted on its own runs only: the groups are not pooled.")
    if "N_opt" in table.columns and len(table) > 1:
        lo, hi = table["N_opt"].idxmin(), table["N_opt"].idxmax()
        paras.append(f"N_opt at this budget ranges from {human(table.at[lo, 'N_opt'])} "
                     f"parameters ({lo}) to {human(table.at[hi, 'N_opt'])} ({hi}), a factor "
                     f"of {human(table.at[hi, 'N_opt'] / table.at[lo, 'N_opt'])}.")
    how = (f"bayescale report {runs.source} --select group=VALUE" if runs.source in
           DATASETS else "the single-fit report of that group's rows")
    paras.append(f"A group's full report (frontier, decision table, the three methods): {how}.")
    return paras


def _pooling(result, level: float) -> tuple[list[str], list]:
    shrink, loo = result.shrinkage(level), result.loo_comparison()
    pooled = result.info["pooled"]
    shown = pd.DataFrame({
        "separate": [interval(r.separate, r.separate_lower, r.separate_upper)
                     for r in shrink.itertuples()],
        "pooled": [interval(r.pooled, r.pooled_lower, r.pooled_upper)
                   for r in shrink.itertuples()],
        "width ratio": [f"{v:.2f}" for v in shrink["width_ratio"]]}, index=shrink.index)
    loo_table = pd.DataFrame({"elpd_loo": [loo["elpd_pooled"], loo["elpd_separate"],
                                           loo["difference"]],
                              "se": [math.nan, math.nan, loo["difference_se"]],
                              "Pareto k max": [loo["pareto_k_max_pooled"],
                                               loo["pareto_k_max_separate"], math.nan]},
                             index=pd.Index(["pooled", "separate", "pooled - separate"],
                                            name="model"))
    population = ", ".join(f"{k} {interval(v['median'], v['lower'], v['upper'])}"
                           for k, v in pooled["population"].items())
    paras = [f"Each group's pooled exponents beside its fit on its own runs (median [central "
             f"{100 * level:g}% interval]); width ratio: pooled interval width over separate, "
             f"below 1 where pooling narrowed it.",
             f"Population (mean mu and spread tau across the groups): {population}.",
             loo_sentence(loo),
             "PSIS-LOO (Vehtari et al. 2017) scores each model by the predicted log density of "
             "every run left out in turn (elpd, higher is better), summed over the runs."]
    retry = pooled["settings"].get("retry")
    paras.append(f"Sampler: {pooled['settings'].get('parameterisation', '?')} "
                 f"parameterisation" + (" (after the centred one failed the diagnostics)."
                                        if retry else "."))
    return paras, [("shrinkage", shown), ("loo", loo_table)], (shrink, loo_table)


def _data(result, runs: Runs) -> tuple[list[str], pd.DataFrame]:
    rows = {}
    for g, f in (result.separate or result.fits).items():
        d = f.runs.describe()
        rows[g] = {"runs": str(d["n_runs"]),
                   "N": f"{human(d['N_range'][0])} to {human(d['N_range'][1])}",
                   "D": f"{human(d['D_range'][0])} to {human(d['D_range'][1])}",
                   "C (FLOPs)": f"{human(d['C_range'][0])} to {human(d['C_range'][1])}",
                   "loss": f"{human(d['loss_range'][0], 4)} to {human(d['loss_range'][1], 4)}"}
    prov = runs.describe()
    paras = [f"Source: {prov['source']}; {prov['n_runs']} runs in {len(rows)} groups."]
    if prov["dropped_rows"]:
        paras.append(f"Filters: {len(prov['dropped_rows'])} rows dropped "
                     f"({', '.join(prov['dropped_by'])}): rows {prov['dropped_rows']}.")
    paras += [f"Note: {note}." for note in prov["notes"]]
    ds = DATASETS.get(str(runs.source))
    if ds is not None:
        paras += [ds.description, f"Citation: {ds.citation}", f"Provenance: {ds.provenance}"]
    return paras, pd.DataFrame.from_dict(rows, orient="index").rename_axis("group")


def _model(result) -> list[str]:
    own = next(iter((result.separate or result.fits).values()))
    if result.method != "bayes":
        return [f"Method {result.method} for every group ({own.law.name} law)."]

    def nuts(info):
        return (f"{info.get('chains')} chains x {info.get('warmup')} warmup x "
                f"{info.get('draws')} draws")

    info = own.info
    paras = [f"Likelihood of log loss: {info.get('likelihood', '?')}. Each group fitted on its "
             f"own: NUTS with {nuts(info)} (seed {result.info.get('seed')})."]
    seconds = result.info.get("seconds") or {}
    if seconds:
        paras[0] += " Time per group (s): " + ", ".join(f"{g} {s:.1f}"
                                                        for g, s in seconds.items()) + "."
    if result.pooled:
        pooled = result.info["pooled"]["settings"]
        total = (pooled.get("timing") or {}).get("total")
        paras.append(f"The pooled model: NUTS with {nuts(pooled)}, "
                     f"{pooled.get('parameterisation', '?')} parameterisation"
                     + (f"; {total:.1f} s." if total is not None else "."))
    return paras


def build_group_report(runs: Runs | Any, *, out_dir, method: str = "bayes",
                       law: Any = "chinchilla", pool: bool = False,
                       pool_coefficients: bool = False,
                       bayes_options: Mapping[str, Any] | None = None, seed: int = 0,
                       level: float = 0.9, reference_budget: float | None = None,
                       quiet: bool = False, result=None) -> dict[str, Path]:
    """Fit each group and write the grouped report folder.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` with group labels (``load_runs(NAME,
        group="all")``, ``load_runs(csv, group="all", group_column="corpus")``), or a
        registered dataset's name (all its groups are loaded).
    out_dir : the report folder (what a previous report wrote there is replaced; other
        files are kept).
    method, law, pool, pool_coefficients, seed, level, reference_budget : as
        :func:`bayescale.estimators.groups.fit_groups` (``reference_budget`` default: 100
        times the largest run's compute).
    bayes_options : NUTS settings for ``method="bayes"`` (``chains``, ``warmup``,
        ``draws``, ``likelihood``, ``target_accept``, ``progress``).
    quiet : no progress bar or message.
    result : a :class:`GroupFits` to report instead of fitting.

    Returns
    -------
    dict
        Name -> path of every file written (``html``, ``markdown``, ``groups``,
        ``groups_json``, ``figure_groups``, ``manifest``; ``shrinkage`` and ``loo``
        when pooled).

    Raises
    ------
    BayescaleError
        Runs without group labels, a group with too few runs, bad options, or an
        ``out_dir`` that is not a report folder (checked before any fit).
    """
    from bayescale import __version__
    from bayescale.estimators.groups import fit_groups
    from bayescale.report.groups import plot_groups

    level = check_level(level)
    if not isinstance(runs, Runs):
        runs = load_runs(runs, group="all")
    if runs.group is None and result is None:
        raise BayescaleError(f"the runs from {runs.source} have no group labels: load them "
                             "with load_runs(..., group='all'[, group_column=COLUMN]).",
                             cli=f"the runs from {runs.source} have no group labels: --group "
                                 "COLUMN (a column of the file) or --group all.")
    out = check_destination(Path(out_dir).absolute(), marker=MARKER, what="report")
    t0 = time.perf_counter()
    with InterruptGuard() as guard:
        steps = Steps(["fits", "figures", "writing"], show_progress(quiet), check=guard.check)
        try:
            steps.start("fits")
            if result is None:
                options = dict(bayes_options or {}) if method == "bayes" else {}
                if quiet and method == "bayes":
                    options.setdefault("progress", False)
                result = fit_groups(runs, method=method, law=law, level=level, seed=seed,
                                    reference_budget=reference_budget, pool=pool,
                                    pool_coefficients=pool_coefficients, **options)
            steps.done()
            steps.start("figures")
            table = groups_table(result, level)
            fig = plot_groups(result, level=level)
            if result.pooled:  # its title says "each group fitted on its own"
                fig.suptitle(f"one hierarchical model, exponents partially pooled; bars: "
                             f"{100 * level:g}% intervals", fontsize=9)
            steps.done()
            steps.start("writing")
            created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            diag_table, problems = _diagnostics(result)
            page, extra = _page(result, table, runs, level, created, __version__,
                                diag_table, problems)
            settings = {"version": __version__, "level": level, "seed": int(seed),
                        "method": result.method, "law": _law_name(result),
                        "pool": result.pooled,
                        "pool_coefficients": bool(pool_coefficients),
                        "reference_budget": float(result.reference_budget),
                        "groups": [str(g) for g in result.fits]}
            def write(tmp):
                written = _write(tmp, result, table, extra, page, png_bytes(fig), level)
                write_manifest(tmp, written, {
                    "bayescale_report": 1, "kind": "groups", "version": __version__,
                    "created": created, "diagnostics_ok": not problems,
                    "settings": settings})
                return written

            paths = commit_report(out, write, guard=guard, steps=steps)
        finally:
            steps.close()
    tell_written(out, paths, t0, quiet)
    return paths


def _law_name(result) -> str:
    """The name of the law the groups were fitted with."""
    first = next(iter(result.fits.values()))
    return getattr(getattr(first, "law", None), "name", str(result.method))


def _page(result, table, runs, level, created, version, diag_table, problems):
    pct = f"{100 * level:g}%"
    parts = [("answer", "Answer: the groups side by side", _answer(result, table, runs, level),
              [("groups", _display(table))], ("groups",))]
    extra = None
    if result.pooled:
        paras, tables, extra = _pooling(result, level)
        parts.append(("pooling", "Pooling: each group with and without it", paras, tables, ()))
    if len(diag_table):
        paras = [f"Per model: R-hat max (threshold 1.01), bulk ESS min (400), tail ESS min, "
                 f"divergences (0) and E-BFMI min (0.3). Intervals above are central {pct} "
                 "intervals of the posterior draws."]
    else:
        paras = [f"No sampler diagnostics: method {result.method} is not sampled by NUTS."]
    parts.append(("diagnostics", "Diagnostics", paras, [("diagnostics", diag_table)], ()))
    data_paras, data_table = _data(result, runs)
    parts.append(("data", "Data", data_paras, [("runs", data_table)], ()))
    parts.append(("model", "Model and settings", _model(result), [], ()))
    if problems:
        banner = ("warning", "WARNING: the NUTS diagnostics failed (" + "; ".join(problems)
                  + "). The summaries below may be unreliable: re-run with more warmup and "
                    "draws (e.g. --warmup 1000 --draws 1000 --chains 4).")
    elif len(diag_table):
        banner = ("ok", "Diagnostics passed for every model: R-hat <= 1.01, bulk ESS >= 400, "
                        "no divergences.")
    else:
        banner = ("ok", f"Method {result.method}: no sampler diagnostics to check.")
    page = {"title": f"bayescale report: {runs.source}, {len(result.fits)} groups side by side",
            "created": created, "version": version,
            "header": [("law", law_line({"law": _law_name(result)})),
                       ("n-convention", n_convention_line(runs))],
            "banner": banner, "sections": parts}
    return page, extra


def _write(folder: Path, result, table, extra, page, png: bytes, level) -> dict[str, Path]:
    """Every file but the manifest, into ``folder`` (a fresh temporary folder)."""
    written = {"groups": folder / "groups.csv", "groups_json": folder / "groups.json"}
    table.to_csv(written["groups"])
    written["groups_json"].write_text(dumps_json(result.to_dict(level), indent=2) + "\n",
                                      encoding="utf-8")
    if extra is not None:
        written["shrinkage"], written["loo"] = folder / "shrinkage.csv", folder / "loo.csv"
        extra[0].to_csv(written["shrinkage"])
        extra[1].to_csv(written["loo"])
    (folder / "figures").mkdir()
    written["figure_groups"] = folder / "figures" / "groups.png"
    written["figure_groups"].write_bytes(png)
    written["markdown"] = folder / "report.md"
    written["markdown"].write_text(page_markdown(page, {"groups": "figures/groups.png"},
                                                 CAPTIONS), encoding="utf-8")
    written["html"] = folder / "report.html"
    written["html"].write_text(page_html(page, {"groups": png}, CAPTIONS), encoding="utf-8")
    return written
