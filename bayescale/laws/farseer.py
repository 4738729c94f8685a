"""The Farseer law (Li et al. 2025): every coefficient of a Chinchilla-like law varies with N.

::

    L(N, D) = exp(a3 N**g3 + b3) + exp(a2 N**g2 + b2) * D**(-exp(a1 N**g1 + b1))

The first term is the loss with unlimited data (it falls with ``N`` like ``E + A / N**alpha``
when ``g3 < 0``); the second is what finite data adds, with a data exponent
``beta(N) = exp(a1 N**g1 + b1)`` that depends on the model size. Chinchilla's law is the
special case of a constant ``beta`` and an ``N``-free second coefficient; the Farseer
authors report that letting them vary with ``N`` extrapolates better on their sweep of
dense models, and Li et al. (2026) score active-learning designs on those runs with it.

Coordinates. The paper's ``a N**g + b`` is badly conditioned: with ``N ~ 1e9`` and ``g``
near 0 the fit slides along a ridge ``a -> inf``, ``b -> -inf`` (a term linear in ``log N``
is the limit ``g -> 0``). bayescale writes each of the three functions of ``N`` by its
value, slope and curvature at the reference size ``N0 = 1e9`` parameters::

    f(N) = c + s * (exp(g n) - 1) / g,   n = log(N / N0)

which is the paper's ``a N**g + b`` exactly, with ``a = s / g * N0**-g`` and
``b = c - s / g``, and stays finite (``f = c + s n``) at ``g = 0``.
:class:`FarseerParams` holds ``(c, s, g)`` for each of the three functions (the fitting
coordinates themselves); :func:`from_paper` and :func:`to_paper` convert from and to the
paper's ``(a, g, b)``. ``D`` stays in raw tokens as in the paper: rescaling ``D`` would
change the family, because ``log D0`` would be multiplied by the ``N``-dependent
exponent.

Kernel, in log space (float32-safe: every term is a log of a positive quantity)::

    log L = logaddexp(f3(N),  f2(N) - exp(f1(N)) log D)

so ``exp(f1)`` is the data exponent ``beta(N)``, ``f2`` the log coefficient of
``D**-beta(N)`` and ``f3`` the log loss with unlimited data.

Default priors (weakly informative, for NUTS; the Huber fit needs none):
``c1 ~ Normal(-1.2, 1)`` (a data exponent at ``N0`` near Chinchilla's 0.28-0.37),
``c2 ~ Normal(7, 5)`` (the coefficient of ``D**-beta`` offsets ``beta log D``, about 7
nats for ``beta ~ 0.3`` and ``D ~ 1e10``), ``c3 ~ Normal(0, 2)`` (the log of a loss of
order one); slopes ``s1, s3 ~ Normal(0, 0.5)`` and ``s2 ~ Normal(0, 2)`` per e-fold of
``N``; curvatures ``g_i ~ Normal(0, 0.5)``. On a small sweep the nine coordinates are
weakly identified, so NUTS may need the diagnostics gate's second attempt or fail it (as
reported); the Huber fit, the bootstrap and the predictions do not depend on the priors.

There is no closed form for the frontier under ``C = 6 N D``; it is solved by the
jitted safeguarded Newton iteration on the first-order condition, with the ratio of
elasticities from the kernel by autodiff.

No published constants: the Farseer paper fits its own runs and its loss unit is not
checked here (``../shared/data/active_sl/PROVENANCE.md``); the tests check the kernel
against the formula, recover known parameters and the held-out fit on the ``farseer``
runs.

References
----------
H. Li et al., "Farseer: A Refined Scaling Law in Large Language Models" (2025).
S. Li et al., "Spend Less, Fit Better: Budget-Efficient Scaling Law Fitting via Active
Experiment Selection", arXiv:2604.22753 (2026).
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

__all__ = ["FarseerParams", "N0", "from_paper", "to_paper", "kernel", "LAW"]

N0 = 1e9  # reference model size of the coordinates (parameters)
_LOG_N0 = math.log(N0)
_SMALL = 1e-6  # |g n| below which (exp(g n) - 1) / (g n) is taken as 1 + g n / 2


class FarseerParams(NamedTuple):
    """Parameters of the Farseer law, each function of ``N`` as ``f(N) = c + s (exp(g n)
    - 1) / g`` with ``n = log(N / 1e9)`` (see the module docstring).

    Attributes
    ----------
    c1, s1, g1 : ``log beta(N)``, the log of the data exponent.
    c2, s2, g2 : the log coefficient of ``D**-beta(N)``.
    c3, s3, g3 : the log loss with unlimited data.
    """

    c1: ArrayLike
    s1: ArrayLike
    g1: ArrayLike
    c2: ArrayLike
    s2: ArrayLike
    g2: ArrayLike
    c3: ArrayLike
    s3: ArrayLike
    g3: ArrayLike


def from_paper(a1, g1, b1, a2, g2, b2, a3, g3, b3) -> FarseerParams:
    """:class:`FarseerParams` from the paper's ``L = exp(a3 N**g3 + b3) + exp(a2 N**g2 + b2)
    D**-exp(a1 N**g1 + b1)`` (raw ``N``; every ``g`` non-zero)."""
    vals = []
    for a, g, b in ((a1, g1, b1), (a2, g2, b2), (a3, g3, b3)):
        a, g, b = (np.asarray(v, dtype=float) for v in (a, g, b))
        a_c = a * np.exp(g * _LOG_N0)  # a N**g = a_c (N / N0)**g
        vals += [a_c + b, a_c * g, g]
    return FarseerParams(*vals)


def to_paper(params: FarseerParams) -> dict[str, np.ndarray]:
    """The paper's ``a_i, g_i, b_i`` (``a_i`` infinite where ``g_i = 0``)."""
    p = [np.asarray(v, dtype=float) for v in params]
    out = {}
    for i in range(3):
        c, s, g = p[3 * i], p[3 * i + 1], p[3 * i + 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"a{i + 1}"] = s / g * np.exp(-g * _LOG_N0)
            out[f"b{i + 1}"] = c - s / g
        out[f"g{i + 1}"] = g
    return out


