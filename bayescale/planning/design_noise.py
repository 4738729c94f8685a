"""The noise a proposed run is measured with, in the design's update.

The design (:mod:`bayescale.planning.design`) treats the fit's draws as the posterior and
updates them with a new run's outcome as if the run were measured with noise ``sigma``.
That is right for a posterior whose width the noise explains. Bootstrap draws of a Huber
fit, or the draws of any fit whose residuals are heavier-tailed than its noise model, are
wider than the noise of the runs implies: each existing run was worth less to them than
``sigma`` says, and so will each new one be. Using the residual scale there promises more
narrowing than a refit gives (on Chinchilla, 240 runs, 400 bootstrap resamples: the
robust residual scale is 0.0049 in log loss, the draws behave as if it were 0.0113).

So the design measures a run with the larger of two scales:

* :func:`noise_scale`: the fit's own noise, the posterior median of ``sigma`` for a
  Bayesian fit, else the robust residual scale of the median parameters;
* :func:`implied_noise`: the noise the draws' spread implies. For a linear model with ``p``
  coordinates fitted by least squares to ``n`` runs, the variance of the fitted values
  summed over the runs is ``sigma**2 * trace(H) = p * sigma**2`` (``H``, the hat matrix),
  so ``sqrt(sum_i Var(mu_i) / p)`` recovers the ``sigma`` the draws behave as if they had
  (the sandwich variance of a misspecified or heavy-tailed fit shows up as a larger one). A
  prior or shrinkage makes the draws narrower and this smaller, and the fit's own noise
  then governs.

``tests/test_design_noise.py`` checks the linear-Gaussian identity and the design's expected
variance after its proposals against exact bootstrap refits.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

import jax.numpy as jnp

from bayescale.estimators import extrapolation
from bayescale.laws.base import log_loss_theta
from bayescale.laws.registry import log_loss

__all__ = ["noise_scale", "implied_noise", "effective_noise", "run_subset", "fit_noise", "candidate_noise", "MAX_RUNS"]


def noise_scale(fit) -> float:
    """Observation-noise sd of log loss: the posterior median ``sigma`` of a Bayesian fit,
    else the robust residual scale of the median parameters on the fitted runs."""
    post = getattr(fit.idata, "posterior", None) if fit.idata is not None else None
    if post is not None and "sigma" in post:
        return float(np.median(np.asarray(post["sigma"])))
    med = type(fit.params)(*(np.median(np.asarray(v), axis=0) for v in fit.params))
    args = [fit.runs.N, fit.runs.D] + ([fit.runs.U] if "U" in fit.law.inputs else [])
    return extrapolation.robust_scale(fit.runs.log_loss - np.asarray(log_loss(med, *args)))


MAX_RUNS = 2000  # runs the sum is estimated from (evenly spaced; scaled to all of them)


def run_subset(num_runs: int, max_runs: int = MAX_RUNS) -> np.ndarray:
    """Indices of at most ``max_runs`` of ``num_runs`` runs, evenly spaced: the sum over
    runs in :func:`implied_noise` is estimated from them (a 200,000-run sweep would
    otherwise need draws x runs values)."""
    if num_runs <= max_runs:
        return np.arange(num_runs)
    return np.unique(np.linspace(0, num_runs - 1, max_runs).round().astype(int))


def implied_noise(mu_runs: ArrayLike, num_coords: int, num_runs: int | None = None) -> float:
    """The noise sd the draws behave as if they had: ``sqrt(sum_i Var(mu_i) / p)``.

    ``mu_runs``: ``(draws, runs)``, each draw's log loss at the fitted runs, or at a subset
    of them (:func:`run_subset`) standing for ``num_runs`` runs; ``num_coords``: ``p``, the
    law's free coordinates. Draws with a non-finite value are left out."""
    mu = np.asarray(mu_runs, float)
    mu = mu[np.all(np.isfinite(mu), axis=1)]
    if mu.shape[0] < 2 or num_coords < 1 or mu.shape[1] == 0:
        return 0.0
    scale = (num_runs if num_runs is not None else mu.shape[1]) / mu.shape[1]
    return float(np.sqrt(scale * np.sum(np.var(mu, axis=0, ddof=1)) / num_coords))


def effective_noise(residual_scale: float, mu_runs: ArrayLike, num_coords: int,
                    num_runs: int | None = None, floor: float = 1e-4) -> float:
    """The noise the design measures a new run with: the larger of the fit's own
    (``residual_scale``) and :func:`implied_noise`, at least ``floor``."""
    residual = float(residual_scale) if np.isfinite(residual_scale) else 0.0
    return max(residual, implied_noise(mu_runs, num_coords, num_runs), floor)


def fit_noise(fit, theta) -> tuple[float, dict[str, float]]:
    """The noise the design measures a new run with for ``fit`` whose draws (in the law's
    coordinates) are ``theta`` ``(draws, p)``: :func:`effective_noise` of the fit's own
    (:func:`noise_scale`) and the draws' (:func:`implied_noise` at up to :data:`MAX_RUNS`
    of the runs), and both, as ``{"residual", "implied_by_draws"}``."""
    theta = np.atleast_2d(np.asarray(theta, float))
    some = run_subset(len(fit.runs))
    X = np.log(np.column_stack([np.asarray(getattr(fit.runs, v), float)[some]
                                for v in fit.law.inputs]))
    mu = np.asarray(log_loss_theta(fit.law, jnp.asarray(theta), jnp.asarray(X)), float)
    residual = noise_scale(fit)
    implied = implied_noise(mu, theta.shape[1], len(fit.runs))
    sigma = effective_noise(residual, mu, theta.shape[1], len(fit.runs))
    return sigma, {"residual": residual, "implied_by_draws": implied}


def candidate_noise(sigma: float, tau: float, d_below: ArrayLike) -> np.ndarray:
    """Each candidate's noise sd: ``sqrt(sigma**2 + (tau d_below)**2)``, ``d_below`` its
    decades below the fitted runs (:func:`.design_candidates.decades_below`), ``tau`` the
    extrapolation error's sd per decade. Below the data the law's error is counted as the
    run's own: it tells nothing of the shared miss beyond the data."""
    return np.sqrt(float(sigma) ** 2 + (float(tau) * np.asarray(d_below, float)) ** 2)
