"""The extrapolation-error model: how far a scaling law misses beyond the runs it was fitted on.

A fitted law is exactly right only inside its own model. Beyond the data it misses by an
amount that grows with the distance (issue 10: 0.05-0.11 nats 1.3 decades ahead, every
posterior draw on the wrong side). This module models that miss as an additive
discrepancy on log loss,

    log L_obs = log L_law(N, D) + delta + noise,    delta ~ Normal(b * d, (tau * d)**2),

where ``d`` is the distance beyond the fitted runs in decades (:func:`decades_beyond`:
the largest of the excess in compute 6ND, in N and in D over the runs' largest; 0 inside
the data), ``tau`` the discrepancy's growth per decade and ``b`` a systematic drift per
decade. ``(b, tau)`` are learned, not set by hand:

1. **Leave-future-out inside the user's own data** (:func:`lfo_misses`): the runs are
   grouped into compute budgets (:func:`budgets`); for ``k = 1, 2, 3`` the law is refitted
   (Huber, Hoffmann et al. 2022 Approach 3, on a coarse start grid) without the top ``k``
   budgets and its misses at those budgets are recorded with their distance ``d`` and the
   refit's robust residual scale ``s``.
2. **A posterior on a grid** of ``(b, tau)`` (:func:`estimate`): the misses are
   ``Normal(b d, s**2 + tau**2 d**2)``; the misses of one refit share that refit's error,
   so each refit's misses together count as :data:`POINTS_PER_REFIT` observations (a power
   likelihood), not as one per run. The prior is the informative default
   :data:`DEFAULT_PRIOR`, learned across the registered published datasets (see its
   docstring and ``benchmarks/bench_backtest.py``), so a user with one small sweep still
   gets an honest width; with several budgets, the user's own misses move it.
3. **The predictive** (:meth:`ExtrapolationModel.sample`) draws ``(b, tau)`` from that grid
   posterior, then ``delta``: a scale mixture, heavier-tailed than one normal.

The in-model predictive stays available (``structural="none"`` in
:func:`bayescale.estimators.predict.predict`).
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.errors import BayescaleError
from bayescale.estimators.grid_posterior import draw_grid, grid_posterior, marginal_medians
from bayescale.estimators.huber import DELTA, check_shrink, huber_solve, law_params, log_inputs
from bayescale.laws.base import Law, log_loss_theta

__all__ = ["ErrorPrior", "DEFAULT_PRIOR", "POINTS_PER_REFIT", "BUDGET_GAP", "BIN_WIDTH", "Misses",
           "ExtrapolationModel", "budgets", "decades_beyond", "robust_scale", "masked_fits",
           "lfo_misses", "estimate", "coarse_starts", "log_X", "fitted_theta", "theta_params", "posterior",
           "fit_and_estimate", "check_prior"]

BUDGET_GAP = 0.1  # decades: sorted log10 C values further apart than this start a new budget
BIN_WIDTH = 0.25  # decades: the bins used when compute has no clear budgets
POINTS_PER_REFIT = 3.0  # how many independent observations the misses of one refit count as
MAX_CUTS = 3


class ErrorPrior(NamedTuple):
    """Prior on the discrepancy's growth: ``log tau ~ Normal(log tau, log_sd)`` and
    ``b ~ Normal(bias, bias_sd)`` (both per decade, in log loss)."""

    tau: float
    log_sd: float
    bias: float
    bias_sd: float


# The informative default, from leave-future-out misses of the Chinchilla law (coarse-grid
# Huber refits without the top 1, 2 and 3 compute budgets, :func:`lfo_misses`) on the
# registered published datasets. Posterior medians of (tau, b) per dataset under a vague
# prior (log tau ~ N(log 0.03, 3), b ~ N(0, 1)), per decade of log loss, as printed by
# ``python benchmarks/bench_backtest.py --learn-prior``:
#   chinchilla (0.040, -0.055), data_constrained (0.049, -0.075), farseer (0.024, -0.105),
#   misfitting (0.005, -0.015), marin_isoflop comma (0.040, -0.035), dclm (0.055, -0.035),
#   nemotron (0.029, -0.035), gadre2024 C4 (0.044, +0.005), RedPajama (0.006, +0.005),
#   RefinedWeb (0.032, +0.005).
# tau: their geometric mean, 0.026, with log sd 0.7 (a factor 2); b: their median, -0.035
# (the law over-predicts larger runs on 7 of 10), sd 0.03. The backtests in
# benchmarks/RESULTS.md use, for each dataset, the same recipe without that dataset.
DEFAULT_PRIOR = ErrorPrior(tau=0.026, log_sd=0.7, bias=-0.035, bias_sd=0.03)


class Misses(NamedTuple):
    """Leave-future-out misses: residual ``r = log L_obs - log L_fit`` (n,), distance ``d``
    in decades (n,), the refit's robust residual scale ``s`` (n,) and which refit ``cut``."""

    r: np.ndarray
    d: np.ndarray
    s: np.ndarray
    cut: np.ndarray

    @staticmethod
    def empty() -> "Misses":
        z = np.zeros(0)
        return Misses(z, z, z, np.zeros(0, dtype=int))

    @staticmethod
    def concat(parts) -> "Misses":
        parts = list(parts)
        if not parts:
            return Misses.empty()
        return Misses(*(np.concatenate([getattr(p, f) for p in parts]) for f in Misses._fields))


