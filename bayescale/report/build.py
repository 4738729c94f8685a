"""From runs to a decision report: three fits side by side, the frontier, decisions.

:func:`build_report` fits the law three ways (the NUTS posterior, Besiroglu et al.'s
bootstrap, and the Huber grid fit of Hoffmann et al. that the bootstrap is centred
on), computes the compute-optimal frontier and the decision table at a set of
budgets, draws the six figures of :mod:`bayescale.report.plots`, and writes one folder:

``report.html``
    Self-contained (figures embedded as base64 PNG, inline CSS); opens from disk.
``report.md``
    The same text and tables, figures linked from ``figures/``.
``figures/*.png``
    The six figures.
``summary.csv``, ``draws.csv``, ``runs.csv``, ``fit.json``, ``posterior.nc``
    The Bayesian fit, as :func:`bayescale.io.save_fit` writes it: the report folder
    is also a fit folder (``bayescale frontier REPORT_DIR --budget C`` works).
``methods.csv``
    :func:`compare_methods`: estimates and intervals of the three methods.
``frontier.csv``, ``decisions.csv``
    The frontier summary per budget and the decision table per budget and plan.
``manifest.json``
    Written last: the list of files, the version, the settings.

The folder is built in a hidden temporary sibling (``.NAME.partial-*``) and swapped
into place with renames, so an interrupted run leaves either the previous report
or none, never a half-written one; a re-run replaces the whole folder. An existing
folder that is not a bayescale report (no ``manifest.json``) and is not empty is
never replaced.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102
(2024); J. Kaplan et al., arXiv:2001.08361 (2020); N. Sardana et al.,
arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data.runs import Runs, load_runs
from bayescale._util import as_budgets
from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.estimators.fit import PARAM_NAMES, ScalingFit, fit
from bayescale.io import dumps_json, replace_folder, save_fit, umask
from bayescale.laws.chinchilla import BESIROGLU_2024, HOFFMANN_2022, HOFFMANN_2022_UNROUNDED, LawParams

__all__ = [
    "GOPHER_BUDGET",
    "FIGURES",
    "default_budgets",
    "fit_methods",
    "compare_methods",
    "compare_methods_json",
    "build_report",
]

#: Gopher's training budget (Hoffmann et al. 2022, Table 3): the reference budget.
GOPHER_BUDGET = 5.76e23

#: Figure file stem -> caption.
FIGURES = {
    "runs": "Runs on loss vs compute, coloured by model size, with the fitted loss curves "
            "(bands: posterior interval) and the isoFLOP profiles.",
    "frontier": "Compute-optimal model size and tokens, with the posterior band, the "
                "bootstrap band, the compute range of the runs shaded, and the published "
                "Hoffmann et al. (2022) and Epoch (Besiroglu et al. 2024) fits.",
    "tokens_per_param": "Compute-optimal tokens per parameter, with the 20-tokens-per-"
                        "parameter rule of thumb.",
    "pair": "Posterior of (E, A, B, alpha, beta), with the bootstrap cloud and the Huber "
            "estimate overlaid.",
    "residuals": "Residuals of log loss vs model size and tokens, with posterior-predictive "
                 "intervals.",
    "methods": "Estimates and intervals for each parameter and a_opt from the Bayesian fit, "
               "the bootstrap and the Huber fit.",
}

_QUANTITIES = PARAM_NAMES + ("a_opt", "b_opt")
_AT_BUDGET = ("N_opt", "D_opt", "tokens_per_param")
_METHOD_ORDER = ("bayes", "bootstrap", "huber")
_PUBLISHED = {"hoffmann_2022": HOFFMANN_2022, "hoffmann_2022_unrounded": HOFFMANN_2022_UNROUNDED,
              "besiroglu_2024": BESIROGLU_2024}


# ---------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------

def default_budgets(runs: Runs, *, beyond: float = 2.0, step: float = 0.5) -> np.ndarray:
    """A log grid from the data's smallest compute to ``beyond`` decades past its largest.

    Points sit on round values every ``step`` decades (1e18, 3.16e18, 1e19, ...), the
    first at or below the smallest run and the last at or above ``C_max 10**beyond``.
    """
    lo = math.floor(math.log10(float(runs.C.min())) / step) * step
    hi = math.ceil((math.log10(float(runs.C.max())) + beyond) / step) * step
    return 10.0 ** np.arange(lo, hi + step / 2, step)


def _show_progress(quiet: bool) -> bool:
    return not quiet and bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Steps:
    """A progress bar over the report's steps (tqdm), silent when not shown."""

    def __init__(self, names: Sequence[str], show: bool):
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc="bayescale report", unit="step",
                            file=sys.stderr, leave=True)

    def start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.refresh()

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _valid_draws(f: ScalingFit) -> ScalingFit:
    """Drop draws with a non-finite or non-positive parameter (a failed resample)."""
    if f.is_point:
        return f
    arr = np.stack([np.asarray(v, dtype=float) for v in f.params])
    keep = np.all(np.isfinite(arr) & (arr > 0), axis=0)
    if keep.all():
        return f
    if not keep.any():
        raise BayescaleError(f"every draw of the {f.method} fit has an invalid parameter.")
    import dataclasses

    info = dict(f.info, dropped_draws=int((~keep).sum()))
    return dataclasses.replace(f, params=LawParams(*(v[keep] for v in arr)), info=info)


