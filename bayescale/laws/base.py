"""The law concept: one object per scaling-law family, one kernel per law.

A :class:`Law` carries everything the rest of bayescale needs to know about a family
of scaling laws, so that the estimators, the frontier, the decisions, the synthetic
generator and the report never write a law's formula themselves:

* ``params_type``: a ``NamedTuple`` with the paper's symbols (``E, A, B, alpha, beta``
  for Chinchilla; ``N_c, D_c, alpha_N, alpha_D`` for Kaplan ...). Fields are scalars
  for a point estimate or arrays with a leading draw axis;
* ``coords``: the fitting coordinates ``theta`` (logs of positive scales, exponents
  as they are), in which the Huber fit, the bootstrap and NUTS work, with
  ``to_theta`` / ``from_theta`` between the two;
* ``kernel(theta, log_x) -> log L``: the law for *one* parameter vector ``theta``
  (shape ``(k,)``) and *one* point ``log_x`` (shape ``(len(inputs),)``: ``log N,
  log D`` and, for the data-constrained law, ``log U``), written once, in log space,
  float32-safe. :func:`log_loss_theta` maps it over points and draws;
* ``priors``: declarative default priors on ``coords`` (:class:`Prior`), with the
  reasoning in the law's module docstring, and ``shears``, the centred sampling
  coordinates NUTS uses (``theta_c = theta - theta[exponent] * log x0[input]``);
* ``start_grid``: the Huber fit's grid of starts, per coordinate;
* ``closed_form``: ``(theta, log_C) -> (log N_opt, log D_opt)`` under ``C = 6 N D``
  where one exists; otherwise the frontier solves the first-order condition of the
  kernel numerically (a jitted safeguarded Newton iteration);
* ``log_marginal_ratio``: optional, ``(theta, log_x) -> log((dlogL/dlogN) /
  (dlogL/dlogD))``, the log ratio of the loss's elasticities in ``N`` and in ``D``
  that the numerical frontier's first-order condition needs. By default it comes from
  the kernel by autodiff; a law may give it in closed form because the solver
  differentiates it again (a Newton step), and forward-over-reverse autodiff through
  a log-sum-exp costs about 4x the closed form on the 4000 x 1000 frontier benchmark.
  A test checks every law's closed form against the kernel's autodiff.

A user-defined law is a :class:`Law` built from these pieces (about twenty lines; see
the README); :func:`register` makes it available by name (``fit(..., law="mine")``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.errors import BayescaleError

__all__ = ["Prior", "Law", "register", "registered", "log_loss_theta", "evaluate", "log_sum_exp"]

LOG6 = float(np.log(6.0))


class Prior(NamedTuple):
    """A declarative prior on one fitting coordinate (turned into a NumPyro
    distribution by :mod:`bayescale.estimators.model`, so laws need no NumPyro).

    ``kind`` is ``"normal"`` (``a`` = loc, ``b`` = scale) or ``"uniform"`` (``a`` = low,
    ``b`` = high) on the coordinate itself, or ``"log_uniform_below_loss"``: the
    coordinate is the log of a quantity ``X ~ Uniform(a, b * E_max)``, where ``E_max``
    is a loss level taken from the data (for an irreducible loss ``E``, sampled as ``X``).
    ``key`` is the name users give its prior by and, for the last kind, the sampled
    site's name (default: the coordinate's name).
    """

    kind: str
    a: float = 0.0
    b: float = 1.0
    key: str | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Law:
    """A family of scaling laws (see the module docstring for each field)."""

    name: str
    params_type: type
    inputs: tuple[str, ...]
    coords: tuple[str, ...]
    kernel: Callable[[Array, Array], Array]
    to_theta: Callable[[Any], Array]
    from_theta: Callable[[ArrayLike], Any]
    priors: Mapping[str, Prior]
    start_grid: Mapping[str, tuple]
    shears: tuple[tuple[str, str | None, str], ...] = ()
    closed_form: Callable[[Array, Array], tuple[Array, Array]] | None = None
    log_marginal_ratio: Callable[[Array, Array], Array] | None = None
    positive: tuple[str, ...] = ()
    citation: str = ""
    description: str = ""

    def __post_init__(self):
        fields = tuple(self.params_type._fields)
        if set(self.priors) != set(self.coords):
            raise BayescaleError(
                f"law {self.name!r}: priors must be given for every coordinate {self.coords}, "
                f"got {sorted(self.priors)}.")
        if set(self.start_grid) != set(self.coords):
            raise BayescaleError(
                f"law {self.name!r}: start_grid must list values for every coordinate "
                f"{self.coords}, got {sorted(self.start_grid)}.")
        kinds = {"normal", "uniform", "log_uniform_below_loss"}
        bad_kinds = {c: p.kind for c, p in self.priors.items() if p.kind not in kinds}
        if bad_kinds:
            raise BayescaleError(f"law {self.name!r}: unknown prior kinds {bad_kinds}; use {sorted(kinds)}.")
        for coord, exponent, inp in self.shears:
            if coord not in self.coords or (exponent is not None and exponent not in self.coords) \
                    or inp not in self.inputs:
                raise BayescaleError(f"law {self.name!r}: bad shear {(coord, exponent, inp)}.")
        bad = [p for p in self.positive if p not in fields]
        if bad:
            raise BayescaleError(f"law {self.name!r}: positive fields {bad} are not parameters.")
        if not set(self.inputs) <= {"N", "D", "U"} or self.inputs[:2] != ("N", "D"):
            raise BayescaleError(f"law {self.name!r}: inputs must be ('N', 'D') or "
                                 f"('N', 'D', 'U'), got {self.inputs}.")

    # -- parameters ---------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params_type._fields)

    @property
    def num_coords(self) -> int:
        return len(self.coords)

    def prior_key(self, coord: str) -> str:
        """The name users give ``coord``'s prior by (e.g. ``log_A`` for ``a``)."""
        return self.priors[coord].key or coord

    def params(self, *args, **kwargs):
        """Build this law's parameter tuple (``law.params(E=1.8, A=..., ...)``)."""
        return self.params_type(*args, **kwargs)

    def starts(self, **overrides) -> np.ndarray:
        """The Huber fit's grid of starting points, shape ``(k, num_coords)``;
        keyword arguments replace one coordinate's values."""
        unknown = set(overrides) - set(self.coords)
        if unknown:
            raise BayescaleError(f"unknown grid coordinates {sorted(unknown)}; use {list(self.coords)}.")
        axes = {**self.start_grid, **{k: tuple(np.atleast_1d(v)) for k, v in overrides.items()}}
        return np.array(list(itertools.product(*(axes[c] for c in self.coords))), dtype=float)

    def __repr__(self) -> str:
        return f"Law({self.name!r}, params={self.param_names}, inputs={self.inputs})"


