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
  step is exact.

Everything is written for one draw and one budget and ``jax.vmap``-ed over draws x
budgets inside one ``jax.jit`` per public function; the same shapes and cost model
never recompile.

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
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.planning.costs import LOG6, Cost, TrainCost, get_cost
from bayescale._util import as_budgets, check_level, median_interval
from bayescale._solvers.newton import default_rtol, safeguarded_newton
from bayescale.errors import BayescaleError
from bayescale.laws.registry import law_of
from bayescale.planning._common import Draw, closed_form_one, draws, log_loss, loss
from bayescale.laws.chinchilla import LawParams

__all__ = [
    "Allocation",
    "Frontier",
    "InferencePlan",
    "compute_optimal",
    "solve_optimal",
    "frontier",
    "inference_optimal",
    "optimal_loss_curve",
    "compute_equivalent",
]

# Search bracket around the start: +-(10 + |log C|) nats of log N.
_BRACKET = 10.0
_LOG120 = math.log(120.0)
_LOG2 = math.log(2.0)


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
# One draw, one budget
# ---------------------------------------------------------------------------

def _foc(law, d: Draw, log_C, cost: Cost) -> Callable:
    """First-order condition ``h(x)`` for a minimum of ``L`` on ``cost(N, D) = C``, in
    ``x = log N``: the log of the ratio of the marginal gains in loss from N and from D,

        h(x) = log(-dlogL/dlogN) - log(-dlogL/dlogD) - log(-dlogD/dlogN |cost),

    positive left of the optimum and negative right of it. The partial derivatives
    come from the law's kernel by autodiff; for the Chinchilla law ``h`` is
    ``log(alpha A N**-alpha) - log(beta B D**-beta) - log(-dy/dx)`` (``L`` cancels), a
    difference of logs that stays well conditioned in float32 even where ``L`` is
    flat (small exponents), unlike the derivative of ``log L`` itself.
    """
    tiny = jnp.finfo(jnp.result_type(float)).tiny

    def partials(x, y):
        return jax.grad(lambda xy: log_loss(law, d, xy[0], xy[1]))(jnp.stack([x, y]))

    def h(x):
        y, dy = jax.jvp(lambda x_: cost.log_D(x_, log_C), (x,), (jnp.ones_like(x),))
        g = partials(x, y)
        return (jnp.log(jnp.maximum(-g[0], tiny)) - jnp.log(jnp.maximum(-g[1], tiny))
                - jnp.log(-dy))

    return h


_INITS = ("chinchilla", "tokens20")


def _numerical_one(law, d: Draw, log_C, *, cost: Cost, max_iter: int, init: str,
                   fused_iters: int):
    """``(log N_opt, log D_opt, converged)`` for one draw and budget by safeguarded Newton."""
    dlo, dhi = cost.log_N_bounds(log_C)
    if init == "chinchilla" and law.closed_form is not None:  # this draw's 6ND optimum
        x0 = closed_form_one(law, d, log_C)[0]
    else:  # 20 tokens per parameter (C = 120 N**2): parameter-free
        x0 = 0.5 * (log_C - _LOG120)
    # No closer than a factor 2 to a finite edge of the model's domain.
    x0 = jnp.clip(x0, dlo + _LOG2, dhi - _LOG2)
    margin = 1e-6 * (1 + jnp.abs(log_C))
    # Bracket wide enough for every split with N, D >= 1 whatever the start.
    width = _BRACKET + jnp.abs(log_C)
    lo = jnp.maximum(x0 - width, dlo + margin)
    hi = jnp.minimum(x0 + width, dhi - margin)
    x0 = jnp.where((x0 > lo) & (x0 < hi), x0, 0.5 * (lo + hi))
    # The kernel's partial derivatives carry rounding of order eps * |log L| (the
    # log-sum-exp does not cancel exactly as a hand-written difference of log terms
    # would): stop once a Newton step is below 16x the default tolerance. Newton's
    # quadratic convergence leaves the iterate far closer than the stopping step.
    rtol = 16.0 * default_rtol(x0.dtype)

    def solve(h, x_init):
        x, ok = safeguarded_newton(h, x_init, lo, hi, max_iter=max_iter, rtol=rtol,
                                    fused_iters=fused_iters)
        return x, ok.astype(x.dtype)  # a float aux: custom_root cannot carry bool tangents

    def tangent_solve(g, v):
        return v / g(jnp.ones_like(v))

    h = _foc(law, d, log_C, cost)
    x, ok = jax.lax.custom_root(h, x0, solve, tangent_solve, has_aux=True)
    y = cost.log_D(x, log_C)
    ok = (jax.lax.stop_gradient(ok) > 0) & jnp.isfinite(y) & (hi > lo)
    return x, y, ok


def _over_draws_and_budgets(fn_one: Callable, params: Any, C: ArrayLike, unique_tokens=None):
    """Apply ``fn_one(law, draw, log_C) -> tuple`` over draws x budgets; shape params + C."""
    law, d, pshape = draws(params, unique_tokens)
    fn_one = functools.partial(fn_one, law)
    C = jnp.asarray(C, dtype=d.theta.dtype)
    cshape = C.shape
    log_C = jnp.log(C.reshape(-1))
    out = jax.vmap(lambda di: jax.vmap(lambda lc: fn_one(di, lc))(log_C))(d)
    return tuple(o.reshape(pshape + cshape) for o in out)


