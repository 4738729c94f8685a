"""The Chinchilla scaling law ``L(N, D) = E + A / N**alpha + B / D**beta``.

The law's one kernel (:func:`kernel`) is written for *one* parameter vector and *one*
point; :func:`bayescale.laws.base.log_loss_theta` maps it over runs and draws. It is
evaluated in log space,

    log L = logsumexp(a - alpha log N, b - beta log D, e),  A = e^a, B = e^b, E = e^e,

so that float32 is safe for N ~ 1e10 and D ~ 1e12 (``N**alpha`` never appears).

Default priors (on the fitting coordinates ``a, b, e, alpha, beta``; NUTS samples
``a`` and ``b`` centred on the data, see :mod:`bayescale.estimators.model`):

* ``E ~ Uniform(0, median observed loss)`` (sampled as ``E``; ``e = log E``): the
  irreducible loss is positive and below the losses the law describes, flat in
  between. The bound is the *median* loss, not the smallest: with the smallest, one
  low outlier (a mislabelled or digitisation-error run) would cap E below its true
  value; a median bound binds only if half the runs lie below E, i.e. the law is
  wrong. The likelihood keeps E below the typical loss in any case.
* ``alpha, beta ~ Uniform(0, 1.5)``: published exponents are 0.05-0.8 (Kaplan et
  al. 2020: ~0.08; Hoffmann et al. 2022: 0.34, 0.28; Besiroglu et al. 2024: 0.35,
  0.37), so 1.5 is generous.
* ``log A, log B ~ Normal(6, 10)``: centred on Hoffmann's ``log A ~ log B ~ 6`` but so
  broad that the data decide; Epoch's start grid spans 0-25.

Compute-optimal allocation under ``C = 6 N D`` (Hoffmann et al. 2022, eq. 4):
``N_opt = G (C/6)**(beta/(alpha+beta))``, ``G = (alpha A / (beta B))**(1/(alpha+beta))``.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Approach 3 (eq. 2 and Appendix D.2).
T. Besiroglu, E. Erdil, M. Barnett, J. You, "Chinchilla Scaling: A replication
attempt", arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.laws import base
from bayescale.laws.base import LOG6, Law, Prior

__all__ = [
    "LawParams",
    "HOFFMANN_2022",
    "HOFFMANN_2022_UNROUNDED",
    "BESIROGLU_2024",
    "log_loss",
    "loss",
    "log_loss_from_theta",
    "theta_from_params",
    "params_from_theta",
    "allocation_exponents",
    "kernel",
    "LAW",
]


class LawParams(NamedTuple):
    """Parameters of ``L(N, D) = E + A / N**alpha + B / D**beta``.

    Each field is a scalar for a point estimate or an array with a leading
    ``draw`` axis for posterior draws and bootstrap resamples. Being a
    ``NamedTuple`` it is a JAX pytree, so ``jax.vmap`` maps over the draws.

    Attributes
    ----------
    E : irreducible loss (nats per token).
    A, B : scale of the model-size and data terms.
    alpha, beta : exponents of N and D.
    """

    E: ArrayLike
    A: ArrayLike
    B: ArrayLike
    alpha: ArrayLike
    beta: ArrayLike

    @classmethod
    def from_log(cls, a: ArrayLike, b: ArrayLike, e: ArrayLike, alpha: ArrayLike,
                 beta: ArrayLike) -> "LawParams":
        """Build from the log-space coordinates ``(a, b, e) = log (A, B, E)``."""
        return cls(E=jnp.exp(e), A=jnp.exp(a), B=jnp.exp(b), alpha=alpha, beta=beta)

    @property
    def a_opt(self) -> Array:
        """Exponent of ``N_opt`` in ``C``: ``beta / (alpha + beta)``."""
        return allocation_exponents(self)[0]

    @property
    def b_opt(self) -> Array:
        """Exponent of ``D_opt`` in ``C``: ``alpha / (alpha + beta)``."""
        return allocation_exponents(self)[1]


# Hoffmann et al. 2022, eq. 10 (Approach 3), as printed (rounded).
HOFFMANN_2022 = LawParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

# The unrounded Approach-3 coefficients that Besiroglu et al. 2024 recovered
# (their notebook's ``true_params``: a, b, e, alpha, beta).
HOFFMANN_2022_UNROUNDED = LawParams(
    E=math.exp(0.5267228),
    A=math.exp(6.0073404),
    B=math.exp(6.0179186),
    alpha=0.33917084,
    beta=0.2849083,
)

# Besiroglu et al. 2024, Table 1 / eq. 4: the refit on the 240 digitised runs.
BESIROGLU_2024 = LawParams(E=1.817, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def kernel(theta: Array, log_x: Array) -> Array:
    """``log L`` for one ``theta = (a, b, e, alpha, beta)`` at one point ``(log N, log D)``."""
    a, b, e, alpha, beta = theta[0], theta[1], theta[2], theta[3], theta[4]
    return base.log_sum_exp(a - alpha * log_x[0], b - beta * log_x[1], e)


def theta_from_params(params: LawParams) -> Array:
    """Stack a parameter set into the log-space vector ``(a, b, e, alpha, beta)``."""
    return jnp.stack(
        [jnp.log(jnp.asarray(params.A)), jnp.log(jnp.asarray(params.B)),
         jnp.log(jnp.asarray(params.E)), jnp.asarray(params.alpha), jnp.asarray(params.beta)],
        axis=-1,
    )


def params_from_theta(theta: ArrayLike) -> LawParams:
    """Inverse of :func:`theta_from_params`; ``theta[..., :] = (a, b, e, alpha, beta)``."""
    theta = jnp.asarray(theta)
    return LawParams.from_log(theta[..., 0], theta[..., 1], theta[..., 2],
                              theta[..., 3], theta[..., 4])


def closed_form(theta: Array, log_C: Array) -> tuple[Array, Array]:
    """``(log N_opt, log D_opt)`` under ``C = 6 N D`` for one ``theta`` (Hoffmann et al.
    2022, eq. 4)."""
    a, b, alpha, beta = theta[0], theta[1], theta[3], theta[4]
    s = alpha + beta
    log_G = (jnp.log(alpha) + a - jnp.log(beta) - b) / s
    x = log_G + beta / s * (log_C - LOG6)
    return x, log_C - LOG6 - x


def log_marginal_ratio(theta: Array, log_x: Array) -> Array:
    """``log((dlogL/dlogN) / (dlogL/dlogD))`` at one point: the log-sum-exp's softmax
    weights cancel, leaving ``log(alpha A N**-alpha) - log(beta B D**-beta)``."""
    a, b, alpha, beta = theta[0], theta[1], theta[3], theta[4]
    return (jnp.log(alpha) + a - alpha * log_x[0]) - (jnp.log(beta) + b - beta * log_x[1])


def log_loss_from_theta(theta: ArrayLike, log_N: ArrayLike, log_D: ArrayLike) -> Array:
    """``log L`` at runs ``(log N, log D)`` (shape (n,)) for one ``theta`` (shape (5,))."""
    log_X = jnp.stack(jnp.broadcast_arrays(jnp.asarray(log_N), jnp.asarray(log_D)), axis=-1)
    return base.log_loss_theta(LAW, theta, log_X)


def log_loss(params: LawParams, N: ArrayLike, D: ArrayLike) -> Array:
    """Natural log of the predicted loss ``log L(N, D)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayescale.laws.chinchilla import HOFFMANN_2022, log_loss
    >>> round(float(jnp.exp(log_loss(HOFFMANN_2022, 70e9, 1.4e12))), 3)
    1.937
    """
    return base.evaluate(LAW, LawParams(*params), N, D)


def loss(params: LawParams, N: ArrayLike, D: ArrayLike) -> Array:
    """Predicted final loss ``L(N, D) = E + A / N**alpha + B / D**beta`` (nats/token)."""
    return jnp.exp(log_loss(params, N, D))


def allocation_exponents(params: LawParams) -> tuple[Array, Array]:
    """Compute-optimal allocation exponents ``(a, b) = (beta, alpha) / (alpha + beta)``.

    ``N_opt ~ C**a`` and ``D_opt ~ C**b`` under ``C = 6 N D`` (Hoffmann et al. 2022,
    eq. 4); ``a + b = 1``.
    """
    alpha = jnp.asarray(params.alpha)
    beta = jnp.asarray(params.beta)
    return beta / (alpha + beta), alpha / (alpha + beta)


# Default priors on (a, b, e, alpha, beta), reasoned in the module docstring; shared by
# the laws that extend this one (data_constrained).
PRIORS = {
    "a": Prior("normal", 6.0, 10.0, key="log_A"),
    "b": Prior("normal", 6.0, 10.0, key="log_B"),
    "e": Prior("log_uniform_below_loss", 0.0, 1.0, key="E"),
    "alpha": Prior("uniform", 0.0, 1.5),
    "beta": Prior("uniform", 0.0, 1.5),
}

LAW = base.register(Law(
    name="chinchilla",
    params_type=LawParams,
    inputs=("N", "D"),
    coords=("a", "b", "e", "alpha", "beta"),
    kernel=kernel,
    to_theta=theta_from_params,
    from_theta=params_from_theta,
    priors=PRIORS,
    # Hoffmann et al. (2022), Appendix D.2, as run by Besiroglu et al. (2024).
    start_grid={
        "a": tuple(np.arange(0, 30, 5.0)),
        "b": tuple(np.arange(0, 30, 5.0)),
        "e": tuple(np.arange(-1, 1.5, 0.5)),
        "alpha": tuple(np.arange(0, 2.5, 0.5)),
        "beta": tuple(np.arange(0, 2.5, 0.5)),
    },
    shears=(("a", "alpha", "N"), ("b", "beta", "D")),
    closed_form=closed_form,
    log_marginal_ratio=log_marginal_ratio,
    positive=("E", "A", "B", "alpha", "beta"),
    citation="J. Hoffmann et al., 'Training Compute-Optimal Large Language Models', "
             "arXiv:2203.15556 (2022), eq. 2 (Approach 3).",
    description="L(N, D) = E + A / N^alpha + B / D^beta",
))