def log_sum_exp(*terms: Array) -> Array:
    """``log(sum(exp(terms)))`` of a few same-shaped terms, for the kernels: shifted by their
    maximum, held constant under differentiation (``logsumexp(t) = c + log sum exp(t - c)``
    for any constant ``c``, so values and derivatives of every order are exact). Under
    ``vmap`` and ``grad`` it is about 3x faster than ``jax.scipy.special.logsumexp`` over a
    stacked axis (430 -> 130 us for a value and gradient over 10,000 rows, float32, 2 CPU
    cores; NUTS with the defaults on 10,000 rows samples in 37 s instead of 107 s, see
    ``benchmarks/RESULTS.md``), which also guards infinite terms that a kernel's finite
    terms never have."""
    m = terms[0]
    for t in terms[1:]:
        m = jnp.maximum(m, t)
    m = jax.lax.stop_gradient(m)
    total = jnp.exp(terms[0] - m)
    for t in terms[1:]:
        total = total + jnp.exp(t - m)
    return m + jnp.log(total)


_REGISTRY: dict[str, Law] = {}


def register(law: Law, *, replace: bool = False) -> Law:
    """Make ``law`` available by name (``fit(runs, law=law.name)``, ``--law``)."""
    if not isinstance(law, Law):
        raise BayescaleError(f"register() takes a bayescale.laws.Law, got {type(law).__name__}.")
    if law.name in _REGISTRY and _REGISTRY[law.name] is not law and not replace:
        raise BayescaleError(f"a law named {law.name!r} is already registered; pass replace=True.")
    _REGISTRY[law.name] = law
    return law


def registered() -> dict[str, Law]:
    """The laws registered so far, by name (see :mod:`bayescale.laws.registry`)."""
    return dict(_REGISTRY)


# -- the one shared evaluation helper ----------------------------------------------

def log_loss_theta(law: Law, theta: ArrayLike, log_X: ArrayLike) -> Array:
    """``log L`` for parameter vectors ``theta`` (``(k,)`` or ``(draw, k)``) at points
    ``log_X`` (``(n, m)`` with ``m = len(law.inputs)``); returns ``(n,)`` or ``(draw, n)``.

    This is the only place the kernel is mapped over points and draws.
    """
    theta = jnp.asarray(theta)
    log_X = jnp.asarray(log_X)
    over_points = jax.vmap(law.kernel, in_axes=(None, 0))
    if theta.ndim == 1:
        return over_points(theta, log_X)
    return jax.vmap(over_points, in_axes=(0, None))(theta, log_X)


def evaluate(law: Law, params: Any, N: ArrayLike, D: ArrayLike,
             U: ArrayLike | None = None) -> Array:
    """Natural log of the predicted loss under ``law`` with parameters ``params``.

    The fields of ``params`` and ``N``, ``D`` (and ``U``) broadcast together, NumPy
    style: for draws x points pass fields of shape ``(draw, 1)`` and points of shape
    ``(n,)``. Evaluated by the law's kernel, elementwise.
    """
    if "U" in law.inputs and U is None:
        raise BayescaleError(f"the {law.name} law needs the unique tokens U as well as N and D.")
    if "U" not in law.inputs and U is not None:
        raise BayescaleError(f"the {law.name} law takes N and D only; U was given.")
    dtype = jnp.result_type(float)
    inputs = [N, D] + ([U] if "U" in law.inputs else [])
    leaves = [jnp.asarray(v, dtype=dtype) for v in params]
    logs = [jnp.log(jnp.asarray(v, dtype=dtype)) for v in inputs]
    arrays = jnp.broadcast_arrays(*leaves, *logs)
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    k = len(leaves)
    theta = law.to_theta(law.params_type(*flat[:k]))
    log_X = jnp.stack(flat[k:], axis=-1)
    return jax.vmap(law.kernel)(theta, log_X).reshape(shape)
