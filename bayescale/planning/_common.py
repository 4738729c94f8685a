"""What the planning modules share (private to planning): draws, budgets, results.

A :class:`Draw` is one parameter vector ``theta`` in the law's fitting coordinates and
the log of the unique-token budget (used only by laws whose inputs include ``U``).
Everything here evaluates the law through its one kernel
(:attr:`bayescale.laws.base.Law.kernel`); nothing writes a law's formula.

Budgets enter the compiled solvers as ``log C`` taken in float64 NumPy
(:func:`log_budgets`), so that a budget beyond float32's range (3.4e38) is not cast
to ``inf``; parameters are checked against the working float type
(:func:`check_representable`) and refused with a message naming the value.

:class:`Frontier` (the result of :func:`bayescale.planning.frontier.frontier`) and the
summary tables live here too, shared by the frontier and the serving-aware optimum
(:mod:`bayescale.planning.serving`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale._util import as_budgets, check_level, median_interval
from bayescale.errors import BayescaleError
from bayescale.laws.base import Law
from bayescale.laws.registry import law_of

__all__ = ["Draw", "draws", "check_unique_tokens", "log_loss", "log_marginal_ratio", "loss", "closed_form_one", "needs_unique_tokens",
           "as_draws", "log_budgets", "check_representable", "check_finite_optimum",
           "over_draws_and_budgets", "over_pairs", "is_traced", "working_log", "PAIRS_SMALL",
           "PAIRS_CHUNK",
           "require_chinchilla", "Frontier", "summary_table", "extrapolation", "num"]


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


def check_unique_tokens(params: Any, unique_tokens: Any) -> Any:
    """``U`` refused for a law without unique tokens as an input (:func:`draws` refuses a
    missing one where the law needs it), checked finite and positive where concrete."""
    law = law_of(params)
    if unique_tokens is not None and not needs_unique_tokens(law):
        raise BayescaleError(f"unique_tokens applies to laws with unique tokens as an input "
                             f"(data_constrained); the {law.name} law has none.")
    if unique_tokens is None or isinstance(unique_tokens, jax.core.Tracer):
        return unique_tokens
    return float(as_budgets(unique_tokens)[0])


def log_loss(law: Law, d: Draw, x: Array, y: Array) -> Array:
    """``log L`` of one draw at ``x = log N``, ``y = log D``."""
    x, y = jnp.broadcast_arrays(x, y)
    point = [x, y] + ([jnp.broadcast_to(d.log_U, x.shape)] if needs_unique_tokens(law) else [])
    return law.kernel(d.theta, jnp.stack(point))


def log_marginal_ratio(law: Law, d: Draw, x: Array, y: Array) -> Array:
    """``log((dlogL/dlogN) / (dlogL/dlogD))`` of one draw at ``x = log N``, ``y = log D``:
    the law's closed form where it gives one (:attr:`Law.log_marginal_ratio`), else the
    kernel's partial derivatives by autodiff (``-inf``/``+inf`` where one underflows)."""
    point = [x, y] + ([d.log_U] if needs_unique_tokens(law) else [])
    if law.log_marginal_ratio is not None:
        return law.log_marginal_ratio(d.theta, jnp.stack(point))
    tiny = jnp.finfo(jnp.result_type(float)).tiny
    g = jax.grad(lambda p: law.kernel(d.theta, p))(jnp.stack(point))
    return jnp.log(jnp.maximum(-g[0], tiny)) - jnp.log(jnp.maximum(-g[1], tiny))


def loss(law: Law, d: Draw, x: Array, y: Array) -> Array:
    """``L`` of one draw at ``x = log N``, ``y = log D``."""
    return jnp.exp(log_loss(law, d, x, y))


def closed_form_one(law: Law, d: Draw, log_C: Array) -> tuple[Array, Array]:
    """``(log N_opt, log D_opt)`` under ``C = 6 N D`` from the law's closed form."""
    if law.closed_form is None:
        raise BayescaleError(f"the {law.name} law has no closed-form allocation.")
    return law.closed_form(d.theta, log_C)


def check_representable(values: dict[str, Any], what: str) -> None:
    """Raise if a finite value overflows (or a non-zero one underflows to 0 in) the
    working float type (float32 unless x64 is on), naming the value."""
    dtype = jnp.result_type(float)
    info = np.finfo(dtype)
    for name, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        big = np.isfinite(v) & (np.abs(v) > info.max)
        small = (v != 0) & (np.abs(v) < info.tiny)
        if big.any() or small.any():
            bad = float(v[big | small].flat[0])
            raise BayescaleError(
                f"{what} {name} = {bad:.6g} is outside the range of {np.dtype(dtype).name} "
                f"({info.tiny:.3g} to {info.max:.3g}); turn on float64 with "
                f"jax.config.update('jax_enable_x64', True) (or JAX_ENABLE_X64=1).")


