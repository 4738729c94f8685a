"""The compute-optimal allocation of one draw at one budget, solved numerically.

On the surface ``cost(N, D) = C`` (:mod:`bayescale.planning.costs`) write ``x = log N``
and ``y(x) = log D``. :func:`foc` is the first-order condition for a minimum of the loss
along the surface, in logs,

    h(x) = log(-dlogL/dlogN) - log(-dlogL/dlogD) - log(-dy/dx),

positive where the loss still falls with ``N``; :func:`numerical_one` solves ``h = 0``
by safeguarded Newton (:func:`bayescale._solvers.newton.safeguarded_newton`) inside a
bracket, differentiably by the implicit function theorem (``jax.lax.custom_root``).
:mod:`bayescale.planning.frontier` vmaps it over draws and budgets
(:func:`~bayescale.planning.frontier.solve_optimal`).

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
N. Sardana, J. Portes, S. Doubov, J. Frankle, "Beyond Chinchilla-Optimal: Accounting
for Inference in Language Model Scaling Laws", arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from bayescale._solvers.newton import default_rtol, safeguarded_newton
from bayescale.planning._common import Draw, closed_form_one, log_marginal_ratio
from bayescale.planning.costs import Cost

__all__ = ["INITS", "foc", "numerical_one"]

# Search bracket around the start: +-(10 + |log C|) nats of log N.
_BRACKET = 10.0
_LOG120 = math.log(120.0)
_LOG2 = math.log(2.0)


def foc(law, d: Draw, log_C, cost: Cost) -> Callable:
    """First-order condition ``h(x)`` for a minimum of ``L`` on ``cost(N, D) = C``, in
    ``x = log N``: the log of the ratio of the marginal gains in loss from N and from D,

        h(x) = log(-dlogL/dlogN) - log(-dlogL/dlogD) - log(-dlogD/dlogN |cost),

    positive left of the optimum and negative right of it. The ratio of the partial
    derivatives is the law's closed form where it gives one, else the kernel's autodiff
    (:func:`~bayescale.planning._common.log_marginal_ratio`); for the Chinchilla law ``h`` is
    ``log(alpha A N**-alpha) - log(beta B D**-beta) - log(-dy/dx)`` (``L`` cancels), a
    difference of logs that stays well conditioned in float32 even where ``L`` is
    flat (small exponents), unlike the derivative of ``log L`` itself.
    """
    def h(x):
        # y(x) and y'(x) on the surface; for a user cost, y' comes from the cost's
        # partial derivatives (implicit function theorem), not from differentiating
        # through the inner solve (see Cost.log_D_slope).
        y, dy = cost.log_D_slope(x, log_C)
        return log_marginal_ratio(law, d, x, y) - jnp.log(-dy)

    return h


#: The starts of the numerical solve (see :func:`bayescale.planning.frontier.solve_optimal`).
INITS = ("chinchilla", "tokens20")


def numerical_one(law, d: Draw, log_C, *, cost: Cost, max_iter: int, init: str,
                  fused_iters: int):
    """``(log N_opt, log D_opt, converged)`` for one draw and budget by safeguarded Newton."""
    dlo, dhi = cost.log_N_bounds(log_C)
    if init == "chinchilla" and law.closed_form is not None:  # this draw's 6ND optimum
        x0 = closed_form_one(law, d, log_C)[0]
    else:  # 20 tokens per parameter (C = 120 N**2): parameter-free
        x0 = 0.5 * (log_C - _LOG120)
    # No closer than a factor 2 to a finite edge of the model's domain.
    x0 = jnp.clip(x0, dlo + _LOG2, dhi - _LOG2)
    margin = 1e-6 * (1 + jnp.abs(log_C))
    # Bracket wide enough for every split with N, D >= 1 whatever the start.
    width = _BRACKET + jnp.abs(log_C)
    lo = jnp.maximum(x0 - width, dlo + margin)
    hi = jnp.minimum(x0 + width, dhi - margin)
    x0 = jnp.where((x0 > lo) & (x0 < hi), x0, 0.5 * (lo + hi))
    # The kernel's partial derivatives carry rounding of order eps * |log L| (the
    # log-sum-exp does not cancel exactly as a hand-written difference of log terms
    # would): stop once a Newton step is below 16x the default tolerance. Newton's
    # quadratic convergence leaves the iterate far closer than the stopping step.
    rtol = 16.0 * default_rtol(x0.dtype)

    def solve(h, x_init):
        x, ok = safeguarded_newton(h, x_init, lo, hi, max_iter=max_iter, rtol=rtol,
                                    fused_iters=fused_iters)
        return x, ok.astype(x.dtype)  # a float aux: custom_root cannot carry bool tangents

    def tangent_solve(g, v):
        return v / g(jnp.ones_like(v))

    h = foc(law, d, log_C, cost)
    x, ok = jax.lax.custom_root(h, x0, solve, tangent_solve, has_aux=True)
    y = cost.log_D(x, log_C)
    # The point must lie on the surface: this is the inner solve's status for a
    # user cost (a Newton solve for log D), and a no-op check for analytic ones.
    eps = jnp.finfo(x.dtype).eps
    on_surface = jnp.abs(cost.log_cost(x, y) - log_C) <= 64 * eps * (1 + jnp.abs(log_C))
    ok = (jax.lax.stop_gradient(ok) > 0) & jnp.isfinite(y) & (hi > lo) & on_surface
    return x, y, ok
