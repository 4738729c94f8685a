"""Predictive draws of the loss at new points, for any fit and law.

:func:`predict` (also ``ScalingFit.predict``) combines three sources of uncertainty, each
drawn per predictive draw on log loss:

1. **the parameters**: the fit's posterior draws or bootstrap resamples (a point estimate is
   one draw), evaluated through the law's kernel;
2. **observation noise**: for a Bayesian fit, the posterior's ``sigma`` (and ``nu``) draws
   under the fit's likelihood (``fit.info["likelihood"]``: Student-t, normal or Huber); for a
   point or bootstrap fit, a normal whose scale is the robust residual scale of the fit
   (``1.4826 * MAD`` of the log-loss residuals of the median parameters on the fitted runs,
   :func:`bayescale.estimators.extrapolation.robust_scale`);
3. **the extrapolation error** (``structural="auto"``, the default): the discrepancy of
   :mod:`bayescale.estimators.extrapolation`, learned by leave-future-out refits inside the
   fitted runs and shrunk toward a default learned across published datasets; zero inside
   the data, growing with the decades beyond it. ``structural="none"`` keeps the in-model
   predictive (1 and 2 only).

A published law (``bayescale.published(NAME)``) has no runs: it has neither observation
noise nor a distance to the data, and its prediction says so in ``notes``.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import numpy as np
import pandas as pd

from bayescale._util import check_level, to_jsonable
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation
from bayescale.laws.registry import log_loss

__all__ = ["Prediction", "predict", "LEVELS", "STRUCTURAL", "RUN_EFFECTS"]

LEVELS = (0.5, 0.8, 0.9, 0.95)
STRUCTURAL = ("auto", "none")
RUN_EFFECTS = ("new", "shared", "none")

# extrapolation models already estimated, per fit (ScalingFit compares by identity)
_MODELS: "weakref.WeakKeyDictionary[Any, extrapolation.ExtrapolationModel]" = \
    weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predictive draws of the final loss at points ``(N, D[, U])``.

    Attributes
    ----------
    N, D : arrays (n,); U : array (n,) or None.
    draws : array (num_draws, n) of loss (nats/token).
    extrapolation_decades : array (n,), decades beyond the fitted runs (0 inside; NaN for a
        published law, whose runs are not known).
    structural : ``"auto"`` (with the extrapolation error) or ``"none"`` (in-model).
    notes : what the prediction could not include, in words.
    extrapolation : the extrapolation model's summary (``tau``, ``bias``, ...), or None.
    run_effect : for a fit with per-run offsets, ``{"included", "kind", "tau_run_median",
        "runs"}`` (``included``: a new run's offset is in the draws); None otherwise.
    """

    N: np.ndarray
    D: np.ndarray
    U: np.ndarray | None
    draws: np.ndarray
    extrapolation_decades: np.ndarray
    structural: str
    notes: tuple[str, ...] = ()
    extrapolation: dict | None = None
    run_effect: dict | None = None

    @property
    def median(self) -> np.ndarray:
        return np.median(self.draws, axis=0)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` interval per point (equal-tailed quantiles of the draws)."""
        level = check_level(level)
        lo, hi = np.quantile(self.draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return lo, hi

    def intervals(self, levels=LEVELS) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        return {float(a): self.interval(a) for a in levels}

    def summary(self, levels=LEVELS) -> pd.DataFrame:
        """One row per point: N, D (U), median, the interval bounds, decades beyond."""
        table = {"N": self.N, "D": self.D}
        if self.U is not None:
            table["U"] = self.U
        table["median"] = self.median
        for a, (lo, hi) in self.intervals(levels).items():
            table[f"lower_{a:g}"], table[f"upper_{a:g}"] = lo, hi
        table["extrapolation_decades"] = self.extrapolation_decades
        frame = pd.DataFrame(table)
        frame.attrs.update(notes=list(self.notes), run_effect=self.run_effect)
        return frame

    def to_dict(self, levels=LEVELS) -> dict:
        """``{"points": [{"N", "D", "median", "intervals": {"0.5": [lo, hi], ...},
        "extrapolation_decades"}], "structural", "notes", "extrapolation", "run_effect"}``."""
        ivals = self.intervals(levels)
        med = self.median
        points = []
        for i in range(len(self.N)):
            pt = {"N": float(self.N[i]), "D": float(self.D[i])}
            if self.U is not None:
                pt["U"] = float(self.U[i])
            pt["median"] = float(med[i])
            pt["intervals"] = {f"{a:g}": [float(lo[i]), float(hi[i])]
                               for a, (lo, hi) in ivals.items()}
            pt["extrapolation_decades"] = float(self.extrapolation_decades[i])
            points.append(pt)
        return to_jsonable({"points": points, "structural": self.structural,
                            "num_draws": int(self.draws.shape[0]), "notes": list(self.notes),
                            "extrapolation": self.extrapolation,
                            "run_effect": self.run_effect})


def _points(name: str, x, n: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(x, dtype=float))
    if arr.ndim != 1 or (n is not None and arr.size not in (1, n)):
        raise BayescaleError(f"{name} must be a number or a 1-D array matching N; got shape "
                             f"{np.shape(x)}.")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise BayescaleError(f"{name} must be positive and finite; got {arr[~(np.isfinite(arr) & (arr > 0))][:3]}.")
    return arr


def _noise(fit, num: int, n: int, rng: np.random.Generator, median_params) -> tuple[np.ndarray, str | None]:
    """Observation-noise draws (num, n) on log loss, and a note if there is none."""
    idata = fit.idata
    post = getattr(idata, "posterior", None) if idata is not None else None
    if post is not None and "sigma" in post:
        sigma = np.asarray(post["sigma"]).reshape(-1)
        pick = rng.integers(0, sigma.size, num)
        sigma = sigma[pick][:, None]
        likelihood = fit.info.get("likelihood", "student_t")
        if likelihood == "student_t":
            if "nu" in post:
                nu = np.asarray(post["nu"]).reshape(-1)[pick][:, None]
            else:
                from bayescale.estimators.priors import fixed_nu

                nu = fixed_nu(fit.info)
            return sigma * rng.standard_t(nu, (num, n)), None
        if likelihood == "huber":
            import jax

            from bayescale.estimators.likelihoods import Huber
            from bayescale.estimators.priors import HUBER_DELTA

            key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
            z = np.asarray(Huber(0.0, 1.0, delta=HUBER_DELTA).sample(key, (num, n)))
            return sigma * z, None
        return sigma * rng.standard_normal((num, n)), None
    if fit.runs is None:
        return np.zeros((num, n)), ("a published law has no runs: the prediction has no "
                                    "observation noise")
    args = [fit.runs.N, fit.runs.D] + ([fit.runs.U] if "U" in fit.law.inputs else [])
    resid = fit.runs.log_loss - np.asarray(log_loss(median_params, *args))
    scale = extrapolation.robust_scale(resid)
    return scale * rng.standard_normal((num, n)), None


def _run_offsets(fit, pick: np.ndarray, num: int, n: int, rng: np.random.Generator,
                 kind: str) -> tuple[np.ndarray | None, dict | None, str | None]:
    """A new run's offset in log loss, ``(num, n)`` draws (or None), the ``run_effect``
    record and a note; ``tau_run`` is taken from the posterior draws ``pick`` (those of the
    parameters)."""
    effects = (fit.info or {}).get("run_effects")
    post = getattr(fit.idata, "posterior", None) if fit.idata is not None else None
    if post is None or "tau_run" not in post:
        if effects:
            return None, None, ("the fit has per-run offsets but no tau_run draws (no "
                                "posterior): a new run's offset could not be included")
        return None, None, None
    tau = np.asarray(post["tau_run"], dtype=float).reshape(-1)
    if tau.size != fit.num_draws:  # parameters thinned or replaced: their joint is lost
        raise BayescaleError(
            f"the fit's tau_run has {tau.size} posterior draws but its parameters "
            f"{fit.num_draws}; predict with run_effect='none', or from the fit as sampled.")
    tau = tau[pick]  # the same posterior draws as the parameters: their joint kept
    runs = (effects or {}).get("runs")
    record = {"included": kind != "none", "kind": kind,
              "tau_run_median": float(np.median(tau)), "runs": runs}
    learned = f" (learned from {runs} runs)" if runs else ""
    if kind == "none":
        return None, record, (
            f"the population-mean run (offset 0): no new run's offset is included, so the "
            f"interval leaves out the run-to-run spread tau_run (median "
            f"{record['tau_run_median']:.3g} in log loss{learned})")
    z = rng.standard_normal((num, n) if kind == "new" else (num, 1))
    which = ("one per point (each point a new run)" if kind == "new"
             else "one for all points (checkpoints of one new run)")
    return tau[:, None] * z, record, (
        f"a new training run's offset is included: Normal(0, tau_run) in log loss per "
        f"posterior draw, {which}; tau_run median {record['tau_run_median']:.3g}{learned}")


def _median_params(fit):
    if fit.is_point:
        return fit.params
    ref = fit.reference
    if ref is not None:
        return type(fit.params)(*(np.asarray(v, float) for v in ref))
    return type(fit.params)(*(np.median(np.asarray(v), axis=0) for v in fit.params))


def predict(fit, N, D, U=None, *, structural: str = "auto", num_draws: int = 4000,
            seed: int = 0, model: extrapolation.ExtrapolationModel | None = None,
            prior: extrapolation.ErrorPrior | None = None, run_effect: str = "new") -> Prediction:
    """Predictive draws of the loss of runs with ``N`` parameters trained on ``D`` tokens.

    Parameters
    ----------
    fit : a :class:`~bayescale.estimators.fit.ScalingFit` (any method, any law).
    N, D : numbers or arrays (n,); U : unique tokens, for laws that take them.
    structural : ``"auto"`` (default): include the extrapolation error learned from the
        fitted runs (:mod:`bayescale.estimators.extrapolation`); ``"none"``: the in-model
        predictive.
    num_draws : predictive draws (parameter draws are resampled to this many).
    seed : random seed.
    model : an :class:`~bayescale.estimators.extrapolation.ExtrapolationModel` to use
        instead of estimating one from ``fit.runs`` (estimates are cached per fit).
    prior : the prior of that estimate (default
        :data:`~bayescale.estimators.extrapolation.DEFAULT_PRIOR`).
    run_effect : for a Bayesian fit with per-run offsets (a run column): ``"new"``
        (default) adds a new run's offset ``Normal(0, tau_run)`` per draw and point,
        ``"shared"`` one per draw for all points (one new run's checkpoints), ``"none"``
        predicts the population-mean run. Ignored for fits without run offsets.

    Returns
    -------
    Prediction
    """
    if structural not in STRUCTURAL:
        raise BayescaleError(f"structural must be one of {', '.join(STRUCTURAL)}, got {structural!r}.")
    if run_effect not in RUN_EFFECTS:
        raise BayescaleError(f"run_effect must be one of {', '.join(RUN_EFFECTS)}, got "
                             f"{run_effect!r}.")
    if isinstance(num_draws, bool) or not isinstance(num_draws, (int, np.integer)) or num_draws < 2:
        raise BayescaleError(f"num_draws must be an integer >= 2, got {num_draws!r}.")
    N = _points("N", N)
    D = _points("D", D, N.size)
    N, D = np.broadcast_arrays(N, D)
    law = fit.law
    if "U" in law.inputs:
        if U is None:
            raise BayescaleError(f"the {law.name} law needs the unique tokens U of each point "
                                 f"(U=..., or --unique-tokens).")
        U = np.broadcast_to(_points("U", U, N.size), N.shape).astype(float)
    elif U is not None:
        raise BayescaleError(f"the {law.name} law takes N and D only; drop U.")
    rng = np.random.default_rng(seed)
    n = N.size
    params = type(fit.params)(*(np.atleast_1d(np.asarray(v, float)) for v in fit.params))
    P = params[0].shape[0]
    if P == num_draws:
        pick = np.arange(P)
    elif P > num_draws:
        pick = rng.choice(P, num_draws, replace=False)
    else:
        pick = rng.integers(0, P, num_draws)
    drawn = type(params)(*(v[pick][:, None] for v in params))
    args = [N, D] + ([U] if U is not None else [])
    log_mean = np.asarray(log_loss(drawn, *args), dtype=float)
    noise, note = _noise(fit, num_draws, n, rng, _median_params(fit))
    notes = [note] if note else []
    offsets, run_record, run_note = _run_offsets(fit, pick, num_draws, n, rng, run_effect)
    if offsets is not None:
        log_mean = log_mean + offsets
    if run_note:
        notes.append(run_note)
    if fit.runs is None:
        d = np.full(n, np.nan)  # unknown: JSON null
        notes.append("a published law has no runs: no distance to the data is known, so no "
                     "extrapolation error is included")
        summary = None
    else:
        d = extrapolation.decades_beyond(fit.runs.N, fit.runs.D, N, D)
        summary = None
        if structural == "auto":
            # a shrunk Huber fit (or bootstrap) is refitted with the same pull
            shrink = float((fit.info or {}).get("shrink") or 0.0)
            if model is None and prior is not None:
                model = extrapolation.estimate(fit.runs, law, prior=prior, shrink=shrink)
            elif model is None:
                model = _MODELS.get(fit)
                if model is None:
                    model = _MODELS[fit] = extrapolation.estimate(fit.runs, law, shrink=shrink)
            log_mean = log_mean + model.sample(d, rng, num_draws)
            summary = model.summary()
    draws = np.exp(log_mean + noise)
    return Prediction(N=N.astype(float), D=D.astype(float), U=U, draws=draws,
                      extrapolation_decades=d, structural=structural, notes=tuple(notes),
                      extrapolation=summary, run_effect=run_record)