def check_finite_optimum(N_opt, D_opt, converged, C: np.ndarray) -> None:
    """Refuse a converged optimum that overflowed the working float type, naming the budget."""
    ok = np.asarray(converged, dtype=bool)
    over = ok & ~(np.isfinite(np.asarray(N_opt)) & np.isfinite(np.asarray(D_opt)))
    if over.any():
        budget = float(np.broadcast_to(C, over.shape)[over][0])
        dtype = np.dtype(jnp.result_type(float)).name
        raise BayescaleError(
            f"the optimum at budget C = {budget:.6g} FLOPs overflows {dtype} (N_opt or D_opt "
            f"above {float(np.finfo(dtype).max):.3g}); turn on float64 with "
            f"jax.config.update('jax_enable_x64', True).")


def log_budgets(C: Any) -> Array:
    """``log C`` in the working float type; a concrete ``C`` is logged in float64 first."""
    if isinstance(C, jax.core.Tracer):
        return jnp.log(C)
    with np.errstate(divide="ignore", invalid="ignore"):
        return jnp.asarray(np.log(np.asarray(C, dtype=np.float64)), dtype=jnp.result_type(float))


def over_draws_and_budgets(fn_one: Callable, params: Any, log_C: ArrayLike, unique_tokens=None):
    """Apply ``fn_one(law, draw, log_C) -> tuple`` over draws x budgets; shape params + C."""
    law, d, pshape = draws(params, unique_tokens)
    fn_one = functools.partial(fn_one, law)
    log_C = jnp.asarray(log_C, dtype=d.theta.dtype)
    cshape = log_C.shape
    out = jax.vmap(lambda di: jax.vmap(lambda lc: fn_one(di, lc))(log_C.reshape(-1)))(d)
    return tuple(o.reshape(pshape + cshape) for o in out)


def is_traced(*trees: Any) -> bool:
    """Whether any leaf of ``trees`` is a JAX tracer (we are inside jit, grad or vmap)."""
    return any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(trees))