def fit_methods(runs: Runs, *, bayes_options: Mapping[str, Any] | None = None,
                resamples: int = 4000, seed: int = 0, level: float = 0.9,
                quiet: bool = True, _steps: _Steps | None = None) -> dict[str, ScalingFit]:
    """The Bayesian fit, the bootstrap and the Huber grid fit of ``runs``.

    The Huber fit is the bootstrap's reference (the grid fit to the full data that
    :func:`bayescale.estimators.huber.fit_bootstrap` computes anyway), so it is not run twice.

    Parameters
    ----------
    runs : Runs
    bayes_options : options of :func:`bayescale.estimators.nuts.sample_posterior` (chains,
        warmup, draws, likelihood, ...); ``posterior_predictive`` defaults to true and
        ``progress`` to a bar on a terminal unless ``quiet``.
    resamples : bootstrap resamples.
    seed : seed of both the bootstrap and NUTS.
    level : interval level of the fits.

    Returns
    -------
    dict
        ``{"bayes": ..., "bootstrap": ..., "huber": ...}`` :class:`ScalingFit` s;
        ``info["convergence_warnings"]`` of the Bayesian fit lists the
        :class:`ConvergenceWarning` messages it raised (they are re-emitted).
    """
    steps = _steps or _Steps([], False)
    options = {"posterior_predictive": True, "progress": _show_progress(quiet)}
    options.update(bayes_options or {})
    steps.start("NUTS sampling")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        bayes = fit(runs, method="bayes", level=level, seed=seed, **options)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:  # give everything back to the caller's filters
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    import dataclasses

    bayes = dataclasses.replace(bayes, info=dict(bayes.info, convergence_warnings=messages))
    steps.done()
    steps.start(f"bootstrap ({resamples} resamples)")
    boot = _valid_draws(fit(runs, method="bootstrap", level=level, seed=seed,
                            resamples=int(resamples)))
    steps.done()
    reference = LawParams(*(np.asarray(v, dtype=float) for v in boot.reference))
    huber = ScalingFit(method="huber", params=reference, runs=runs, level=level,
                       info={"note": "Huber grid fit (Hoffmann et al. 2022 Approach 3, "
                                     "4500 L-BFGS starts, delta 1e-3) to all the runs"})
    return {"bayes": bayes, "bootstrap": boot, "huber": huber}


# ---------------------------------------------------------------------------
# Comparison of methods
# ---------------------------------------------------------------------------

def _at_budget(f: ScalingFit, C: float, level: float) -> dict[str, tuple[float, float, float]]:
    fr = f.frontier([C])
    out = {}
    for q in _AT_BUDGET:
        v = np.asarray(getattr(fr, q), dtype=float)[:, 0]
        if v.size == 1:
            out[q] = (float(v[0]), math.nan, math.nan)
        else:
            med, lo, hi = np.quantile(v, [0.5, (1 - level) / 2, (1 + level) / 2])
            out[q] = (float(med), float(lo), float(hi))
    return out


def _published_row(params: LawParams, C: float) -> dict[str, float]:
    p = dict(zip(PARAM_NAMES, (float(v) for v in params)))
    p["a_opt"] = p["beta"] / (p["alpha"] + p["beta"])
    p["b_opt"] = p["alpha"] / (p["alpha"] + p["beta"])
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    p["N_opt"] = G * (C / 6) ** p["a_opt"]
    p["D_opt"] = C / (6 * p["N_opt"])
    p["tokens_per_param"] = p["D_opt"] / p["N_opt"]
    return p


