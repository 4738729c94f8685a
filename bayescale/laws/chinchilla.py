"""The Chinchilla scaling law ``L(N, D) = E + A / N**alpha + B / D**beta``.

Everything here is a pure ``jax.numpy`` function of *one* parameter set (scalars)
and arrays of runs; ``jax.vmap`` it over posterior draws or bootstrap resamples.
The law is evaluated in log space,

    log L = logsumexp(a - alpha log N, b - beta log D, e),  A = e^a, B = e^b, E = e^e,

so that float32 is safe for N ~ 1e10 and D ~ 1e12 (``N**alpha`` never appears).

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
from jax import Array
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

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


def theta_from_params(params: LawParams) -> Array:
    """Stack a parameter set into the log-space vector ``(a, b, e, alpha, beta)``."""
    return jnp.stack(
        [jnp.log(params.A), jnp.log(params.B), jnp.log(params.E),
         jnp.asarray(params.alpha), jnp.asarray(params.beta)],
        axis=-1,
    )


def params_from_theta(theta: ArrayLike) -> LawParams:
    """Inverse of :func:`theta_from_params`; ``theta[..., :] = (a, b, e, alpha, beta)``."""
    theta = jnp.asarray(theta)
    return LawParams.from_log(theta[..., 0], theta[..., 1], theta[..., 2],
                              theta[..., 3], theta[..., 4])


def log_loss_from_theta(theta: ArrayLike, log_N: ArrayLike, log_D: ArrayLike) -> Array:
    """``log L`` at runs ``(log N, log D)`` for ``theta = (a, b, e, alpha, beta)``.

    Parameters
    ----------
    theta : array of shape (5,)
        One parameter set in log space.
    log_N, log_D : arrays of shape (n,)
        Natural logs of model size and training tokens.

    Returns
    -------
    array of shape (n,)
        ``logsumexp(a - alpha log N, b - beta log D, e)``.
    """
    a, b, e, alpha, beta = (theta[..., i] for i in range(5))
    log_N = jnp.asarray(log_N)
    log_D = jnp.asarray(log_D)
    terms = jnp.stack(
        jnp.broadcast_arrays(a - alpha * log_N, b - beta * log_D, e * jnp.ones_like(log_N)),
        axis=0,
    )
    return logsumexp(terms, axis=0)


def log_loss(params: LawParams, N: ArrayLike, D: ArrayLike) -> Array:
    """Natural log of the predicted loss ``log L(N, D)`` for one parameter set.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayescale.laws.chinchilla import HOFFMANN_2022, log_loss
    >>> round(float(jnp.exp(log_loss(HOFFMANN_2022, 70e9, 1.4e12))), 3)
    1.937
    """
    theta = theta_from_params(params)
    return log_loss_from_theta(theta, jnp.log(jnp.asarray(N)), jnp.log(jnp.asarray(D)))


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
