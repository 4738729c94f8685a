"""Muennighoff et al. (2023): the data-constrained scaling law, with repeated data.

With ``U`` unique tokens seen ``D / U`` times, repeated tokens are worth less than new
ones and parameters beyond what ``U`` can feed are worth less than useful ones::

    L(N, D, U) = E + A / N'**alpha + B / D'**beta
    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),   U_D = min(U, D),  R_D = D / U_D - 1
    N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),   U_N = min(N, N_of(U_D)),  R_N = N / U_N - 1
    N_of(U) = (U G)**(beta / alpha) G,            G = (alpha A / (beta B))**(1 / (alpha + beta))

(huggingface/datablations, README "Parametric Fit"; ``N_of`` is their ``D_to_N``). With
``U >= D`` (no repetition) ``D' = D``; with ``U`` large enough ``N' = N``: the law is then
the Chinchilla law with the same ``E, A, B, alpha, beta``.

Kernel in log space: ``log D' = log U_D + log1p(R_D* (-expm1(-R_D / R_D*)))``, and
``log L = logsumexp(a - alpha log N', b - beta log D', e)``: float32-safe. The fitting
coordinates are ``(a, b, e, alpha, beta, log R_N*, log R_D*)``.

Published coefficients (Muennighoff et al. 2023, datablations README):
``(log A, log B, log E, alpha, beta, R_D*, R_N*) = (6.255414, 7.3049974, 0.6254804,
0.3526596, 0.3526596, 15.387756, 5.309743)``.

Default priors: as the Chinchilla law for ``E, A, B, alpha, beta``; ``log R_N*, log R_D*
~ Normal(2, 1.5)`` (the published 5.3 and 15.4 are ``e**1.7`` and ``e**2.7``; a repeated
token or excess parameter is worth about R* "fresh" ones, plausibly 1-100).

The frontier under ``C = 6 N D`` at a fixed unique-token budget ``U`` has no closed
form; it is solved by the safeguarded Newton iteration.

References
----------
N. Muennighoff, A. M. Rush, B. Barak, T. Le Scao, A. Piktus, N. Tazi, S. Pyysalo,
T. Wolf, C. Raffel, "Scaling Data-Constrained Language Models", NeurIPS 2023,
arXiv:2305.16264.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.laws import base
from bayescale.laws.base import Law, Prior
from bayescale.laws.chinchilla import PRIORS as CHINCHILLA_PRIORS

__all__ = ["DataConstrainedParams", "MUENNIGHOFF_2023", "kernel", "LAW"]


class DataConstrainedParams(NamedTuple):
    """Parameters of Muennighoff et al.'s (2023) data-constrained law.

    Attributes
    ----------
    E, A, B, alpha, beta : as in the Chinchilla law.
    R_N, R_D : ``R_N*`` and ``R_D*``, the decay constants of excess parameters and of
        repeated tokens (in units of "unique" ones).
    """

    E: ArrayLike
    A: ArrayLike
    B: ArrayLike
    alpha: ArrayLike
    beta: ArrayLike
    R_N: ArrayLike
    R_D: ArrayLike


# Muennighoff et al. (2023), huggingface/datablations README ("Parametric Fit").
MUENNIGHOFF_2023 = DataConstrainedParams(
    E=math.exp(0.6254804), A=math.exp(6.255414), B=math.exp(7.3049974),
    alpha=0.3526596, beta=0.3526596, R_N=5.309743, R_D=15.387756)


def _log_effective(log_unique: Array, log_total: Array, log_R_star: Array) -> Array:
    """``log (U + U R* (1 - exp(-R / R*)))`` with ``R = total / U - 1 >= 0``."""
    R = jnp.expm1(jnp.maximum(log_total - log_unique, 0.0))
    R_star = jnp.exp(log_R_star)
    return log_unique + jnp.log1p(-R_star * jnp.expm1(-R / R_star))


def kernel(theta: Array, log_x: Array) -> Array:
    """``log L`` for one ``theta = (a, b, e, alpha, beta, log R_N*, log R_D*)`` at one
    point ``(log N, log D, log U)``."""
    a, b, e, alpha, beta, log_RN, log_RD = (theta[i] for i in range(7))
    log_N, log_D, log_U = log_x[0], log_x[1], log_x[2]
    log_UD = jnp.minimum(log_U, log_D)
    log_Dp = _log_effective(log_UD, log_D, log_RD)
    log_G = (jnp.log(alpha) + a - jnp.log(beta) - b) / (alpha + beta)
    log_N_of_U = beta / alpha * (log_UD + log_G) + log_G
    log_UN = jnp.minimum(log_N, log_N_of_U)
    log_Np = _log_effective(log_UN, log_N, log_RN)
    return base.log_sum_exp(a - alpha * log_Np, b - beta * log_Dp, e)


def to_theta(params: DataConstrainedParams) -> Array:
    p = [jnp.asarray(v) for v in params]
    return jnp.stack([jnp.log(p[1]), jnp.log(p[2]), jnp.log(p[0]), p[3], p[4],
                      jnp.log(p[5]), jnp.log(p[6])], axis=-1)


def from_theta(theta: ArrayLike) -> DataConstrainedParams:
    t = jnp.asarray(theta)
    return DataConstrainedParams(E=jnp.exp(t[..., 2]), A=jnp.exp(t[..., 0]), B=jnp.exp(t[..., 1]),
                                 alpha=t[..., 3], beta=t[..., 4], R_N=jnp.exp(t[..., 5]),
                                 R_D=jnp.exp(t[..., 6]))


LAW = base.register(Law(
    name="data_constrained",
    params_type=DataConstrainedParams,
    inputs=("N", "D", "U"),
    coords=("a", "b", "e", "alpha", "beta", "log_R_N", "log_R_D"),
    kernel=kernel,
    to_theta=to_theta,
    from_theta=from_theta,
    priors={
        **CHINCHILLA_PRIORS,
        "log_R_N": Prior("normal", 2.0, 1.5),
        "log_R_D": Prior("normal", 2.0, 1.5),
    },
    # 288 starts: the losses of real runs put log E near 0-1, and the exponents and decay
    # constants near the published values; L-BFGS moves far from any start, so a coarse
    # grid suffices (the tests check the fit against the published coefficients).
    start_grid={
        "a": (0.0, 6.0, 12.0),
        "b": (0.0, 6.0, 12.0),
        "e": (0.0, 1.0),
        "alpha": (0.3, 0.6),
        "beta": (0.3, 0.6),
        "log_R_N": (1.0, 3.0),
        "log_R_D": (1.0, 3.0),
    },
    shears=(("a", "alpha", "N"), ("b", "beta", "D")),
    positive=("E", "A", "B", "alpha", "beta", "R_N", "R_D"),
    citation="N. Muennighoff et al., 'Scaling Data-Constrained Language Models', NeurIPS 2023, "
             "arXiv:2305.16264.",
    description="L(N, D, U) = E + A / N'^alpha + B / D'^beta (repeated data and excess "
                "parameters decay with R_D*, R_N*)",
))