def compare_methods(runs: Runs | Any = None, *, fits: Mapping[str, ScalingFit] | None = None,
                    reference_budget: float = GOPHER_BUDGET, level: float = 0.9,
                    bayes_options: Mapping[str, Any] | None = None, resamples: int = 4000,
                    seed: int = 0, quiet: bool = True, published: bool = True) -> pd.DataFrame:
    """Side-by-side table of the Bayesian fit, the bootstrap and the Huber fit.

    Parameters
    ----------
    runs : Runs or anything :func:`bayescale.load_runs` takes; fitted with
        :func:`fit_methods` unless ``fits`` is given.
    fits : already computed fits by method (``bayes``, ``bootstrap``, ``huber``).
    reference_budget : budget (FLOPs) at which ``N_opt``, ``D_opt`` and tokens per
        parameter are given (default Gopher's 5.76e23).
    level : central interval level for the Bayesian and bootstrap columns.
    published : add columns with the published fits (Hoffmann et al. 2022 rounded
        and unrounded, Besiroglu et al. 2024).

    Returns
    -------
    pandas.DataFrame
        Indexed by quantity (``E, A, B, alpha, beta, a_opt, b_opt, N_opt, D_opt,
        tokens_per_param``); for each method columns ``<method>`` (estimate: median
        over draws, or the point estimate), ``<method>_lower`` and ``<method>_upper``
        (NaN for a point estimate); ``attrs`` holds ``level`` and ``reference_budget``.
    """
    if fits is None:
        if runs is None:
            raise BayescaleError("compare_methods needs runs or fits.")
        if not isinstance(runs, Runs):
            runs = load_runs(runs)
        fits = fit_methods(runs, bayes_options=bayes_options, resamples=resamples, seed=seed,
                           level=level, quiet=quiet)
    C = float(reference_budget)
    if not (math.isfinite(C) and C > 0):
        raise BayescaleError(f"reference_budget must be positive FLOPs, got {reference_budget!r}.")
    cols: dict[str, list[float]] = {}
    index = list(_QUANTITIES) + list(_AT_BUDGET)
    names = [m for m in _METHOD_ORDER if m in fits] + [m for m in fits if m not in _METHOD_ORDER]
    for m in names:
        f = fits[m]
        est = f.point_estimate()
        ivals = f.intervals(level)
        at = _at_budget(f, C, level)
        cols[m] = [est[q] for q in _QUANTITIES] + [at[q][0] for q in _AT_BUDGET]
        cols[f"{m}_lower"] = [ivals.get(q, (math.nan,))[0] for q in _QUANTITIES] + \
            [at[q][1] for q in _AT_BUDGET]
        cols[f"{m}_upper"] = [ivals.get(q, (math.nan, math.nan))[1] for q in _QUANTITIES] + \
            [at[q][2] for q in _AT_BUDGET]
    if published:
        for name, params in _PUBLISHED.items():
            row = _published_row(params, C)
            cols[name] = [row[q] for q in index]
    table = pd.DataFrame(cols, index=pd.Index(index, name="quantity"))
    table.attrs.update(level=float(level), reference_budget=C)
    return table


def compare_methods_json(table: pd.DataFrame) -> dict[str, Any]:
    """JSON-ready form of :func:`compare_methods`'s table.

    ``{"level", "reference_budget", "methods": {method: {quantity: {"estimate",
    "lower", "upper"}}}, "published": {name: {quantity: value}}}``; missing bounds are
    ``null``.
    """
    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    methods, published = {}, {}
    for col in table.columns:
        if col.endswith(("_lower", "_upper")):
            continue
        if col in _PUBLISHED:
            published[col] = {q: num(table.at[q, col]) for q in table.index}
            continue
        methods[col] = {q: {"estimate": num(table.at[q, col]),
                            "lower": num(table.at[q, f"{col}_lower"]),
                            "upper": num(table.at[q, f"{col}_upper"])} for q in table.index}
    return {"level": table.attrs.get("level"), "reference_budget": table.attrs.get(
        "reference_budget"), "quantities_at_reference_budget": list(_AT_BUDGET),
        "methods": methods, "published": published}


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "" if math.isnan(x) else str(x)
    return f"{x:.4g}"


