"""Honest extrapolation in the report: law-form uncertainty and a leave-future-out backtest.

Two opt-in sections of :func:`bayescale.report.build.build_report`:

``structural=LAWS`` ("N_opt and D_opt with law-form uncertainty")
    :func:`bayescale.estimators.stacking.stack_laws` fits the laws and weighs them by
    leave-future-out stacking; per report budget, N_opt and D_opt in two bands:
    *within* the top-weighted law (its parameter uncertainty only) and *structural* (the
    laws' frontiers pooled by weight). ``structural.csv``: :meth:`LawStack.summary`.
``backtest=HOLDOUT`` ("Would this have told the truth?")
    :func:`bayescale.validation.backtest.backtest` holds out the top budgets (or the
    runs above a compute), refits and predicts them, in-model and with the extrapolation
    error: nominal against empirical coverage, mean 90% width, bias, CRPS.
    ``backtest.csv``: per held-out run, observed, median, intervals, PIT.

Where the runs cannot support a section (too few budgets to hold out or to stack), the
section says so in one line instead of failing the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayescale.errors import BayescaleError
from bayescale.report._format import human, interval

__all__ = ["check_structural", "check_backtest", "compute_structural", "compute_backtest",
           "structural_display", "structural_section", "backtest_tables", "backtest_section",
           "backtest_runs", "sections", "write_files", "payload"]

STRUCTURAL_TITLE = "N_opt and D_opt with law-form uncertainty"
BACKTEST_TITLE = "Would this have told the truth?"


def check_structural(laws) -> tuple[str, ...] | None:
    """The laws of ``structural=`` (a sequence or ``"a,b"``), checked before any work."""
    if laws is None:
        return None
    from bayescale.laws.registry import get_law

    names = [s.strip() for s in laws.split(",")] if isinstance(laws, str) else list(laws)
    names = [get_law(n).name for n in names if n]
    if len(names) < 2 or len(set(names)) != len(names):
        raise BayescaleError(f"structural needs two or more distinct laws (e.g. "
                             f"chinchilla,kaplan), got {names}.")
    return tuple(names)


def check_backtest(holdout) -> str | None:
    """The hold-out of ``backtest=`` (``top-budgets:K``, ``above:C``), checked."""
    if holdout is None:
        return None
    from bayescale.validation.backtest import parse_holdout

    kind, _ = parse_holdout(holdout)
    if kind == "split":
        raise BayescaleError("the report's backtest holds out the report's own runs: use "
                             "top-budgets:K or above:C (holdout 'split' is for `bayescale "
                             "backtest`).")
    return str(holdout).strip()


def compute_structural(runs, laws: Sequence[str], budgets, level: float, *, seed: int,
                       resamples: int, unique_tokens: float | None = None) -> dict[str, Any]:
    """``{"stack", "summary", "laws"}``, or ``{"note", "laws"}`` when the runs cannot
    support stacking."""
    from bayescale.estimators import stacking

    try:
        stack = stacking.stack_laws(runs, list(laws), method="bootstrap", seed=int(seed),
                                    resamples=int(resamples))
        extra = {} if unique_tokens is None else {"unique_tokens": unique_tokens}
        summary = stack.summary(budgets, level, **extra)
        as_dict = stack.to_dict(budgets, level, **extra)
    except BayescaleError as exc:
        return {"laws": list(laws), "note": f"Not computed: {exc}"}
    return {"laws": list(laws), "stack": stack, "summary": summary, "dict": as_dict}


def compute_backtest(runs, holdout: str, *, law: str, seed: int) -> dict[str, Any]:
    """``{"result", "holdout"}``, or ``{"note", "holdout"}`` when the runs cannot support
    the hold-out."""
    from bayescale.validation.backtest import backtest

    try:
        result = backtest(runs, holdout=holdout, law=law, seed=int(seed))
    except BayescaleError as exc:
        return {"holdout": holdout, "note": f"Not computed: {exc}"}
    return {"holdout": holdout, "result": result}


def _weights_table(st) -> pd.DataFrame:
    stack = st["stack"]
    lfo = stack.info.get("mean_log_density", {})
    return pd.DataFrame({"law": list(stack.laws),
                         "weight": [f"{w:.3f}" for w in stack.weights],
                         "mean LFO log density": [f"{lfo.get(k, float('nan')):.3f}"
                                                  for k in stack.laws]})


def structural_display(summary: pd.DataFrame, top: str) -> pd.DataFrame:
    """One row per budget: N_opt and D_opt, median [interval], in both bands."""
    rows = {}
    for band, label in (("within", f"within {top}"), ("structural", "structural")):
        part = summary[summary["band"] == band]
        for _, r in part.iterrows():
            row = rows.setdefault(float(r["C"]), {})
            for q in ("N_opt", "D_opt"):
                row[f"{q} ({label})"] = interval(r[f"{q}_median"], r[f"{q}_lower"],
                                                 r[f"{q}_upper"])
    cols = [f"{q} ({lab})" for q in ("N_opt", "D_opt")
            for lab in (f"within {top}", "structural")]
    table = pd.DataFrame.from_dict(rows, orient="index")[cols]
    table.index = [human(C) for C in table.index]
    return table.rename_axis("C (FLOPs)")


def structural_section(st, pct: str):
    """The section ``(id, title, paragraphs, tables, figures)``."""
    if "note" in st:
        return ("structural", STRUCTURAL_TITLE, [st["note"]], [], ())
    stack = st["stack"]
    info = stack.info
    cuts = ", ".join(str(c) for c in info.get("cuts", []))
    weights = ", ".join(f"{k} {w:.2f}" for k, w in zip(stack.laws, stack.weights))
    if info.get("scores") == "psis-loo":
        source = (f"PSIS-LOO scores (each run's log loss left out in turn, from each law's "
                  f"NUTS fit); the weights maximise the mixture's leave-one-out log score "
                  f"(stacking, Yao et al. 2018). Note: {info['note']}")
    else:
        source = (f"leave-future-out scores: each law refitted without the top {cuts} compute "
                  f"budgets in turn and scored by the log density of the "
                  f"{info.get('n_heldout')} held-out runs' log loss; the weights maximise the "
                  f"held-out log score of the mixture (stacking, Yao et al. 2018).")
    paras = [
        f"Laws fitted: {', '.join(stack.laws)} (each by the {info.get('method', 'bootstrap')}"
        f" on all the runs). Stacking weights: {weights}. The weights come from {source}",
        f"Two bands per budget, median [central {pct} interval]. Within {stack.top}: the "
        f"top-weighted law alone, parameter uncertainty only (as if its form were right). "
        f"Structural: the laws' frontiers pooled in proportion to the weights, which adds "
        f"the uncertainty about which law's form is right. Where they differ, the within "
        f"band understates the uncertainty of the extrapolation."]
    if stack.optimum_note:
        paras.append(stack.optimum_note)
    if info.get("left_out"):
        paras.append("Left out: " + "; ".join(f"{k} ({v})"
                                             for k, v in info["left_out"].items()) + ".")
    return ("structural", STRUCTURAL_TITLE, paras,
            [("structural-weights", _weights_table(st)),
             ("structural", structural_display(st["summary"], stack.top))], ())


def _level_label(key: str) -> str:
    return f"{100 * float(key):g}%"


def backtest_tables(result) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coverage (nominal against empirical, in-model and with the extrapolation error)
    and the scores (mean 90% width, bias, CRPS, log score)."""
    s_in, s_ex = result.summaries["none"], result.summaries["auto"]
    coverage = pd.DataFrame({
        "nominal": [_level_label(k) for k in s_in["coverage"]],
        "in-model": [f"{v:.2f}" for v in s_in["coverage"].values()],
        "with extrapolation error": [f"{s_ex['coverage'][k]:.2f}" for k in s_in["coverage"]]})
    scores = pd.DataFrame({
        "score": ["mean 90% width (loss)", "bias (median - observed loss)", "CRPS",
                  "log score (log loss)"],
        "in-model": [f"{s_in['mean_width_90']:.4f}", f"{s_in['bias']:+.4f}",
                     f"{s_in['crps']:.4f}", f"{s_in['log_score']:.2f}"],
        "with extrapolation error": [f"{s_ex['mean_width_90']:.4f}", f"{s_ex['bias']:+.4f}",
                                     f"{s_ex['crps']:.4f}", f"{s_ex['log_score']:.2f}"]})
    return coverage, scores


