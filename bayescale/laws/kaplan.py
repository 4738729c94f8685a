"""Kaplan et al. (2020), eq. (1.5): ``L(N, D) = [(N_c / N)**(alpha_N / alpha_D) + D_c / D]**alpha_D``.

Kernel, in log space (float32-safe for N ~ 1e10, D ~ 1e12)::

    log L = alpha_D * logsumexp((alpha_N / alpha_D) (log N_c - log N), log D_c - log D)

Published constants (Kaplan et al. 2020, Sec. 1.2 and Table 2): ``alpha_N = 0.076``,
``alpha_D = 0.095``, ``N_c = 8.8e13`` non-embedding parameters, ``D_c = 5.4e13`` tokens
(losses in nats/token on WebText2). The limits are eq. (1.1) and (1.2):
``L -> (N_c / N)**alpha_N`` as ``D -> inf`` and ``L -> (D_c / D)**alpha_D`` as ``N -> inf``.

The form has no irreducible term: the loss goes to 0 as N and D grow, which is why it
extrapolates badly on modern sweeps whose losses flatten (Hoffmann et al. 2022, Sec. 2).
bayescale ships it as published, without an ``E``; a law with one is a user-defined
law of a few lines (README, "Your own law").

Default priors on the fitting coordinates ``(log N_c, log D_c, alpha_N, alpha_D)``:
``log N_c, log D_c ~ Normal(30, 10)`` (Kaplan's 8.8e13 and 5.4e13 are ``e**32`` and
``e**31``; 10 nats either side covers any plausible scale), ``alpha_N, alpha_D ~
Uniform(0, 1.5)`` as for the other laws. NUTS samples ``log N_c`` and ``log D_c``
shifted by the data's centre ``(log N0, log D0)``.

There is no closed form for the frontier under ``C = 6 N D``; it is solved by the
jitted safeguarded Newton iteration on the first-order condition.

References
----------
J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.laws import base
from bayescale.laws.base import Law, Prior

__all__ = ["KaplanParams", "KAPLAN_2020", "kernel", "LAW"]


class KaplanParams(NamedTuple):
    """Parameters of Kaplan et al.'s (2020) eq. (1.5).

    Attributes
    ----------
    N_c : model-size scale (non-embedding parameters in the paper).
    D_c : data scale (tokens).
    alpha_N, alpha_D : exponents of N and D.
    """

    N_c: ArrayLike
    D_c: ArrayLike
    alpha_N: ArrayLike
    alpha_D: ArrayLike


# Kaplan et al. (2020), Sec. 1.2 / Table 2.
KAPLAN_2020 = KaplanParams(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)


def kernel(theta: Array, log_x: Array) -> Array:
    """``log L`` for one ``theta = (log N_c, log D_c, alpha_N, alpha_D)`` at one point."""
    log_Nc, log_Dc, alpha_N, alpha_D = theta[0], theta[1], theta[2], theta[3]
    return alpha_D * base.log_sum_exp(alpha_N / alpha_D * (log_Nc - log_x[0]), log_Dc - log_x[1])


def to_theta(params: KaplanParams) -> Array:
    return jnp.stack([jnp.log(jnp.asarray(params.N_c)), jnp.log(jnp.asarray(params.D_c)),
                      jnp.asarray(params.alpha_N), jnp.asarray(params.alpha_D)], axis=-1)


def from_theta(theta: ArrayLike) -> KaplanParams:
    theta = jnp.asarray(theta)
    return KaplanParams(N_c=jnp.exp(theta[..., 0]), D_c=jnp.exp(theta[..., 1]),
                        alpha_N=theta[..., 2], alpha_D=theta[..., 3])


LAW = base.register(Law(
    name="kaplan",
    params_type=KaplanParams,
    inputs=("N", "D"),
    coords=("log_N_c", "log_D_c", "alpha_N", "alpha_D"),
    kernel=kernel,
    to_theta=to_theta,
    from_theta=from_theta,
    priors={
        "log_N_c": Prior("normal", 30.0, 10.0),
        "log_D_c": Prior("normal", 30.0, 10.0),
        "alpha_N": Prior("uniform", 0.0, 1.5),
        "alpha_D": Prior("uniform", 0.0, 1.5),
    },
    start_grid={
        "log_N_c": tuple(np.arange(15.0, 45.0, 5.0)),
        "log_D_c": tuple(np.arange(15.0, 45.0, 5.0)),
        "alpha_N": (0.05, 0.1, 0.2, 0.4, 0.8),
        "alpha_D": (0.05, 0.1, 0.2, 0.4, 0.8),
    },
    shears=(("log_N_c", None, "N"), ("log_D_c", None, "D")),
    positive=("N_c", "D_c", "alpha_N", "alpha_D"),
    citation="J. Kaplan et al., 'Scaling Laws for Neural Language Models', arXiv:2001.08361 "
             "(2020), eq. (1.5).",
    description="L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
))
