"""Leave-future-out backtests: would bayescale have told the truth about larger runs?

:func:`backtest` holds out the largest runs of a dataset, fits the law on the rest, predicts
each held-out run (:func:`bayescale.estimators.predict.predict`, with and without the
extrapolation error) and scores the predictions:

* per run: observed loss, predictive median, central intervals, PIT (the predictive
  probability below the observed loss), CRPS and log predictive density;
* for isoFLOP-shaped hold-outs, the N of the best run observed at each held-out budget
  against the fit's loss-minimising N there (``info["isoflop"]``, :func:`isoflop_check`);
* in summary: empirical coverage of the 50/80/90/95% intervals, mean and median 90% width,
  bias (mean of median minus observed: positive when the law over-predicts), mean CRPS
  (sample-based, ``E|X - y| - E|X - X'| / 2``, Gneiting & Raftery 2007, in nats) and mean
  log predictive density of log loss (Gaussian kernel density over the draws).

Hold-outs (``holdout=``): ``"top-budgets:K"`` (the top K compute budgets, detected as
clusters of compute, :func:`bayescale.estimators.extrapolation.budgets`), ``"above:C"``
(every run with 6ND above C FLOPs) or ``"split"`` (a registered dataset's published test
split: ``data_constrained``, ``farseer``).

``method="huber"`` (the default) fits with a coarse-grid Huber fit in one compiled program
per size bucket (:func:`bayescale.estimators.extrapolation.masked_fits`), so a backtest takes
seconds; other methods go through :func:`bayescale.fit`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from bayescale._util import to_jsonable
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation, isoflop
from bayescale.estimators.fit import ScalingFit, fit as fit_runs
from bayescale.estimators.predict import LEVELS, predict
from bayescale.laws.registry import get_law

__all__ = ["Backtest", "backtest", "parse_holdout", "score", "crps_sample", "log_density",
           "isoflop_check"]


def parse_holdout(holdout: str) -> tuple[str, float]:
    """``"top-budgets:K"`` -> ("top-budgets", K), ``"above:C"`` -> ("above", C),
    ``"split"`` -> ("split", 0)."""
    text = str(holdout).strip()
    kind, _, value = text.partition(":")
    try:
        if kind == "top-budgets":
            k = int(value or 1)
            if k >= 1:
                return kind, float(k)
        elif kind == "above":
            from bayescale._util import parse_flops

            return kind, float(parse_flops(value, "holdout above:C"))
        elif kind == "split" and not value:
            return kind, 0.0
    except (ValueError, BayescaleError):
        pass
    raise BayescaleError(f"holdout {holdout!r} is not one of 'top-budgets:K' (K >= 1), "
                         f"'above:C' (C in FLOPs, e.g. above:1e21) or 'split'.")


def crps_sample(draws, y) -> np.ndarray:
    """Sample CRPS per point: ``mean|X - y| - mean|X - X'| / 2`` over draws ``(S, n)``;
    ``E|X - X'|`` from the sorted draws, ``2/S^2 sum_i (2i - S - 1) x_(i)``."""
    x = np.sort(np.asarray(draws, float), axis=0)
    S = x.shape[0]
    i = np.arange(1, S + 1)[:, None]
    spread = 2.0 / S**2 * np.sum((2 * i - S - 1) * x, axis=0)
    return np.mean(np.abs(x - np.asarray(y, float)[None, :]), axis=0) - 0.5 * spread


def log_density(draws, y) -> np.ndarray:
    """Log predictive density of ``log y`` per point: a Gaussian kernel density over the
    log draws, Silverman's bandwidth."""
    z = np.log(np.asarray(draws, float))
    S = z.shape[0]
    sd = z.std(axis=0, ddof=1)
    iqr = np.subtract(*np.quantile(z, [0.75, 0.25], axis=0)) / 1.34
    h = 0.9 * np.maximum(np.minimum(sd, np.where(iqr > 0, iqr, sd)), 1e-12) * S ** -0.2
    u = (np.log(np.asarray(y, float))[None, :] - z) / h
    logk = -0.5 * u**2 - np.log(h * np.sqrt(2 * np.pi))
    top = logk.max(axis=0)
    return top + np.log(np.mean(np.exp(logk - top), axis=0))


