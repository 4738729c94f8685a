"""Safeguarded Newton iteration for a scalar root, batched under ``vmap`` (private).

Used by the frontier (the first-order condition in ``log N``), the serving-aware
optimum and the Bayes-optimal plan.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["safeguarded_newton", "default_rtol"]


class NewtonState(NamedTuple):
    x: Array
    lo: Array
    hi: Array
    slope: Array
    it: Array
    done: Array
    ok: Array


def safeguarded_newton(h: Callable, x0, lo, hi, *, max_iter: int, rtol, fused_iters: int = 2):
    """Root of a scalar ``h`` that is positive left of it and negative right of it.

    Newton steps while they land inside the current bracket ``[lo, hi]`` and the
    slope is negative (a minimum, not a maximum, of the objective whose derivative
    ``h`` is); bisection of the bracket otherwise. The bracket shrinks to ``x`` on
    the side ``h``'s sign says. A point is done, and stays put, once a Newton step
    is at most ``rtol (1 + |x|)`` (converged) or the bracket has shrunk to that
    width without one (not converged: the root is at an edge of the bracket, e.g.
    the optimum is on the boundary of a cost model's domain).

    The first ``fused_iters`` iterations are unrolled, so that under ``vmap`` they
    compile to one fused elementwise loop (typically all a solve needs); a
    ``while_loop`` then carries on, up to ``max_iter`` in all, while any point is
    not done.

    Returns ``(x, converged)``.
    """
    one = jnp.ones_like(x0)

    def body(s):
        hx, dh = jax.jvp(h, (s.x,), (one,))
        lo = jnp.where(hx > 0, jnp.maximum(s.lo, s.x), s.lo)
        hi = jnp.where(hx < 0, jnp.minimum(s.hi, s.x), s.hi)
        newton = s.x - hx / dh
        use_newton = (dh < 0) & jnp.isfinite(newton) & (newton >= lo) & (newton <= hi)
        x_new = jnp.where(use_newton, newton, 0.5 * (lo + hi))
        tol = rtol * (1 + jnp.abs(s.x))
        ok = (use_newton & (jnp.abs(newton - s.x) <= tol)) | (hx == 0)
        done = s.done | ok | (hi - lo <= tol)
        x_new = jnp.where(s.done | (hx == 0), s.x, x_new)
        return NewtonState(x_new, lo, hi, jnp.where(s.done, s.slope, dh), s.it + 1, done,
                            jnp.where(s.done, s.ok, ok))

    false = jnp.zeros((), bool)
    s = NewtonState(x0, lo, hi, jnp.full_like(x0, jnp.nan), jnp.zeros((), jnp.int32), false,
                     false)
    for _ in range(min(fused_iters, max_iter)):
        s = body(s)
    s = jax.lax.while_loop(lambda s: (s.it < max_iter) & ~s.done, body, s)
    return s.x, s.ok & jnp.isfinite(s.x)


def default_rtol(dtype) -> float:
    return 16.0 * float(jnp.finfo(dtype).eps)