def backtest_section(bt):
    """The section ``(id, title, paragraphs, tables, figures)``."""
    if "note" in bt:
        return ("backtest", BACKTEST_TITLE, [bt["note"]], [], ())
    result = bt["result"]
    info = result.info
    table = result.tables["auto"]
    decades = table["extrapolation_decades"]
    lo, hi = float(decades.min()), float(decades.max())
    spread = "" if f"{lo:.2f}" == f"{hi:.2f}" else f", from {lo:.2f} to {hi:.2f}"
    method = "coarse-grid Huber fit" if info["method"] == "huber" else info["method"]
    paras = [
        f"Leave-future-out backtest (hold-out {bt['holdout']}): the {info['law']} law refitted "
        f"({method}) on {info['n_train']} runs, the {result.summary['n_heldout']} "
        f"held-out runs predicted and scored.",
        f"The held-out runs are {decades.mean():.2f} decades of compute beyond the largest "
        f"fitted run on average{spread} (largest fitted run C = "
        f"{human(info['train_C_max'])} FLOPs).",
        "In-model: the fit's own predictive (parameter uncertainty and run-to-run noise), "
        "as if the law held exactly beyond the data. With extrapolation error: adds the error "
        "a law makes when extrapolating, estimated from leave-future-out refits and growing "
        "with the decades extrapolated. An honest band has empirical coverage close to the "
        "nominal level; bias > 0 means the law over-predicts the loss."]
    coverage, scores = backtest_tables(result)
    return ("backtest", BACKTEST_TITLE, paras,
            [("backtest-coverage", coverage), ("backtest-scores", scores)], ())