def score(draws, observed, levels=LEVELS) -> tuple[pd.DataFrame, dict]:
    """Per-run scores and their summary for predictive ``draws`` (S, n) of ``observed`` (n,)."""
    draws, y = np.asarray(draws, float), np.asarray(observed, float)
    med = np.median(draws, axis=0)
    table = {"observed": y, "median": med}
    coverage, widths = {}, {}
    for a in levels:
        lo, hi = np.quantile(draws, [(1 - a) / 2, (1 + a) / 2], axis=0)
        table[f"lower_{a:g}"], table[f"upper_{a:g}"] = lo, hi
        inside = (lo <= y) & (y <= hi)
        coverage[f"{a:g}"] = float(inside.mean())
        widths[f"{a:g}"] = hi - lo
    table["pit"] = np.mean(draws <= y[None, :], axis=0)
    table["crps"] = crps_sample(draws, y)
    table["log_density"] = log_density(draws, y)
    w90 = widths.get("0.9", np.full(len(y), np.nan))
    summary = {"n_heldout": int(len(y)), "coverage": coverage,
               "mean_width_90": float(np.mean(w90)), "median_width_90": float(np.median(w90)),
               "bias": float(np.mean(med - y)), "crps": float(np.mean(table["crps"])),
               "log_score": float(np.mean(table["log_density"]))}
    return pd.DataFrame(table), summary


@dataclasses.dataclass(frozen=True, eq=False)
class Backtest:
    """A backtest's fit, held-out runs and scores.

    ``tables[s]`` and ``summaries[s]`` for ``s`` in ``("auto", "none")``: with the
    extrapolation error and in-model.
    """

    holdout: str
    fit: ScalingFit
    test: Any
    tables: dict
    summaries: dict
    info: dict

    @property
    def summary(self) -> dict:
        return self.summaries["auto"]

    def to_dict(self) -> dict:
        """The summary with the extrapolation error at top level (``n_heldout``,
        ``coverage``, ``mean_width_90``, ``bias``, ``crps``, ``log_score``), the in-model
        one under ``"in_model"``, the settings under ``"info"`` and the runs under ``"runs"``."""
        runs = self.tables["auto"].assign(
            median_in_model=self.tables["none"]["median"].to_numpy(),
            pit_in_model=self.tables["none"]["pit"].to_numpy())
        return to_jsonable({**self.summaries["auto"], "holdout": self.holdout,
                            "in_model": self.summaries["none"], "info": self.info,
                            "runs": runs.to_dict(orient="records")})


def isoflop_check(fitted: ScalingFit, test, *, min_runs: int = 3) -> list[dict]:
    """For each held-out compute budget with at least ``min_runs`` runs of distinct N: the
    N of the best (lowest-loss) run observed there against the fit's loss-minimising N at
    that budget's median 6ND (median and 90% interval over the fit's draws), in decades."""
    C = 6.0 * np.asarray(test.N, float) * np.asarray(test.D, float)
    labels = extrapolation.budgets(C) if len(C) > 1 else np.zeros(len(C), int)
    out = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        if len(np.unique(test.N[idx])) < min_runs:
            continue
        budget = float(np.median(C[idx]))
        best = idx[np.argmin(test.loss[idx])]
        try:
            n_opt = np.atleast_2d(np.asarray(fitted.frontier([budget]).N_opt, float))[:, 0]
        except BayescaleError:
            continue
        n_opt = n_opt[np.isfinite(n_opt)]
        if not n_opt.size:
            continue
        lo, med, hi = np.quantile(np.log10(n_opt), [0.05, 0.5, 0.95])
        out.append({"C": budget, "num_runs": int(len(idx)), "N_best_observed": float(test.N[best]),
                    "N_opt_median": float(10**med), "N_opt_interval_90": [float(10**lo), float(10**hi)],
                    "decades_off": float(np.log10(test.N[best]) - med)})
    return out


