"""The inner solve of a cost model: ``log D`` such that ``cost(N, D) = C``, differentiably.

:class:`bayescale.planning.costs.Cost` uses :func:`solve_log_D` where a cost model has
no analytic inverse (a user's ``CostFn``): Newton's method in ``log D`` until the
cost matches ``C`` (at most ``num_iter`` steps), and derivatives with respect to ``log N`` and
``log C`` from the implicit function theorem on ``cost(N, D) = C`` (a hand-written
``custom_jvp`` rule), never from the iterations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from bayescale.laws.base import LOG6

__all__ = ["solve_log_D"]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 3))
def solve_log_D(log_cost: Callable, log_N, log_C, num_iter: int = 8) -> Array:
    """Solve ``log_cost(log_N, y) = log_C`` for ``y = log D`` (one point), differentiably.

    Newton's method in ``y`` from ``log(C / 6N)``, steps clipped to 5 nats, until the
    residual is a few ulps of ``log C`` or ``num_iter`` steps. Whether it converged is
    checked by the caller on the result (the frontier's ``converged`` requires
    ``cost(N, D) = C`` to rounding). Derivatives with respect to ``log_N`` and
    ``log_C`` come from the implicit function theorem (:func:`solve_log_D_jvp`), never
    from the iterations; the cost's own constants are not differentiated.
    """
    log_N = jnp.asarray(log_N)
    log_C = jnp.asarray(log_C)
    one = jnp.ones_like(log_C)
    # Stop once the cost matches C to a few ulps of log C: the start is exact for
    # 6ND and close for costs near it, so most solves take one step (under vmap the
    # loop runs while any point is unfinished, up to num_iter steps).
    tol = 4 * jnp.finfo(log_C.dtype).eps * (1 + jnp.abs(log_C))

    def step(s):
        it, y, _ = s
        r, dr = jax.jvp(lambda y_: log_cost(log_N, y_) - log_C, (y,), (one,))
        return it + 1, y - jnp.clip(r / dr, -5.0, 5.0), jnp.abs(r)

    def unfinished(s):
        it, _, err = s
        return (it < num_iter) & ~(err <= tol)

    y0 = log_C - LOG6 - log_N
    _, y, _ = jax.lax.while_loop(unfinished, step, (0, y0, jnp.full_like(y0, jnp.inf)))
    return y


@solve_log_D.defjvp
def solve_log_D_jvp(log_cost, num_iter, primals, tangents):
    # On cost(N, D) = C: c_N dlogN + c_D dlogD = dlogC, with c_* the partials of log C.
    # A hand-written rule, not jax.lax.custom_root: under jit, custom_root's tangent of
    # this solve came out NaN, and nested inside the frontier's own implicit derivative
    # it cost a jvp of a jvp of the solve per Newton step.
    log_N, log_C = primals
    dN, dC = tangents
    y = solve_log_D(log_cost, log_N, log_C, num_iter)
    c_N, c_D = jax.grad(log_cost, argnums=(0, 1))(jnp.asarray(log_N), y)
    return y, (dC - c_N * dN) / c_D
