"""Decisions under uncertainty: is a training plan ``(N, D)`` good for its budget?

Given parameter draws (posterior draws, bootstrap resamples, or one point
estimate), for a plan ``(N, D)`` and a training budget ``C`` (by default ``6 N D``):

* the distribution of its loss ``L_theta(N, D)`` over draws;
* the probability that it is within ``x`` of the optimum for ``C``: of loss,
  ``L(plan) <= (1 + x) L_opt(C)``, and of compute, ``C <= (1 + x) C_eq``, where the
  *compute-equivalent* ``C_eq`` is the budget at which the optimal allocation reaches
  the plan's loss (``C_eq / C`` is the plan's compute efficiency, 1 at the optimum);
* its *regret*: expected loss minus the expected loss of the Bayes-optimal plan.

The Bayes-optimal plan for ``C`` is the ``(N, C / 6N)`` minimising the posterior
expected loss ``mean_theta L_theta(N, C / 6N)``: a 1-D convex problem in ``log N``
(each ``L_theta`` along ``6 N D = C`` is a sum of exponentials in ``log N``), solved by
safeguarded Newton inside ``jit`` and bracketed by the per-draw optima. The plug-in
plan is the optimum of one coherent draw: the draw whose optimal ``N`` is nearest the
median over draws (not the optimum of per-parameter medians, which with
``corr(log A, alpha) ~ 0.999`` is not a law any draw supports; see :func:`plug_in`).

Every function takes ``unique_tokens=U``, the unique-token budget of a law whose inputs
include it (``data_constrained``, Muennighoff et al. 2023; required there, refused for any
other law): plans are evaluated at ``(N, D, U)``, the per-draw optima are the frontier's at U.

The rules of thumb (``tokens_20``, ``kaplan_2020``) and :class:`Plan` live in
:mod:`bayescale.planning.rules` and are re-exported here; :func:`compare_plans`
evaluates them under the posterior.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
T. Besiroglu, E. Erdil, M. Barnett, J. You, "Chinchilla Scaling: A replication
attempt", arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from bayescale.planning.costs import LOG6
from bayescale._util import BUDGET_TOLERANCE, as_budgets, check_level
from bayescale.errors import BayescaleError
from bayescale._solvers.newton import default_rtol, safeguarded_newton
from bayescale.planning._common import check_unique_tokens, closed_form_one, draws, loss
from bayescale.planning.efficiency import compute_efficiency
from bayescale.planning.frontier import as_draws, compute_optimal
from bayescale.laws.chinchilla import LawParams
from bayescale.planning.rules import KAPLAN_2020, PF_DAY, RULES, Plan, kaplan_2020, tokens_20

__all__ = ["Plan", "PF_DAY", "KAPLAN_2020", "RULES", "plan_loss", "bayes_optimal", "plug_in",
           "tokens_20", "kaplan_2020", "assess", "assess_plan", "compare_plans"]

# Pure, jitted pieces

@jax.jit
def plan_loss(params: LawParams, N: ArrayLike, D: ArrayLike,
              unique_tokens: float | None = None) -> Array:
    """Loss of plan ``(N, D)`` under every draw: shape ``params.shape + N.shape``.

    ``N`` and ``D`` must have the same shape (scalar or ``(plan,)``); ``unique_tokens``: U.
    """
    law, d, pshape = draws(params, check_unique_tokens(params, unique_tokens))
    log_N, log_D = (jnp.log(jnp.asarray(v, dtype=d.theta.dtype)) for v in (N, D))
    shape = log_N.shape
    out = jax.vmap(lambda di: jax.vmap(lambda x, y: loss(law, di, x, y))(
        log_N.reshape(-1), log_D.reshape(-1)))(d)
    return out.reshape(pshape + shape)


@jax.jit
def _assess(params: LawParams, N, D, C, unique_tokens=None):
    """Per draw x plan: plan loss, optimal loss at C, log compute efficiency log(C_eq / C)."""
    law, d, _ = draws(params, unique_tokens)
    dtype = d.theta.dtype
    log_N, log_D, log_C = (jnp.log(jnp.asarray(v, dtype=dtype)) for v in (N, D, C))
    if law.name != "chinchilla":
        # L_opt from the law's allocation; the compute efficiency needs the inverse of
        # L_opt(C), closed-form only for the Chinchilla law: NaN here, and assess inverts
        # the numerical frontier (bayescale.planning.efficiency).
        L_opt = compute_optimal(params, C, unique_tokens).L_opt
        L = jax.vmap(lambda di: jax.vmap(lambda x, y: loss(law, di, x, y))(log_N, log_D))(d)
        return L, jnp.reshape(L_opt, L.shape), jnp.full(L.shape, jnp.nan, dtype)

    def one(di, x, y, lc):
        a, b, _, alpha, beta = (di.theta[i] for i in range(5))
        L = loss(law, di, x, y)
        xo, yo = closed_form_one(law, di, lc)
        log_reducible_opt = jnp.logaddexp(a - alpha * xo, b - beta * yo)
        log_reducible = jnp.logaddexp(a - alpha * x, b - beta * y)
        gamma = alpha * beta / (alpha + beta)
        # L_opt(C) - E = K (C/6)**-gamma  =>  log(C_eq / C) = (log(L_opt - E) - log(L - E)) / gamma
        log_eff = (log_reducible_opt - log_reducible) / gamma
        return L, loss(law, di, xo, yo), log_eff

    return jax.vmap(lambda di: jax.vmap(lambda x, y, lc: one(di, x, y, lc))(
        log_N, log_D, log_C))(d)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _bayes_optimal(params: LawParams, C, unique_tokens=None, *, max_iter: int):
    law, d, _ = draws(params, unique_tokens)
    log_C = jnp.log(jnp.asarray(C, dtype=d.theta.dtype))
    # each draw's own optimum (closed form or solved), per budget: (draw, budget)
    x_opts = jnp.log(compute_optimal(params, jnp.exp(log_C), unique_tokens).N_opt
                     ).reshape(-1, log_C.shape[0])

    def one(lc, x_opt):
        def mean_loss(x):
            y = lc - LOG6 - x
            return jnp.mean(jax.vmap(lambda di: loss(law, di, x, y))(d))

        def h(x):  # minus the slope of the expected loss: > 0 where N should grow
            return -jax.grad(mean_loss)(x)

        # Every draw's loss falls left of its own optimum and rises right of it, so
        # the minimiser of the mean lies between the smallest and largest optimum.
        lo, hi = jnp.min(x_opt), jnp.max(x_opt)
        pad = 1e-3 * (1 + jnp.abs(lo))
        lo, hi = lo - pad, hi + pad
        x0 = jnp.median(x_opt)
        rtol = default_rtol(x0.dtype)
        x, ok = safeguarded_newton(h, x0, lo, hi, max_iter=max_iter, rtol=rtol, fused_iters=3)
        # A kink at the optimum (data_constrained: N' = N meets the excess-parameter branch
        # at N = N_of(D)) has no autodiff slope, and Newton ends on a shrunk bracket: the
        # slope changing sign across x within the solver's tolerance is the optimum too.
        tol = 2 * rtol * (1 + jnp.abs(x))
        ok = ok | ((h(x - tol) > 0) & (h(x + tol) < 0))
        return x, lc - LOG6 - x, mean_loss(x), ok

    return jax.vmap(one, in_axes=(0, 1))(log_C, x_opts)


# Plans

def bayes_optimal(params: LawParams, budgets: ArrayLike, *, max_iter: int = 64,
                  unique_tokens: float | None = None) -> Plan:
    """The plan on ``6 N D = C`` minimising the expected loss over draws, per budget.

    Parameters
    ----------
    params : LawParams (scalars or ``(draw,)`` leaves).
    budgets : budgets in FLOPs.
    unique_tokens : U, for a law that takes it (``data_constrained``).

    Returns
    -------
    Plan
        ``N``, ``D`` and ``converged``, each of shape ``(budget,)``.

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> plan = bayes_optimal(BESIROGLU_2024, [5.76e23])  # one draw: the closed form
    >>> round(float(plan.N[0]) / 1e9, 1)
    72.2
    """
    C = as_budgets(budgets)
    params = as_draws(params)
    U = check_unique_tokens(params, unique_tokens)
    x, y, _, ok = _bayes_optimal(params, C, U, max_iter=int(max_iter))
    return Plan(np.exp(np.asarray(x, dtype=float)), np.exp(np.asarray(y, dtype=float)),
                np.asarray(ok))


def plug_in(params: LawParams, budgets: ArrayLike, *, unique_tokens: float | None = None) -> Plan:
    """The optimum of one coherent draw per budget: the draw whose optimal ``N`` is the
    median's nearest neighbour.

    For each budget, every draw's own optimum is computed (closed form under
    ``6 N D = C``) and the plan is that of the draw whose ``log N_opt`` is nearest the
    median ``log N_opt`` over draws (ties: the first such draw; draws whose solve did
    not converge are skipped). The plan is therefore the optimum of a law the draws
    contain. Per-parameter medians are not: ``log A`` and ``alpha`` (and ``log B``
    and ``beta``) are correlated at ~0.999 over the bootstrap and the posterior,
    and the law built from their separate medians need not be close to any draw.
    ``Plan.draw`` holds the chosen draw's index per budget.

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> plan = plug_in(BESIROGLU_2024, [5.76e23])  # one draw: its own optimum
    >>> round(float(plan.N[0]) / 1e9, 1), int(plan.draw[0])
    (72.2, 0)
    """
    C = as_budgets(budgets)
    params = as_draws(params)
    opt = compute_optimal(params, C, check_unique_tokens(params, unique_tokens))
    N = np.asarray(opt.N_opt, dtype=float)
    D = np.asarray(opt.D_opt, dtype=float)
    ok = np.asarray(opt.converged, dtype=bool) & np.isfinite(N) & (N > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(ok, np.log(np.where(ok, N, 1.0)), np.nan)
    cols = np.arange(C.size)
    idx = np.zeros(C.size, dtype=int)
    some = ok.any(axis=0)
    if some.any():
        med = np.nanmedian(x[:, some], axis=0)
        idx[some] = np.nanargmin(np.abs(x[:, some] - med), axis=0)
    return Plan(N[idx, cols], D[idx, cols], ok[idx, cols], idx)


# Assessing plans

def _quantiles(arr: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.quantile(arr, [0.5, (1 - level) / 2, (1 + level) / 2], axis=0)
    return q[0], q[1], q[2]


def _within_key(x: float) -> str:
    return f"{100 * x:g}%"


def assess(params: LawParams, N: ArrayLike, D: ArrayLike, budgets: ArrayLike | None = None, *,
           within: Sequence[float] = (0.01, 0.05), level: float = 0.9,
           bayes: Plan | None = None, unique_tokens: float | None = None) -> dict[str, np.ndarray]:
    """Assess plans ``(N[k], D[k])`` at budgets ``C[k]`` (default ``6 N D``) under the draws.

    Returns a dict of arrays of shape ``(plan,)``: ``C``, ``N``, ``D``,
    ``tokens_per_param``, ``loss_mean``/``_median``/``_lower``/``_upper``,
    ``excess_loss_*`` (``L(plan) - L_opt(C)`` per draw), ``regret`` (expected loss
    minus that of the Bayes-optimal plan for ``C``; negative only for a plan that
    spends more than ``C``), ``compute_efficiency_*``
    (``C_eq / C``), ``p_within_loss`` and ``p_within_compute`` (dicts keyed by
    ``"1%"``...), ``over_budget`` (``6 N D > C (1 + BUDGET_TOLERANCE)``, 5%), and per draw
    ``(draw, plan)``: ``loss_draws``, ``L_opt_draws``, ``compute_efficiency_draws``.
    The compute efficiency is closed-form for the Chinchilla law and, for other laws,
    the numerical frontier inverted on a grid of budgets
    (:func:`bayescale.planning.efficiency.compute_efficiency`).
    """
    level = check_level(level)
    params = as_draws(params)
    U = check_unique_tokens(params, unique_tokens)
    N, D = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (N, D))
    if N.shape != D.shape or N.ndim != 1:
        raise BayescaleError(f"N and D must be numbers or 1-D arrays of one length, got shapes {N.shape} and {D.shape}.")
    if not np.all(np.isfinite(N) & (N > 0) & np.isfinite(D) & (D > 0)):
        raise BayescaleError(f"N (parameters) and D (tokens) must be finite and positive, got N={N.tolist()}, D={D.tolist()}.")
    C = 6.0 * N * D if budgets is None else np.broadcast_to(as_budgets(budgets), N.shape).copy()
    within = [float(x) for x in np.atleast_1d(within)]
    if any(not (x >= 0 and math.isfinite(x)) for x in within):
        raise BayescaleError(f"within must be non-negative fractions (0.01 = 1%), got {within}.")
    L, L_opt, log_eff = (np.asarray(v, dtype=float) for v in _assess(params, N, D, C, U))
    bayes = bayes_optimal(params, C, unique_tokens=U) if bayes is None else bayes
    L_bayes = np.asarray(plan_loss(params, bayes.N, bayes.D, U), dtype=float)
    eff = np.exp(log_eff)
    if np.isnan(log_eff).all():  # no closed-form L_opt(C): invert the numerical frontier
        eff = compute_efficiency(params, L.reshape(-1, N.size), C, U).reshape(L.shape)
    rel = L / L_opt - 1.0
    out: dict[str, Any] = {"C": C, "N": N, "D": D, "tokens_per_param": D / N,
                           "over_budget": 6.0 * N * D > C * (1 + BUDGET_TOLERANCE)}
    out["loss_mean"], out["excess_loss_mean"] = L.mean(axis=0), (L - L_opt).mean(axis=0)
    for name, v in (("loss", L), ("L_opt", L_opt), ("excess_loss", L - L_opt),
                    ("compute_efficiency", eff)):
        out[f"{name}_median"], out[f"{name}_lower"], out[f"{name}_upper"] = _quantiles(v, level)
    out["regret"] = L.mean(axis=0) - L_bayes.mean(axis=0)
    out["p_within_loss"] = {_within_key(x): (rel <= x + 1e-12).mean(axis=0) for x in within}
    out["p_within_compute"] = {_within_key(x): (1.0 / eff - 1.0 <= x + 1e-12).mean(axis=0)
                               for x in within}
    out["loss_draws"], out["L_opt_draws"], out["compute_efficiency_draws"] = L, L_opt, eff
    return out


def assess_plan(params: LawParams, N: float, D: float, *, budget: float | None = None,
                within: Sequence[float] = (0.01, 0.05), level: float = 0.9,
                unique_tokens: float | None = None) -> dict[str, Any]:
    """Decision summary for one plan: JSON-ready dict.

    Parameters
    ----------
    params : LawParams (scalars or ``(draw,)`` leaves).
    N, D : parameters and training tokens of the plan.
    budget : training budget in FLOPs; default ``6 N D``.
    within : tolerances (fractions) for the probabilities of being near the optimum.
    level : central interval level.
    unique_tokens : U, for a law that takes it (``data_constrained``).

    Returns
    -------
    dict
        ``plan`` (N, D, C, tokens_per_param, over_budget), ``loss`` (mean, median,
        lower, upper: the posterior distribution of the plan's loss), ``optimum``
        (L_opt, and the frontier's N_opt, D_opt median/lower/upper at ``C``),
        ``excess_loss``, ``regret``, ``compute_efficiency``, ``p_within_loss``,
        ``p_within_compute``, ``bayes_optimal`` and ``plug_in`` (N, D, expected loss,
        regret), ``level``, ``num_draws``. The compute efficiency and
        ``p_within_compute`` are NaN for laws other than Chinchilla.

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> out = assess_plan(BESIROGLU_2024, 70e9, 1.4e12)  # Chinchilla itself
    >>> out["p_within_loss"]["1%"], round(out["compute_efficiency"]["median"], 3)
    (1.0, 0.999)
    """
    level = check_level(level)
    params = as_draws(params)
    U = check_unique_tokens(params, unique_tokens)
    C = 6.0 * float(N) * float(D) if budget is None else float(as_budgets(budget)[0])
    bayes = bayes_optimal(params, [C], unique_tokens=U)
    pin = plug_in(params, [C], unique_tokens=U)
    a = assess(params, [N], [D], [C], within=within, level=level, bayes=bayes, unique_tokens=U)
    b = assess(params, np.concatenate([bayes.N, pin.N]), np.concatenate([bayes.D, pin.D]),
               [C, C], within=within, level=level, bayes=bayes, unique_tokens=U)
    opt = compute_optimal(params, C, U)
    Nq, Dq = (_quantiles(np.asarray(v, dtype=float), level) for v in (opt.N_opt, opt.D_opt))

    def trio(prefix, res=a, i=0):
        return {k: float(res[f"{prefix}_{k}"][i]) for k in ("median", "lower", "upper")}

    def alt(i, converged=True):
        return {**{k: float(b[k][i]) for k in ("N", "D", "tokens_per_param")},
                "expected_loss": float(b["loss_mean"][i]), "regret": float(b["regret"][i]),
                "converged": bool(converged)}

    return {
        "level": level,
        "num_draws": int(np.size(params[0])),
        **({} if U is None else {"unique_tokens": U}),
        "plan": {"N": float(N), "D": float(D), "C": C, "C_plan": 6.0 * float(N) * float(D),
                 "tokens_per_param": float(D) / float(N), "over_budget": bool(a["over_budget"][0])},
        "loss": {"mean": float(a["loss_mean"][0]), **trio("loss")},
        "optimum": {"L_opt": trio("L_opt"),
                    **{k: dict(zip(("median", "lower", "upper"), map(float, q)))
                       for k, q in (("N_opt", Nq), ("D_opt", Dq))}},
        "excess_loss": {"mean": float(a["excess_loss_mean"][0]), **trio("excess_loss")},
        "regret": float(a["regret"][0]),
        "compute_efficiency": trio("compute_efficiency"),
        "p_within_loss": {k: float(v[0]) for k, v in a["p_within_loss"].items()},
        "p_within_compute": {k: float(v[0]) for k, v in a["p_within_compute"].items()},
        "bayes_optimal": alt(0, bayes.converged[0]),
        "plug_in": alt(1),
    }


def compare_plans(params: LawParams, budgets: ArrayLike, *, level: float = 0.9,
                  within: float = 0.01, rules: Sequence[str] = ("tokens_20", "kaplan_2020"),
                  unique_tokens: float | None = None):
    """The Bayes-optimal, plug-in and rule-of-thumb plans per budget, under the draws
    (at ``unique_tokens=U`` for a law that takes it).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(C, plan)`` with ``plan`` in ``bayes_optimal``, ``plug_in`` and
        the ``rules``; columns ``N``, ``D``, ``tokens_per_param``, ``expected_loss``,
        ``regret`` (vs the Bayes-optimal plan), ``excess_loss_median/lower/upper``
        (vs each draw's own optimum), ``compute_efficiency_median/lower/upper``,
        ``p_within_loss`` and ``p_within_compute`` (at ``within``).

    Examples
    --------
    >>> from bayescale.laws.chinchilla import BESIROGLU_2024
    >>> table = compare_plans(BESIROGLU_2024, [5.76e23])
    >>> round(float(table.loc[(5.76e23, "kaplan_2020"), "regret"]), 3)
    0.063
    """
    import pandas as pd  # tables for people

    level = check_level(level)
    params = as_draws(params)
    C = as_budgets(budgets)
    U = check_unique_tokens(params, unique_tokens)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise BayescaleError(f"unknown rules {unknown}; choose from {list(RULES)}.")
    bayes = bayes_optimal(params, C, unique_tokens=U)
    plans = {"bayes_optimal": bayes, "plug_in": plug_in(params, C, unique_tokens=U)}
    plans.update({r: RULES[r](C) for r in rules})
    names = list(plans)
    N = np.concatenate([plans[n].N for n in names])
    D = np.concatenate([plans[n].D for n in names])
    CC = np.tile(C, len(names))
    bayes_all = Plan(np.tile(bayes.N, len(names)), np.tile(bayes.D, len(names)))
    a = assess(params, N, D, CC, within=[within], level=level, bayes=bayes_all, unique_tokens=U)
    key = _within_key(within)
    table = pd.DataFrame({
        "C": CC, "plan": np.repeat(names, C.size), "N": N, "D": D,
        "tokens_per_param": a["tokens_per_param"], "expected_loss": a["loss_mean"],
        "regret": a["regret"],
        **{f"{q}_{s}": a[f"{q}_{s}"] for q in ("excess_loss", "compute_efficiency")
           for s in ("median", "lower", "upper")},
        "p_within_loss": a["p_within_loss"][key], "p_within_compute": a["p_within_compute"][key],
    }).set_index(["C", "plan"]).sort_index(level=0, sort_remaining=False)
    table.attrs.update(level=level, within=within, unique_tokens=U)
    return table
