"""Groups side by side: one fit per group of ``Runs.group`` (corpora, evaluations ...).

``fit_groups(runs, method=...)`` fits each group on its own with :func:`bayescale.fit`
and returns a :class:`GroupFits`: the fits by group, a side-by-side :meth:`GroupFits.table`
(key parameters, the allocation exponents and ``N_opt`` at one reference budget, with
interval bounds) and :meth:`GroupFits.to_dict` (``{"groups": {value: fit.to_dict()}}``).
The figure is :func:`bayescale.report.groups.plot_groups`.

Groups are never pooled: each group's law is estimated from its own runs only. (A
hierarchical model with partial pooling is a separate, later feature.)

Compilation: the Huber grid fit (``method="huber"``) pads every group's runs to one
common size (the size bucket of the largest group, :mod:`bayescale.estimators.padding`)
with zero-weight rows, so all groups share one compiled program (the objective is the
same sum: padded rows add exactly zero). The other methods are run per group as
:func:`bayescale.fit` runs them; NUTS pads each group to its own size bucket, so groups
of similar sizes share its program too.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale._util import check_level, to_jsonable
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError, ConvergenceError, ConvergenceWarning
from bayescale.estimators import huber
from bayescale.estimators.fit import ScalingFit, fit
from bayescale.estimators.padding import bucket_size, pad_rows

__all__ = ["GroupFits", "fit_groups", "MIN_RUNS"]

# Fewest runs a group needs: the loss laws have up to 5 parameters, the allocation
# methods need several budgets of several runs.
MIN_RUNS = {"huber": 6, "huber_mle": 6, "bootstrap": 6, "bayes": 6, "isoflop": 9,
            "envelope": 9}


@dataclasses.dataclass(frozen=True, eq=False)
class GroupFits:
    """Fits of one method to each group of a set of runs.

    Attributes
    ----------
    fits : ``{group label (str): ScalingFit or AllocationFit}``, in the order the groups
        first appear in the runs.
    method : the estimator used for every group.
    level : default interval level.
    reference_budget : the compute (FLOPs) at which :meth:`table` gives ``N_opt``
        (default 100 times the largest run over all groups: the same budget for every
        group, so their ``N_opt`` compare).
    info : timings (``seconds`` per group) and settings.
    """

    fits: dict[str, Any]
    method: str
    level: float
    reference_budget: float
    info: dict = dataclasses.field(default_factory=dict)

    def table(self, level: float | None = None) -> pd.DataFrame:
        """One row per group: runs, the key parameters, ``a_opt, b_opt`` (or ``a, b`` for an
        allocation fit) and ``N_opt`` at :attr:`reference_budget`; each with ``_lower`` and
        ``_upper`` columns where the fit has draws (bootstrap, posterior)."""
        level = self.level if level is None else check_level(level)
        rows = {}
        for name, result in self.fits.items():
            est, ivals = result.point_estimate(), result.intervals(level)
            keys = [k for k in ("a", "b") if k in est] or \
                [k for k in ("alpha", "beta", "a_opt", "b_opt", "E") if k in est]
            row: dict[str, Any] = {"n_runs": len(result.runs)}
            for k in keys:
                row[k] = est[k]
                if k in ivals:
                    row[f"{k}_lower"], row[f"{k}_upper"] = ivals[k]
            N = self._N_opt(result)
            if N is not None:
                row["N_opt"] = float(np.median(N))
                if N.size > 1:
                    q = (1 - level) / 2
                    row["N_opt_lower"], row["N_opt_upper"] = (float(v) for v in
                                                              np.quantile(N, [q, 1 - q]))
            rows[name] = row
        table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("group")
        table.attrs.update(level=level, reference_budget=self.reference_budget)
        return table

    def _N_opt(self, result) -> np.ndarray | None:
        try:
            N = np.asarray(result.frontier([self.reference_budget]).N_opt, dtype=float)
        except BayescaleError:  # a law without a compute-optimal frontier
            return None
        N = N.reshape(-1)
        return N[np.isfinite(N)]

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """``{"groups": {group: fit.to_dict()}, "method", "level", "reference_budget",
        "table"}``: each group's object is exactly what one fit emits."""
        level = self.level if level is None else check_level(level)
        table = self.table(level)
        return to_jsonable({
            "groups": {k: f.to_dict(level) for k, f in self.fits.items()},
            "method": self.method,
            "level": level,
            "reference_budget": self.reference_budget,
            "table": {str(k): {c: v for c, v in row.items() if pd.notna(v)}
                      for k, row in table.to_dict(orient="index").items()},
            "info": self.info,
        })