def budgets(C, *, gap: float = BUDGET_GAP, width: float = BIN_WIDTH) -> np.ndarray:
    """Label each run with its compute budget, 0 (smallest) up.

    Runs whose sorted ``log10 C`` values lie within ``gap`` decades of the previous one
    share a budget (an isoFLOP sweep's budgets). When that finds fewer than 4 budgets or a
    budget spanning more than ``3 * width`` decades (compute spread continuously, as in
    the digitised Chinchilla runs), the runs are binned instead into ``width``-decade bins
    counted down from the largest compute.
    """
    logC = np.log10(np.asarray(C, dtype=float))
    if logC.ndim != 1 or logC.size == 0 or not np.all(np.isfinite(logC)):
        raise BayescaleError("budgets: C must be a 1-D array of positive, finite FLOPs.")
    order = np.argsort(logC, kind="stable")
    jumps = np.concatenate([[0], (np.diff(logC[order]) > gap).astype(int)])
    labels = np.empty(len(logC), dtype=int)
    labels[order] = np.cumsum(jumps)
    spans = [np.ptp(logC[labels == k]) for k in range(labels.max() + 1)]
    if labels.max() + 1 >= 4 and max(spans) <= 3 * width:
        return labels
    down = np.floor((logC.max() - logC) / width + 1e-9).astype(int)
    _, labels = np.unique(-down, return_inverse=True)
    return labels.astype(int)


def decades_beyond(N_fit, D_fit, N, D) -> np.ndarray:
    """Decades beyond the fitted runs: ``max(0, dC, dN, dD)`` where ``dX = log10 X -
    log10 max(X over the runs)`` and ``C = 6 N D`` (the same convention for both sides)."""
    N_fit, D_fit = np.asarray(N_fit, float), np.asarray(D_fit, float)
    N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
    dC = np.log10(N * D) - np.max(np.log10(N_fit * D_fit))
    dN = np.log10(N) - np.log10(N_fit.max())
    dD = np.log10(D) - np.log10(D_fit.max())
    return np.maximum.reduce([np.zeros_like(dC), dC, dN, dD])