def _curve(c: Array, s: Array, g: Array, n: Array) -> Array:
    """``c + s (exp(g n) - 1) / g``, finite and smooth through ``g = 0``."""
    x = g * n
    small = jnp.abs(x) < _SMALL
    x_safe = jnp.where(small, 1.0, x)
    rel = jnp.where(small, 1.0 + 0.5 * x, jnp.expm1(x_safe) / x_safe)
    return c + s * n * rel


def kernel(theta: Array, log_x: Array) -> Array:
    """``log L`` for one ``theta = (c1, s1, g1, c2, s2, g2, c3, s3, g3)`` at one point
    ``log_x = (log N, log D)``."""
    n = log_x[0] - _LOG_N0
    log_beta = _curve(theta[0], theta[1], theta[2], n)
    data_term = _curve(theta[3], theta[4], theta[5], n) - jnp.exp(log_beta) * log_x[1]
    return jnp.logaddexp(_curve(theta[6], theta[7], theta[8], n), data_term)


def to_theta(params: FarseerParams) -> Array:
    return jnp.stack(jnp.broadcast_arrays(*(jnp.asarray(v) for v in params)), axis=-1)


def from_theta(theta: ArrayLike) -> FarseerParams:
    t = jnp.asarray(theta)
    return FarseerParams(*(t[..., i] for i in range(9)))


LAW = base.register(Law(
    name="farseer",
    params_type=FarseerParams,
    inputs=("N", "D"),
    coords=("c1", "s1", "g1", "c2", "s2", "g2", "c3", "s3", "g3"),
    kernel=kernel,
    to_theta=to_theta,
    from_theta=from_theta,
    priors={
        "c1": Prior("normal", -1.2, 1.0),
        "s1": Prior("normal", 0.0, 0.5),
        "g1": Prior("normal", 0.0, 0.5),
        "c2": Prior("normal", 7.0, 5.0),
        "s2": Prior("normal", 0.0, 2.0),
        "g2": Prior("normal", 0.0, 0.5),
        "c3": Prior("normal", 0.0, 2.0),
        "s3": Prior("normal", 0.0, 0.5),
        "g3": Prior("normal", 0.0, 0.5),
    },
    # 768 starts: the slopes both ways, the data exponent at N0 near 0.2-0.5, the D
    # coefficient's log from small to about beta * log D; L-BFGS moves far from any start
    # (the tests recover known parameters and fit the farseer runs from this grid).
    start_grid={
        "c1": (-1.5, -0.7),
        "s1": (-0.1, 0.1),
        "g1": (-0.2, 0.2),
        "c2": (2.0, 5.0, 8.0),
        "s2": (-0.3, 0.3),
        "g2": (-0.2, 0.2),
        "c3": (-1.0, 0.5),
        "s3": (-0.1, 0.1),
        "g3": (-0.3, 0.3),
    },
    citation="H. Li et al., 'Farseer: A Refined Scaling Law in Large Language Models' (2025).",
    description="L(N, D) = exp(a3 N^g3 + b3) + exp(a2 N^g2 + b2) D^(-exp(a1 N^g1 + b1))",
))