def split_groups(runs: Runs) -> dict[str, Runs]:
    """``{group label: the runs of that group}``, labels as strings, in order of first
    appearance.

    Raises
    ------
    BayescaleError
        When the runs carry no group labels.
    """
    if runs.group is None:
        raise BayescaleError(
            f"the runs from {runs.source} have no group labels, so there is nothing to fit "
            "per group. Fix: name the column that holds them, load_runs(..., "
            "group_column='corpus'), or for a registered multi-group dataset load every "
            "group with load_runs(NAME, group='all').",
            cli=f"the runs from {runs.source} have no group labels. Fix: --group COLUMN (a "
                "column of the CSV), or --group all for a registered multi-group dataset.")
    labels = np.asarray([str(g) for g in runs.group])
    order = [str(g) for g in dict.fromkeys(labels)]
    return {g: runs.resample(np.flatnonzero(labels == g)) for g in order}


def fit_groups(runs: Runs, *, method: str = "bayes", law: Any = "chinchilla",
               level: float = 0.9, seed: int = 0, reference_budget: float | None = None,
               **options) -> GroupFits:
    """Fit ``method`` to each group of ``runs`` on its own.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` with ``group`` labels (e.g.
        ``load_runs("marin_isoflop", group="all")`` or ``load_runs(csv,
        group_column="corpus")``).
    method, law, level, seed, **options : as :func:`bayescale.fit`; the same for every
        group (each group gets the same ``seed``).
    reference_budget : FLOPs at which :meth:`GroupFits.table` gives ``N_opt`` (default 100
        times the largest run's compute over all groups).

    Returns
    -------
    GroupFits

    Raises
    ------
    BayescaleError
        When the runs have no group labels, or a group has too few runs to fit (the
        message names the group).
    """
    groups = split_groups(runs)
    need = MIN_RUNS.get(method, 6)
    small = {g: len(r) for g, r in groups.items() if len(r) < need}
    if small:
        listed = ", ".join(f"{g!r} ({n} runs)" for g, n in small.items())
        raise BayescaleError(
            f"group{'s' if len(small) > 1 else ''} {listed} of {runs.source} "
            f"{'have' if len(small) > 1 else 'has'} too few runs for method {method!r} "
            f"(at least {need}). Fix: leave {'them' if len(small) > 1 else 'it'} out (e.g. "
            f"query=) or fit the groups you can one at a time with load_runs(..., group=...).",
            cli=f"group{'s' if len(small) > 1 else ''} {listed} of {runs.source} "
                f"{'have' if len(small) > 1 else 'has'} too few runs for --method {method} "
                f"(at least {need}). Fix: drop them with --query, or fit one group with "
                "--select group=VALUE.")
    if reference_budget is None:
        reference_budget = 100.0 * float(runs.C.max())
    fits, seconds = {}, {}
    padded = ((method == "huber" and not set(options) - {"strict", "delta", "max_iter"}) or
              (method == "bootstrap" and not set(options) - {"strict", "delta", "max_iter",
                                                             "resamples"}))
    size = bucket_size(max(len(r) for r in groups.values()))
    for name, sub in groups.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if padded and method == "huber":
                    fits[name] = _fit_huber_padded(sub, size, law=law, level=level, **options)
                elif padded:
                    fits[name] = _fit_bootstrap_padded(sub, size, law=law, level=level,
                                                       seed=seed, **options)
                else:
                    fits[name] = fit(sub, method=method, law=law, level=level, seed=seed,
                                     **options)
            except BayescaleError as exc:  # say which group
                raise type(exc)(f"group {name!r}: {exc}",
                                cli=f"group {name!r}: {exc.cli_message}") from exc
        seconds[name] = time.perf_counter() - t0
        for w in caught:  # told again, naming the group
            _rewarn(w, f"group {name!r}: ")
    info = {"seconds": seconds, "seed": int(seed), "padded_to": size if padded else None}
    return GroupFits(fits=fits, method=method, level=float(level),
                     reference_budget=float(reference_budget), info=info)


