"""Experiment design: which runs to train next to learn most about the decision that matters.

:func:`next_runs` proposes up to ``k`` runs ``(N, D)`` whose total cost stays within an
experiment budget, chosen greedily to maximise the expected reduction in the posterior
variance of the decision quantity (``rank="gain"``, the default; the budget is a cap) or
that reduction per unit of cost (``rank="per_cost"``):

* ``objective="n_opt"`` (default): ``log N_opt(C*)``, the compute-optimal model size at the
  target budget;
* ``objective="loss"``: the log of the loss at the target: ``L_opt(C*)`` of each draw, or,
  with ``targets=`` (points ``N, D[, U]``), the log loss at each of those points (the
  "target region" of Li et al. 2026). For a region the variance to reduce is the
  *integrated* variance, the mean over the points of each point's variance (V-optimal
  design; Chaloner & Verdinelli 1995), not the variance of their mean: the mean can be
  pinned down by runs that say nothing about how the loss changes across the region, which
  is what a fit of the region is judged on (R^2 over its points). ``before``/``after``
  report the region's mean log loss.

  The loss objective is the loss that *will be observed* there, not the law's prediction of
  it: at ``d_t`` decades beyond the runs it carries an extrapolation error ``d_t (b + tau
  z_t)`` like the candidates (below), whose miss per decade ``z_t`` is correlated by
  ``share`` (default :data:`SHARE`, 0.5) with the candidates' shared ``z``; a candidate
  ``d_c`` decades out then covaries with it by ``share tau**2 d_c d_t`` on top of the law's
  covariance. A run that reaches toward the target is credited with measuring part of the
  miss the target will have (without that term the design saw such runs only as noisier
  and chose many cheap runs inside the data), but no run removes more than ``share**2`` of
  that miss's variance, not even one at the target itself. The candidates share one miss
  per decade among themselves, and so do a region's targets (for their mean).
  ``before``/``after`` include the error as a normal with its two moments
  (``ExtrapolationModel.slope_moments``: the same mean and variance as ``predict``'s draws,
  lighter tails; ``model="none"`` drops it). Only the linear approximation carries it;
  ``approximation="reweight"`` refuses this objective.

  The design's error model throughout is ``b + tau z`` per decade with ``b = E[b]`` and
  ``tau = sqrt(Var(b) + E[tau**2])`` under the error model's posterior.

**Method.** The fit's draws (posterior draws or bootstrap resamples) stand for the
posterior; no refit per candidate, thousands of candidates are scored in one compiled program
(:mod:`bayescale.planning.design_score`). Outcomes come from the *honest* predictive: a
draw's law, plus the extrapolation error of :mod:`bayescale.estimators.extrapolation` at the
candidate's decades outside the fitted runs (``d * (b + tau z)``), plus observation noise:
the larger of the fit's and the noise the draws' spread implies (:mod:`.design_noise`).
Two approximations of the expected posterior variance of the objective:

* ``approximation="linear"`` (default): the draws' joint covariance of the objective and
  the candidates' outcomes, updated as a joint normal (an ensemble Kalman / linearised
  update): the variance after a run at ``c`` is ``var - cov(g, y_c)**2 / var(y_c)``,
  whatever the outcome, and choosing a run is a rank-one update of the covariance;
* ``approximation="reweight"``: importance reweighting of the draws by the likelihood of
  fantasised outcomes (32 fantasy worlds), exact as the number of draws grows but
  degenerate when one outcome leaves few draws with weight (on a synthetic Chinchilla sweep, 200
  bootstrap draws and noise 0.005, the effective sample size fell to ~1-5), which
  under-states the posterior variance; ``info["min_ess"]`` reports it.

The extrapolation error is *shared* between runs: in the linear update it adds
``tau**2 d_i d_j`` to the covariance of the outcomes of runs ``i`` and ``j``; in reweighting a
particle carries one value of it (a Gauss-Hermite node). So a run far beyond the data, whose
outcome mostly measures the misspecification, carries little information about the law, and
several such runs do not average that error away: the design does not chase precision that
misspecification makes meaningless. A run inside the data (``d = 0``) is limited only by the
noise. Choosing a run conditions on it (greedy sequential design; for reweighting, every
fantasy world conditions on its own fantasised outcome), so the next choice accounts for
the redundancy with the runs chosen before it.

**Reaching toward C*.** For ``N_opt(C*)`` under the training cost, the honest variance is
the law's plus the optimum error's (:mod:`bayescale.estimators.optimum_error`),
``kappa d**2``, with ``d`` the decades of compute from the largest run to ``C*``: no run
inside the data narrows that part, only runs that move the largest run toward ``C*``. A
candidate's gain adds ``kappa (d**2 - d_c**2)`` (``design_score.Reach``). Limit: the error
was learned from leave-future-out cuts of whole budgets, so one large run is credited as if
it moved the data's frontier (it over-values a lone run at a new budget).

``expected_gain`` is the expected reduction in the variance of the objective (in log units)
that the run adds given the runs chosen before it. **Ranking** (one implementation,
:func:`design_score.pick`, shared with ``benchmarks/bench_design.py``): ``rank="gain"``
picks the affordable run with the largest gain; ``rank="per_cost"`` the largest gain per
FLOP. Gain is the default because it did better in 5 of 6 cells of the Li et al. (2026) protocol
(``benchmarks/results/design_noise.json``, 10 repeats, mean target R^2 at 1% / 5% / 10%
of the pool's cost, the loss at the target observable): on farseer gain 0.87 / 0.90 / 0.95
against per-FLOP 0.49 / 0.76 / 0.75, on data_constrained 0.93 / 0.97 / 0.95 against 0.95 /
0.80 / 0.89 (Li et al. 0.60 / 0.88 / 0.93 and 0.73 / 0.85 / 0.86). Per FLOP chases
the cheapest runs; for ``N_opt`` with the reach term it came closer than gain on chinchilla
at 10-50% of the pool and further on marin at 10% (``results/design_nopt_noise10.json``).

Limits: both approximations are only as good as the draws (a few hundred bootstrap
resamples or posterior draws are enough for the linear update); the linear one ignores the
curvature of the law within the posterior (checked against exact grid refits in
``tests/test_design.py``). The budget is a cap, not a target, and is not always spent.

References
----------
S. Li et al., "Spend Less, Fit Better: Budget-Efficient Scaling Law Fitting via Active
Experiment Selection", arXiv:2604.22753 (2026).
K. Chaloner and I. Verdinelli, "Bayesian Experimental Design: A Review", Statistical
Science 10 (1995).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale._util import check_level, to_jsonable
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation
from bayescale.laws.base import log_loss_theta
from bayescale.planning import design_score
from bayescale.planning.costs import get_cost
from bayescale.planning.design_candidates import (
    checked_costs,
    candidate_frame,
    decades_below,
    default_candidates,
)
from bayescale.planning.design_noise import candidate_noise, fit_noise, noise_scale
from bayescale.planning.design_objective import (
    objective_decades,
    objective_draws,
    with_optimum_error,
)

__all__ = ["Design", "next_runs", "OBJECTIVES", "default_candidates", "noise_scale"]

OBJECTIVES = ("n_opt", "loss")
# The correlation between the miss per decade at the loss objective's point and at the
# candidates (module docstring, "observable loss"): a choice, not a fit. Leave-future-out
# misses of the ten registered sweeps (benchmarks/bench_share.py: the nearest and the
# farthest held-out run of each refit) correlate 0.55-0.56 over 22 refits, most of it each
# sweep's own drift; within sweeps 0.33 with the Chinchilla law for every sweep (-0.13
# without data_constrained) and 0.06 with each sweep's own law (--own-law). 0.5 scored about as well as
# full sharing in the Li et al. protocol, both with the error's posterior medians
# (benchmarks/RESULTS.md, "Designing for the loss that will be observed at the target"),
# and keeps one run from promising the whole miss away.
SHARE = 0.5
APPROXIMATIONS = ("linear", "reweight")


@dataclasses.dataclass(frozen=True)
class Design:
    """The result of :func:`next_runs`.

    Attributes
    ----------
    proposals : DataFrame, one row per proposed run in order of choice: ``N, D`` (``U``),
        ``cost``, ``expected_gain`` (expected reduction of the objective's variance, given
        the runs before it), ``gain_per_cost``, ``decades`` beyond the data.
    before, after : ``{"median", "lower", "upper"}`` of the central ``level`` interval of the
        objective (``N_opt(C*)`` in parameters, or the loss) now, and expected after the
        proposed runs (mean over the fantasy worlds of each world's interval). For
        ``N_opt`` they include the optimum error beyond the runs (before: at ``C*``'s
        distance from the fitted runs; after: from the runs and the proposals), the
        within-law pair in ``info["optimum_error"]["within"]``.
    candidates : DataFrame of every candidate with its first-step ``expected_gain`` and
        ``gain_per_cost`` (the figure colours them by it).
    objective, level : what was targeted; info : settings, timings, effective sample sizes.
    """

    proposals: pd.DataFrame
    before: dict
    after: dict
    candidates: pd.DataFrame
    objective: str
    level: float
    info: dict

    def to_dict(self) -> dict[str, Any]:
        """``{"proposals": [{"N", "D", "cost", "expected_gain"}], "before", "after", ...}``."""
        keys = ["N", "D"] + (["U"] if "U" in self.proposals else []) + ["cost", "expected_gain"]
        props = [{k: float(row[k]) for k in keys} for _, row in self.proposals.iterrows()]
        return to_jsonable({"proposals": props, "before": self.before, "after": self.after,
                            "objective": self.objective, "level": self.level,
                            "info": self.info})


def _positive(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BayescaleError(f"{name} must be a number of FLOPs, got {value!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise BayescaleError(f"{name} must be positive and finite, got {value!r}.")
    return v


def next_runs(fit, *, target_budget: float, experiment_budget: float, k: int = 4,
              objective: str = "n_opt", candidates=None, targets=None, cost: Any = "train",
              unique_tokens: float | None = None, level: float = 0.9, seed: int = 0,
              approximation: str = "linear", num_fantasies: int = 32, num_nodes: int = 5,
              max_draws: int = 1000, model: "extrapolation.ExtrapolationModel | str | None" = None,
              rank: str = "gain", optimum_model=None, share: float = SHARE) -> Design:
    """Propose up to ``k`` runs, total cost within ``experiment_budget``, that most reduce the
    uncertainty of the objective per unit cost (see the module docstring).

    Parameters
    ----------
    fit : a :class:`~bayescale.estimators.fit.ScalingFit` with draws (``method="bayes"`` or
        ``"bootstrap"``), any law.
    target_budget : ``C*``, the FLOPs of the training run the decision is about.
    experiment_budget : the cost all proposed runs together may use.
    k : the most runs to propose.
    objective : ``"n_opt"`` (``log N_opt(C*)``) or ``"loss"`` (log loss at ``C*``, or the
        mean log loss over ``targets``).
    candidates : DataFrame or CSV path with columns ``N, D`` (and ``U``), the runs that can
        be trained; default :func:`default_candidates`.
    targets : for ``objective="loss"``: points ``N, D`` (``U``), the target region: the runs
        are chosen for the integrated variance of log loss over these points (module
        docstring), and ``before``/``after`` describe their mean log loss.
    cost : the cost model of the runs and of ``C*`` (``"train"`` = ``6 N D``, or any of
        :func:`bayescale.planning.costs.get_cost`).
    unique_tokens : ``U`` for laws that take it (the frontier at ``C*`` and the default grid).
    level : the interval level of ``before`` / ``after``.
    seed : random seed of the fantasies; num_fantasies : fantasy worlds; num_nodes :
        Gauss-Hermite nodes of the shared extrapolation error; max_draws : draws used (thinned).
    model : the :class:`~bayescale.estimators.extrapolation.ExtrapolationModel` (default:
        estimated from ``fit.runs``), or ``"none"`` for the in-model predictive (and
        ``before``/``after`` without the optimum error).
    optimum_model : for ``objective="n_opt"`` and the training cost, the
        :class:`~bayescale.estimators.optimum_error.OptimumError` (default: estimated from
        ``fit.runs``), or ``"none"``. It widens ``before``/``after`` and, in the ranking,
        credits a run with the optimum error it removes by reaching toward ``C*``
        (:class:`~bayescale.planning.design_score.Reach`; module docstring).
    share : for the loss objective with an error model, the correlation between the
        target's miss per decade and the candidates' (default :data:`SHARE`): how much a
        run toward the target tells about the target's own miss (module docstring).
    approximation : ``"linear"`` (default) or ``"reweight"`` (module docstring); the latter
        does not take ``objective="loss"`` with an error model.
    rank : ``"gain"`` (default: the largest expected gain that fits the remaining budget)
        or ``"per_cost"`` (the largest gain per FLOP); see the module docstring for the
        evidence behind the default.

    Returns
    -------
    Design

    Raises
    ------
    BayescaleError
        For a point fit, non-positive budgets, an unknown objective, bad candidates, a
        budget below the cost of every candidate, a ``share`` outside [0, 1], or
        ``approximation="reweight"`` with the loss objective and an error model.
    """
    import time

    t0 = time.perf_counter()
    if getattr(fit, "runs", None) is None or not hasattr(fit, "is_point"):
        raise BayescaleError("next_runs needs a fit to runs (bayescale.fit(...)), not a "
                             "published law.")
    if fit.is_point:
        raise BayescaleError(f"next_runs needs draws from the fit's uncertainty; a "
                             f"{fit.method!r} fit is a point estimate. Refit with "
                             f"method='bayes' or method='bootstrap'.")
    target_budget = _positive("target_budget", target_budget)
    experiment_budget = _positive("experiment_budget", experiment_budget)
    if objective not in OBJECTIVES:
        raise BayescaleError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}.")
    if targets is not None and objective != "loss":
        raise BayescaleError("targets= goes with objective='loss'.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise BayescaleError(f"k must be a positive integer, got {k!r}.")
    if approximation not in APPROXIMATIONS:
        raise BayescaleError(f"approximation must be one of {', '.join(APPROXIMATIONS)}, got "
                             f"{approximation!r}.")
    if rank not in design_score.RANKS:
        raise BayescaleError(f"rank must be one of {', '.join(design_score.RANKS)}, got {rank!r}.")
    level = check_level(level)
    share = float(share)
    if not 0.0 <= share <= 1.0:
        raise BayescaleError(f"share must be a correlation in [0, 1], got {share!r}.")
    no_model = isinstance(model, str) and model == "none"
    if approximation == "reweight" and objective == "loss" and not no_model:
        raise BayescaleError(
            "approximation='reweight' cannot carry the extrapolation error into the loss "
            "objective yet (its discrete error nodes are pinned by one far run, which "
            "collapses the interval after it); use approximation='linear' (the default), "
            "or model='none' for the law's own prediction of the loss.")
    law = fit.law
    if targets is not None:  # read and checked once
        targets = candidate_frame(targets, law, what="targets")
    if "U" in law.inputs and unique_tokens is None:
        unique_tokens = float(np.max(fit.runs.U))
    cost_model = get_cost(cost)
    cand = (default_candidates(fit, target_budget, experiment_budget, cost=cost,
                               unique_tokens=unique_tokens)
            if candidates is None else candidate_frame(candidates, law))
    if candidates is None and len(cand) == 0:
        text = (f"the experiment budget {experiment_budget:.3g} FLOPs is below the cost of "
                f"every run on the default candidate grid (from the data's smallest N and D "
                f"up); raise it or")
        raise BayescaleError(f"{text} pass candidates=.",
                             cli=f"{text} pass --candidates FILE.")
    cand["cost"] = checked_costs(cost_model, cand)
    if not np.any(cand.cost <= experiment_budget):
        raise BayescaleError(f"the experiment budget {experiment_budget:.3g} FLOPs is below "
                             f"the cost of every candidate (the cheapest costs "
                             f"{cand.cost.min():.3g}); raise it or offer cheaper candidates.")
    rng = np.random.default_rng(seed)
    P = fit.num_draws
    pick = np.sort(rng.choice(P, max_draws, replace=False)) if P > max_draws else np.arange(P)
    params = type(fit.params)(*(np.asarray(v, float)[pick] for v in fit.params))
    sub = dataclasses.replace(fit, params=params)
    g = objective_draws(sub, objective, target_budget, cost, unique_tokens, targets)
    ok = np.all(np.isfinite(g.reshape(len(g), -1)), axis=1)
    if ok.sum() < 10:
        raise BayescaleError("fewer than 10 draws give a finite objective; check the fit.")
    dropped = int(len(ok) - ok.sum())  # draws without a finite objective (reported)
    theta = np.atleast_2d(np.asarray(law.to_theta(params), float))[ok]
    g = g[ok]
    criterion = "variance" if g.ndim == 1 else f"integrated variance over {g.shape[1]} targets"
    X = np.log(cand[list(law.inputs)].to_numpy())
    mu = np.asarray(log_loss_theta(law, jnp.asarray(theta), jnp.asarray(X)), float)
    d = extrapolation.decades_beyond(fit.runs.N, fit.runs.D, cand.N.to_numpy(), cand.D.to_numpy())
    cand["decades"] = d
    d_below = decades_below(fit.runs.N, fit.runs.D, cand.N.to_numpy(), cand.D.to_numpy())
    cand["decades_below"] = d_below
    shrink = float((fit.info or {}).get("shrink") or 0.0)  # the error models refit as the fit
    if no_model:
        b, tau = 0.0, 0.0
    else:
        model = (extrapolation.estimate(fit.runs, law, shrink=shrink) if model is None
                 else model)
        b, tau = model.slope_moments()  # the error's two moments, as predict's draws
    sigma, noise = fit_noise(fit, theta)  # the larger of the fit's and the draws' implied
    noise["sd"] = sigma
    sigma = candidate_noise(sigma, tau, d_below)  # below the data: the error as its own
    costs = cand.cost.to_numpy()
    d_g = None  # the loss objective is the loss that will be observed: it shares the error
    if objective == "loss" and not no_model:
        d_g = objective_decades(fit, sub, targets, target_budget, cost, unique_tokens)
    opt_model, reach = None, None
    if (objective == "n_opt" and not no_model
            and not (isinstance(optimum_model, str) and optimum_model == "none")
            and getattr(cost_model, "name", None) == "train"):  # the error is learned on 6ND
        from bayescale.estimators import optimum_error

        opt_model = (optimum_error.estimate(fit.runs, law, shrink=shrink)
                     if optimum_model is None else optimum_model)
        C_max = float(fit.runs.C.max())
        reach = design_score.Reach(
            math.log(10.0) ** 2 * opt_model.variance_per_decade2(),
            max(math.log10(target_budget / C_max), 0.0),
            np.maximum(np.log10(target_budget / np.maximum(costs, C_max)), 0.0))
    t_setup = time.perf_counter() - t0
    if approximation == "linear":
        picks, gains, first, var0, var1, mean_var = design_score.linear_greedy(
            mu, d, g, tau, sigma, costs, experiment_budget, k, rank=rank, reach=reach, d_g=d_g,
            share=share)
        rows = [(c, {"expected_gain": v, "gain_per_cost": v / costs[c]}) for c, v in zip(picks, gains)]
        remaining = experiment_budget - float(costs[picks].sum())
        extra = {"var_before": var0, "var_after": var1}
        if g.ndim == 2:  # a region: chosen for its integrated variance, reported by its mean
            extra["integrated_var_before"], extra["integrated_var_after"] = var0, var1
            g = g.mean(axis=1)
            extra["var_before"], extra["var_after"] = mean_var
        if d_g is not None:  # the discrepancy the variances assume: d (b + tau z)
            g = g + float(np.mean(d_g)) * (b + tau * rng.standard_normal(len(g)))
        before = design_score.interval(g, np.zeros((len(g), 1)), level)
        shrink = math.sqrt(max(extra["var_after"], 0.0) / extra["var_before"])
        after = {"median": before["median"],
                 "lower": before["median"] * (before["lower"] / before["median"]) ** shrink,
                 "upper": before["median"] * (before["upper"] / before["median"]) ** shrink}
    else:
        rows, first, remaining, extra, before, after = design_score.reweight_greedy(
            mu, d, g, b, tau, sigma, costs, k, experiment_budget, rng, level,
            num_fantasies, num_nodes, rank, reach=reach)
    rows = [{**cand.iloc[c].to_dict(), **r} for c, r in rows]
    if opt_model is not None:
        chosen = [r["N"] * r["D"] * 6.0 for r in rows]
        before, after, extra["optimum_error"] = with_optimum_error(
            fit, opt_model, g, before, after, extra, target_budget, chosen, level, rng)
    if objective == "n_opt" and opt_model is None and not no_model and reach is None and not (
            isinstance(optimum_model, str) and optimum_model == "none"):
        extra["optimum_error_note"] = (
            f"not applied: the optimum error beyond the runs is learned for the training "
            f"cost 6ND, not {getattr(cost_model, 'name', cost)!r}; before/after are the "
            f"law's own interval, and no run is credited for reaching toward C*")
    cand["expected_gain"], cand["gain_per_cost"] = first, first / costs
    cols = list(cand.columns[:len(law.inputs)]) + ["cost", "expected_gain", "gain_per_cost", "decades"]
    proposals = pd.DataFrame(rows, columns=list(cand.columns[:len(law.inputs)]) +
                             ["cost", "decades", "expected_gain", "gain_per_cost"])[cols]
    info = {"target_budget": target_budget, "experiment_budget": experiment_budget,
            "spent": float(experiment_budget - remaining), "num_candidates": int(len(cand)),
            "num_draws": int(len(g)), "dropped_draws": dropped, "approximation": approximation,
            "rank": rank, "noise_sd": noise["sd"],
            "noise": noise,
            "criterion": criterion, "share": share if d_g is not None else None,
            "objective_decades": (
                d_g if d_g is None or np.ndim(d_g) == 0 else [float(v) for v in d_g]),
            "extrapolation": {"bias": float(b), "tau": float(tau)}, **extra,
            "seconds": {"setup": t_setup, "total": time.perf_counter() - t0},
            "unique_tokens": unique_tokens, "cost": getattr(cost_model, "name", str(cost))}
    return Design(proposals=proposals, before=before, after=after, candidates=cand,
                  objective=objective, level=level, info=info)
