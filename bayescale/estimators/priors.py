"""Priors of the NumPyro model: the law's declarative priors as NumPyro distributions,
the noise scale and Student-t degrees of freedom, and the user's overrides.

The law's own priors are declared (and reasoned) in its module, e.g.
:mod:`bayescale.laws.chinchilla`; this module turns them into distributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import numpyro.distributions as dist

from bayescale.errors import BayescaleError
from bayescale.laws.base import Law
from bayescale.laws.chinchilla import LAW as CHINCHILLA
from bayescale.laws.registry import get_law

__all__ = ["PRIOR_KEYS", "DEFAULT_NU", "HUBER_DELTA", "prior_keys", "default_priors",
           "resolve_priors", "describe_priors", "fixed_nu"]

DEFAULT_NU = 4.0
HUBER_DELTA = 1e-3


def prior_keys(law: Law | str = CHINCHILLA) -> tuple[str, ...]:
    """The keys of ``law``'s priors: its coordinates by their prior names, then
    ``sigma`` and ``nu``. For Chinchilla: ``E, log_A, log_B, alpha, beta, sigma, nu``."""
    law = get_law(law)
    sheared = {coord for coord, _, _ in law.shears}
    order = ([c for c in law.coords if law.priors[c].kind == "log_uniform_below_loss"]
             + [c for c in law.coords if c in sheared]
             + [c for c in law.coords
                if c not in sheared and law.priors[c].kind != "log_uniform_below_loss"])
    return tuple(law.prior_key(c) for c in order) + ("sigma", "nu")


PRIOR_KEYS = ("E", "log_A", "log_B", "alpha", "beta", "sigma", "nu")  # the Chinchilla law's


def default_priors(E_max: float, likelihood: str = "student_t",
                   law: Law | str = CHINCHILLA) -> dict[str, Any]:
    """The default, weakly informative priors, as NumPyro distributions.

    The law's own priors are documented in its module (for Chinchilla,
    :mod:`bayescale.laws.chinchilla`: ``E ~ Uniform(0, E_max)``, ``alpha, beta ~
    Uniform(0, 1.5)``, ``log A, log B ~ Normal(6, 10)``). ``E_max`` is a loss level
    from the data; :func:`bayescale.estimators.nuts.sample_posterior` passes the
    *median* observed loss, so that one low outlier cannot cap E.

    * ``sigma``: noise scale of log loss. For the Student-t and normal likelihoods
      ``HalfNormal(0.1)``: digitised Chinchilla runs scatter by ~0.005-0.01 in log loss
      about the law; 0.1 (10 % in loss) is a loose ceiling. For the Huber likelihood
      ``sigma`` is Epoch's scale ``s``, whose typical residual is ``s / delta`` (delta =
      1e-3): the same ceiling on the residual is ``HalfNormal(0.1 * delta)``, a thousand
      times smaller (a HalfNormal(0.1) there would put almost all prior mass on
      residuals of 10-100 in log loss).
    * ``nu = 4`` (Student-t degrees of freedom, fixed): t_4 is the robust default
      of Lange, Little & Taylor (1989); heavy enough tails that the 5 outlying runs
      Epoch drop by hand get little weight, yet a finite variance. Pass
      ``priors={"nu": dist.Gamma(2, 0.1)}`` to sample it.
    """
    law = get_law(law)
    if not isinstance(E_max, jax.core.Tracer):
        E_max = float(E_max)
        if not (np.isfinite(E_max) and E_max > 0):
            raise BayescaleError(
                f"E_max (the loss level bounding E's prior) must be positive, got {E_max}.")
    out: dict[str, Any] = {}
    for coord in law.coords:
        prior = law.priors[coord]
        if prior.kind == "normal":
            value = dist.Normal(float(prior.a), float(prior.b))
        elif prior.kind == "uniform":
            value = dist.Uniform(float(prior.a), float(prior.b))
        else:  # log_uniform_below_loss: the prior is on exp(coordinate)
            value = dist.Uniform(float(prior.a), float(prior.b) * E_max)
        out[law.prior_key(coord)] = value
    out["sigma"] = dist.HalfNormal(0.1 * HUBER_DELTA if likelihood == "huber" else 0.1)
    out["nu"] = DEFAULT_NU
    return out


def resolve_priors(priors: Mapping[str, Any] | None = None, *,
                   E_max: float | None = None, likelihood: str = "student_t",
                   law: Law | str = CHINCHILLA) -> dict[str, Any]:
    """Merge user priors over :func:`default_priors` and validate them.

    Parameters
    ----------
    priors : mapping from names in :func:`prior_keys` to NumPyro distributions
        (``"nu"`` may also be a positive number, which fixes it).
    E_max : upper bound of the default prior on E (a loss level from the data);
        needed unless ``priors`` gives ``"E"`` (or the law has no such prior).

    Raises
    ------
    BayescaleError
        Unknown keys (the message lists the valid ones), values that are not
        distributions, or a scalar prior of the wrong support.
    """
    law = get_law(law)
    keys = prior_keys(law)
    priors = dict(priors or {})
    unknown = sorted(set(priors) - set(keys))
    if unknown:
        hint = ""
        if {"A", "B"} & set(unknown) and "log_A" in keys:
            hint = " Priors on A and B are given on their logs: use 'log_A' / 'log_B'."
        raise BayescaleError(
            f"unknown prior key(s) {unknown}; valid keys are {list(keys)}.{hint}"
        )
    bounded = [law.prior_key(c) for c in law.coords
               if law.priors[c].kind == "log_uniform_below_loss"]
    if E_max is None and any(k not in priors for k in bounded):
        raise BayescaleError(f"the default prior on {bounded[0]} needs E_max (a loss level from "
                             f"the data); pass E_max=... or priors={{'{bounded[0]}': ...}}.")
    out = {**default_priors(1.0 if E_max is None else E_max, likelihood, law), **priors}
    for key, value in out.items():
        if key == "nu" and not isinstance(value, dist.Distribution):
            try:
                nu = float(value)
            except (TypeError, ValueError):
                nu = float("nan")
            if not (np.isfinite(nu) and nu > 0):
                raise BayescaleError(
                    f"prior 'nu' must be a positive number (fixed degrees of freedom) or a "
                    f"NumPyro distribution, got {value!r}.")
            out[key] = nu
            continue
        if not isinstance(value, dist.Distribution):
            raise BayescaleError(
                f"prior {key!r} must be a numpyro.distributions.Distribution, got "
                f"{type(value).__name__} ({value!r}).")
        if value.batch_shape or value.event_shape:
            raise BayescaleError(
                f"prior {key!r} must be scalar (batch_shape=(), event_shape=()), got "
                f"batch_shape={value.batch_shape}, event_shape={value.event_shape}.")
    return out


def describe_priors(priors: Mapping[str, Any]) -> dict[str, str]:
    """Human-readable priors, e.g. ``{"alpha": "Uniform(low=0.0, high=1.5)"}``."""
    out = {}
    for key, value in priors.items():
        if isinstance(value, dist.Distribution):
            args = []
            for name in value.arg_constraints:
                v = getattr(value, name, None)
                if v is None:
                    continue
                try:
                    args.append(f"{name}={float(v):.6g}")
                except (TypeError, ValueError):
                    continue
            out[key] = f"{type(value).__name__}({', '.join(args)})"
        else:
            out[key] = f"fixed {value:g}"
    return out


def fixed_nu(info: Mapping[str, Any]) -> float:
    """The Student-t degrees of freedom a NUTS fit held fixed, read from its
    ``info["priors"]["nu"]`` as :func:`describe_priors` wrote it (``"fixed 10"``);
    :data:`DEFAULT_NU` when none is recorded. (A sampled ``nu`` has its own draws.)"""
    text = str(info.get("priors", {}).get("nu", ""))
    return float(text.split()[1]) if text.startswith("fixed ") else DEFAULT_NU
