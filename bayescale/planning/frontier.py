"""The compute-optimal frontier: for a budget ``C``, the ``(N, D)`` minimising the loss.

For every parameter draw (posterior draw, bootstrap resample, or the one point
estimate) and every budget ``C`` this finds

    N_opt, D_opt = argmin L(N, D)  subject to  cost(N, D) = C,
    L_opt = L(N_opt, D_opt),

with ``L(N, D) = E + A / N**alpha + B / D**beta`` (:mod:`bayescale.laws.chinchilla`).

* ``C = 6 N D`` has a closed form (Hoffmann et al. 2022, eq. 4 and Appendix D.2):
  ``N_opt = G (C/6)**a``, ``D_opt = G**-1 (C/6)**b`` with ``a = beta / (alpha + beta)``,
  ``b = alpha / (alpha + beta)`` and ``G = (alpha A / (beta B))**(1 / (alpha + beta))``.
  :func:`compute_optimal` evaluates it in log space, so float32 is safe.
* Any other cost model (:mod:`bayescale.planning.costs`) is solved numerically by
  :func:`solve_optimal`. On the surface ``cost(N, D) = C`` write ``x = log N`` and
  ``y(x) = log D`` (analytic for the shipped models, a Newton solve in ``log D`` for a
  user function). The first-order condition for a minimum of ``L`` along the surface,
  ``dL/dx = 0``, is, in logs (float32-safe and nearly linear in ``x``),

      h(x) = log(alpha A N**-alpha) - log(beta B D**-beta) - log(-y'(x)) = 0,

  with ``h > 0`` where the loss still falls with ``N``. It is solved by a safeguarded
  Newton iteration in ``x``: Newton steps while they stay inside a bracket kept
  from the signs of ``h`` seen so far, bisection otherwise, stopping when the step
  is below a few ulps; the solve is differentiable by the implicit function
  theorem (``jax.lax.custom_root``). For ``C = 6 N D``, ``h`` is linear and one Newton
  step is exact. The solve for one draw and one budget is in
  :mod:`bayescale.planning._numerical`.

Everything is written for one draw and one budget (:func:`_closed_pair`,
:func:`_numerical_pair`). With concrete inputs the (draw, budget) pairs are solved in
chunks of a fixed size by one compiled per-pair program
(:func:`bayescale.planning._common.over_pairs`): a new number of draws or budgets
never recompiles. Traced inputs (inside another ``jax.jit``, ``grad`` or ``vmap``)
take one ``jax.jit`` of the nested ``jax.vmap`` over draws x budgets.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
T. Besiroglu, E. Erdil, M. Barnett, J. You, "Chinchilla Scaling: A replication
attempt", arXiv:2404.10102 (2024).
N. Sardana, J. Portes, S. Doubov, J. Frankle, "Beyond Chinchilla-Optimal: Accounting
for Inference in Language Model Scaling Laws", arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.planning.costs import Cost, TrainCost, get_cost
from bayescale._util import as_budgets
from bayescale.errors import BayescaleError
from bayescale.laws.registry import law_of
from bayescale.planning._common import (
    Frontier,
    as_draws,
    check_finite_optimum,
    check_unique_tokens,
    closed_form_one,
    draws,
    extrapolation,
    is_traced,
    log_budgets,
    loss,
    over_pairs,
    require_chinchilla,
    working_log,
)
from bayescale.planning._numerical import INITS, numerical_one
from bayescale.laws.chinchilla import LawParams

__all__ = [
    "Allocation",
    "Frontier",
    "as_draws",
    "compute_optimal",
    "solve_optimal",
    "frontier",
    "extrapolation",
    "optimal_loss_curve",
    "compute_equivalent",
]


class Allocation(NamedTuple):
    """Optimal allocation for each draw and budget (leaves shaped ``params + C``).

    Attributes
    ----------
    N_opt : parameters.
    D_opt : training tokens.
    L_opt : predicted loss at ``(N_opt, D_opt)`` (nats/token).
    converged : bool; always true for the closed form.
    """

    N_opt: Array
    D_opt: Array
    L_opt: Array
    converged: Array


# ---------------------------------------------------------------------------
# Public pure functions
# ---------------------------------------------------------------------------

def _closed_pair(law, d, log_C):
    """The closed-form allocation of one draw at one budget (``C = 6 N D``)."""
    x, y = closed_form_one(law, d, log_C)
    return jnp.exp(x), jnp.exp(y), loss(law, d, x, y), jnp.ones((), bool)


def _numerical_pair(law, d, log_C, *, cost: Cost, max_iter: int, init: str, fused_iters: int):
    """The numerical allocation of one draw at one budget (safeguarded Newton)."""
    x, y, ok = numerical_one(law, d, log_C, cost=cost, max_iter=max_iter, init=init,
                             fused_iters=fused_iters)
    return jnp.exp(x), jnp.exp(y), loss(law, d, x, y), ok


def compute_optimal(params: Any, C: ArrayLike, unique_tokens: ArrayLike | None = None) -> Allocation:
    """Compute-optimal allocation under ``C = 6 N D``, for any law.

    Closed form where the law has one (Chinchilla: Hoffmann et al. 2022, eq. 4);
    otherwise the safeguarded Newton solve of :func:`solve_optimal` with ``6 N D``.

    Parameters
    ----------
    params : parameters of any registered law (``LawParams``, ``KaplanParams``, ...)
        Leaves scalars (a point estimate) or arrays of shape ``(draw,)``.
    C : array of shape () or ``(budget,)``
        Training budgets in FLOPs.
    unique_tokens : the unique-token budget ``U``, for laws whose inputs include it
        (``data_constrained``).

    Returns
    -------
    Allocation
        Leaves of shape ``params.shape + C.shape``.

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> opt = compute_optimal(BESIROGLU_2024, 5.76e23)  # Gopher's budget
    >>> round(float(opt.N_opt) / 1e9, 1), round(float(opt.D_opt) / 1e12, 2)
    (72.2, 1.33)

    References
    ----------
    Hoffmann et al. (2022), eq. 4 and Appendix D.2.
    """
    if is_traced(params, C, unique_tokens):
        return _compute_optimal_jit(params, C, unique_tokens)
    return _compute_optimal_log(params, working_log(C), unique_tokens)


@jax.jit
def _compute_optimal_jit(params, C, unique_tokens=None) -> Allocation:
    """:func:`compute_optimal` as one program for all draws and budgets (traced inputs)."""
    return _compute_optimal_log(params, jnp.log(C), unique_tokens)


compute_optimal.lower = _compute_optimal_jit.lower  # for benchmarks/bench_frontier.py


def _compute_optimal_log(params, log_C, unique_tokens=None) -> Allocation:
    """:func:`compute_optimal` of budgets given as ``log C`` (see :func:`log_budgets`)."""
    if law_of(params).closed_form is None:
        return _solve_optimal_log(params, log_C, cost=TrainCost(), max_iter=64,
                                  init="chinchilla", fused_iters=2, unique_tokens=unique_tokens)
    return Allocation(*over_pairs(_closed_pair, params, log_C))


def solve_optimal(params: Any, C: ArrayLike, *, cost: Cost = TrainCost(),
                  max_iter: int = 64, init: str = "chinchilla",
                  fused_iters: int = 2, unique_tokens: ArrayLike | None = None) -> Allocation:
    """Compute-optimal allocation on ``cost(N, D) = C``, solved numerically.

    A safeguarded Newton iteration on the first-order condition in ``log N`` (see
    the module docstring): concrete inputs run in fixed-size chunks of (draw, budget)
    pairs, one compiled program whatever the numbers of draws and budgets.

    Parameters
    ----------
    params : LawParams
        Leaves scalars or arrays of shape ``(draw,)``.
    C : array of shape () or ``(budget,)``
        Budgets in FLOPs, in the units of ``cost``.
    cost : Cost
        A :class:`bayescale.planning.costs.Cost` (static: hashable, by value for the shipped
        models).
    max_iter : int
        Newton/bisection iterations at most (static).
    init : ``"chinchilla"`` (default: start from the draw's closed-form ``6 N D``
        optimum where the law has one, close for cost models near ``6 N D``; else 20
        tokens per parameter) or ``"tokens20"`` (start from 20 tokens per
        parameter, independent of the parameters). Static.
    fused_iters : iterations unrolled into one fused loop before the
        ``while_loop`` takes over (static; a tuning knob, not a tolerance).

    Returns
    -------
    Allocation
        Leaves shaped ``params.shape + C.shape``; ``converged`` is false where the
        iteration did not settle on a minimum within ``max_iter`` (the values there
        are the last iterate). Gradients with respect to ``params`` and ``C`` come
        from the implicit function theorem.

    Examples
    --------
    >>> from bayescale.planning.costs import AttentionCost
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> opt = solve_optimal(BESIROGLU_2024, 5.76e23, cost=AttentionCost(n_ctx=2048))
    >>> bool(opt.converged), round(float(opt.N_opt) / 1e9, 1)
    (True, 72.2)
    """
    if is_traced(params, C, unique_tokens):
        return _solve_optimal_jit(params, C, cost=cost, max_iter=max_iter, init=init,
                                  fused_iters=fused_iters, unique_tokens=unique_tokens)
    return _solve_optimal_log(params, working_log(C), cost=cost, max_iter=max_iter, init=init,
                              fused_iters=fused_iters, unique_tokens=unique_tokens)


@functools.partial(jax.jit, static_argnames=("cost", "max_iter", "init", "fused_iters"))
def _solve_optimal_jit(params, C, *, cost: Cost, max_iter: int, init: str,
                       fused_iters: int, unique_tokens=None) -> Allocation:
    """:func:`solve_optimal` as one program for all draws and budgets (traced inputs)."""
    return _solve_optimal_log(params, jnp.log(C), cost=cost, max_iter=max_iter, init=init,
                              fused_iters=fused_iters, unique_tokens=unique_tokens)


solve_optimal.lower = _solve_optimal_jit.lower  # for benchmarks/bench_frontier.py


def _solve_optimal_log(params, log_C, *, cost: Cost, max_iter: int, init: str,
                       fused_iters: int, unique_tokens=None) -> Allocation:
    """:func:`solve_optimal` of budgets given as ``log C``: chunked over (draw, budget)
    pairs where concrete, one nested vmap where traced (:func:`over_pairs`)."""
    if init not in INITS:
        raise BayescaleError(f"init must be one of {INITS}, got {init!r}.")
    return Allocation(*over_pairs(_numerical_pair, params, log_C, unique_tokens, cost=cost,
                                  max_iter=max_iter, init=init, fused_iters=fused_iters))


def optimal_loss_curve(params: LawParams, C: ArrayLike) -> Array:
    """``L_opt(C) = E + K (C/6)**(-alpha beta / (alpha + beta))`` under ``C = 6 N D``.

    ``K = A G**-alpha + B G**beta``; shape ``params.shape + C.shape``.
    """
    return compute_optimal(params, C).L_opt


@jax.jit
def compute_equivalent(params: LawParams, L: ArrayLike) -> Array:
    """The ``6 N D`` budget at which the optimal allocation reaches loss ``L``.

    Inverse of :func:`optimal_loss_curve`: ``C = 6 ((L - E) / K)**(-(alpha + beta) /
    (alpha beta))``; ``inf`` for ``L <= E``. ``L`` must broadcast against the
    draws (shape ``params.shape``).
    """
    law, d, pshape = draws(params)
    require_chinchilla(law, "compute_equivalent")
    L = jnp.broadcast_to(jnp.asarray(L, dtype=d.theta.dtype), pshape).reshape(-1)

    def one(d, L):
        a, b, e, alpha, beta = (d.theta[i] for i in range(5))
        x, y = closed_form_one(law, d, jnp.zeros_like(a))  # allocation at C = 1
        log_K = jnp.logaddexp(a - alpha * x, b - beta * y)  # L_opt(1) - E
        gamma = alpha * beta / (alpha + beta)
        excess = L - jnp.exp(e)
        log_C = jnp.where(excess > 0, (log_K - jnp.log(jnp.where(excess > 0, excess, 1.0))) / gamma,
                          jnp.inf)
        return jnp.exp(log_C)

    return jax.vmap(one)(d, L).reshape(pshape)


def frontier(params: LawParams, budgets: ArrayLike | Sequence[float], *,
             cost: str | Cost | Callable = "train", data_C_range: tuple[float, float] | None = None,
             inference_tokens: float | None = None, method: str = "auto",
             max_iter: int = 64, unique_tokens: float | None = None,
             **cost_settings) -> Frontier:
    """The compute-optimal frontier for every draw and budget.

    Parameters
    ----------
    params : LawParams
        Scalars (a point estimate: one draw) or arrays of shape ``(draw,)``.
    budgets : float or sequence of floats
        Compute budgets ``C`` in FLOPs.
    cost : ``"train"`` (``6 N D``, closed form), ``"inference"`` (``6 N D + 2 N D_inf``,
        the loss-minimising split of a fixed total budget, Sardana et al. 2023),
        ``"attention"``, ``"non-embedding"``, a :class:`bayescale.planning.costs.Cost`, or a
        JAX-traceable function ``cost(N, D) -> FLOPs``.
    data_C_range : (C_min, C_max), optional
        Compute range of the fitted runs, to flag extrapolation.
    inference_tokens : ``D_inf`` for ``cost="inference"``.
    method : ``"auto"`` (closed form for ``6 N D``, else numerical), ``"closed"`` or
        ``"numerical"``.
    max_iter : iteration cap of the numerical solver.
    unique_tokens : the unique-token budget ``U`` for laws that take it
        (``data_constrained``); an error for laws that do not.
    **cost_settings : settings of a named cost model (``n_ctx``, ``aspect_ratio``,
        ``vocab_size``).

    Returns
    -------
    Frontier

    Raises
    ------
    BayescaleError
        For non-positive or non-finite budgets or parameters, an unknown cost, or
        ``method="closed"`` with a cost that has no closed form.

    Examples
    --------
    >>> from bayescale.laws.chinchilla import HOFFMANN_2022_UNROUNDED
    >>> f = frontier(HOFFMANN_2022_UNROUNDED, [5.76e23])
    >>> round(float(f.N_opt[0, 0]) / 1e9, 1), round(float(f.tokens_per_param[0, 0]))
    (40.4, 59)
    """
    cost = get_cost(cost, inference_tokens=inference_tokens, **cost_settings)
    C = as_budgets(budgets)
    params = as_draws(params)
    if method not in ("auto", "closed", "numerical"):
        raise BayescaleError(f"method must be 'auto', 'closed' or 'numerical', got {method!r}.")
    if method == "closed" and not cost.closed_form:
        raise BayescaleError(f"the {cost.name!r} cost model has no closed form; use method='auto'.")
    law = law_of(params)
    unique_tokens = check_unique_tokens(params, unique_tokens)
    if method == "closed" and law.closed_form is None:
        raise BayescaleError(f"the {law.name} law has no closed-form allocation; use method='auto'.")
    # log C is taken in float64 before the solver sees it: no budget overflows float32.
    log_C = log_budgets(C)
    if cost.closed_form and law.closed_form is not None and method != "numerical":
        opt = _compute_optimal_log(params, log_C)
    else:
        opt = _solve_optimal_log(params, log_C, cost=cost, max_iter=int(max_iter),
                                 init="chinchilla", fused_iters=2, unique_tokens=unique_tokens)
    check_finite_optimum(opt.N_opt, opt.D_opt, opt.converged, C)
    return Frontier(N_opt=opt.N_opt, D_opt=opt.D_opt, L_opt=opt.L_opt,
                    tokens_per_param=opt.D_opt / opt.N_opt, budgets=C, converged=opt.converged,
                    extrapolation=extrapolation(C, data_C_range))