def _fit_huber_padded(runs: Runs, size: int, *, law: Any, level: float,
                      delta: float = huber.DELTA, max_iter: int = 1000,
                      strict: bool = False) -> ScalingFit:
    """:func:`bayescale.estimators.huber.fit_huber` on runs padded to ``size`` rows with
    weight 0 (copies of the first run), so groups of different sizes share one compiled
    screen and one compiled polish. The objective is the same sum, so the fit is
    fit_huber's to rounding (tests check it against the unpadded fit)."""
    law, log_X, log_loss, weights = _padded(runs, size, law)
    starts = law.starts()
    slots = huber.default_num_slots(starts.shape[0])
    polish = min(32, starts.shape[0])
    t0 = time.perf_counter()
    with jax.enable_x64(False):
        res = huber.huber_solve(*(jnp.asarray(v, jnp.float32) for v in
                                  (starts, weights, log_X, log_loss)),
                                delta=float(delta), max_iter=int(max_iter), num_slots=slots,
                                ftol=huber.SCIPY_FTOL, law=law)
        fun = np.asarray(res.fun, dtype=np.float64)
        fun = np.where(np.isfinite(fun), fun, np.inf)
        top = np.argsort(fun, kind="stable")[:polish]
        screened = np.asarray(res.x, dtype=np.float64)[top]
    with jax.enable_x64(True):
        x0, w64, lX, lL = huber.as_f64(screened, weights, log_X, log_loss)
        # The polish starts near the minimum: the objective at the grid starts is the
        # relative-gradient test's scale (as in fit_huber).
        typical = jax.vmap(lambda t: huber.law_objective(t, w64, lX, lL, delta=float(delta),
                                                         law=law))(jnp.asarray(starts[top]))
        fine = huber.huber_solve(x0, w64, lX, lL,
                                 delta=float(delta), max_iter=int(max_iter),
                                 num_slots=polish, ftol=1e-14, gtol=1e-12, law=law,
                                 typical_f=typical)
        fine_fun = np.asarray(fine.fun)
        fine_fun = np.where(np.isfinite(fine_fun), fine_fun, np.inf)
        j = int(np.argmin(fine_fun))
        theta = np.asarray(fine.x[j])
        converged, status = bool(np.asarray(fine.converged)[j]), int(np.asarray(fine.status)[j])
    objective = float(fine_fun[j])
    params = huber.law_params(law, theta)
    params = type(params)(*(np.asarray(v, dtype=float) for v in params))
    info = {"objective": objective, "law": law.name,
            "theta": dict(zip(law.coords, map(float, theta))), "delta": float(delta),
            "num_starts": int(starts.shape[0]), "converged": converged,
            "status": huber.STATUS[status], "starts_status": huber.status_counts(res.status),
            "starts_near_best": int(np.sum(fun <= objective + 1e-8)),
            "padded_to": int(weights.size), "typical_objective": float(np.asarray(typical)[j]),
            "timing": {"total": time.perf_counter() - t0}}
    if not (converged and all(np.isfinite(v) for v in params)):
        message = (f"huber fit: the best fit did not converge "
                   f"({info['status']}). Check the group's runs for runs far off the law.")
        if strict:
            raise ConvergenceError(message)
        warnings.warn(ConvergenceWarning(message), stacklevel=3)
    return ScalingFit(method="huber", params=params, runs=runs, level=level, info=info)


def _rewarn(w: warnings.WarningMessage, prefix: str) -> None:
    """Warn again with ``prefix`` before the message (and its command-line form)."""
    message, category = w.message, w.category
    cli = getattr(message, "cli_message", None)
    if cli is not None:
        new = category(prefix + str(message), cli=prefix + cli)
    else:
        try:
            new = category(prefix + str(message))
        except TypeError:  # a warning class with other arguments: as it came
            new = message
    warnings.warn_explicit(new, category, w.filename, w.lineno)