def backtest_runs(result) -> pd.DataFrame:
    """Per held-out run: observed, median, intervals, PIT (with the extrapolation error),
    the in-model median and PIT."""
    return result.tables["auto"].assign(
        median_in_model=result.tables["none"]["median"].to_numpy(),
        pit_in_model=result.tables["none"]["pit"].to_numpy())


def payload(honest: dict) -> dict[str, Any]:
    """The sections for ``fit.json`` (``report.structural``, ``report.backtest``)."""
    out = {}
    st = honest.get("structural")
    if st is not None:
        out["structural"] = st["dict"] if "dict" in st else {"laws": st["laws"],
                                                             "note": st["note"]}
    bt = honest.get("backtest")
    if bt is not None:
        if "result" in bt:
            d = bt["result"].to_dict()
            d.pop("runs", None)
            out["backtest"] = d
        else:
            out["backtest"] = {"holdout": bt["holdout"], "note": bt["note"]}
    return out


def write_files(folder: Path, honest: dict) -> dict[str, Path]:
    """``structural.csv`` and ``backtest.csv`` where computed."""
    written = {}
    st, bt = honest.get("structural"), honest.get("backtest")
    if st is not None and "summary" in st:
        written["structural"] = folder / "structural.csv"
        st["summary"].to_csv(written["structural"], index=False)
    if bt is not None and "result" in bt:
        written["backtest"] = folder / "backtest.csv"
        backtest_runs(bt["result"]).to_csv(written["backtest"], index=False)
    return written


def sections(honest: dict | None, level: float) -> list:
    """The report's sections for ``ctx["honest"]``, in page order."""
    if not honest:
        return []
    out = []
    if honest.get("structural") is not None:
        out.append(structural_section(honest["structural"], f"{100 * level:g}%"))
    if honest.get("backtest") is not None:
        out.append(backtest_section(honest["backtest"]))
    return out