# ---------------------------------------------------------------------------
# Public pure functions
# ---------------------------------------------------------------------------

@jax.jit
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

    if law_of(params).closed_form is None:
        return solve_optimal(params, C, unique_tokens=unique_tokens)

    def one(law, d, log_C):
        x, y = closed_form_one(law, d, log_C)
        return jnp.exp(x), jnp.exp(y), loss(law, d, x, y), jnp.ones((), bool)

    return Allocation(*_over_draws_and_budgets(one, params, C))


@functools.partial(jax.jit, static_argnames=("cost", "max_iter", "init", "fused_iters"))
def solve_optimal(params: Any, C: ArrayLike, *, cost: Cost = TrainCost(),
                  max_iter: int = 64, init: str = "chinchilla",
                  fused_iters: int = 2, unique_tokens: ArrayLike | None = None) -> Allocation:
    """Compute-optimal allocation on ``cost(N, D) = C``, solved numerically.

    A safeguarded Newton iteration on the first-order condition in ``log N`` (see
    the module docstring), one program for all draws and budgets.

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

    if init not in _INITS:
        raise BayescaleError(f"init must be one of {_INITS}, got {init!r}.")

    def one(law, d, log_C):
        x, y, ok = _numerical_one(law, d, log_C, cost=cost, max_iter=max_iter, init=init,
                                  fused_iters=fused_iters)
        return jnp.exp(x), jnp.exp(y), loss(law, d, x, y), ok

    return Allocation(*_over_draws_and_budgets(one, params, C, unique_tokens))


@jax.jit
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
    _require_chinchilla(law, "compute_equivalent")
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


# ---------------------------------------------------------------------------
# Inference-aware allocation for a target loss (Sardana et al. 2023)
# ---------------------------------------------------------------------------

def _inference_one(law, d: Draw, log_target, log_D_inf, *, max_iter: int):
    """Minimise ``6 N D + 2 N D_inf`` subject to ``L(N, D) = target`` (one draw of the
    Chinchilla law, whose iso-loss curve ``D(N)`` is explicit)."""
    d = _ChinchillaDraw(*(d.theta[i] for i in range(5)))
    target = jnp.exp(log_target)
    excess = target - jnp.exp(d.e)
    feasible = excess > 0
    log_excess = jnp.log(jnp.where(feasible, excess, 1.0))
    # On L = target: B D**-beta = excess - A N**-alpha, so N > (A / excess)**(1/alpha).
    x_min = (d.a - log_excess) / d.alpha
    # Chinchilla optimum for this loss (D_inf = 0): A N**-alpha = excess beta / (alpha + beta).
    x_chin = x_min + (jnp.log(d.alpha + d.beta) - jnp.log(d.beta)) / d.alpha

    def log_D(x):
        rest = excess - jnp.exp(d.a - d.alpha * x)
        return (d.b - jnp.log(rest)) / d.beta

    def log_total(x):
        return x + jnp.logaddexp(LOG6 + log_D(x), jnp.log(2.0) + log_D_inf)

    def h(x):  # minus the derivative of log total FLOPs: > 0 where N should grow
        return -jax.grad(log_total)(x)

    lo = x_min + 1e-6 * (1 + jnp.abs(x_min))
    hi = x_chin + 1.0
    rtol = default_rtol(x_min.dtype)
    x, ok = safeguarded_newton(h, x_chin, lo, hi, max_iter=max_iter, rtol=rtol)
    y = log_D(x)
    ok = ok & feasible & jnp.isfinite(y)
    log_C_train = LOG6 + x + y
    log_C_inf = jnp.log(2.0) + x + log_D_inf
    return x, y, log_C_train, log_C_inf, ok


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _inference_optimal(params, target_loss, D_inf, *, max_iter: int):
    log_D_inf = jnp.log(jnp.asarray(D_inf, dtype=jnp.result_type(float)))
    _require_chinchilla(law_of(params), "inference_optimal")
    return _over_draws_and_budgets(
        lambda law, d, lt: _inference_one(law, d, lt, log_D_inf, max_iter=max_iter), params,
        target_loss)


class InferencePlan(NamedTuple):
    """Cheapest (training + inference FLOPs) model reaching each target loss.

    Leaves are arrays ``[draws x targets]`` except ``target_loss`` ``(target,)``.
    """

    N_opt: Array
    D_opt: Array
    C_train: Array
    C_inference: Array
    C_total: Array
    tokens_per_param: Array
    target_loss: np.ndarray
    converged: Array
    D_inf: float

    def summary(self, level: float = 0.9):
        """One row per target loss: median and central interval of each quantity."""
        qs = {k: getattr(self, k) for k in ("N_opt", "D_opt", "tokens_per_param", "C_train",
                                            "C_inference", "C_total")}
        table = _summary_table(qs, "target_loss", self.target_loss, level)
        table["converged"] = np.asarray(self.converged).mean(axis=0)
        table.attrs["D_inf"] = self.D_inf
        return table


def inference_optimal(params: LawParams, target_loss: ArrayLike | Sequence[float], *,
                      inference_tokens: float, max_iter: int = 64) -> InferencePlan:
    """Inference-aware allocation for a target loss (Sardana et al. 2023, Sec. 3).

    Minimises the lifetime cost ``6 N D + 2 N D_inf`` over models with
    ``L(N, D) = target_loss``, for every draw. With ``D_inf = 0`` this is the
    Chinchilla-optimal model for that loss; as ``D_inf`` grows the optimum moves to
    smaller models trained on more tokens.

    Parameters
    ----------
    params : LawParams (scalars or ``(draw,)`` leaves).
    target_loss : scalar or sequence of losses (nats/token); each must exceed ``E``
        (draws where it does not are marked not converged, values NaN).
    inference_tokens : ``D_inf``, tokens served over the model's life.

    Returns
    -------
    InferencePlan

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> plan = inference_optimal(BESIROGLU_2024, 2.0, inference_tokens=2e12)
    >>> bool(plan.converged[0, 0]), round(float(plan.tokens_per_param[0, 0]))
    (True, 52)

    References
    ----------
    Sardana et al., arXiv:2401.00448 (2023).
    """
    D_inf = float(inference_tokens)
    if not (math.isfinite(D_inf) and D_inf >= 0):
        raise BayescaleError(f"inference_tokens must be a finite number >= 0, got {inference_tokens!r}.")
    targets = np.atleast_1d(np.asarray(target_loss, dtype=float))
    if targets.ndim != 1 or not np.all(np.isfinite(targets)) or np.any(targets <= 0):
        raise BayescaleError(f"target_loss must be positive finite losses, got {target_loss!r}.")
    params = as_draws(params)
    x, y, lct, lci, ok = _inference_optimal(params, targets, D_inf, max_iter=max_iter)
    N, D = jnp.exp(x), jnp.exp(y)
    nan = jnp.nan
    N, D = jnp.where(ok, N, nan), jnp.where(ok, D, nan)
    Ct, Ci = jnp.where(ok, jnp.exp(lct), nan), jnp.where(ok, jnp.exp(lci), nan)
    return InferencePlan(N, D, Ct, Ci, Ct + Ci, D / N, targets, ok, D_inf)


# ---------------------------------------------------------------------------
# Convenience tier: Frontier object with summaries
# ---------------------------------------------------------------------------

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
        table = _summary_table(qs, "C", self.budgets, level)
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
                item[q] = {k: _num(r[f"{q}_{k}"]) for k in ("median", "lower", "upper")}
            item["extrapolation"] = _num(r["extrapolation"])
            item["converged"] = float(r["converged"])
            rows.append(item)
        return {"level": float(level), "num_draws": self.num_draws, "budgets": rows}


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None




def _summary_table(quantities: dict[str, ArrayLike], index_name: str, index, level: float):
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
    return law.params_type(*leaves)


def _require_chinchilla(law, what: str) -> None:
    if law.name != "chinchilla":
        raise BayescaleError(f"{what} needs the Chinchilla law's explicit iso-loss curve; it is "
                             f"not available for the {law.name} law.")


class _ChinchillaDraw(NamedTuple):
    a: Array
    b: Array
    e: Array
    alpha: Array
    beta: Array


def extrapolation(budgets: ArrayLike, data_C_range: tuple[float, float] | None) -> np.ndarray:
    """Orders of magnitude of each budget outside ``data_C_range`` (0 inside, NaN if None)."""
    C = np.asarray(budgets, dtype=float)
    if data_C_range is None:
        return np.full(C.shape, np.nan)
    lo, hi = (float(v) for v in data_C_range)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise BayescaleError(f"data_C_range must be (C_min, C_max) with 0 < C_min <= C_max, got {data_C_range!r}.")
    return np.maximum(0.0, np.maximum(np.log10(C / hi), np.log10(lo / C)))


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
    if unique_tokens is not None:
        if "U" not in law.inputs:
            raise BayescaleError(f"unique_tokens applies to laws with unique tokens as an input "
                                 f"(data_constrained); the {law.name} law has none.")
        unique_tokens = float(as_budgets(unique_tokens)[0])
    if method == "closed" and law.closed_form is None:
        raise BayescaleError(f"the {law.name} law has no closed-form allocation; use method='auto'.")
    if cost.closed_form and law.closed_form is not None and method != "numerical":
        opt = compute_optimal(params, C)
    else:
        opt = solve_optimal(params, C, cost=cost, max_iter=int(max_iter),
                            unique_tokens=unique_tokens)
    return Frontier(N_opt=opt.N_opt, D_opt=opt.D_opt, L_opt=opt.L_opt,
                    tokens_per_param=opt.D_opt / opt.N_opt, budgets=C, converged=opt.converged,
                    extrapolation=extrapolation(C, data_C_range))