def _ci(med, lo, hi) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(med)
    return f"{_fmt(med)} [{_fmt(lo)}, {_fmt(hi)}]"


def _md_table(df: pd.DataFrame, index: bool = True) -> str:
    # A default 0..n-1 index carries no information: leave it out.
    index = index and not isinstance(df.index, pd.RangeIndex)
    frame = df.reset_index() if index else df
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _html_table(df: pd.DataFrame, table_id: str, index: bool = True) -> str:
    # A default 0..n-1 index carries no information: leave it out.
    index = index and not isinstance(df.index, pd.RangeIndex)
    frame = df.reset_index() if index else df
    out = [f'<table id="{table_id}" class="data">', "<thead><tr>"]
    out += [f"<th>{html.escape(str(c))}</th>" for c in frame.columns]
    out.append("</tr></thead><tbody>")
    for row in frame.itertuples(index=False):
        out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def methods_display(table: pd.DataFrame) -> pd.DataFrame:
    """Estimate [lower, upper] per method, published values as they are."""
    out = {}
    for col in table.columns:
        if col.endswith(("_lower", "_upper")):
            continue
        if col in _PUBLISHED:
            out[col] = [_fmt(v) for v in table[col]]
        else:
            out[col] = [_ci(m, lo, hi) for m, lo, hi in
                        zip(table[col], table[f"{col}_lower"], table[f"{col}_upper"])]
    return pd.DataFrame(out, index=table.index)


