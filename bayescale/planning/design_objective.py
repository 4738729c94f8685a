"""The decision quantity of experiment design (:func:`bayescale.planning.design.next_runs`)
per posterior draw, and how far beyond the fitted runs it lies: ``log N_opt(C*)``, the log
loss at ``C*`` or the log loss at each point of a target region."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayescale.estimators import extrapolation
from bayescale.laws.base import log_loss_theta
from bayescale.planning.design_candidates import candidate_frame

__all__ = ["objective_draws", "objective_decades"]


def objective_draws(fit, objective, target_budget, cost, unique_tokens, targets) -> np.ndarray:
    """The objective per draw of ``fit``, in log units (P,), or for a region of ``targets``
    the log loss at each of its points (P, T)."""
    if objective == "loss" and targets is not None:
        t = candidate_frame(targets, fit.law, what="targets")
        X = np.log(t.to_numpy())
        theta = jnp.atleast_2d(fit.law.to_theta(fit.law.params_type(
            *(jnp.atleast_1d(jnp.asarray(v, float)) for v in fit.params))))
        return np.asarray(log_loss_theta(fit.law, theta, X))
    f = fit.frontier([target_budget], cost=cost, unique_tokens=unique_tokens)
    return np.log(np.asarray(f.N_opt if objective == "n_opt" else f.L_opt, float)[:, 0])


def objective_decades(fit, sub, targets, target_budget, cost, unique_tokens):
    """Decades beyond ``fit``'s runs of the loss objective's points: each target's (T,),
    or, without targets, the median over ``sub``'s draws of the compute-optimal point at
    ``C*`` (a scalar)."""
    if targets is not None:
        t = candidate_frame(targets, fit.law, what="targets")
        return extrapolation.decades_beyond(fit.runs.N, fit.runs.D, t.N.to_numpy(), t.D.to_numpy())
    f = sub.frontier([target_budget], cost=cost, unique_tokens=unique_tokens)
    N, D = (np.nanmedian(np.asarray(v, float)[:, 0]) for v in (f.N_opt, f.D_opt))
    return float(extrapolation.decades_beyond(fit.runs.N, fit.runs.D, [N], [D])[0])