def working_log(C: Any) -> np.ndarray:
    """``log C`` of a concrete ``C`` cast to the working float type first, as ``jnp.log(C)``
    under jit takes it, the log taken in float64 and rounded once (so that it agrees with
    :func:`log_budgets` of the same budgets); in NumPy: no per-shape compile of an eager
    ``log``."""
    dtype = np.dtype(jnp.result_type(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(C, dtype=dtype).astype(np.float64)).astype(dtype)


# The concrete path of ``over_pairs`` solves (draw, budget) pairs in chunks of a fixed size,
# so that the per-pair program compiles once per (function, law, options) and chunk size,
# never per number of draws or budgets. Two sizes: a request of at most PAIRS_SMALL pairs
# (a point estimate, a handful of budgets) runs as one small chunk, so it pays neither a
# big solve nor much padding; anything larger runs in PAIRS_CHUNK chunks. Measured on the
# 2-core CPU (benchmarks/bench_frontier_compiles.py --sweep, data_constrained, steady
# state of 80 x 80 = 6400 pairs / 80 x 17 / 80 x 1): chunks of 256: 15.0 / 3.7 / 0.9 ms,
# 1024: 13.1 / 3.6 / 2.0 ms, 2048: 18.0 / 3.2 / 3.2 ms, 4096: 34.0 / 7.4 / 7.8 ms, 8192:
# 34.6 / 10.1 / 9.2 ms (one program over all pairs, the old way: ~29 / 1.8 / 0.4 ms). Past
# ~1000 lanes the vmapped solve gets slower per pair (the batch no longer stays in cache)
# and the padding of the last chunk grows, so 1024 is the fastest for large requests;
# 256 keeps small ones under a millisecond. Each size is one compile (~3 s for the
# numerical solver), so a solver compiles at most twice, whatever the request shapes.
PAIRS_SMALL = 256
PAIRS_CHUNK = 1024


def _chunk_size(num_pairs: int) -> int:
    return PAIRS_SMALL if num_pairs <= PAIRS_SMALL else PAIRS_CHUNK


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _pairs_program(fn_one: Callable, law: Law, options: tuple, leaves: tuple, U: Array,
                   log_C: Array):
    """``fn_one(law, draw, log_C, **options)`` vmapped over a 1-D batch of pairs: leaves
    of the law's parameters, ``U`` and ``log C``, one entry per pair."""
    theta = law.to_theta(law.params_type(*leaves))
    log_U = jnp.log(U) if needs_unique_tokens(law) else jnp.zeros_like(log_C)
    kwargs = dict(options)
    return jax.vmap(lambda d, lc: fn_one(law, d, lc, **kwargs))(Draw(theta, log_U), log_C)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _empty_program(fn_one: Callable, options: tuple, params: Any, log_C: Array,
                   unique_tokens: Any):
    """:func:`over_draws_and_budgets` of ``fn_one`` with ``options`` (sorted ``(name,
    value)`` pairs) for a request with no pair to solve: compiled once per function,
    options and shapes, it gives the empty leaves their shapes and dtypes."""
    return over_draws_and_budgets(functools.partial(fn_one, **dict(options)), params, log_C,
                                  unique_tokens)


def over_pairs(fn_one: Callable, params: Any, log_C: ArrayLike, unique_tokens=None,
               **options) -> tuple:
    """``fn_one(law, draw, log_C, **options) -> tuple`` over draws x budgets; leaves shaped
    ``params + C``. ``fn_one`` (a module-level function) and ``options`` are hashable: they
    key the compiled program.

    Traced inputs (inside another jit, grad or vmap) take the one nested vmap of
    :func:`over_draws_and_budgets`. Concrete ones are flattened to (draw, budget) pairs,
    padded by repeating valid pairs to a multiple of a fixed chunk size (see
    ``PAIRS_CHUNK``) and solved by one compiled per-pair program per chunk: no recompile
    per number of draws or budgets.
    """
    if is_traced(params, log_C, unique_tokens):
        return over_draws_and_budgets(functools.partial(fn_one, **options), params, log_C,
                                      unique_tokens)
    law = law_of(params)
    dtype = np.dtype(jnp.result_type(float))
    leaves = np.broadcast_arrays(*(np.asarray(v, dtype=dtype) for v in params))
    pshape = leaves[0].shape
    log_C = np.asarray(log_C, dtype=dtype)
    cshape = log_C.shape
    P, B = math.prod(pshape), math.prod(cshape)
    if needs_unique_tokens(law):
        if unique_tokens is None:
            draws(params, unique_tokens)  # raises the message for a missing U
        U = np.broadcast_to(np.asarray(unique_tokens, dtype=dtype), (P,))
    else:
        U = np.ones((P,), dtype)
    n = P * B
    key = tuple(sorted(options.items()))
    if n == 0:  # nothing to solve: the traced program gives the empty leaves their dtypes
        return _empty_program(fn_one, key, params, log_C, unique_tokens)
    size = _chunk_size(n)
    idx = np.arange(-(-n // size) * size) % n  # the padding repeats valid pairs: no NaN
    draw_of, budget_of = idx // B, idx % B
    flat = [v.reshape(-1)[draw_of] for v in leaves]
    U, log_C_pairs = U[draw_of], log_C.reshape(-1)[budget_of]
    chunks = [_pairs_program(fn_one, law, key, tuple(v[i:i + size] for v in flat),
                             U[i:i + size], log_C_pairs[i:i + size])
              for i in range(0, idx.size, size)]  # dispatched asynchronously, then gathered
    if is_traced(chunks[0]):  # concrete inputs, but inside another jit: staged, not run
        return tuple(jnp.concatenate([c[j] for c in chunks])[:n].reshape(pshape + cshape)
                     for j in range(len(chunks[0])))
    out = (np.concatenate([np.asarray(c[j]) for c in chunks])[:n] for j in range(len(chunks[0])))
    return tuple(jnp.asarray(o.reshape(pshape + cshape)) for o in out)


def as_draws(params: Any) -> Any:
    """Validate any law's parameters eagerly and give every leaf a leading draw axis."""
    try:
        law = law_of(params)
    except BayescaleError:
        raise BayescaleError(
            f"params must be the parameters of a scaling law (e.g. "
            f"bayescale.laws.chinchilla.LawParams), got {type(params).__name__}.") from None
    params = law.params_type(*params)
    leaves = [np.asarray(v, dtype=float) for v in params]
    try:
        leaves = np.broadcast_arrays(*leaves)
    except ValueError:
        raise BayescaleError(
            f"the fields of params ({', '.join(law.param_names)}) must be scalars or arrays of "
            f"one shape (draw,), got shapes {[np.shape(v) for v in params]}.") from None
    if leaves[0].ndim > 1:
        raise BayescaleError(f"params must be scalars or 1-D over draws, got shape {leaves[0].shape}.")
    leaves = [np.atleast_1d(v) for v in leaves]
    bad = [n for n, v in zip(law.param_names, leaves)
           if not np.all(np.isfinite(v)) or (n in law.positive and not np.all(v > 0))]
    if bad:
        raise BayescaleError(
            f"params {bad} must be finite (and positive) in every draw; drop the bad draws first.")
    check_representable(dict(zip(law.param_names, leaves)), "parameter")
    return law.params_type(*leaves)


def require_chinchilla(law, what: str) -> None:
    if law.name != "chinchilla":
        raise BayescaleError(f"{what} needs the Chinchilla law's explicit iso-loss curve; it is "
                             f"not available for the {law.name} law.")


def extrapolation(budgets: ArrayLike, data_C_range: tuple[float, float] | None) -> np.ndarray:
    """Orders of magnitude of each budget outside ``data_C_range`` (0 inside, NaN if None)."""
    C = np.asarray(budgets, dtype=float)
    if data_C_range is None:
        return np.full(C.shape, np.nan)
    lo, hi = (float(v) for v in data_C_range)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise BayescaleError(f"data_C_range must be (C_min, C_max) with 0 < C_min <= C_max, got {data_C_range!r}.")
    return np.maximum(0.0, np.maximum(np.log10(C / hi), np.log10(lo / C)))


def summary_table(quantities: dict[str, ArrayLike], index_name: str, index, level: float):
    """Median and central ``level`` interval over axis 0 of each ``[draws x k]`` array."""
    import pandas as pd  # the only pandas use here: tables for people

    level = check_level(level)
    cols = {}
    for name, arr in quantities.items():
        med, lo, hi = median_interval(arr, level)
        cols[f"{name}_median"], cols[f"{name}_lower"], cols[f"{name}_upper"] = med, lo, hi
    table = pd.DataFrame(cols, index=pd.Index(np.asarray(index, dtype=float), name=index_name))
    table.attrs["level"] = level
    return table


def num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class Frontier(NamedTuple):
    """The compute-optimal frontier for every draw and budget.

    Attributes
    ----------
    N_opt, D_opt, L_opt, tokens_per_param : arrays ``[draws x budgets]`` (a point
        estimate is one draw).
    budgets : ``(budget,)`` FLOPs.
    converged : bool ``[draws x budgets]``.
    extrapolation : ``(budget,)`` orders of magnitude of ``C`` outside the range of
        compute the data cover (0 inside; NaN when the range is unknown).
    """

    N_opt: Array
    D_opt: Array
    L_opt: Array
    tokens_per_param: Array
    budgets: np.ndarray
    converged: Array
    extrapolation: np.ndarray

    @property
    def num_draws(self) -> int:
        return int(np.shape(self.N_opt)[0])

    def summary(self, level: float = 0.9):
        """One row per budget: ``<q>_median``, ``<q>_lower``, ``<q>_upper`` for ``N_opt``,
        ``D_opt``, ``L_opt`` and ``tokens_per_param`` (central interval at ``level``
        over draws), the ``extrapolation`` and the share of draws that ``converged``.
        """
        # Draws whose solve did not converge are left out of the quantiles (their last
        # iterate is not an optimum); the ``converged`` column says how many were kept.
        ok = np.asarray(self.converged, dtype=bool)
        qs = {k: np.where(ok, np.asarray(getattr(self, k), dtype=float), np.nan)
              for k in ("N_opt", "D_opt", "L_opt", "tokens_per_param")}
        table = summary_table(qs, "C", self.budgets, level)
        table["extrapolation"] = np.asarray(self.extrapolation, dtype=float)
        table["converged"] = np.asarray(self.converged).mean(axis=0)
        return table

    def to_dict(self, level: float = 0.9) -> dict[str, Any]:
        """JSON-ready ``{"level", "num_draws", "budgets": [{"C", "N_opt": {"median",
        "lower", "upper"}, "D_opt", "L_opt", "tokens_per_param", "extrapolation",
        "converged"}, ...]}``."""
        table = self.summary(level)
        rows = []
        for C, row in zip(self.budgets, table.itertuples(index=False)):
            r = row._asdict()
            item: dict[str, Any] = {"C": float(C)}
            for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param"):
                item[q] = {k: num(r[f"{q}_{k}"]) for k in ("median", "lower", "upper")}
            item["extrapolation"] = num(r["extrapolation"])
            item["converged"] = float(r["converged"])
            rows.append(item)
        return {"level": float(level), "num_draws": self.num_draws, "budgets": rows}
