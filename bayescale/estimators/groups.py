"""Groups side by side: one fit per group of ``Runs.group`` (corpora, evaluations ...).

``fit_groups(runs, method=...)`` fits each group on its own with :func:`bayescale.fit`
and returns a :class:`GroupFits`: the fits by group, a side-by-side :meth:`GroupFits.table`
(key parameters, the allocation exponents and ``N_opt`` at one reference budget, with
interval bounds) and :meth:`GroupFits.to_dict` (``{"groups": {value: fit.to_dict()}}``).
The figure is :func:`bayescale.report.groups.plot_groups`.

Groups are pooled only when asked: by default each group's law is estimated from its own
runs only; ``pool=True`` fits the hierarchical model of :mod:`bayescale.estimators.pooled`
(exponents partially pooled across groups) and keeps the separate fits beside it.

Compilation: the Huber grid fit (``method="huber"``) pads every group's runs to one
common size (the size bucket of the largest group, :mod:`bayescale.estimators.padding`)
with zero-weight rows, so all groups share one compiled program (the objective is the
same sum: padded rows add exactly zero). The other methods are run per group as
:func:`bayescale.fit` runs them; NUTS pads each group to its own size bucket, so groups
of similar sizes share its program too.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError, ConvergenceError, ConvergenceWarning
from bayescale.estimators import huber, pooled
from bayescale.estimators.fit import ScalingFit, fit
from bayescale.estimators.group_fits import GroupFits
from bayescale.estimators.padding import bucket_size, pad_rows

__all__ = ["GroupFits", "fit_groups", "MIN_RUNS"]

# Fewest runs a group needs: the loss laws have up to 5 parameters, the allocation
# methods need several budgets of several runs.
MIN_RUNS = {"huber": 6, "huber_mle": 6, "bootstrap": 6, "bayes": 6, "isoflop": 9,
            "envelope": 9}


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
               pool: bool = False, pool_coefficients: bool = False, **options) -> GroupFits:
    """Fit ``method`` to each group of ``runs`` on its own, or (``pool=True``) all groups
    in one hierarchical model.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` with ``group`` labels (e.g.
        ``load_runs("marin_isoflop", group="all")`` or ``load_runs(csv,
        group_column="corpus")``).
    method, law, level, seed, **options : as :func:`bayescale.fit`; the same for every
        group (each group gets the same ``seed``).
    reference_budget : FLOPs at which :meth:`GroupFits.table` gives ``N_opt`` (default 100
        times the largest run's compute over all groups).
    pool : fit the hierarchical model of :mod:`bayescale.estimators.pooled` (``method``
        ``"bayes"`` only): the law's exponents partially pooled across groups, every other
        parameter per group. The groups are also fitted on their own
        (:attr:`GroupFits.separate`), for :meth:`GroupFits.shrinkage` and
        :meth:`GroupFits.loo_comparison`. Options ``chains``, ``warmup``, ``draws``,
        ``likelihood`` and ``strict`` apply to both.
    pool_coefficients : with ``pool``, pool the law's centred coefficients too.

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
    if pool_coefficients and not pool:
        raise BayescaleError("pool_coefficients=True goes with pool=True.",
                             cli="--pool-coefficients goes with --pool.")
    if pool and method != "bayes":
        raise BayescaleError(f"pooling is a hierarchical Bayesian model: use method='bayes', "
                             f"not {method!r}.", cli=f"--pool goes with --method bayes, not "
                                                     f"--method {method}.")
    if pool and len(groups) < 2:
        raise BayescaleError(f"the runs of {runs.source} have one group; pooling needs two "
                             f"or more.", cli=f"the runs of {runs.source} have one group; "
                                              f"--pool needs two or more.")
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
    padded = ((method == "huber" and not set(options) - {"strict", "delta", "max_iter",
                                                         "shrink"}) or
              (method == "bootstrap" and not set(options) - {"strict", "delta", "max_iter",
                                                             "resamples", "shrink"}))
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
    if not pool:
        return GroupFits(fits=fits, method=method, level=float(level),
                         reference_budget=float(reference_budget), info=info)
    return _pooled_fits(groups, fits, law=law, level=float(level), seed=int(seed),
                        reference_budget=float(reference_budget), info=info,
                        pool_coefficients=bool(pool_coefficients), options=options)


def _pooled_fits(groups: dict[str, Runs], separate: dict[str, ScalingFit], *, law: Any,
                 level: float, seed: int, reference_budget: float, info: dict,
                 pool_coefficients: bool, options: dict) -> GroupFits:
    """The hierarchical model's fits of every group, with the separate ones beside them."""
    from bayescale.laws.registry import get_law

    law = get_law(law)
    taken = {"chains", "warmup", "draws", "likelihood", "strict", "target_accept", "retry"}
    unknown = set(options) - taken - {"progress"}
    if unknown:
        raise BayescaleError(f"options {sorted(unknown)} do not apply to the pooled model "
                             f"(it takes {', '.join(sorted(taken))}).")
    post = pooled.sample_pooled(groups, law=law, seed=seed,
                                pool_coefficients=pool_coefficients,
                                **{k: v for k, v in options.items() if k in taken})
    fits = {g: ScalingFit(method="bayes", params=post.params[g], runs=groups[g], level=level,
                          info={**post.info, "pooled": True}, diagnostics=post.diagnostics)
            for g in groups}
    summary = {k: {"median": float(np.median(v)),
                   "lower": float(np.quantile(v, (1 - level) / 2)),
                   "upper": float(np.quantile(v, (1 + level) / 2))}
               for k, v in post.hyper.items()}
    info = {**info, "pooled": {
        "parameters": [p for p in law.param_names
                       if p in pooled.pooled_coords(law, pool_coefficients)
                       or (pool_coefficients and p in ("A", "B"))],
        "population": summary, "settings": post.info,
        "diagnostics": post.diagnostics.to_dict(), "idata": post.idata}}
    return GroupFits(fits=fits, method="bayes", level=level,
                     reference_budget=reference_budget, info=info, separate=separate)


def _fit_huber_padded(runs: Runs, size: int, *, law: Any, level: float,
                      delta: float = huber.DELTA, max_iter: int = 1000,
                      strict: bool = False, shrink: float = 0.0) -> ScalingFit:
    """:func:`bayescale.estimators.huber.fit_huber` on runs padded to ``size`` rows with
    weight 0 (copies of the first run), so groups of different sizes share one compiled
    screen and one compiled polish. The objective is the same sum, so the fit is
    fit_huber's to rounding (tests check it against the unpadded fit). ``shrink`` as
    there (a traced value: every strength shares the program)."""
    shrink = huber.check_shrink(shrink)
    pull = shrink if shrink > 0 else None
    law, log_X, log_loss, weights = _padded(runs, size, law)
    starts = law.starts()
    slots = huber.default_num_slots(starts.shape[0])
    polish = min(32, starts.shape[0])
    t0 = time.perf_counter()
    with jax.enable_x64(False):
        res = huber.huber_solve(*(jnp.asarray(v, jnp.float32) for v in
                                  (starts, weights, log_X, log_loss)),
                                delta=float(delta), max_iter=int(max_iter), num_slots=slots,
                                ftol=huber.SCIPY_FTOL, law=law, shrink=pull)
        fun = np.asarray(res.fun, dtype=np.float64)
        fun = np.where(np.isfinite(fun), fun, np.inf)
        top = np.argsort(fun, kind="stable")[:polish]
        screened = np.asarray(res.x, dtype=np.float64)[top]
    with jax.enable_x64(True):
        x0, w64, lX, lL = huber.as_f64(screened, weights, log_X, log_loss)
        # The polish starts near the minimum: the objective at the grid starts is the
        # relative-gradient test's scale (as in fit_huber).
        typical = huber.objective_at(law, jnp.asarray(starts[top]), w64, lX, lL,
                                     float(delta), shrink)
        fine = huber.huber_solve(x0, w64, lX, lL,
                                 delta=float(delta), max_iter=int(max_iter),
                                 num_slots=polish, ftol=1e-14, gtol=1e-12, law=law,
                                 typical_f=typical, shrink=pull)
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
            "shrink": shrink, "num_starts": int(starts.shape[0]), "converged": converged,
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
                          max_iter: int = 1000, strict: bool = False,
                          shrink: float = 0.0) -> ScalingFit:
    """:func:`bayescale.estimators.bootstrap.fit_bootstrap` (same resamples for the same
    seed, same start, same ``shrink``) on runs padded to ``size`` rows with weight 0, so
    that groups share one compiled program. Degenerate resamples are left out as there."""
    from bayescale.estimators import bootstrap
    if int(resamples) != resamples or resamples < 2:
        raise BayescaleError(f"resamples must be an integer >= 2, got {resamples!r}.")
    ref = _fit_huber_padded(runs, size, law=law, level=level, delta=delta,
                            max_iter=max_iter, strict=strict, shrink=shrink)
    shrink = ref.info["shrink"]
    law, log_X, log_loss, _ = _padded(runs, size, law)
    init, start = bootstrap.resample_start(
        law, ref.params, shrink=shrink, init=bootstrap.start_for(runs.source),
        min_loss=float(np.exp(runs.log_loss.min())),
        reference_converged=bool(ref.info.get("converged", True)))
    n = len(runs)
    weights = bootstrap.bootstrap_weights(n, int(resamples), int(seed), runs.run)
    weights = np.pad(weights, ((0, 0), (0, log_X.shape[0] - n)))
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        theta0 = np.asarray(law.to_theta(type(init)(*(np.float64(v) for v in init))))
        x0 = jnp.broadcast_to(jnp.asarray(theta0), (int(resamples), law.num_coords))
        res = huber.huber_solve(x0, *huber.as_f64(weights, log_X, log_loss),
                                delta=float(delta), max_iter=int(max_iter),
                                num_slots=huber.default_num_slots(int(resamples)),
                                ftol=bootstrap.BOOTSTRAP_FTOL, law=law,
                                typical_f=ref.info["typical_objective"],
                                shrink=shrink if shrink > 0 else None)
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
            "dropped": dropped, "seed": int(seed), "delta": float(delta), "shrink": shrink,
            "init": dict(zip(law.coords, map(float, theta0))), "start": start,
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
