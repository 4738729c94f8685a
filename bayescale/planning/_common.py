"""The Chinchilla law in the log coordinates the planning solvers use (private to planning)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from bayescale.laws.chinchilla import LawParams
from bayescale.planning.costs import LOG6

__all__ = ["Draw", "draws", "loss", "closed_form_one"]


class Draw(NamedTuple):
    """One parameter set in the log coordinates the solvers use."""

    a: Array  # log A
    b: Array  # log B
    e: Array  # log E
    alpha: Array
    beta: Array
    log_alpha: Array
    log_beta: Array


def draws(params: LawParams) -> tuple[Draw, tuple[int, ...]]:
    """Flatten ``params`` (scalars or arrays of one shape) to a ``Draw`` of shape (P,)."""
    dtype = jnp.result_type(float)  # float64 under x64, else float32
    leaves = jnp.broadcast_arrays(*(jnp.asarray(v, dtype=dtype) for v in params))
    shape = leaves[0].shape
    E, A, B, alpha, beta = (v.reshape(-1) for v in leaves)
    return Draw(jnp.log(A), jnp.log(B), jnp.log(E), alpha, beta,
                 jnp.log(alpha), jnp.log(beta)), shape


def loss(d: Draw, x, y):
    """``L = E + A N**-alpha + B D**-beta`` from ``x = log N``, ``y = log D`` (float32-safe:
    each term is the exponential of a moderate number)."""
    return jnp.exp(d.e) + jnp.exp(d.a - d.alpha * x) + jnp.exp(d.b - d.beta * y)


def closed_form_one(d: Draw, log_C):
    """``(log N_opt, log D_opt)`` for ``C = 6 N D``."""
    s = d.alpha + d.beta
    log_G = (d.log_alpha + d.a - d.log_beta - d.b) / s
    x = log_G + d.beta / s * (log_C - LOG6)
    return x, log_C - LOG6 - x
