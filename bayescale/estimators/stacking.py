"""Structural (law-form) uncertainty in N_opt and D_opt: stacking laws by leave-future-out.

:func:`stack_laws` fits several laws to the same runs and weighs them by how well each
predicted runs beyond its data (stacking of predictive distributions, Yao et al. 2018):

1. **leave-future-out scores.** For each cut ``k = 1 .. cuts`` every law is refitted
   (coarse-grid Huber, :func:`bayescale.estimators.extrapolation.lfo_misses`: all cuts of a
   law in one compiled program) without the top ``k`` compute budgets and scored on the
   held-out runs by the log density of their log loss under ``Normal(prediction, robust
   residual scale of that fit)``: the in-model predictive of a point fit
   (:func:`bayescale.estimators.predict.predict` with ``structural="none"`` uses the same
   noise model), closed form. These are not the kernel-density log scores of
   :func:`bayescale.validation.backtest.backtest`, which would need a fit and predictive
   draws per cut and law.
2. **weights.** :func:`stacking_weights` maximises
   ``sum_i log sum_k w_k p_k(y_i)`` over the simplex (softmax parameterisation,
   L-BFGS-B on the exact gradient; the objective is concave in ``w``).
3. **the mixture.** Each law is refitted on all the runs (``method``, default
   ``"bootstrap"``); :meth:`LawStack.frontier` pools the laws' frontier draws in proportion
   to the weights (:func:`mixture`: a fixed seed, whole copies plus a random remainder).

:meth:`LawStack.summary` shows two bands per budget: ``"within"`` (the top-weighted law's
own frontier: parameter uncertainty only) and ``"structural"`` (the mixture, each law's
draws first moved by its own optimum-error model beyond the data,
:mod:`bayescale.estimators.optimum_error`: where a law is wrong in N or D separately its
optimum moves, which the laws' disagreement alone does not capture).

Laws that need unique tokens (``data_constrained``) are used only when the runs have ``U``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax
from scipy.stats import norm

from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation, optimum_error
from bayescale.estimators.fit import ScalingFit, fit as fit_runs
from bayescale.estimators.loo import psis_loo
from bayescale.laws.registry import get_law

__all__ = ["LawStack", "stack_laws", "stacking_weights", "mixture", "mixture_indices",
           "lfo_log_density"]

PARETO_K_MAX = 0.7  # Vehtari et al. (2017): above it, PSIS-LOO is unreliable for that point
QUANTITIES = ("N_opt", "D_opt", "L_opt", "tokens_per_param")


def stacking_weights(log_density) -> np.ndarray:
    """Stacking weights ``w`` (K,) maximising ``sum_i log sum_k w_k exp(log_density[i, k])``
    over the simplex, for per-point log predictive densities ``(n, K)`` of K models."""
    lp = np.asarray(log_density, dtype=float)
    if lp.ndim != 2 or lp.shape[0] < 1 or lp.shape[1] < 1:
        raise BayescaleError(f"log_density must be a 2-d array (points, models) with at least "
                             f"one of each, got shape {lp.shape}.")
    if not np.all(np.isfinite(lp) | (lp == -np.inf)) or np.any(np.all(lp == -np.inf, axis=1)):
        raise BayescaleError("log_density must be finite or -inf, with at least one finite "
                             "value per point (NaN or +inf found, or a point no model can "
                             "predict).")
    K = lp.shape[1]
    if K == 1:
        return np.ones(1)
    lp = lp - lp.max(axis=1, keepdims=True)   # per point: changes the objective by a constant

    def objective(z):
        logw = z - logsumexp(z)
        per_point = logsumexp(lp + logw[None, :], axis=1)
        resp = np.exp(lp + logw[None, :] - per_point[:, None])   # responsibilities (n, K)
        grad_logw = resp.sum(axis=0)
        w = np.exp(logw)
        grad_z = grad_logw - w * grad_logw.sum()
        return -per_point.sum(), -grad_z

    res = minimize(objective, np.zeros(K), jac=True, method="L-BFGS-B",
                   options={"maxiter": 10_000, "gtol": 1e-12, "ftol": 1e-15})
    return softmax(res.x)


def _counts(weights: np.ndarray, num: int) -> np.ndarray:
    """Largest-remainder apportionment of ``num`` draws to ``weights``."""
    raw = weights * num
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: num - counts.sum()]] += 1
    return counts


def mixture_indices(sizes: Sequence[int], weights, *, num_draws: int,
                    seed: int = 0) -> list[np.ndarray]:
    """Which draws of each law a weighted mixture pools: for laws with ``sizes[k]`` draws and
    ``weights`` (>= 0, summing to 1), law k gets ``m_k`` draws (largest remainder of
    ``num_draws * w_k``), ``m_k // S_k`` whole copies of its ``S_k`` draws plus ``m_k % S_k``
    draws without replacement (``numpy.random.default_rng(seed)``, laws in order). Returns one
    index array per law; :func:`mixture` pools frontiers with them, ``bayescale decide
    --structural`` a plan's per-draw decision quantities."""
    w = np.asarray(weights, dtype=float)
    if len(sizes) != w.size or w.size == 0:
        raise BayescaleError(f"mixture needs one weight per frontier, got {w.size} weights "
                             f"for {len(sizes)} frontiers.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-6:
        raise BayescaleError(f"mixture weights must be >= 0 and sum to 1, got {w.tolist()}.")
    if isinstance(num_draws, bool) or not isinstance(num_draws, (int, np.integer)) \
            or num_draws < 1:
        raise BayescaleError(f"num_draws must be a positive integer, got {num_draws!r}.")
    rng = np.random.default_rng(seed)
    picks = []
    for S, m in zip(sizes, _counts(w / w.sum(), int(num_draws))):
        S = int(S)
        picks.append(np.concatenate([np.tile(np.arange(S), m // S),
                                     np.sort(rng.choice(S, m % S, replace=False))]))
    return picks


def mixture(frontiers: Sequence, weights, *, num_draws: int, seed: int = 0):
    """One :class:`~bayescale.planning.frontier.Frontier` pooling ``frontiers`` (same budgets)
    in proportion to ``weights``: law k gets ``m_k`` draws (largest remainder of
    ``num_draws * w_k``), drawn as ``m_k // S_k`` whole copies of its ``S_k`` draws plus
    ``m_k % S_k`` draws without replacement (``numpy.random.default_rng(seed)``), in the
    order of ``frontiers`` (:func:`mixture_indices`)."""
    if len(frontiers) == 0:
        raise BayescaleError("mixture needs one weight per frontier, got no frontiers.")
    budgets = np.asarray(frontiers[0].budgets, dtype=float)
    idx = mixture_indices([f.num_draws for f in frontiers], weights, num_draws=num_draws,
                          seed=seed)
    for f in frontiers[1:]:
        if not np.array_equal(np.asarray(f.budgets, dtype=float), budgets):
            raise BayescaleError("mixture: the frontiers are at different budgets.")
    pooled = {k: np.concatenate([np.asarray(getattr(f, k))[i] for f, i in zip(frontiers, idx)])
              for k in (*QUANTITIES, "converged")}
    return type(frontiers[0])(budgets=budgets, extrapolation=frontiers[0].extrapolation,
                              **pooled)


@dataclasses.dataclass(frozen=True, eq=False)
class LawStack:
    """Laws fitted to the same runs, with stacking weights.

    Attributes
    ----------
    laws : the laws' names; weights : (K,) stacking weights, summing to 1.
    fits : ``{law: ScalingFit}`` on all the runs.
    log_density : ``(n_heldout, K)`` leave-future-out log predictive densities (log loss).
    info : the hold-outs, the predictive, laws left out and why, the seed, and each law's
        optimum error (``info["optimum_error"]``).
    optimum_errors : ``{law: OptimumError}``, applied to the structural band beyond
        ``C_max`` (the runs' largest 6ND); empty: the laws' mixture alone.
    """

    laws: tuple
    weights: np.ndarray
    fits: dict
    log_density: np.ndarray
    info: dict
    optimum_errors: dict = dataclasses.field(default_factory=dict)
    C_max: float = float("inf")

    @property
    def scored_by(self) -> str:
        """How the weights were scored, in words: ``"leave-future-out, cuts [1, 2, 3]"``, or
        ``"PSIS-LOO: ..."`` with the reason where no future could be left out."""
        if self.info.get("scores") == "psis-loo":
            return f"PSIS-LOO: {self.info['note']}"
        return f"leave-future-out, cuts {self.info['cuts']}"

    @property
    def top(self) -> str:
        """The law with the largest weight."""
        return self.laws[int(np.argmax(self.weights))]

    def frontiers(self, budgets, *, unique_tokens=None, **kwargs) -> dict:
        """Each law's own frontier: ``{law: Frontier}``."""
        out = {}
        for name in self.laws:
            fit = self.fits[name]
            extra = {"unique_tokens": unique_tokens} if "U" in fit.law.inputs else {}
            out[name] = fit.frontier(budgets, **kwargs, **extra)
        return out

    def _errors(self, kwargs) -> dict:
        """The optimum errors that apply: learned on 6ND, they move the optimum along the
        training cost's budget only (none for another cost model)."""
        cost = kwargs.get("cost", "train")
        return self.optimum_errors if getattr(cost, "name", cost) == "train" else {}

    def frontier(self, budgets, *, num_draws: int | None = None, **kwargs):
        """The structural frontier: each law's frontier draws moved by its optimum error
        (beyond ``C_max``), pooled by weight (:func:`mixture`; ``num_draws`` defaults to
        the largest law's draw count)."""
        fronts = self.frontiers(budgets, **kwargs)
        return self._mix(fronts, num_draws, self._errors(kwargs))

    @property
    def optimum_note(self) -> str:
        """One sentence on how the structural band moves each law's optimum beyond the
        data (empty without optimum errors)."""
        if not self.optimum_errors:
            return ""
        parts = []
        for name, model in self.optimum_errors.items():
            s = model.summary()
            parts.append(f"{name} spread {s['w']:.3f}, drift {s['drift']:+.2f} "
                         f"({s['num_misses']} held-out profile(s))")
        return ("The structural band also moves each law's N_opt (and D_opt the other way) "
                "beyond the data's largest compute by its optimum error, learned from "
                "leave-future-out isoFLOP optima (decades of N per decade of compute): "
                + "; ".join(parts) + ".")

    def moved_n_opt(self, law: str, N_opt, C: float) -> np.ndarray:
        """``law``'s ``N_opt`` draws at budget ``C`` moved by its optimum error, as in the
        structural band (unchanged for a law without one, or within the data)."""
        if law not in self.optimum_errors:
            return np.asarray(N_opt, dtype=float).reshape(-1)
        return self.optimum_errors[law].move(N_opt, C, self.C_max, self._error_rng(law))

    def _error_rng(self, law: str) -> np.random.Generator:
        """A stream of its own per law for the optimum error (not the mixture's)."""
        return np.random.default_rng([int(self.info["seed"]), 1, self.laws.index(law)])

    def _mix(self, fronts: dict, num_draws, errors: dict):
        moved = {k: errors[k].apply(fronts[k], self.C_max, self._error_rng(k))
                 if k in errors else fronts[k] for k in self.laws}
        if num_draws is None:
            num_draws = max(f.num_draws for f in moved.values())
        return mixture([moved[k] for k in self.laws], self.weights, num_draws=num_draws,
                       seed=int(self.info["seed"]))

    def summary(self, budgets, level: float = 0.9, **kwargs) -> pd.DataFrame:
        """One row per budget and band: ``band`` ``"within"`` (the top-weighted law's
        frontier) and ``"structural"`` (the mixture), with the columns of
        :meth:`Frontier.summary <bayescale.planning.frontier.Frontier.summary>`."""
        fronts = self.frontiers(budgets, **kwargs)
        within = fronts[self.top].summary(level).reset_index().assign(band="within",
                                                                      law=self.top)
        mixed = self._mix(fronts, None, self._errors(kwargs)).summary(level)
        mixed = mixed.reset_index().assign(band="structural", law="mixture")
        return pd.concat([within, mixed], ignore_index=True)

    def to_dict(self, budgets, level: float = 0.9, **kwargs) -> dict[str, Any]:
        """JSON-ready ``{"laws", "weights", "top", "level", "info", "budgets": [{"C",
        "N_opt": {"within": {median, lower, upper}, "structural": {...}}, "D_opt": ...}]}``."""
        fronts = self.frontiers(budgets, **kwargs)
        mixed = self._mix(fronts, None, self._errors(kwargs))
        bands = {"within": fronts[self.top].to_dict(level)["budgets"],
                 "structural": mixed.to_dict(level)["budgets"]}
        rows = [{"C": w["C"], **{q: {b: bands[b][i][q] for b in bands}
                                 for q in ("N_opt", "D_opt", "L_opt")}}
                for i, w in enumerate(bands["within"])]
        return {"laws": list(self.laws), "weights": [float(x) for x in self.weights],
                "top": self.top, "level": float(level), "info": self.info, "budgets": rows}


def lfo_log_density(runs, law, *, cuts: int = extrapolation.MAX_CUTS, shrink: float = 0.0):
    """Leave-future-out log predictive densities of ``law`` on ``runs``: for each cut
    ``k = 1 .. cuts`` (:func:`bayescale.estimators.extrapolation.lfo_misses`: the top ``k``
    compute budgets held out, at least 3 budgets and 10 runs kept), the density of each
    held-out run's log loss under ``Normal(law's prediction, robust residual scale of the
    fit)``, the in-model predictive of a point fit. Returns ``(log_density, cut)`` per
    held-out run, in the order of the cuts (the same for every law). ``shrink``: the
    refits' pull toward the law's priors (the fits' own)."""
    misses = extrapolation.lfo_misses(runs, get_law(law), max_cuts=int(cuts), shrink=shrink)
    s = np.asarray(misses.s, dtype=float)
    return norm.logpdf(np.asarray(misses.r, dtype=float), scale=s), \
        np.asarray(misses.cut)


LOO_NOTE = ("fewer than 4 compute budgets, so no leave-future-out cut leaves 3 budgets "
            "and 10 runs to fit: the laws are weighed by PSIS-LOO (each run left out in "
            "turn, within the data's range), which measures interpolation, not "
            "extrapolation; the weights say less about the budgets beyond the data.")


def _psis_loo_scores(runs, laws, method: str, seed: int, fit_options: dict):
    """``(fits, log_density, pareto_k_bad)``: each law's NUTS fit, its pointwise PSIS-LOO log
    predictive densities ``(rows, K)`` (:func:`bayescale.estimators.loo.psis_loo`: every
    run, or, for fits that subsampled their rows, the same subsample's), the stacking
    scores where no leave-future-out cut is possible (Yao et al. 2018 stack on the same
    quantity). The NUTS fits are kept as the laws' fits when ``method`` is ``"bayes"``;
    ``pareto_k_bad`` counts, per law, the runs whose Pareto k exceeds ``PARETO_K_MAX``
    (their LOO densities are unreliable, Vehtari et al. 2017)."""
    options = fit_options if method == "bayes" else {}
    bayes = {law.name: fit_runs(runs, method="bayes", law=law, seed=seed, **options)
             for law in laws}
    columns, bad = [], {}
    # fits that subsampled their rows: every law's LOO on the same subsample of rows
    thin = any("log_likelihood" not in f.idata.groups() for f in bayes.values())
    for name, f in bayes.items():
        loo = psis_loo(f, seed=seed, subsample=thin or None)
        columns.append(loo.elpd_i)
        bad[name] = int(np.sum(loo.pareto_k > PARETO_K_MAX))
    return (bayes if method == "bayes" else {}), np.stack(columns, axis=1), bad


def stack_laws(runs, laws: Sequence[str] = ("chinchilla", "kaplan"), *,
               method: str = "bootstrap", cuts: int = extrapolation.MAX_CUTS, seed: int = 0,
               optimum: bool = True, optimum_prior=None, **fit_options) -> LawStack:
    """Fit ``laws`` to ``runs`` and weigh them by leave-future-out stacking.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs`, or anything :func:`~bayescale.load_runs` takes.
    laws : two or more law names; those needing ``U`` are left out when the runs lack it
        (``info["left_out"]``).
    method : estimator of the fits on all the runs (default ``"bootstrap"``), with
        ``fit_options``.
    cuts : leave-future-out cuts pooled (:func:`lfo_log_density`; default 3: hold out the
        top 1, 2 and 3 compute budgets in turn, where the runs leave 3 budgets to fit).
        Runs with fewer than 4 budgets have no such cut: the laws are then weighed by
        their pointwise PSIS-LOO densities from NUTS fits (``info["scores"]`` is
        ``"psis-loo"``, with ``info["note"]`` saying what that measures).
    seed : of the fits and the mixture.
    optimum : move each law's draws by its optimum-error model in the structural band
        (:func:`bayescale.estimators.optimum_error.estimate`, leave-future-out inside
        ``runs`` under ``optimum_prior``, default its ``DEFAULT_PRIOR``); ``False``: the
        laws' mixture alone.

    Returns
    -------
    LawStack
    """
    from bayescale.data.runs import Runs, load_runs

    runs = runs if isinstance(runs, Runs) else load_runs(runs)
    names = [laws] if isinstance(laws, str) else list(laws)
    if len(set(names)) != len(names):
        raise BayescaleError(f"laws must be distinct, got {names}.")
    if isinstance(cuts, bool) or not isinstance(cuts, (int, np.integer)) or cuts < 1:
        raise BayescaleError(f"cuts must be a positive integer, got {cuts!r}.")
    resolved, left_out = [], {}
    for name in names:
        law = get_law(name)
        if "U" in law.inputs and runs.U is None:
            left_out[law.name] = "needs unique tokens U; the runs have none"
        else:
            resolved.append(law)
    if len(resolved) < 2:
        raise BayescaleError(f"stacking needs at least two laws that fit these runs, got "
                             f"{[law.name for law in resolved]}"
                             + (f" (left out: {left_out})" if left_out else "") + ".")
    shrink = float(fit_options.get("shrink") or 0.0)  # refits pulled as the fits are
    scored = [lfo_log_density(runs, law, cuts=cuts, shrink=shrink) for law in resolved]
    log_density = np.stack([lp for lp, _ in scored], axis=1)
    fits: dict[str, ScalingFit] = {}
    if len(log_density):
        scores = {"scores": "leave-future-out", "cuts": sorted(set(map(int, scored[0][1]))),
                  "n_heldout": int(len(log_density))}
    else:  # fewer than 4 budgets: no future to leave out
        fits, log_density, bad = _psis_loo_scores(runs, resolved, method, seed, fit_options)
        scores = {"scores": "psis-loo", "cuts": [], "n_heldout": 0, "note": LOO_NOTE,
                  "pareto_k_bad": bad}
    weights = stacking_weights(log_density)
    for law in resolved:
        if law.name not in fits:
            fits[law.name] = fit_runs(runs, method=method, law=law, seed=seed, **fit_options)
    names = [law.name for law in resolved]
    errors = ({law.name: optimum_error.estimate(runs, law, prior=optimum_prior, max_cuts=cuts,
                                                shrink=shrink)
               for law in resolved} if optimum else {})
    info = {**scores, "method": method, "left_out": left_out, "seed": int(seed),
            "mean_log_density": dict(zip(names, map(float, log_density.mean(axis=0)))),
            "optimum_error": {k: v.summary() for k, v in errors.items()}}
    C_max = float(np.max(6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float)))
    return LawStack(laws=tuple(names), weights=weights, fits=fits, log_density=log_density,
                    info=info, optimum_errors=errors, C_max=C_max)
