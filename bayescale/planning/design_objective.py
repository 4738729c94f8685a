"""The decision quantity of experiment design (:func:`bayescale.planning.design.next_runs`)
per posterior draw, how far beyond the fitted runs it lies (``log N_opt(C*)``, the log loss
at ``C*`` or the log loss at each point of a target region), and the honest interval of
``N_opt(C*)`` with the optimum error beyond the runs (:func:`with_optimum_error`)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from bayescale.estimators import extrapolation
from bayescale.laws.base import log_loss_theta
from bayescale.planning import design_score

__all__ = ["objective_draws", "objective_decades", "with_optimum_error"]


def objective_draws(fit, objective, target_budget, cost, unique_tokens, targets) -> np.ndarray:
    """The objective per draw of ``fit``, in log units (P,), or for a region of ``targets``
    (a frame from :func:`~bayescale.planning.design_candidates.candidate_frame`) the log
    loss at each of its points (P, T)."""
    if objective == "loss" and targets is not None:
        X = np.log(targets.to_numpy())
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
        return extrapolation.decades_beyond(fit.runs.N, fit.runs.D, targets.N.to_numpy(),
                                            targets.D.to_numpy())
    f = sub.frontier([target_budget], cost=cost, unique_tokens=unique_tokens)
    N, D = (np.nanmedian(np.asarray(v, float)[:, 0]) for v in (f.N_opt, f.D_opt))
    return float(extrapolation.decades_beyond(fit.runs.N, fit.runs.D, [N], [D])[0])


HONEST_DRAWS = 4000  # the honest intervals' Monte Carlo draws (the law's draws repeated)


def with_optimum_error(fit, model, g, before, after, extra, C_star, chosen, level, rng):
    """``before`` / ``after`` of ``log N_opt(C*)`` with the law's optimum error
    (:mod:`bayescale.estimators.optimum_error`) at the distance of ``C*`` beyond the runs,
    before and after the proposed runs (``chosen``: their 6ND) extend them; the spread of
    the law's draws shrinks as the design expects. The in-model pair is kept in the
    returned record (``info["optimum_error"]``)."""
    C_max = float(fit.runs.C.max())
    g = np.resize(g, max(len(g), HONEST_DRAWS))  # each draw paired with several errors
    d0 = max(math.log10(C_star / C_max), 0.0)
    d1 = max(math.log10(C_star / max([C_max, *chosen])), 0.0)
    shrink = math.sqrt(max(extra["var_after"], 0.0) / extra["var_before"])
    g_after = math.log(after["median"]) + shrink * (g - math.log(before["median"]))
    e = np.log(10.0) * model.shift([d0, d1], rng, len(g))
    flat = np.zeros((len(g), 1))
    record = {**model.summary(), "decades_before": d0, "decades_after": d1,
              "variance_per_decade2": model.variance_per_decade2(),
              "within": {"before": before, "after": after}}
    return (design_score.interval(g + e[:, 0], flat, level),
            design_score.interval(g_after + e[:, 1], flat, level), record)
