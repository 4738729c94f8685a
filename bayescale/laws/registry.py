"""Looking laws up: by name, or by the type of their parameters.

Importing this module registers the shipped laws (``chinchilla``, ``kaplan``,
``data_constrained``, ``farseer``); a user's law joins with :func:`bayescale.laws.base.register`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayescale.errors import BayescaleError
from bayescale.laws import chinchilla, data_constrained, farseer, kaplan  # noqa: F401  (registers them)
from bayescale.laws.base import Law, evaluate, registered

__all__ = ["get_law", "law_names", "law_of", "log_loss", "loss"]


def law_names() -> list[str]:
    """Names of the registered laws."""
    return sorted(registered())


def get_law(law: str | Law | None = None) -> Law:
    """The :class:`~bayescale.laws.base.Law` named ``law`` (default ``"chinchilla"``), or
    ``law`` itself."""
    if isinstance(law, Law):
        return law
    laws = registered()
    name = "chinchilla" if law is None else str(law)
    if name not in laws:
        raise BayescaleError(f"unknown law {name!r}; choose one of {', '.join(sorted(laws))} "
                             f"(or pass a bayescale.laws.Law).")
    return laws[name]


def law_of(params: Any) -> Law:
    """The law whose parameter type ``params`` is (by type, then by field names)."""
    laws = registered().values()
    for law in laws:
        if type(params) is law.params_type:
            return law
    fields = getattr(params, "_fields", None)
    if fields is not None:
        for law in laws:
            if tuple(fields) == law.param_names:
                return law
    raise BayescaleError(
        f"cannot tell which law {type(params).__name__} belongs to; pass the parameters of a "
        f"registered law ({', '.join(law_names())}), e.g. bayescale.laws.chinchilla.LawParams.")


def log_loss(params: Any, N: ArrayLike, D: ArrayLike, U: ArrayLike | None = None) -> Array:
    """Natural log of the predicted loss for any registered law's parameters; the fields
    of ``params`` and ``N``, ``D`` (and ``U``) broadcast together, NumPy style."""
    return evaluate(law_of(params), params, N, D, U)


def loss(params: Any, N: ArrayLike, D: ArrayLike, U: ArrayLike | None = None) -> Array:
    """Predicted final loss (nats/token) for any registered law's parameters."""
    return jnp.exp(log_loss(params, N, D, U))