def robust_scale(residuals) -> float:
    """``1.4826 * MAD``: the standard deviation of normal residuals, robust to outliers."""
    r = np.asarray(residuals, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return float("nan")
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


#: The most starts :func:`coarse_starts` keeps (above the shipped grids but Farseer's:
#: Chinchilla 243, data_constrained 288, Kaplan 81).
COARSE_MAX = 300


def coarse_starts(law: Law) -> np.ndarray:
    """Every other value of each coordinate of the law's start grid that has 4 or more
    (243 starts for Chinchilla's 4500): enough for the refits here, which need the best
    fit's neighbourhood rather than a certificate of the global optimum. A grid still
    larger than :data:`COARSE_MAX` (a law of many coordinates with 2-3 values each, e.g.
    Farseer's 768) keeps a fixed random subset of that many (seed 0), so every value of
    every coordinate keeps about its share of the starts (the leave-future-out refits of
    ``next_runs`` on the Farseer law: 99 -> 48 s with 256)."""
    starts = law.starts(**{c: tuple(v[::2]) if len(v) >= 4 else tuple(v)
                           for c, v in law.start_grid.items()})
    if starts.shape[0] <= COARSE_MAX:
        return starts
    keep = np.sort(np.random.default_rng(0).choice(starts.shape[0], COARSE_MAX, replace=False))
    return starts[keep]


@functools.partial(jax.jit, static_argnames=("law", "max_iter"))
def _best_of(x0, weights, log_X, log_loss, shrink=None, *, law, max_iter):
    res = huber_solve(x0, weights, log_X, log_loss, delta=DELTA, max_iter=max_iter,
                      num_slots=x0.shape[0], ftol=1e-12, law=law, shrink=shrink)
    return res.x, res.fun


# Leave-future-out refits already made, by (law, data, starts, max_iter, mask): the loss
# discrepancy (lfo_misses), the stacking scores and the optimum error
# (bayescale.estimators.optimum_error) refit the same runs without the same budgets; each
# refit is made once per process. Bounded: the oldest entries go first.
_REFITS: dict = {}
_REFITS_MAX = 256


def masked_fits(law: Law, log_X, log_loss, masks, *, starts=None, max_iter: int = 500,
                shrink=0.0):
    """Huber fits (delta 1e-3, float64) of ``law`` to the runs selected by each row of
    ``masks`` (``(m, n)`` booleans), all in one compiled program over the same ``n`` runs
    (excluded runs get weight 0, so the fit is the fit to the subset). Returns the best
    ``theta`` per mask, ``(m, num_coords)``. A mask already fitted on the same data (by
    any caller in this process) is not fitted again.

    ``shrink``: a scale ``b >= 0`` for every mask or one per mask ``(m,)`` (the pull
    toward the law's Normal priors of :func:`bayescale.estimators.huber.fit_huber`); masks
    with different strengths share one program."""
    masks = np.atleast_2d(np.asarray(masks, dtype=bool))
    shrink = np.broadcast_to(np.asarray(shrink, dtype=float), masks.shape[:1])
    for b in np.unique(shrink):
        check_shrink(b)
    starts = coarse_starts(law) if starts is None else np.asarray(starts, dtype=float)
    log_X, log_loss = np.asarray(log_X, float), np.asarray(log_loss, float)
    data = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes()
                                 for a in (log_X, log_loss, starts))).hexdigest()
    keys = [(law, data, int(max_iter), hashlib.sha1(m.tobytes()).hexdigest(), float(b))
            for m, b in zip(masks, shrink)]
    todo = [i for i, key in enumerate(keys) if key not in _REFITS]
    if todo:
        fitted = _masked_fits(law, log_X, log_loss, masks[todo], starts, int(max_iter),
                              shrink[todo] if np.any(shrink[todo] > 0) else None)
        for i, theta in zip(todo, fitted):
            _REFITS[keys[i]] = theta
        while len(_REFITS) > _REFITS_MAX:
            _REFITS.pop(next(iter(_REFITS)))
    return np.stack([_REFITS[key] for key in keys])


