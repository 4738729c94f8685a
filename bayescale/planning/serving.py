"""The serving-aware optimum: the cheapest model, training plus serving, for a target loss.

"Inference" in the LLM-serving sense (running the trained model on ``D_inf``
tokens), not statistical inference. Sardana et al. (2023) count a model's lifetime
cost as ``6 N D + 2 N D_inf`` FLOPs: training, then serving ``D_inf`` tokens at 2
FLOPs per parameter per token. :func:`serving_optimal` finds, for every draw, the
``(N, D)`` with ``L(N, D) = target`` minimising that cost; with ``D_inf = 0`` it is
the Chinchilla-optimal model for the target, and as ``D_inf`` grows the optimum moves
to smaller models trained on more tokens. (For the loss-minimising split of a fixed
total budget use ``frontier(..., cost="inference")``.)

Along the iso-loss curve of the Chinchilla law ``D(N)`` is explicit, and the
first-order condition in ``log N`` is solved by the safeguarded Newton iteration of
:mod:`bayescale._solvers.newton`, one compiled program for all draws and targets.

References
----------
N. Sardana, J. Portes, S. Doubov, J. Frankle, "Beyond Chinchilla-Optimal: Accounting
for Inference in Language Model Scaling Laws", arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale._solvers.newton import default_rtol, safeguarded_newton
from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import LawParams
from bayescale.laws.registry import law_of
from bayescale.planning._common import (
    Draw,
    as_draws,
    log_budgets,
    over_draws_and_budgets,
    require_chinchilla,
    summary_table,
)
from bayescale.planning.costs import LOG6

__all__ = ["ServingPlan", "serving_optimal", "InferencePlan", "inference_optimal"]


class _ChinchillaDraw(NamedTuple):
    a: Array
    b: Array
    e: Array
    alpha: Array
    beta: Array


def _serving_one(law, d: Draw, log_target, log_D_inf, *, max_iter: int):
    """Minimise ``6 N D + 2 N D_inf`` subject to ``L(N, D) = target`` (one draw of the
    Chinchilla law, whose iso-loss curve ``D(N)`` is explicit)."""
    d = _ChinchillaDraw(*(d.theta[i] for i in range(5)))
    target = jnp.exp(log_target)
    excess = target - jnp.exp(d.e)
    feasible = excess > 0
    log_excess = jnp.log(jnp.where(feasible, excess, 1.0))
    # On L = target: B D**-beta = excess - A N**-alpha, so N > (A / excess)**(1/alpha).
    x_min = (d.a - log_excess) / d.alpha
    # Chinchilla optimum for this loss (D_inf = 0): A N**-alpha = excess beta / (alpha + beta).
    x_chin = x_min + (jnp.log(d.alpha + d.beta) - jnp.log(d.beta)) / d.alpha

    def log_D(x):
        rest = excess - jnp.exp(d.a - d.alpha * x)
        return (d.b - jnp.log(rest)) / d.beta

    def log_total(x):
        return x + jnp.logaddexp(LOG6 + log_D(x), jnp.log(2.0) + log_D_inf)

    def h(x):  # minus the derivative of log total FLOPs: > 0 where N should grow
        return -jax.grad(log_total)(x)

    lo = x_min + 1e-6 * (1 + jnp.abs(x_min))
    hi = x_chin + 1.0
    rtol = default_rtol(x_min.dtype)
    x, ok = safeguarded_newton(h, x_chin, lo, hi, max_iter=max_iter, rtol=rtol)
    y = log_D(x)
    ok = ok & feasible & jnp.isfinite(y)
    log_C_train = LOG6 + x + y
    log_C_inf = jnp.log(2.0) + x + log_D_inf
    return x, y, log_C_train, log_C_inf, ok


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _serving_optimal(params, log_target, log_D_inf, *, max_iter: int):
    require_chinchilla(law_of(params), "serving_optimal")
    return over_draws_and_budgets(
        lambda law, d, lt: _serving_one(law, d, lt, log_D_inf, max_iter=max_iter), params,
        log_target)


class ServingPlan(NamedTuple):
    """Cheapest (training + serving FLOPs) model reaching each target loss.

    Leaves are arrays ``[draws x targets]`` except ``target_loss`` ``(target,)``.
    """

    N_opt: Array
    D_opt: Array
    C_train: Array
    C_inference: Array
    C_total: Array
    tokens_per_param: Array
    target_loss: np.ndarray
    converged: Array
    D_inf: float

    def summary(self, level: float = 0.9):
        """One row per target loss: median and central interval of each quantity."""
        qs = {k: getattr(self, k) for k in ("N_opt", "D_opt", "tokens_per_param", "C_train",
                                            "C_inference", "C_total")}
        table = summary_table(qs, "target_loss", self.target_loss, level)
        table["converged"] = np.asarray(self.converged).mean(axis=0)
        table.attrs["D_inf"] = self.D_inf
        return table


def serving_optimal(params: LawParams, target_loss: ArrayLike | Sequence[float], *,
                    inference_tokens: float, max_iter: int = 64) -> ServingPlan:
    """Serving-aware allocation for a target loss (Sardana et al. 2023, Sec. 3).

    Minimises the lifetime cost ``6 N D + 2 N D_inf`` over models with
    ``L(N, D) = target_loss``, for every draw. With ``D_inf = 0`` this is the
    Chinchilla-optimal model for that loss; as ``D_inf`` grows the optimum moves to
    smaller models trained on more tokens.

    Parameters
    ----------
    params : LawParams (scalars or ``(draw,)`` leaves).
    target_loss : scalar or sequence of losses (nats/token); each must exceed ``E``
        (draws where it does not are marked not converged, values NaN).
    inference_tokens : ``D_inf``, tokens served over the model's life.

    Returns
    -------
    ServingPlan

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> plan = serving_optimal(BESIROGLU_2024, 2.0, inference_tokens=2e12)
    >>> bool(plan.converged[0, 0]), round(float(plan.tokens_per_param[0, 0]))
    (True, 52)

    References
    ----------
    Sardana et al., arXiv:2401.00448 (2023).
    """
    D_inf = float(inference_tokens)
    if not (math.isfinite(D_inf) and D_inf >= 0):
        raise BayescaleError(f"inference_tokens must be a finite number >= 0, got {inference_tokens!r}.")
    targets = np.atleast_1d(np.asarray(target_loss, dtype=float))
    if targets.ndim != 1 or not np.all(np.isfinite(targets)) or np.any(targets <= 0):
        raise BayescaleError(f"target_loss must be positive finite losses, got {target_loss!r}.")
    params = as_draws(params)
    # -inf for D_inf = 0: logaddexp(log 6D, -inf) = log 6D, as it should.
    x, y, lct, lci, ok = _serving_optimal(params, log_budgets(targets), log_budgets(D_inf),
                                          max_iter=max_iter)
    N, D = jnp.exp(x), jnp.exp(y)
    nan = jnp.nan
    N, D = jnp.where(ok, N, nan), jnp.where(ok, D, nan)
    Ct, Ci = jnp.where(ok, jnp.exp(lct), nan), jnp.where(ok, jnp.exp(lci), nan)
    return ServingPlan(N, D, Ct, Ci, Ct + Ci, D / N, targets, ok, D_inf)


#: The names before the rename (issue 8): "inference" here means serving.
inference_optimal = serving_optimal
InferencePlan = ServingPlan