def _padded(runs: Runs, size: int, law: Any):
    """``(law, log_X, log_loss, weights)`` with the runs padded to ``size`` rows: copies of
    the runs with weight 0."""
    from bayescale.laws.registry import get_law

    law = get_law(law)
    log_U = None
    if "U" in law.inputs:
        if runs.U is None:
            raise BayescaleError(f"the {law.name} law needs the unique tokens of every run: "
                                 "add a 'U' (or 'unique_tokens') column.")
        log_U = np.log(runs.U)
    log_X = huber.log_inputs(law, runs.log_N, runs.log_D, log_U)
    log_X, log_loss, mask = pad_rows(max(size, log_X.shape[0]), log_X, runs.log_loss)
    return law, log_X, log_loss, mask.astype(float)


def _fit_bootstrap_padded(runs: Runs, size: int, *, law: Any, level: float, seed: int,
                          resamples: int = 4000, delta: float = huber.DELTA,
                          max_iter: int = 1000, strict: bool = False) -> ScalingFit:
    """:func:`bayescale.estimators.bootstrap.fit_bootstrap` (same resamples for the same
    seed, same start) on runs padded to ``size`` rows with weight 0, so that groups share
    one compiled program. Degenerate resamples are left out as there."""
    from bayescale.estimators import bootstrap
    from bayescale.laws.chinchilla import HOFFMANN_2022_UNROUNDED, LAW as CHINCHILLA

    if int(resamples) != resamples or resamples < 2:
        raise BayescaleError(f"resamples must be an integer >= 2, got {resamples!r}.")
    ref = _fit_huber_padded(runs, size, law=law, level=level, delta=delta,
                            max_iter=max_iter, strict=strict)
    law, log_X, log_loss, _ = _padded(runs, size, law)
    init = HOFFMANN_2022_UNROUNDED if law is CHINCHILLA else ref.params
    n = len(runs)
    weights = bootstrap.bootstrap_weights(n, int(resamples), int(seed))
    weights = np.pad(weights, ((0, 0), (0, log_X.shape[0] - n)))
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        theta0 = np.asarray(law.to_theta(type(init)(*(np.float64(v) for v in init))))
        x0 = jnp.broadcast_to(jnp.asarray(theta0), (int(resamples), law.num_coords))
        res = huber.huber_solve(x0, *huber.as_f64(weights, log_X, log_loss),
                                delta=float(delta), max_iter=int(max_iter),
                                num_slots=huber.default_num_slots(int(resamples)),
                                ftol=bootstrap.BOOTSTRAP_FTOL, law=law,
                                typical_f=ref.info["typical_objective"])
        theta, converged = np.asarray(res.x), np.asarray(res.converged)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        params = huber.law_params(law, theta)
    bad, dropped = bootstrap.degenerate_resamples(law, params, converged,
                                                  float(np.exp(runs.log_loss.min())))
    if int(np.sum(~bad)) < 2:
        raise ConvergenceError(
            f"bootstrap: only {int(np.sum(~bad))} of "
            f"{int(resamples)} resamples gave a usable fit; its {n} runs do not identify the "
            f"{law.name} law. Fit it with method='bayes', or leave the group out.")
    kept = type(params)(*(np.asarray(v, dtype=float)[~bad] for v in params))
    info = {"law": law.name, "resamples": int(resamples), "num_kept": int(np.sum(~bad)),
            "dropped": dropped, "seed": int(seed), "delta": float(delta),
            "init": dict(zip(law.coords, map(float, theta0))),
            "converged_fraction": float(np.mean(converged)),
            "resamples_status": huber.status_counts(res.status),
            "padded_to": int(log_X.shape[0]), "timing": {"total": time.perf_counter() - t0}}
    problem = bootstrap.describe_dropped(info)
    if problem:  # as bayescale.fit tells it
        message = f"bootstrap fit: {problem}."
        if strict:
            raise ConvergenceError(message)
        warnings.warn(ConvergenceWarning(message), stacklevel=3)
    return ScalingFit(method="bootstrap", params=kept, runs=runs, level=level, info=info,
                      reference=ref.params)