def _masked_fits(law: Law, log_X, log_loss, masks, starts, max_iter: int, shrink=None):
    k, m, n = starts.shape[0], masks.shape[0], masks.shape[1]
    # Pad to size buckets (masks to a multiple of 4, runs to a multiple of 64, padding with
    # weight 0) so that datasets and hold-outs of similar size share one compiled program.
    m_pad, n_pad = -(-m // 4) * 4, -(-n // 64) * 64
    w = np.zeros((m_pad, n_pad))
    w[:m, :n] = masks
    w[m:, :n] = masks[-1]
    X = np.concatenate([log_X, np.repeat(log_X[:1], n_pad - n, axis=0)])
    y = np.concatenate([log_loss, np.repeat(log_loss[:1], n_pad - n)])
    if shrink is not None:  # one strength per problem: the masks' strengths over the starts
        shrink = np.repeat(np.pad(shrink, (0, m_pad - m), mode="edge"), k)
    with jax.enable_x64(True):
        shrink = None if shrink is None else jnp.asarray(shrink)
        x0 = jnp.asarray(np.tile(starts, (m_pad, 1)))
        x, fun = _best_of(x0, jnp.asarray(np.repeat(w, k, axis=0)), jnp.asarray(X),
                          jnp.asarray(y), shrink, law=law, max_iter=int(max_iter))
        x = np.asarray(x).reshape(m_pad, k, -1)[:m]
        fun = np.where(np.isfinite(np.asarray(fun)), np.asarray(fun), np.inf).reshape(m_pad, k)[:m]
    return x[np.arange(m), np.argmin(fun, axis=1)]


def log_X(law: Law, runs) -> np.ndarray:
    """The runs' log inputs for ``law``, ``(n, len(law.inputs))``."""
    log_U = None if getattr(runs, "U", None) is None else np.log(np.asarray(runs.U, float))
    return log_inputs(law, runs.log_N, runs.log_D, log_U)


def lfo_misses(runs, law: Law, *, max_cuts: int = MAX_CUTS, min_train_budgets: int = 3,
               min_train_runs: int = 10, with_full_fit: bool = False, shrink: float = 0.0):
    """Leave-future-out misses inside ``runs``: for ``k = 1 .. max_cuts``, refit ``law``
    without the top ``k`` compute budgets (keeping at least ``min_train_budgets`` budgets
    and ``min_train_runs`` runs) and record the misses at the held-out runs. ``shrink``:
    the refits' pull toward the law's priors (:func:`masked_fits`), as the fit's own.

    With ``with_full_fit``, returns ``(theta, misses)``: the fit to all runs comes from the
    same compiled program (one more mask), for callers that need both.
    """
    labels = budgets(6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float))
    top = int(labels.max())
    cuts = [k for k in range(1, max_cuts + 1)
            if top + 1 - k >= min_train_budgets and np.sum(labels <= top - k) >= min_train_runs]
    X, y = log_X(law, runs), np.asarray(runs.log_loss, float)
    masks = np.stack([labels <= top - k for k in [0] + cuts])
    if not with_full_fit:
        masks = masks[1:]
    if not len(masks):
        return Misses.empty()
    thetas = masked_fits(law, X, y, masks, shrink=shrink)
    full, thetas, masks = (thetas[0], thetas[1:], masks[1:]) if with_full_fit else (None, thetas, masks)
    parts = []
    if len(thetas):
        with jax.enable_x64(True):
            pred = np.asarray(log_loss_theta(law, jnp.asarray(thetas), jnp.asarray(X)))
    for i, (k, mask) in enumerate(zip(cuts, masks)):
        resid = y - pred[i]
        held = ~mask
        d = decades_beyond(runs.N[mask], runs.D[mask], runs.N[held], runs.D[held])
        s = np.full(held.sum(), robust_scale(resid[mask]))
        parts.append(Misses(resid[held], d, s, np.full(held.sum(), k)))
    misses = Misses.concat(parts)
    return (full, misses) if with_full_fit else misses


# The grid the posterior on (b, tau) lives on: tau per decade in log loss.
_TAU_GRID = np.geomspace(1e-3, 0.5, 60)
_BIAS_GRID = np.linspace(-0.25, 0.25, 101)