def _split(runs, data, holdout: str, group, test, budgets=None):
    kind, value = parse_holdout(holdout)
    if kind == "split":
        if test is None:
            if not isinstance(data, str):
                raise BayescaleError("holdout='split' needs a registered dataset name with a "
                                     "test split (data_constrained, farseer), or test=Runs.")
            from bayescale.data.runs import load_runs

            test = load_runs(data, split="test", group=group)
        return runs, test
    C = 6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float)
    if kind == "top-budgets":
        labels = (extrapolation.budgets(C) if budgets is None
                  else isoflop.budget_labels(runs, budgets)[0])
        held = labels > labels.max() - int(value)
        what = f"the top {int(value)} of {labels.max() + 1} compute budgets"
    else:
        held = C > value
        what = f"the runs with 6ND above {value:.3g} FLOPs"
    if held.all() or held.sum() == 0 or (~held).sum() < 5:
        raise BayescaleError(f"holdout {holdout!r} holds out {held.sum()} of {len(runs)} runs "
                             f"({what}); leave at least 5 runs to fit and 1 to predict.")
    return runs.resample(np.flatnonzero(~held)), runs.resample(np.flatnonzero(held))


def backtest(data, *, holdout: str = "top-budgets:1", law: Any = "chinchilla",
             method: str = "huber", group: str | None = None, test=None, seed: int = 0,
             num_draws: int = 2000, prior=None, levels=LEVELS, budgets=None,
             **fit_options) -> Backtest:
    """Fit on all but the held-out runs, predict those, and score the predictions.

    Parameters
    ----------
    data : :class:`~bayescale.data.runs.Runs`, or anything :func:`~bayescale.load_runs`
        takes (a registered dataset name, a CSV path, a DataFrame).
    holdout : ``"top-budgets:K"``, ``"above:C"`` or ``"split"`` (see the module docstring).
    law : the law to fit; method : ``"huber"`` (default, coarse grid, fast), ``"bootstrap"``,
        ``"bayes"`` or ``"huber_mle"`` (through :func:`bayescale.fit`, with ``fit_options``).
    group : the group to backtest, for multi-group datasets.
    test : held-out runs for ``holdout="split"`` when ``data`` is not a registered name.
    prior : the extrapolation-error prior (default
        :data:`~bayescale.estimators.extrapolation.DEFAULT_PRIOR`).
    budgets : for ``"top-budgets:K"``, each run's compute budget label (e.g. a nominal
        budget column; :func:`bayescale.estimators.isoflop.budget_labels` orders them by
        compute), instead of budgets detected as clusters of ``6 N D``.

    Returns
    -------
    Backtest
    """
    from bayescale.data.runs import Runs, load_runs

    law = get_law(law)
    runs = data if isinstance(data, Runs) else load_runs(data, group=group) \
        if group is not None else load_runs(data)
    train, test = _split(runs, data, holdout, group, test, budgets)
    if method == "huber" and not fit_options:
        theta, model = extrapolation.fit_and_estimate(train, law, prior=prior)
        fitted = ScalingFit(method="huber", params=extrapolation.theta_params(law, theta),
                            runs=train, info={"starts": "coarse grid",
                                              "theta": dict(zip(law.coords, map(float, theta)))})
    else:
        fitted = fit_runs(train, method=method, law=law, seed=seed, **fit_options)
        # a shrunk fit's error model is learned from refits with the same pull
        model = extrapolation.estimate(train, law, prior=prior,
                                       shrink=float(fit_options.get("shrink") or 0.0))
    U = test.U if "U" in law.inputs else None
    tables, summaries = {}, {}
    for structural in ("auto", "none"):
        pred = predict(fitted, test.N, test.D, U, structural=structural, num_draws=num_draws,
                       seed=seed, model=model)
        table, summary = score(pred.draws, np.asarray(test.loss, float), levels)
        table.insert(0, "extrapolation_decades", pred.extrapolation_decades)
        table.insert(0, "D", test.D)
        table.insert(0, "N", test.N)
        tables[structural], summaries[structural] = table, summary
    info = {"law": law.name, "method": method, "n_train": len(train),
            "isoflop": isoflop_check(fitted, test),
            "train_C_max": float(np.max(6.0 * train.N * train.D)),
            "mean_decades": float(np.mean(tables["auto"]["extrapolation_decades"])),
            "extrapolation": model.summary(), "num_draws": int(num_draws), "seed": int(seed)}
    if group is not None:
        info["group"] = group
    return Backtest(holdout=str(holdout), fit=fitted, test=test, tables=tables,
                    summaries=summaries, info=info)