def _frontier_display(summary: pd.DataFrame) -> pd.DataFrame:
    rows = {}
    for C, r in summary.iterrows():
        rows[_fmt(C)] = {
            "N_opt": _ci(r["N_opt_median"], r["N_opt_lower"], r["N_opt_upper"]),
            "D_opt": _ci(r["D_opt_median"], r["D_opt_lower"], r["D_opt_upper"]),
            "L_opt": _ci(r["L_opt_median"], r["L_opt_lower"], r["L_opt_upper"]),
            "tokens/param": _ci(r["tokens_per_param_median"], r["tokens_per_param_lower"],
                                r["tokens_per_param_upper"]),
            "extrapolation (decades)": _fmt(r["extrapolation"]),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("C (FLOPs)")


def _decisions_display(table: pd.DataFrame) -> pd.DataFrame:
    t = table.reset_index()
    within = table.attrs.get("within", 0.01)
    return pd.DataFrame({
        "C (FLOPs)": [_fmt(v) for v in t["C"]],
        "plan": t["plan"],
        "N": [_fmt(v) for v in t["N"]],
        "D": [_fmt(v) for v in t["D"]],
        "tokens/param": [_fmt(v) for v in t["tokens_per_param"]],
        "expected loss": [f"{v:.5f}" for v in t["expected_loss"]],
        "regret": [f"{v:.2e}" for v in t["regret"]],
        f"P(within {100 * within:g}% of optimal loss)": [f"{v:.2f}" for v in t["p_within_loss"]],
        "compute efficiency": [_ci(m, lo, hi) for m, lo, hi in zip(
            t["compute_efficiency_median"], t["compute_efficiency_lower"],
            t["compute_efficiency_upper"])],
    })


def _diagnostics_display(bayes: ScalingFit) -> pd.DataFrame:
    per = getattr(bayes.diagnostics, "per_param", None)
    if per is None:
        return pd.DataFrame()
    return per.copy()


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table.data{border-collapse:collapse;font-size:.85em;margin:.6em 0}
table.data th,table.data td{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.data th{background:#f3f3f3}table.data td:first-child{text-align:left}
.banner{padding:.8em 1em;border-radius:6px;margin:1em 0}
.warning{background:#fdecea;border:2px solid #d93025;color:#5f1410}
.ok{background:#e6f4ea;border:1px solid #188038;color:#0d3d1d}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}code{background:#f5f5f5;padding:0 3px}
.small{font-size:.85em;color:#555}
"""


def _figures(fits: Mapping[str, ScalingFit], frontiers: Mapping[str, Any], data_C_range,
             level: float) -> dict[str, Any]:
    from bayescale.report import plots as plot

    bayes, boot, huber = fits["bayes"], fits["bootstrap"], fits["huber"]
    others = {"bootstrap": frontiers["bootstrap"]}
    with warnings.catch_warnings():
        # A log axis with a band touching zero, or an empty legend, is not an error here.
        warnings.filterwarnings("ignore", message=".*(non-positive|No artists).*",
                                category=UserWarning)
        return {
            "runs": plot.plot_runs(bayes, level=level),
            "frontier": plot.plot_frontier(frontiers["bayes"], data_C_range=data_C_range,
                                           others=others, level=level),
            "tokens_per_param": plot.plot_tokens_per_param(
                frontiers["bayes"], data_C_range=data_C_range, others=others, level=level),
            "pair": plot.plot_pair(bayes, huber=huber, bootstrap=boot, level=level),
            "residuals": plot.plot_residuals(bayes, level=level),
            "methods": plot.plot_methods(fits, level=level),
        }


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _provenance(runs: Runs) -> dict[str, Any]:
    from bayescale.data import registry as datasets

    d = runs.describe()
    ds = datasets.DATASETS.get(str(runs.source))
    if ds is not None:
        d["dataset"] = {"name": ds.name, "description": ds.description,
                        "citation": ds.citation, "provenance": ds.provenance}
    return d


def _gopher_lines(table: pd.DataFrame) -> list[str]:
    C = table.attrs["reference_budget"]
    b = table["bayes"]
    where = " (Gopher's budget)" if C == GOPHER_BUDGET else ""
    lines = [f"At C = {C:.3g} FLOPs{where}:"]
    for name, label in (("hoffmann_2022", "Hoffmann et al. (2022), rounded published coefficients"),
                        ("hoffmann_2022_unrounded", "Hoffmann et al. (2022), unrounded coefficients"),
                        ("besiroglu_2024", "Epoch's refit (Besiroglu et al. 2024)")):
        if name in table:
            lines.append(f"{label}: N_opt = {table.at['N_opt', name] / 1e9:.1f}B parameters, "
                         f"D_opt = {table.at['D_opt', name] / 1e12:.2f}T tokens "
                         f"({table.at['tokens_per_param', name]:.0f} tokens per parameter).")
    lines.append(
        f"This fit (posterior median, {100 * table.attrs['level']:g}% interval): N_opt = "
        f"{b['N_opt'] / 1e9:.1f}B [{table.at['N_opt', 'bayes_lower'] / 1e9:.1f}B, "
        f"{table.at['N_opt', 'bayes_upper'] / 1e9:.1f}B], "
        f"{b['tokens_per_param']:.0f} tokens per parameter "
        f"[{table.at['tokens_per_param', 'bayes_lower']:.0f}, "
        f"{table.at['tokens_per_param', 'bayes_upper']:.0f}].")
    lines.append(
        "Context: Hoffmann et al.'s Approach-3 coefficients imply ~40B parameters at ~59 tokens per "
        "parameter, inconsistent with Chinchilla itself (70B on 1.4T, ~20 tokens per "
        "parameter) and with their Approaches 1 and 2; Epoch's refit of the digitised data "
        "resolves this, and the posterior says how sure the data let us be.")
    return lines


def _report_context(runs, fits, frontiers, methods, decisions, budgets, level, settings):
    bayes = fits["bayes"]
    diag = bayes.diagnostics
    problems = diag.problems() if diag is not None else []
    return {
        "runs": runs, "fits": fits, "frontiers": frontiers, "methods": methods,
        "decisions": decisions, "budgets": budgets, "level": level, "settings": settings,
        "problems": problems, "diagnostics": diag.to_dict() if diag is not None else {},
        "provenance": _provenance(runs),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _text_sections(ctx) -> list[tuple[str, list[str], list[tuple[str, pd.DataFrame]]]]:
    """(title, paragraphs, [(table id, table)]) for both renderers."""
    runs, fits, level = ctx["runs"], ctx["fits"], ctx["level"]
    bayes, boot = fits["bayes"], fits["bootstrap"]
    prov = ctx["provenance"]
    info = bayes.info
    sections = []

    d = {k: (math.nan if v is None else v) for k, v in ctx["diagnostics"].items()}
    paras = [f"R-hat max {d.get('rhat_max', math.nan):.4f} (threshold 1.01), bulk ESS min "
             f"{d.get('ess_bulk_min', math.nan):.0f} (400), tail ESS min "
             f"{d.get('ess_tail_min', math.nan):.0f}, divergences {d.get('divergences', 0)} (0), "
             f"E-BFMI min {d.get('ebfmi_min', math.nan):.2f} (0.3)."]
    paras += [str(note) for note in (d.get("notes") or [])]
    sections.append(("Diagnostics", paras, [("diagnostics", _diagnostics_display(bayes))]))

    paras = [f"Source: {prov['source']}; {prov['n_runs']} runs used. "
             f"N from {prov['N_range'][0]:.3g} to {prov['N_range'][1]:.3g} parameters, "
             f"D from {prov['D_range'][0]:.3g} to {prov['D_range'][1]:.3g} tokens, "
             f"C from {prov['C_range'][0]:.3g} to {prov['C_range'][1]:.3g} FLOPs, "
             f"loss from {prov['loss_range'][0]:.4g} to {prov['loss_range'][1]:.4g}."]
    if prov["dropped_rows"]:
        paras.append(f"Filters: {len(prov['dropped_rows'])} rows dropped "
                     f"({', '.join(prov['dropped_by'])}): rows {prov['dropped_rows']}.")
    else:
        paras.append("Filters: none (no rows dropped).")
    for note in prov["notes"]:
        paras.append(f"Note: {note}.")
    if "dataset" in prov:
        ds = prov["dataset"]
        paras += [ds["description"], f"Citation: {ds['citation']}",
                  f"Provenance: {ds['provenance']}"]
    sections.append(("Data", paras, []))

    priors = info.get("priors", {})
    paras = [f"Likelihood of log loss: {info.get('likelihood', '?')}. NUTS with "
             f"{info.get('chains')} chains x {info.get('warmup')} warmup x "
             f"{info.get('draws')} draws (seed {info.get('seed')}, target acceptance "
             f"{info.get('target_accept')}, {info.get('dtype')} on {info.get('device')}). "
             f"Bootstrap: {boot.info.get('resamples')} resamples of the runs, each refitted "
             "by L-BFGS from Hoffmann et al.'s unrounded coefficients (Besiroglu et al. 2024). "
             "Huber: Hoffmann et al.'s Approach 3 (Huber loss, delta 1e-3, 4500-start grid). "
             f"Intervals are central {100 * level:g}% intervals for both the posterior and the "
             "bootstrap."]
    prior_table = pd.DataFrame({"prior": priors}).rename_axis("parameter")
    t = info.get("timing", {})
    if t:
        paras.append("Timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    sections.append(("Model: priors and likelihood", paras, [("priors", prior_table)]))

    methods = ctx["methods"]
    sections.append((
        "Parameters by method",
        [f"Estimates (posterior or bootstrap median, or the Huber point estimate) with central "
         f"{100 * level:g}% intervals; N_opt, D_opt and tokens per parameter at the reference "
         f"budget C = {methods.attrs['reference_budget']:.3g} FLOPs. The last columns are the "
         "published fits."] + _gopher_lines(methods),
        [("methods", methods_display(methods))]))

    sections.append((
        "Compute-optimal frontier",
        [f"Median and central {100 * level:g}% posterior interval per budget (C = 6ND). "
         "Extrapolation: decades of compute beyond the range the runs cover."],
        [("frontier", _frontier_display(ctx["frontiers"]["bayes"].summary(level)))]))

    sections.append((
        "Decisions per budget",
        ["For each budget: the Bayes-optimal plan (minimises the posterior expected loss), the "
         "plug-in plan (closed form at the median parameters), 20 tokens per parameter "
         "(Hoffmann et al. 2022) and Kaplan et al. (2020)'s allocation, evaluated under the "
         "posterior. Regret: expected loss minus that of the Bayes-optimal plan. Compute "
         "efficiency: the share of the budget an optimal plan would need for the same loss."],
        [("decisions", _decisions_display(ctx["decisions"]))]))
    return sections


def _banner(ctx) -> tuple[str, str]:
    if ctx["problems"]:
        text = ("WARNING: the NUTS diagnostics failed (" + "; ".join(ctx["problems"]) + "). "
                "The posterior summaries below may be unreliable: re-run with more warmup and "
                "draws (e.g. --warmup 1000 --draws 1000 --chains 4) or a higher target "
                "acceptance.")
        return "warning", text
    return "ok", "Diagnostics passed: R-hat <= 1.01, bulk ESS >= 400, no divergences."


def _render_markdown(ctx, figure_files: Mapping[str, str]) -> str:
    kind, banner = _banner(ctx)
    out = [f"# bayescale report: {ctx['provenance']['source']}", "",
           f"_Created {ctx['created']} by bayescale {ctx['settings']['version']}._", ""]
    out += [f"> **{banner}**" if kind == "warning" else f"> {banner}", ""]
    for title, paras, tables in _text_sections(ctx):
        out += [f"## {title}", ""]
        for p in paras:
            out += [p, ""]
        for _, table in tables:
            if len(table):
                out += [_md_table(table), ""]
    out += ["## Figures", ""]
    for name, rel in figure_files.items():
        out += [f"![{FIGURES[name]}]({rel})", "", f"*{FIGURES[name]}*", ""]
    return "\n".join(out)


def _render_html(ctx, pngs: Mapping[str, bytes]) -> str:
    kind, banner = _banner(ctx)
    title = f"bayescale report: {ctx['provenance']['source']}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="small">Created {ctx["created"]} by bayescale '
           f'{html.escape(ctx["settings"]["version"])}.</p>',
           f'<div id="diagnostics-banner" class="banner {kind}">{html.escape(banner)}</div>']
    sections = _text_sections(ctx)
    fig_after = {"Diagnostics": ("residuals",), "Parameters by method": ("methods", "pair"),
                 "Compute-optimal frontier": ("runs", "frontier", "tokens_per_param")}
    for title_, paras, tables in sections:
        out.append(f"<h2>{html.escape(title_)}</h2>")
        out += [f"<p>{html.escape(p)}</p>" for p in paras]
        for tid, table in tables:
            if len(table):
                out.append(_html_table(table, f"table-{tid}"))
        for name in fig_after.get(title_, ()):
            b64 = base64.b64encode(pngs[name]).decode("ascii")
            out.append(f'<figure><img id="fig-{name}" class="figure" alt="{html.escape(name)}" '
                       f'src="data:image/png;base64,{b64}"><figcaption>'
                       f"{html.escape(FIGURES[name])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _write_folder(folder: Path, ctx, figs) -> dict[str, Path]:
    """Write every file of the report into ``folder`` (a fresh temporary folder)."""
    fits, level = ctx["fits"], ctx["level"]
    bayes = fits["bayes"]
    methods = ctx["methods"]
    payload = bayes.to_dict(level)
    payload["report"] = {
        "comparison": compare_methods_json(methods),
        "frontier": ctx["frontiers"]["bayes"].to_dict(level),
        "settings": ctx["settings"],
    }
    payload = json.loads(json.dumps(payload, default=_json_default))  # plain types
    written = {k: Path(v) for k, v in save_fit(bayes, folder, level=level, payload=payload,
                                               atomic=False).items()}
    written["methods"] = folder / "methods.csv"
    methods.to_csv(written["methods"])
    written["frontier"] = folder / "frontier.csv"
    ctx["frontiers"]["bayes"].summary(level).to_csv(written["frontier"])
    written["decisions"] = folder / "decisions.csv"
    ctx["decisions"].to_csv(written["decisions"])
    figdir = folder / "figures"
    figdir.mkdir()
    pngs, rel = {}, {}
    for name, fig in figs.items():
        pngs[name] = _png_bytes(fig)
        path = figdir / f"{name}.png"
        path.write_bytes(pngs[name])
        written[f"figure_{name}"] = path
        rel[name] = f"figures/{name}.png"
    written["markdown"] = folder / "report.md"
    written["markdown"].write_text(_render_markdown(ctx, rel), encoding="utf-8")
    written["html"] = folder / "report.html"
    written["html"].write_text(_render_html(ctx, pngs), encoding="utf-8")
    manifest = {"bayescale_report": 1, "version": ctx["settings"]["version"],
                "created": ctx["created"], "diagnostics_ok": not ctx["problems"],
                "settings": ctx["settings"],
                "files": sorted(str(p.relative_to(folder)) for p in written.values())}
    written["manifest"] = folder / "manifest.json"
    plain = json.loads(json.dumps(manifest, default=_json_default))
    written["manifest"].write_text(dumps_json(plain, indent=2) + "\n",
                                   encoding="utf-8")
    return written


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BayescaleError(f"{str(out)!r} exists and is not a folder; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise BayescaleError(
            f"{str(out)!r} exists, is not empty and is not a bayescale report (no "
            "manifest.json); refusing to replace it. Choose another --out or empty it.")


def build_report(runs: Runs | Any, *, out_dir: str | os.PathLike,
                 budgets: Sequence[float] | None = None,
                 bayes_options: Mapping[str, Any] | None = None, resamples: int = 4000,
                 seed: int = 0, level: float = 0.9,
                 reference_budget: float = GOPHER_BUDGET, quiet: bool = False,
                 fits: Mapping[str, ScalingFit] | None = None) -> dict[str, Path]:
    """Fit, compare, decide and write a report folder.

    Parameters
    ----------
    runs : Runs, or anything :func:`bayescale.load_runs` takes.
    out_dir : the report folder (replaced as a whole if it holds a previous report).
    budgets : budgets (FLOPs) for the frontier and decision tables; default
        :func:`default_budgets` (the data's compute range and two decades beyond).
    bayes_options : NUTS settings (``chains``, ``warmup``, ``draws``, ``likelihood``,
        ``target_accept``, ...), see :func:`bayescale.estimators.nuts.sample_posterior`.
    resamples : bootstrap resamples.
    seed : seed of NUTS and the bootstrap.
    level : interval level throughout.
    reference_budget : budget of the method comparison (default Gopher's 5.76e23).
    quiet : no progress bars (they are also off when stderr is not a terminal).
    fits : reuse fits from :func:`fit_methods` instead of fitting.

    Returns
    -------
    dict
        Name -> path of every file written (``html``, ``markdown``, ``json``,
        ``summary``, ``posterior``, ``frontier``, ``methods``, ``decisions``,
        ``figure_<name>``, ``manifest``, ...), inside ``out_dir``.

    Raises
    ------
    BayescaleError
        Bad budgets or level, or an ``out_dir`` that is a non-empty folder not written
        by this function.
    """
    from bayescale import __version__
    from bayescale.planning.decisions import compare_plans

    if not isinstance(runs, Runs):
        runs = load_runs(runs)
    level = float(level)
    if not 0 < level < 1:
        raise BayescaleError(f"level must be between 0 and 1, got {level}.")
    budgets = default_budgets(runs) if budgets is None else np.sort(as_budgets(budgets))
    out = Path(out_dir).absolute()
    _check_replaceable(out)
    show = _show_progress(quiet)
    steps = _Steps(["NUTS sampling", "bootstrap", "frontier and decisions", "figures",
                    "writing"], show)
    t0 = time.perf_counter()
    try:
        if fits is None:
            fits = fit_methods(runs, bayes_options=bayes_options, resamples=resamples,
                               seed=seed, level=level, quiet=quiet, _steps=steps)
        else:
            steps.done()
            steps.done()
        steps.start("frontier and decisions")
        data_C_range = (float(runs.C.min()), float(runs.C.max()))
        frontiers = {m: fits[m].frontier(budgets) for m in ("bayes", "bootstrap")}
        dense = np.geomspace(budgets.min(), budgets.max(), 60)
        dense_frontiers = {m: fits[m].frontier(dense) for m in ("bayes", "bootstrap")}
        methods = compare_methods(fits=fits, reference_budget=reference_budget, level=level)
        decisions = compare_plans(fits["bayes"].params, budgets, level=level)
        steps.done()
        steps.start("figures")
        figs = _figures(fits, dense_frontiers, data_C_range, level)
        steps.done()
        steps.start("writing")
        settings = {"version": __version__, "level": level, "seed": int(seed),
                    "resamples": int(resamples), "reference_budget": float(reference_budget),
                    "budgets": [float(c) for c in budgets],
                    "bayes": {k: fits["bayes"].info.get(k) for k in
                              ("likelihood", "chains", "warmup", "draws", "target_accept")}}
        ctx = _report_context(runs, fits, frontiers, methods, decisions, budgets, level,
                              settings)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; a report is not
            written = _write_folder(tmp, ctx, figs)
            _check_replaceable(out)  # nothing else moved in meanwhile
            replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        steps.done()
    finally:
        steps.close()
    result = {k: out / p.relative_to(tmp) for k, p in written.items()}
    if not quiet:
        print(f"bayescale report: wrote {out} ({len(result)} files, "
              f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return result