class ExtrapolationModel(NamedTuple):
    """A posterior over ``(b, tau)`` on a grid (``weights`` sums to 1, shape
    ``(len(bias), len(tau))``), and where it came from."""

    bias: np.ndarray
    tau: np.ndarray
    weights: np.ndarray
    num_misses: int = 0
    num_refits: int = 0
    prior: ErrorPrior = DEFAULT_PRIOR

    def summary(self) -> dict:
        """Posterior medians of ``tau`` and ``b`` (per decade), and the data behind them."""
        bias, tau = marginal_medians(self.bias, self.tau, self.weights)
        return {"tau": tau, "bias": bias,
                "num_misses": int(self.num_misses), "num_refits": int(self.num_refits),
                "prior": dict(self.prior._asdict())}

    def slope_moments(self) -> tuple[float, float]:
        """Mean and sd of the miss per decade ``b + tau z`` under the grid posterior:
        ``E[b]`` and ``sqrt(Var(b) + E[tau**2])`` (the two moments of :meth:`sample`'s
        draws at ``d = 1``, which are a heavier-tailed scale mixture)."""
        w = np.asarray(self.weights, float)
        w = w / w.sum()
        mean_b = float(np.sum(w.sum(axis=1) * self.bias))
        var_b = float(np.sum(w.sum(axis=1) * (self.bias - mean_b) ** 2))
        e_tau2 = float(np.sum(w.sum(axis=0) * self.tau ** 2))
        return mean_b, float(np.sqrt(var_b + e_tau2))

    def sample(self, d, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` draws of the discrepancy ``delta`` on log loss at distances ``d`` (n,):
        shape ``(num, n)``; zero where ``d = 0``."""
        d = np.atleast_1d(np.asarray(d, dtype=float))
        b, tau = draw_grid(self.bias, self.tau, self.weights, rng, num)
        return d[None, :] * (b + tau * rng.standard_normal((num, d.size)))


def posterior(misses: Misses, prior: ErrorPrior = DEFAULT_PRIOR) -> ExtrapolationModel:
    """The grid posterior on ``(b, tau)`` given leave-future-out ``misses`` (see the module
    docstring); with no misses, the prior itself."""
    weights, num_misses, num_refits = grid_posterior(
        _BIAS_GRID, _TAU_GRID, misses.r, misses.s, misses.d, misses.cut,
        prior_loc=prior.bias, loc_sd=prior.bias_sd, prior_scale=prior.tau,
        log_sd=prior.log_sd, points_per_refit=POINTS_PER_REFIT)
    return ExtrapolationModel(_BIAS_GRID, _TAU_GRID, weights, num_misses, num_refits, prior)


def check_prior(prior: ErrorPrior | None) -> ErrorPrior:
    """``prior`` as an :class:`ErrorPrior` (default :data:`DEFAULT_PRIOR`), checked."""
    prior = DEFAULT_PRIOR if prior is None else ErrorPrior(*prior)
    if not (prior.tau > 0 and prior.log_sd > 0 and prior.bias_sd > 0):
        raise BayescaleError(f"prior: tau, log_sd and bias_sd must be positive, got {prior}.")
    return prior


def estimate(runs, law: Law, *, prior: ErrorPrior | None = None,
             max_cuts: int = MAX_CUTS, shrink: float = 0.0) -> ExtrapolationModel:
    """The extrapolation-error model for ``law`` fitted to ``runs``: leave-future-out
    misses inside ``runs`` (:func:`lfo_misses`, refitted with ``shrink``) combined with
    ``prior`` (default :data:`DEFAULT_PRIOR`). Runs with fewer than 4 compute budgets get
    the prior."""
    prior = check_prior(prior)
    misses = (lfo_misses(runs, law, max_cuts=max_cuts, shrink=shrink) if runs is not None
              else Misses.empty())
    return posterior(misses, prior)


def fit_and_estimate(runs, law: Law, *, prior: ErrorPrior | None = None,
                     max_cuts: int = MAX_CUTS):
    """``(theta, model)``: the coarse-grid Huber fit of ``law`` to all ``runs`` and the
    extrapolation-error model, from one compiled program."""
    prior = check_prior(prior)
    theta, misses = lfo_misses(runs, law, max_cuts=max_cuts, with_full_fit=True)
    return theta, posterior(misses, prior)


def fitted_theta(law: Law, runs) -> np.ndarray:
    """The Huber fit (coarse grid) of ``law`` to all of ``runs``, as ``theta``."""
    mask = np.ones((1, len(runs)), dtype=bool)
    return masked_fits(law, log_X(law, runs), np.asarray(runs.log_loss, float), mask)[0]


def theta_params(law: Law, theta):
    """The law's parameter tuple (float64 NumPy) for ``theta``."""
    return law_params(law, theta)
