"""Slope coordinates: NUTS's coordinates for the Chinchilla law where E is not identified.

When the runs pin down the model-size term plus E at the data's centre
(``V = E + e^a_c``) and its slope in log N (``g = alpha e^a_c``) but not E itself, E,
alpha and a_c slide together along a curved ridge ``E ~ V - g / alpha`` that bends sharply
as E falls towards 0: NUTS diverges there (the Chinchilla law on Muennighoff et al.'s
data-constrained runs). These coordinates follow the ridge: ``(log V, slope_u, alpha_u)``
with ``g = alpha_max V sigmoid(slope_u)`` and alpha at ``sigmoid(alpha_u)`` of the way
through the interval that keeps ``0 < E < E_max``. The priors on E, alpha and a_c are
carried over with the map's Jacobian, so the posterior is the same
(:func:`bayescale.estimators.model.law_model` with ``slope_coords=True``; the automatic
retry of :func:`bayescale.estimators.nuts.sample_posterior` turns them on).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array

__all__ = ["SLOPE_SITES", "slope_to_natural", "natural_to_slope", "sample_slope_coords"]

#: The sites NUTS samples in slope coordinates, in place of E, alpha and a_c.
SLOPE_SITES = ("log_V_c", "slope_u", "alpha_u")


def slope_to_natural(z: Array, E_max, alpha_max: float) -> Array:
    """``(log V, slope_u, alpha_u) -> (E, alpha, a_c)``: ``V = E + e^a_c`` (E plus the model-size
    term at the centre), ``g = alpha e^a_c = alpha_max V sigmoid(slope_u)`` (its slope in log N),
    and ``alpha`` at ``sigmoid(alpha_u)`` of the way through ``(g / V, hi)``, the interval that
    keeps ``0 < E < E_max`` and ``alpha < alpha_max``; a bijection onto that support."""
    v, s, t = z[0], z[1], z[2]
    V = jnp.exp(v)
    lo = alpha_max * jax.nn.sigmoid(s)  # g / V: alpha above it keeps E > 0
    over = V > E_max  # then alpha below g / (V - E_max) keeps E < E_max
    hi = jnp.where(over, jnp.minimum(alpha_max, lo * V / jnp.where(over, V - E_max, 1.0)),
                   alpha_max)
    frac = jax.nn.sigmoid(t)
    alpha = lo + (hi - lo) * frac
    E = V * (hi - lo) * frac / alpha  # = V - g / alpha, without the cancellation
    a_c = v + jnp.log(alpha_max) + jax.nn.log_sigmoid(s) - jnp.log(alpha)  # log(g / alpha)
    return jnp.stack([E, alpha, a_c])


def sample_slope_coords(log_prior: Callable, E_max, alpha_max: float) -> tuple[Array, Array, Array]:
    """Sample :data:`SLOPE_SITES` (flat), map them to ``(E, alpha, a_c)`` and add
    ``log_prior(E, alpha, a_c)`` plus the map's log Jacobian as a factor: the posterior of
    the natural coordinates, sampled along the ridge. Returns ``(E, alpha, a_c)``."""
    z = jnp.stack([numpyro.sample(n, dist.ImproperUniform(dist.constraints.real, (), ()))
                   for n in SLOPE_SITES])

    def to_natural(x):
        return slope_to_natural(x, E_max, alpha_max)

    E, alpha, a_c = to_natural(z)
    log_jac = jnp.linalg.slogdet(jax.jacfwd(to_natural)(z))[1]
    numpyro.factor("slope_coords_prior", log_prior(E, alpha, a_c) + log_jac)
    for name, value in (("E", E), ("alpha", alpha), ("a_c", a_c)):
        numpyro.deterministic(name, value)
    return E, alpha, a_c


def natural_to_slope(E: float, alpha: float, a_c: float, E_max: float,
                     alpha_max: float) -> tuple[float, float, float]:
    """The inverse of :func:`slope_to_natural` (for the initial
    point)."""
    T = math.exp(a_c)
    V = E + T
    r = alpha * T / (alpha_max * V)
    lo = alpha_max * r
    hi = min(alpha_max, lo * V / (V - E_max)) if V > E_max else alpha_max
    f = (alpha - lo) / (hi - lo)
    return math.log(V), math.log(r / (1 - r)), math.log(f / (1 - f))
