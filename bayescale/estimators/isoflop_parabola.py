"""One isoFLOP profile's parabola (Hoffmann et al.'s Approach 2,
:mod:`bayescale.estimators.isoflop`): Huber parabolas of log loss in ``log N`` for many
profiles and bootstrap weightings in one compiled program (:func:`parabola_fits`), and
whether a profile's parabola gives a compute-optimal size at all (:func:`profile_flag`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["parabola_fits", "profile_flag", "DELTA", "IRLS_STEPS"]

# Huber threshold on log-loss residuals: about 1.3 times the log-loss noise of published
# sweeps (sd 0.0075 on Chinchilla's runs, Besiroglu et al. 2024), Huber's classical
# 1.345 sigma (95% efficiency under normal noise). Hoffmann's Approach-3 value, 1e-3, is
# nearly least absolute deviations here: on synthetic sweeps it gave 60% wider bootstrap
# intervals of a at the same coverage.
DELTA = 1e-2
IRLS_STEPS = 40


def _bucket(n: int, minimum: int = 8) -> int:
    return max(minimum, 1 << int(np.ceil(np.log2(max(n, 1)))))


def _irls(x, y, w, delta):
    """Huber parabola ``y ~ c0 + c1 x + c2 x^2`` for one profile (IRLS from least squares).

    The normal equations come from weighted sums of the powers ``x^0..x^4`` and of ``y,
    x y, x^2 y``: under ``vmap`` over resamples these are one matrix product per step
    (resamples x runs times runs x 8) rather than a batch of 3 x 3 products, 5-10 times
    faster on CPU (misfitting_checkpoints' 15 profiles of up to 735 checkpoints)."""
    powers = jnp.stack([jnp.ones_like(x), x, x * x, x ** 3, x ** 4, y, x * y, x * x * y],
                       axis=-1)

    def solve(weights):
        m = weights @ powers
        A = jnp.stack([m[0:3], m[1:4], m[2:5]])
        ok = jnp.sum(weights > 0) >= 3
        A = jnp.where(ok, A, jnp.eye(3))
        return jnp.linalg.solve(A, m[5:8]), ok

    def step(_, coef):
        c = coef[0]
        r = jnp.abs(y - (c[0] + x * (c[1] + x * c[2])))
        hw = jnp.where(r <= delta, 1.0, delta / jnp.maximum(r, 1e-300))
        return solve(w * hw)

    return jax.lax.fori_loop(0, IRLS_STEPS, step, solve(w))


@functools.partial(jax.jit, static_argnames=())
def _fit_all(x, y, w, delta):
    """Vertices, curvatures and validity for weights ``w [R, K, M]`` over profiles
    ``x, y [K, M]`` (``x`` scaled to [-1, 1] per budget)."""
    per_budget = jax.vmap(_irls, in_axes=(0, 0, 0, None))
    coef, ok = jax.vmap(per_budget, in_axes=(None, None, 0, None))(x, y, w, delta)
    c1, c2 = coef[..., 1], coef[..., 2]
    vertex = -c1 / (2.0 * jnp.where(c2 > 0, c2, 1.0))
    return jnp.where((c2 > 0) & ok, vertex, jnp.nan), c2, ok


def parabola_fits(x_k, y_k, weights_k, *, delta: float = DELTA):
    """Huber parabolas of ``y`` in ``x`` for several profiles and weightings at once.

    Parameters
    ----------
    x_k, y_k : lists of K 1-D arrays (one profile each; ``x`` is ``log N``).
    weights_k : list of K arrays ``(R, n_k)`` of non-negative run weights (bootstrap counts).

    Returns
    -------
    vertex ``(R, K)`` (``log N`` of the minimum; NaN without an interior minimum or with
    fewer than 3 weighted runs), curvature ``(R, K)`` (``d2y / dx2``), each in float64.
    """
    K = len(x_k)
    M = _bucket(max(len(x) for x in x_k))
    Kp = _bucket(K, 4)
    R = weights_k[0].shape[0]
    X = np.zeros((Kp, M))
    Y = np.zeros((Kp, M))
    W = np.zeros((_bucket(R, 1), Kp, M))  # padded rows have no runs: NaN, cut below
    lo = np.array([x.min() for x in x_k])
    half = np.array([max(np.ptp(x) / 2, 1e-12) for x in x_k])
    mid = lo + half
    for k in range(K):
        n = len(x_k[k])
        X[k, :n] = (x_k[k] - mid[k]) / half[k]
        Y[k, :n] = y_k[k]
        W[:R, k, :n] = weights_k[k]
    with jax.enable_x64(True):
        v, c2, _ = _fit_all(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(W), jnp.float64(delta))
        v, c2 = np.asarray(v, dtype=float)[:R, :K], np.asarray(c2, dtype=float)[:R, :K]
    return mid + half * v, 2.0 * c2 / half**2


def profile_flag(x, curvature, vertex, min_runs) -> str | None:
    """Why one isoFLOP profile's parabola (``x``: its runs' ``log N``) cannot give a
    compute-optimal N, in words, or ``None`` when it can (see the module docstring)."""
    xs = np.unique(x)
    if xs.size < min_runs:
        return f"only {xs.size} distinct model sizes (needs {min_runs})"
    if not (curvature > 0):
        return "the parabola has no interior minimum (curvature <= 0: concave or flat profile)"
    if not (xs[0] <= vertex <= xs[-1]):
        return (f"the minimum (N* = {np.exp(vertex):.3g}) lies outside the sampled range "
                f"[{np.exp(xs[0]):.3g}, {np.exp(xs[-1]):.3g}]")
    if not (xs[1] < vertex < xs[-2]):
        return (f"the minimum (N* = {np.exp(vertex):.3g}) is at the edge of the grid (beyond "
                f"the second-smallest or second-largest of its model sizes)")
    return None
