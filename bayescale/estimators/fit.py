"""One entry point, ``bayescale.fit``, and one result type for every estimator.

``fit(runs, method=...)`` returns a :class:`ScalingFit` whatever the method:

* ``"huber"``: Hoffmann et al. (2022) Approach 3 as replicated by Besiroglu et al.
  (2024): summed Huber loss (delta = 1e-3) of log-loss residuals, L-BFGS from a
  4500-point grid of starts; ``params`` are scalars.
* ``"huber_mle"``: the estimate Besiroglu et al. (2024) report: maximum likelihood
  under the Huber log-density with a free scale; ``params`` are scalars.
* ``"bootstrap"``: Besiroglu et al.'s bootstrap (runs resampled with replacement,
  each resample refitted from Hoffmann's published parameters); ``params`` are
  arrays over the usable resamples: degenerate ones (non-finite, unconverged,
  exponent > 5, ``E ~ 0``; :func:`bayescale.estimators.bootstrap.degenerate_resamples`)
  are left out, counted in ``info["dropped"]`` and warned about.
* ``"bayes"``: NumPyro NUTS posterior; ``params`` are arrays over draws and
  ``idata`` holds the ArviZ ``InferenceData``.

Downstream code (frontier, decisions, reports) treats them alike: a point estimate
is one draw.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data.runs import Runs, load_runs
from bayescale._util import (check_level, column_intervals, estimate_table, intervals_json,
                             to_jsonable)
from bayescale.errors import BayescaleError, ConvergenceError, ConvergenceWarning
from bayescale.laws.chinchilla import LawParams

__all__ = ["ScalingFit", "fit", "published", "METHODS", "PARAM_NAMES"]

METHODS = ("bayes", "huber", "huber_mle", "bootstrap", "isoflop", "envelope")
# Hoffmann et al.'s Approaches 2 and 1: they fit the allocation, not a loss law, and
# return an :class:`~bayescale.estimators.allocation.AllocationFit`.
ALLOCATION_METHODS = {"isoflop": ("bayescale.estimators.isoflop", "fit_isoflop"),
                      "envelope": ("bayescale.estimators.envelope", "fit_envelope")}
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
DERIVED_NAMES = ("a_opt", "b_opt")


def _as_numpy_params(params):
    return type(params)(*(np.asarray(v, dtype=float) for v in params))


def _derived(law_name: str, cols: dict) -> dict:
    """Allocation exponents ``a_opt, b_opt`` (Chinchilla law only: they are its
    closed-form exponents of N_opt and D_opt in C)."""
    if law_name != "chinchilla":
        return {}
    alpha, beta = cols["alpha"], cols["beta"]
    return {"a_opt": beta / (alpha + beta), "b_opt": alpha / (alpha + beta)}


@dataclasses.dataclass(frozen=True, eq=False)
class ScalingFit:
    """The result of :func:`fit`.

    Attributes
    ----------
    method : which estimator produced it (see :data:`METHODS`).
    params : :class:`~bayescale.laws.chinchilla.LawParams` of NumPy arrays: scalars for a point
        estimate, shape ``(draw,)`` for bootstrap resamples or posterior draws.
    runs : the :class:`~bayescale.data.runs.Runs` that were fitted (``None`` for a
        published law, see :func:`published`).
    level : default credible / confidence level of intervals.
    info : estimator details (objective, convergence, starts, timing, settings).
    idata : ``arviz.InferenceData`` for Bayesian fits, else ``None``.
    diagnostics : convergence diagnostics for Bayesian fits, else ``None``.
    reference : a point estimate shown beside the draws (for the bootstrap, the
        fit to the full data), or ``None``.
    """

    method: str
    params: LawParams
    runs: Runs
    level: float = 0.9
    info: dict = dataclasses.field(default_factory=dict)
    idata: Any = None
    diagnostics: Any = None
    reference: LawParams | None = None

    @property
    def law(self):
        """The :class:`~bayescale.laws.base.Law` fitted (from the parameters' type)."""
        from bayescale.laws.registry import law_of

        return law_of(self.params)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params._fields)

    @property
    def is_point(self) -> bool:
        """True for a point estimate (scalar parameters)."""
        return np.ndim(self.params[0]) == 0

    @property
    def num_draws(self) -> int:
        return 1 if self.is_point else int(np.shape(self.params[0])[0])

    def draws(self) -> pd.DataFrame:
        """Parameters per draw (one row for a point estimate), with the paper's symbols;
        Chinchilla fits add ``a_opt`` and ``b_opt``."""
        p = self.params
        cols = {name: np.atleast_1d(getattr(p, name)) for name in self.param_names}
        cols.update(_derived(self.law.name, cols))
        return pd.DataFrame(cols)

    def point_estimate(self) -> dict[str, float]:
        """The point estimate, or the median over draws."""
        d = self.draws()
        return {k: float(np.median(d[k])) for k in d.columns}

    def intervals(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Central (equal-tailed percentile) intervals at ``level`` over draws.

        Empty for a point estimate.
        """
        if self.is_point:
            return {}
        return column_intervals(self.draws(), self.level if level is None else level)

    def summary(self, level: float | None = None) -> pd.DataFrame:
        """One row per parameter: estimate (median over draws), interval bounds and sd.

        Bayesian fits add their per-parameter diagnostics (R-hat, bulk and tail ESS).
        """
        level = self.level if level is None else check_level(level)
        est = self.point_estimate()
        table = (estimate_table(est) if self.is_point
                 else estimate_table(est, self.draws(), self.intervals(level), level))
        if self.reference is not None:
            ref = _as_numpy_params(self.reference)
            refd = {n: float(getattr(ref, n)) for n in self.param_names}
            refd.update(_derived(self.law.name, refd))
            table["reference"] = pd.Series(refd)
        per_param = getattr(self.diagnostics, "per_param", None)
        if per_param is not None:
            table = table.join(per_param, how="left")
        return table

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """JSON-ready description: method, n_runs, params, intervals, info."""
        level = self.level if level is None else check_level(level)
        est = self.point_estimate()
        out: dict[str, Any] = {
            "method": self.method,
            "law": self.law.name,
            "n_runs": 0 if self.runs is None else len(self.runs),
            "params": {k: est[k] for k in self.param_names},
            "data": ({"source": self.info.get("source", "published")} if self.runs is None
                     else self.runs.describe()),
        }
        if self.law.name == "chinchilla":
            out["allocation"] = {k: est[k] for k in DERIVED_NAMES}
        if not self.is_point:
            out["level"] = level
            out["num_draws"] = self.num_draws
            out["intervals"] = intervals_json(self.intervals(level))
        if self.reference is not None:
            ref = _as_numpy_params(self.reference)
            out["reference"] = {n: float(getattr(ref, n)) for n in self.param_names}
        if self.diagnostics is not None and hasattr(self.diagnostics, "to_dict"):
            out["diagnostics"] = self.diagnostics.to_dict()
        out.update({k: v for k, v in self.info.items() if k not in out})
        return to_jsonable(out)

    def frontier(self, budgets, *, cost: Any = "train", **kwargs):
        """Compute-optimal allocation for every draw and budget; see :mod:`bayescale.planning.frontier`."""
        from bayescale.planning import frontier as _frontier

        return _frontier.frontier(self.params, budgets, cost=cost,
                                  data_C_range=None if self.runs is None else
                                  (float(self.runs.C.min()), float(self.runs.C.max())),
                                  **kwargs)

    def predict(self, N, D, U=None, **kwargs):
        """Predictive draws of the loss at new points (with observation noise and, by
        default, the extrapolation error); see :func:`bayescale.estimators.predict.predict`."""
        from bayescale.estimators.predict import predict as _predict

        return _predict(self, N, D, U, **kwargs)






# Settings each point-estimate method takes (``strict`` is handled here).
_POINT_OPTIONS = {
    "huber": ("delta", "starts", "max_iter", "polish", "num_slots", "screen_rows", "shrink"),
    "huber_mle": ("delta", "init", "max_iter"),
    "bootstrap": ("resamples", "delta", "init", "max_iter", "shrink", "starts"),
}


def _allocation_fn(method: str):
    import importlib

    module, name = ALLOCATION_METHODS[method]
    return getattr(importlib.import_module(module), name)


def _check_options(method: str, options: dict) -> None:
    if method in ALLOCATION_METHODS:
        import inspect

        valid = [k for k in inspect.signature(_allocation_fn(method)).parameters
                 if k not in ("runs", "seed", "level") and not k.startswith("_")]
    elif method == "bayes":
        import inspect

        from bayescale.estimators import nuts as inference

        valid = [k for k in inspect.signature(inference.sample_posterior).parameters
                 if k not in ("runs", "seed") and not k.startswith("_")]
    else:
        valid = list(_POINT_OPTIONS[method]) + ["strict"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise BayescaleError(
            f"method {method!r} takes no option {', '.join(map(repr, unknown))}; its options "
            f"are: {', '.join(valid)}.")


def _check_point_fit(method: str, params: LawParams, info: dict, strict: bool) -> None:
    """Warn (or with ``strict`` raise) when a point-estimate fit did not converge."""
    problems = []
    if not all(np.all(np.isfinite(np.asarray(v))) for v in params):
        problems.append("non-finite parameters")
    if method == "bootstrap":
        from bayescale.estimators.bootstrap import describe_dropped

        dropped = describe_dropped(info)
        if dropped:
            problems.append(dropped)
    elif not info.get("converged", True):
        problems.append(f"the best fit did not converge ({info.get('status')})")
    if not problems:
        return
    head = f"{method} fit: {'; '.join(problems)}. Try: "
    message = head + ("more iterations (max_iter=...), a wider grid of starts (starts=...), "
                      "or check the data for runs far off the law.")
    cli = head + ("check the data for runs far off the law and leave them out (--exclude-top "
                  "K, --query), or another method (--method bayes).")
    if strict:
        raise ConvergenceError(message, cli=cli)
    warnings.warn(ConvergenceWarning(message, cli=cli), stacklevel=3)


def fit(runs: Runs | pd.DataFrame | str | os.PathLike, *, method: str = "bayes",
        level: float = 0.9, seed: int = 0, law: Any = "chinchilla", **options) -> ScalingFit:
    """Fit a scaling law (default ``L(N, D) = E + A / N**alpha + B / D**beta``) to runs.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs`, or anything :func:`~bayescale.load_runs` takes.
    method : ``"bayes"`` (default), ``"huber"``, ``"huber_mle"`` or ``"bootstrap"`` (a
        loss law, Hoffmann et al.'s Approach 3), or ``"isoflop"`` (Approach 2) or
        ``"envelope"`` (Approach 1), which fit the allocation itself and return an
        :class:`~bayescale.estimators.allocation.AllocationFit`.
    law : a law's name (``"chinchilla"``, ``"kaplan"``, ``"data_constrained"``, or one
        registered with :func:`bayescale.laws.register`) or a
        :class:`~bayescale.laws.base.Law`. ``huber``, ``huber_mle`` and ``bootstrap``
        fit every law.
    level : default interval level for summaries (0.9).
    seed : random seed, a non-negative integer (bootstrap resampling, NUTS).
    **options : estimator settings, passed on:

        * huber: ``delta`` (1e-3), ``starts`` (array (k, 5) of ``a, b, e, alpha, beta``;
          default Hoffmann's 4500-point grid), ``max_iter``, ``polish``, ``num_slots``,
          ``shrink`` (0; ``b > 0`` pulls the fit toward the law's Normal priors, see
          :func:`bayescale.estimators.huber.fit_huber`);
        * huber_mle: ``delta``, ``init``, ``max_iter``;
        * bootstrap: ``resamples`` (4000), ``delta``, ``init`` (default: the full
          data's fit, with ``shrink`` the shrunk fit; on the registered ``chinchilla``
          data Hoffmann's unrounded published parameters, as Besiroglu et al.; see
          :func:`bayescale.estimators.bootstrap.resample_start`), ``max_iter``,
          ``shrink``, ``starts`` (the full-data fit's grid); runs with a ``run`` column
          (checkpoints of training runs, ``run_column=``) resample whole training runs;
        * bayes: see :func:`bayescale.estimators.nuts.sample_posterior`;
        * every method: ``strict`` (raise :class:`~bayescale.errors.ConvergenceError`
          instead of warning with :class:`~bayescale.errors.ConvergenceWarning`).

    Returns
    -------
    ScalingFit, or AllocationFit for ``"isoflop"`` and ``"envelope"``.

    Raises
    ------
    BayescaleError
        For an unknown method or option, a bad level or seed.

    References
    ----------
    Hoffmann et al. (2022), arXiv:2203.15556, Approach 3.
    Besiroglu et al. (2024), arXiv:2404.10102.
    """
    if method not in METHODS:
        raise BayescaleError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    level = check_level(level)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BayescaleError(f"seed must be a non-negative integer, got {seed!r}.")
    _check_options(method, options)
    if not isinstance(runs, Runs):
        runs = load_runs(runs)
    if method in ALLOCATION_METHODS:
        if law != "chinchilla":
            raise BayescaleError(
                f"method {method!r} (Hoffmann's Approach {2 if method == 'isoflop' else 1}) "
                f"fits the allocation N_opt(C), D_opt(C) directly and takes no law; drop law=.")
        return _allocation_fn(method)(runs, level=level, seed=int(seed), **options)
    from bayescale.laws.registry import get_law

    law = get_law(law)
    if method in ("huber", "huber_mle", "bootstrap"):
        from bayescale.estimators import bootstrap, huber, huber_mle

        fn = {"huber": huber.fit_huber, "huber_mle": huber_mle.fit_huber_mle,
              "bootstrap": bootstrap.fit_bootstrap}[method]
        kwargs = dict(options)
        strict = bool(kwargs.pop("strict", False))
        if method == "bootstrap":
            kwargs["seed"] = int(seed)
            if kwargs.get("init") is None:
                kwargs["init"] = bootstrap.start_for(runs.source)
            if getattr(runs, "run", None) is not None:  # checkpoints: resample whole runs
                kwargs["clusters"] = runs.run
        kwargs["law"] = law
        if "U" in law.inputs:
            if getattr(runs, "U", None) is None:
                raise BayescaleError(
                    f"the {law.name} law needs the unique tokens of every run: add a 'U' "
                    f"(or 'unique_tokens') column.")
            kwargs["log_U"] = np.log(np.asarray(runs.U, dtype=float))
        result = fn(runs.log_N, runs.log_D, runs.log_loss, **kwargs)
        params = _as_numpy_params(result.params)
        _check_point_fit(method, params, result.info, strict)
        return ScalingFit(method=method, params=params, runs=runs,
                          level=level, info=result.info,
                          reference=getattr(result, "reference", None))
    from bayescale.estimators import nuts as inference

    # Point a ConvergenceWarning at the caller of fit(), not at this line.
    posterior = inference.sample_posterior(runs, seed=int(seed), law=law, _stacklevel=3,
                                           **options)
    return ScalingFit(method=method, params=_as_numpy_params(posterior.params), runs=runs,
                      level=level, info=posterior.info, idata=posterior.idata,
                      diagnostics=posterior.diagnostics)


def published(name: str) -> ScalingFit:
    """A published law as a point-estimate fit (``method="published"``, no runs).

    Examples
    --------
    >>> from bayescale.estimators.fit import published
    >>> f = published("besiroglu2024")
    >>> round(float(f.frontier([5.76e23]).N_opt[0, 0]) / 1e9, 1)
    72.2
    """
    from bayescale.laws.published import get_published

    pub = get_published(name)
    return ScalingFit(method="published", params=_as_numpy_params(pub.params), runs=None,
                      info={"source": pub.name, "citation": pub.citation, "note": pub.note})
