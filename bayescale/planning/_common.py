"""Draws of any law in the form the planning solvers use (private to planning).

A :class:`Draw` is one parameter vector ``theta`` in the law's fitting coordinates and
the log of the unique-token budget (used only by laws whose inputs include ``U``).
Everything here evaluates the law through its one kernel
(:attr:`bayescale.laws.base.Law.kernel`); nothing writes a law's formula.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import Array

from bayescale.errors import BayescaleError
from bayescale.laws.base import Law
from bayescale.laws.registry import law_of

__all__ = ["Draw", "draws", "log_loss", "loss", "closed_form_one", "needs_unique_tokens"]


class Draw(NamedTuple):
    """One parameter set: ``theta`` (``(k,)``) and ``log U`` (a scalar; 0 if unused)."""

    theta: Array
    log_U: Array


def needs_unique_tokens(law: Law) -> bool:
    return "U" in law.inputs


def draws(params: Any, unique_tokens: Any = None) -> tuple[Law, Draw, tuple[int, ...]]:
    """Flatten ``params`` (scalars or arrays of one shape) to draws of shape (P,)."""
    law = law_of(params)
    dtype = jnp.result_type(float)  # float64 under x64, else float32
    leaves = jnp.broadcast_arrays(*(jnp.asarray(v, dtype=dtype) for v in params))
    shape = leaves[0].shape
    theta = law.to_theta(law.params_type(*(v.reshape(-1) for v in leaves)))
    if needs_unique_tokens(law):
        if unique_tokens is None:
            raise BayescaleError(
                f"the {law.name} law needs a unique-token budget: pass unique_tokens=U "
                f"(--unique-tokens on the command line).")
        log_U = jnp.log(jnp.asarray(unique_tokens, dtype=dtype))
    else:
        log_U = jnp.zeros((), dtype)
    return law, Draw(theta, jnp.broadcast_to(log_U, theta.shape[:1])), shape


def log_loss(law: Law, d: Draw, x: Array, y: Array) -> Array:
    """``log L`` of one draw at ``x = log N``, ``y = log D``."""
    x, y = jnp.broadcast_arrays(x, y)
    point = [x, y] + ([jnp.broadcast_to(d.log_U, x.shape)] if needs_unique_tokens(law) else [])
    return law.kernel(d.theta, jnp.stack(point))


def loss(law: Law, d: Draw, x: Array, y: Array) -> Array:
    """``L`` of one draw at ``x = log N``, ``y = log D``."""
    return jnp.exp(log_loss(law, d, x, y))


def closed_form_one(law: Law, d: Draw, log_C: Array) -> tuple[Array, Array]:
    """``(log N_opt, log D_opt)`` under ``C = 6 N D`` from the law's closed form."""
    if law.closed_form is None:
        raise BayescaleError(f"the {law.name} law has no closed-form allocation.")
    return law.closed_form(d.theta, log_C)
