"""Comparing laws on one dataset: PSIS-LOO with stacking weights, parameters, and the
allocation each law implies at a reference budget.

>>> from bayescale.report.law_comparison import compare_laws
>>> table = compare_laws(load_runs("chinchilla", exclude_top=5),  # doctest: +SKIP
...                      ["chinchilla", "kaplan"])
>>> table = compare_laws(load_runs("data_constrained"),  # doctest: +SKIP
...                      ["chinchilla", "data_constrained"], unique_tokens=25e9)

A law whose inputs include the unique-token count (``data_constrained``) has an allocation
that depends on the unique-token budget ``U``: ``unique_tokens=`` is then required (there
is no default; :class:`~bayescale.errors.BayescaleError` before anything is fitted), as
for ``ScalingFit.frontier`` and ``bayescale compare --law data_constrained``.

References
----------
A. Vehtari, A. Gelman, J. Gabry, "Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC", Statistics and Computing 27 (2017).
Y. Yao, A. Vehtari, D. Simpson, A. Gelman, "Using stacking to average Bayesian predictive
distributions", Bayesian Analysis 13 (2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale._util import as_budgets, median_interval, to_jsonable
from bayescale.data.runs import Runs, load_runs
from bayescale.errors import BayescaleError
from bayescale.estimators.fit import ScalingFit, fit
from bayescale.estimators.loo import elpd_difference, psis_loo
from bayescale.estimators.stacking import PARETO_K_MAX, stacking_weights
from bayescale.laws.registry import get_law

__all__ = ["LawComparison", "compare_laws"]


class LawComparison:
    """The result of :func:`compare_laws`: ``table`` (one row per law), ``fits`` by law,
    and ``to_dict()`` for JSON."""

    def __init__(self, table: pd.DataFrame, fits: dict[str, ScalingFit], budget: float,
                 notes: tuple[str, ...], unique_tokens: float | None = None):
        self.table = table
        self.fits = fits
        self.budget = budget
        self.notes = notes
        self.unique_tokens = unique_tokens

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for law, row in self.table.iterrows():
            fit_ = self.fits[law]
            rows.append({"law": law, **{k: row[k] for k in self.table.columns},
                         "params": fit_.point_estimate()})
        return to_jsonable({"budget": self.budget, "unique_tokens": self.unique_tokens,
                            "laws": rows, "notes": list(self.notes)})


def compare_laws(runs: Runs | Any, laws: Sequence[str] = ("chinchilla", "kaplan"), *,
                 budget: float | None = None, unique_tokens: float | None = None,
                 seed: int = 0, level: float = 0.9, **options) -> LawComparison:
    """Fit each law to ``runs`` with NUTS and compare them side by side.

    Parameters
    ----------
    runs : runs, or anything :func:`~bayescale.load_runs` takes.
    laws : law names (at least two).
    budget : reference compute budget for N_opt, D_opt and tokens per parameter
        (default 100 times the largest run's compute).
    unique_tokens : the unique-token budget ``U`` of the allocation at ``budget``, for laws
        whose inputs include it (``data_constrained``); required when one of ``laws`` does
        (no default: N_opt depends strongly on it), refused when none does. Checked before
        anything is fitted.
    seed, options : passed to :func:`bayescale.fit` (``method="bayes"``).

    Returns
    -------
    LawComparison
        ``table`` has, per law: ``elpd_loo``, ``se``, ``p_loo``, ``elpd_diff``, ``dse``
        (as ``arviz.compare`` computes them), ``weight`` (stacking), ``pareto_k_bad`` (runs with
        k > 0.7; of the subsample's rows for subsampled LOO), ``N_opt``, ``D_opt``,
        ``tokens_per_param`` (medians at ``budget``) and their ``level`` intervals. Fits
        that subsampled their rows (many rows, HMCECS) are compared by subsampled PSIS-LOO
        (:mod:`bayescale.estimators.loo`; the same rows for every law): then
        ``subsampling_se`` too, and a note.
    """
    if not isinstance(runs, Runs):
        runs = load_runs(runs)
    laws = list(dict.fromkeys(laws))
    if len(laws) < 2:
        raise BayescaleError(f"compare at least two laws, got {laws}.")
    C = float(as_budgets(100 * float(runs.C.max()) if budget is None else budget)[0])
    with_u = [name for name in laws if "U" in get_law(name).inputs]
    unique_tokens = _check_unique_tokens(unique_tokens, with_u, runs)
    fits, notes = {}, []
    for name in laws:
        fits[name] = fit(runs, method="bayes", law=name, seed=seed, level=level, **options)
    # fits that subsampled their rows (HMCECS) recorded no pointwise log-likelihood: every
    # law's LOO then from the draws on the same rows (a subsample of them when there are many)
    thin = any("log_likelihood" not in f.idata.groups() for f in fits.values())
    loos = {name: psis_loo(fits[name], seed=seed, subsample=thin or None) for name in laws}
    table = _table_from_loos(loos, laws)
    m = len(loos[laws[0]].rows)
    if thin:
        notes.append("The fits subsampled their rows, so LOO was computed from the draws "
                     + (f"on {m} of {len(runs)} rows (Magnusson et al. 2019; subsampling_se is "
                        f"the error of estimating from them) and the stacking weights on "
                        f"those rows." if m < len(runs) else f"on all {m} rows."))
    table["pareto_k_bad"] = [int(np.sum(loos[n].pareto_k > PARETO_K_MAX)) for n in laws]
    for name in laws:
        if table.loc[name, "pareto_k_bad"]:
            among = f" (of the {m} with exact PSIS-LOO)" if m < len(runs) else ""
            notes.append(f"{name}: {table.loc[name, 'pareto_k_bad']} run(s){among} with Pareto "
                         f"k > {PARETO_K_MAX}; its LOO estimate is unreliable for them.")
        if fits[name].diagnostics is not None and not fits[name].diagnostics.ok:
            notes.append(f"{name}: the NUTS diagnostics failed; treat its row with care.")
    for q in ("N_opt", "D_opt", "tokens_per_param"):
        med, lo, hi = [], [], []
        for name in laws:
            extra = {"unique_tokens": unique_tokens} if name in with_u else {}
            f = fits[name].frontier([C], **extra)
            m, l, h = median_interval(np.asarray(getattr(f, q))[:, 0], level)
            med.append(float(m)), lo.append(float(l)), hi.append(float(h))
        table[q], table[f"{q}_lower"], table[f"{q}_upper"] = med, lo, hi
    if with_u:
        notes.append(f"{', '.join(with_u)}: N_opt, D_opt and tokens_per_param at a unique-token "
                     f"budget U = {unique_tokens:.4g}; the other laws do not depend on U.")
    table = table.sort_values("elpd_loo", ascending=False)
    table.attrs["level"] = level
    table.attrs["unique_tokens"] = unique_tokens
    return LawComparison(table, fits, C, tuple(notes), unique_tokens)


def _table_from_loos(loos: dict, laws: list[str]) -> pd.DataFrame:
    """The comparison table from :func:`psis_loo` estimates (the same rows for every law):
    differences against the best law row by row (:func:`elpd_difference`, ``dse`` as
    :func:`arviz.compare`'s), stacking (Yao et al. 2018) on the rows with exact PSIS-LOO."""
    best = max(laws, key=lambda n: loos[n].elpd)
    table = pd.DataFrame(index=pd.Index(laws, name="law"))
    table["elpd_loo"] = [loos[n].elpd for n in laws]
    table["se"] = [loos[n].se for n in laws]
    table["p_loo"] = [loos[n].p_loo for n in laws]
    diffs = {n: elpd_difference(loos[best], loos[n]) for n in laws}
    table["elpd_diff"] = [diffs[n]["elpd_diff"] for n in laws]
    table["dse"] = [diffs[n]["dse"] for n in laws]
    table["weight"] = stacking_weights(np.column_stack([loos[n].elpd_i for n in laws]))
    if any(loo.subsampled for loo in loos.values()):
        table["subsampling_se"] = [loos[n].subsampling_se for n in laws]
    return table


def _check_unique_tokens(unique_tokens, with_u: list[str], runs: Runs) -> float | None:
    """``unique_tokens`` as a float, or a :class:`BayescaleError` saying what to pass."""
    if not with_u:
        if unique_tokens is not None:
            raise BayescaleError(
                "unique_tokens applies to laws with the unique-token count as an input "
                "(data_constrained); none of the laws compared has it.",
                cli="--unique-tokens applies to laws with the unique-token count as an input "
                    "(data_constrained); none of the laws in --laws has it.")
        return None
    if unique_tokens is None:
        U = getattr(runs, "U", None)
        hint = (f" (the runs' unique-token counts go up to {float(np.max(U)):.4g})"
                if U is not None and len(U) else "")
        what = ", ".join(with_u)
        raise BayescaleError(
            f"the compute-optimal allocation of {what} depends on the unique-token budget: "
            f"pass unique_tokens=U, e.g. unique_tokens=25e9{hint}.",
            cli=f"the compute-optimal allocation of {what} depends on the unique-token "
                f"budget: pass --unique-tokens U, e.g. --unique-tokens 25e9{hint}.")
    try:
        value = float(unique_tokens)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise BayescaleError(f"unique_tokens must be a positive number of tokens, "
                             f"got {unique_tokens!r}.")
    return value
