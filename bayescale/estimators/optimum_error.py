"""How far a law's compute-optimal N misses beyond the data: the discrepancy in N and D.

The extrapolation-error model (:mod:`bayescale.estimators.extrapolation`) widens the
predicted *loss* with the distance beyond the data, by the same amount all along an isoFLOP
curve, so it never moves the optimum. But a law that is wrong in N or D separately puts
its optimum in the wrong place, and N_opt is what a team decides on. This module models
that error on the decision quantity itself:

    log10 N_opt,true(C) = log10 N_opt,law(C) + e,    e ~ Normal(m d, (w d)**2),

where ``d`` is the distance in decades of compute (6ND) beyond the fitted runs' largest
(0 inside the data), ``w`` the spread per decade and ``m`` a systematic drift per decade;
``D_opt = C / (6 N_opt)`` moves the other way by the same factor. ``(m, w)`` are learned
as the loss discrepancy's ``(b, tau)`` are:

1. **Leave-future-out inside the runs** (:func:`lfo_optimum_misses`): the law is refitted
   without the top ``k = 1, 2, 3`` compute budgets (the same coarse-grid Huber refits as
   :func:`bayescale.estimators.extrapolation.lfo_misses`). At each held-out budget that
   is an isoFLOP profile (at least :data:`MIN_SIZES` model sizes and a Huber parabola of
   log loss in log N with an interior minimum away from the grid's edge: Hoffmann et al.
   2022's Approach 2, :func:`bayescale.estimators.isoflop_parabola.parabola_fits` and
   :func:`~bayescale.estimators.isoflop_parabola.profile_flag`), the observed optimum is the
   parabola's vertex, with a standard error from a bootstrap of the profile's runs; the
   miss is that vertex minus the refit's own ``N_opt`` at the profile's compute.
2. **A grid posterior on (m, w)** (:func:`posterior`): misses ``~ Normal(m d, se**2 +
   EDGE_SD**2 + (w d)**2)`` (:data:`EDGE_SD`: the part of a miss that does not grow with
   the distance, so that misses just beyond the data do not read as steep drifts), the
   misses of one refit counting together as at most :data:`POINTS_PER_REFIT`
   observations (they share the refit's error; the same profile missed by the nested
   refits of several cuts counts once per cut, which makes the posterior somewhat
   over-confident where few profiles are held out), under the informative default
   :data:`DEFAULT_PRIOR` learned across the registered datasets with isoFLOP profiles
   (``benchmarks/bench_optimum.py --learn-prior``), so that data without profiles still
   get an honest width.
3. **The draws** (:meth:`OptimumError.shift`): ``(m, w)`` from the grid posterior, then
   ``e``; applied to a frontier's draws (:meth:`OptimumError.apply`), the structural band
   of :class:`bayescale.estimators.stacking.LawStack`.

Not modelled: how the loss at the moved optimum changes (``L_opt`` is the law's; the loss
discrepancy covers the loss), and budgets inside the data (``d = 0``: no shift).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation, isoflop_parabola
from bayescale.estimators.grid_posterior import draw_grid, grid_posterior, marginal_medians
from bayescale.laws.base import Law

__all__ = ["OptimumPrior", "DEFAULT_PRIOR", "VAGUE_PRIOR", "MIN_SIZES", "POINTS_PER_REFIT",
           "EDGE_SD", "MIN_DRAWS", "check_prior",
           "OptimumMisses", "OptimumError", "observed_optima", "lfo_optimum_misses",
           "posterior", "estimate"]

MIN_SIZES = 4  # model sizes an isoFLOP profile needs for its optimum to count
POINTS_PER_REFIT = 2.0  # how many independent observations one refit's optima count as
# The scatter of a miss that does not grow with the distance, in decades of N: the refit's
# own N_opt error at the data's edge (the within-law band's business: its 90% width is
# about 0.2 decades on the Marin sweeps, sd ~0.06) and the parabola vertex's bias (up to
# ~0.01-0.05 decades, bayescale.estimators.isoflop). Without it a miss of 0.2 decades at
# 0.15 decades beyond the data reads as a drift of 1.4 decades per decade (chinchilla).
EDGE_SD = 0.1
RESAMPLES = 200  # bootstrap resamples of a profile's runs for its vertex's standard error
MIN_DRAWS = 1000  # draws a moved frontier has at least (a point fit is repeated)


class OptimumPrior(NamedTuple):
    """Prior on the optimum's miss: ``log w ~ Normal(log w, log_sd)``, ``m ~ Normal(drift,
    drift_sd)``; both in decades of N per decade of compute beyond the data."""

    w: float
    log_sd: float
    drift: float
    drift_sd: float


# The informative default, from leave-future-out optimum misses of the Chinchilla law on
# the registered datasets with held-out isoFLOP profiles. Posterior medians of (w, m) per
# dataset under VAGUE_PRIOR, as printed by `python benchmarks/bench_optimum.py
# --learn-prior` (decades of N per decade of compute; misses: held-out profiles):
#   chinchilla (0.082, -0.52; 1), data_constrained (0.053, -0.80; 2),
#   farseer (0.030, -0.08; 6), marin_isoflop comma (0.030, +0.18; 3),
#   dclm (0.030, +0.14; 3), nemotron (0.020, +0.12; 6); misfitting has none.
# w: their geometric mean, 0.037, with log sd 1. The drift: 0, with sd 0.38, the spread
# between datasets by marginal likelihood (each dataset's drift integrated out; the spread
# of the noisy per-dataset medians above, 0.40, would overstate it). They disagree in
# sign (the law puts the optimum too large on chinchilla and data_constrained, too small
# on the Marin corpora), so no centre carries over: centred on the other datasets'
# median, the held-out Marin corpora were moved the wrong way (benchmarks/RESULTS.md). A
# dataset's own held-out profiles move it. Few misses (21, most under 0.8 decades ahead)
# stand behind these numbers.
DEFAULT_PRIOR = OptimumPrior(w=0.037, log_sd=1.0, drift=0.0, drift_sd=0.38)
VAGUE_PRIOR = OptimumPrior(w=0.1, log_sd=3.0, drift=0.0, drift_sd=1.0)

_W_GRID = np.geomspace(1e-3, 2.0, 70)
_M_GRID = np.linspace(-1.0, 1.0, 101)


class OptimumMisses(NamedTuple):
    """Leave-future-out misses of the optimum: ``miss = log10 N_vertex - log10 N_opt,refit``
    (n,), its standard error ``se`` (n,), the distance ``d`` in decades of compute (n,), the
    profile's compute ``C`` (n,) and which refit ``cut`` (n,)."""

    miss: np.ndarray
    se: np.ndarray
    d: np.ndarray
    C: np.ndarray
    cut: np.ndarray

    @staticmethod
    def empty() -> "OptimumMisses":
        z = np.zeros(0)
        return OptimumMisses(z, z, z, z, np.zeros(0, dtype=int))


class OptimumError(NamedTuple):
    """A posterior over ``(m, w)`` on a grid (``weights``, shape ``(len(drift), len(w))``,
    summing to 1), and where it came from."""

    drift: np.ndarray
    w: np.ndarray
    weights: np.ndarray
    num_misses: int = 0
    num_refits: int = 0
    prior: OptimumPrior = DEFAULT_PRIOR

    def summary(self) -> dict:
        """Posterior medians of ``w`` and ``m`` (decades of N per decade of compute)."""
        drift, w = marginal_medians(self.drift, self.w, self.weights)
        return {"w": w, "drift": drift,
                "num_misses": int(self.num_misses), "num_refits": int(self.num_refits),
                "prior": dict(self.prior._asdict())}

    def variance_per_decade2(self) -> float:
        """``Var(e) / d**2`` in decades of N squared per decade of compute squared: the
        posterior's ``E[m**2] + E[w**2] - E[m]**2`` (``e = d (m + w z)``), exactly on the
        grid."""
        p = np.asarray(self.weights, dtype=float)
        m, w = np.asarray(self.drift, dtype=float), np.asarray(self.w, dtype=float)
        pm, pw = p.sum(axis=1), p.sum(axis=0)
        mean_m = float(pm @ m)
        return float(pm @ m**2 - mean_m**2 + pw @ w**2)

    def shift(self, d, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` draws of ``e`` (decades of N) at distances ``d`` (n,): ``(num, n)``, zero
        where ``d = 0``; one ``(m, w)`` per draw, shared by the budgets (a law that is off
        at one budget is off at the next)."""
        d = np.atleast_1d(np.asarray(d, dtype=float))
        m, w = draw_grid(self.drift, self.w, self.weights, rng, num)
        return d[None, :] * (m + w * rng.standard_normal((num, 1)))

    def move(self, N_opt, C: float, C_max: float, rng: np.random.Generator) -> np.ndarray:
        """Draws of ``N_opt`` (draws,) at one training budget ``C`` (6ND) moved by
        ``10**e``, one ``e`` per draw (unchanged when ``C <= C_max``, the largest 6ND of the
        fitted runs). A point estimate (one draw) moves as one draw: repeat it first
        (``np.resize``) for a band."""
        N_opt = np.asarray(N_opt, dtype=float).reshape(-1)
        d = _decades(np.array([float(C)]), C_max)
        return N_opt * 10.0 ** self.shift(d, rng, N_opt.size)[:, 0]

    def apply(self, frontier, C_max: float, rng: np.random.Generator,
              min_draws: int = MIN_DRAWS):
        """``frontier`` (draws x training budgets, 6ND) with each draw's ``N_opt`` moved by
        ``10**e`` and ``D_opt`` by ``10**-e`` (``tokens_per_param`` by ``10**-2e``; 6ND is
        kept); ``C_max`` is the largest 6ND of the fitted runs. ``L_opt`` is unchanged. A
        frontier of fewer than ``min_draws`` draws (a point fit) is first repeated up to
        that many, so that the band is the error's, not one random move."""
        if frontier.num_draws < min_draws:
            keep = np.resize(np.arange(frontier.num_draws), int(min_draws))
            frontier = frontier._replace(**{k: np.asarray(getattr(frontier, k))[keep]
                                            for k in ("N_opt", "D_opt", "L_opt",
                                                      "tokens_per_param", "converged")})
        d = _decades(np.asarray(frontier.budgets, dtype=float).reshape(-1), C_max)
        N = np.asarray(frontier.N_opt, dtype=float)
        e = self.shift(d, rng, N.shape[0])
        factor = 10.0 ** e
        return frontier._replace(
            N_opt=N * factor, D_opt=np.asarray(frontier.D_opt, dtype=float) / factor,
            tokens_per_param=np.asarray(frontier.tokens_per_param, dtype=float) / factor**2)


def _decades(C: np.ndarray, C_max: float) -> np.ndarray:
    """Decades of compute beyond ``C_max`` (0 inside), checked."""
    C_max = float(C_max)
    if not (np.isfinite(C_max) and C_max > 0) or not np.all(np.isfinite(C) & (C > 0)):
        raise BayescaleError(f"the optimum error needs positive finite budgets and data "
                             f"compute, got C = {C.tolist()} and C_max = {C_max}.")
    return np.maximum(np.log10(C / C_max), 0.0)


def observed_optima(log_N, log_loss, *, resamples: int = RESAMPLES, seed: int = 0,
                    min_sizes: int = MIN_SIZES):
    """The optimum of one isoFLOP profile: ``(log10 N at the vertex, its bootstrap standard
    error)`` of a Huber parabola of log loss in ``log N`` (natural logs in), or ``None``
    when the profile has no usable optimum (:func:`isoflop_parabola.profile_flag`, or more than
    a tenth of the resamples without an interior minimum)."""
    x, y = np.asarray(log_N, float), np.asarray(log_loss, float)
    rng = np.random.default_rng(seed)
    n = x.size
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)])
    vertex, curvature = isoflop_parabola.parabola_fits([x], [y], [weights])
    if isoflop_parabola.profile_flag(x, curvature[0, 0], vertex[0, 0], min_sizes) is not None:
        return None
    boot = vertex[1:, 0]
    inside = np.isfinite(boot) & (boot >= x.min()) & (boot <= x.max())
    if inside.mean() < 0.9:
        return None
    return float(vertex[0, 0] / np.log(10)), float(np.std(boot[inside]) / np.log(10))


def _optimum_at(law: Law, theta, C: float, U) -> float:
    from bayescale.planning.frontier import frontier

    extra = {"unique_tokens": float(U)} if U is not None else {}
    params = extrapolation.theta_params(law, theta)
    with jax.enable_x64(True):  # the refit's parameters as fitted (float64)
        front = frontier(params, [C], **extra)
    return float(np.log10(np.asarray(front.N_opt, dtype=float).reshape(-1)[0]))


def lfo_optimum_misses(runs, law: Law, *, max_cuts: int = extrapolation.MAX_CUTS,
                       min_train_budgets: int = 3, min_train_runs: int = 10,
                       min_sizes: int = MIN_SIZES, seed: int = 0,
                       shrink: float = 0.0) -> OptimumMisses:
    """Leave-future-out misses of the optimum inside ``runs`` (see the module docstring):
    for ``k = 1 .. max_cuts`` the law refitted without the top ``k`` compute budgets (the
    cuts of :func:`extrapolation.lfo_misses`), and at each held-out budget with an
    isoFLOP profile, its vertex against the refit's ``N_opt`` there. ``shrink``: the
    refits' pull toward the law's priors, as the fit's own."""
    C_runs = 6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float)
    labels = extrapolation.budgets(C_runs)
    top = int(labels.max())
    cuts = [k for k in range(1, max_cuts + 1)
            if top + 1 - k >= min_train_budgets and np.sum(labels <= top - k) >= min_train_runs]
    profiles = {}
    for b in range(top + 1 - max(cuts, default=0), top + 1):
        idx = np.flatnonzero(labels == b)
        if len(np.unique(np.asarray(runs.N)[idx])) >= min_sizes:
            found = observed_optima(np.asarray(runs.log_N)[idx], np.asarray(runs.log_loss)[idx],
                                    seed=seed + b, min_sizes=min_sizes)
            if found is not None:
                profiles[b] = (idx, *found)
    if not cuts or not profiles:
        return OptimumMisses.empty()
    masks = np.stack([labels <= top - k for k in cuts])
    thetas = extrapolation.masked_fits(law, extrapolation.log_X(law, runs),
                                       np.asarray(runs.log_loss, float), masks, shrink=shrink)
    U = getattr(runs, "U", None)
    rows = []
    for k, theta, mask in zip(cuts, thetas, masks):
        C_fit = C_runs[mask].max()
        for b, (idx, vertex, se) in profiles.items():
            if b <= top - k:
                continue
            C = float(np.exp(np.mean(np.log(C_runs[idx]))))
            u = None if U is None or "U" not in law.inputs else np.median(np.asarray(U)[idx])
            try:
                predicted = _optimum_at(law, theta, C, u)
            except BayescaleError:
                continue
            if np.isfinite(predicted):
                rows.append((vertex - predicted, se, max(np.log10(C / C_fit), 0.0), C, k))
    if not rows:
        return OptimumMisses.empty()
    miss, se, d, C, cut = (np.asarray(v) for v in zip(*rows))
    return OptimumMisses(miss, se, d, C, cut.astype(int))


def check_prior(prior: OptimumPrior | None) -> OptimumPrior:
    """``prior`` as an :class:`OptimumPrior` (default :data:`DEFAULT_PRIOR`), checked."""
    prior = DEFAULT_PRIOR if prior is None else OptimumPrior(*prior)
    if not (prior.w > 0 and prior.log_sd > 0 and prior.drift_sd > 0):
        raise BayescaleError(f"prior: w, log_sd and drift_sd must be positive, got {prior}.")
    return prior


def posterior(misses: OptimumMisses, prior: OptimumPrior | None = None) -> OptimumError:
    """The grid posterior on ``(m, w)`` given ``misses``; with none, the prior itself."""
    prior = check_prior(prior)
    weights, num_misses, num_refits = grid_posterior(
        _M_GRID, _W_GRID, misses.miss, misses.se, misses.d, misses.cut,
        prior_loc=prior.drift, loc_sd=prior.drift_sd, prior_scale=prior.w,
        log_sd=prior.log_sd, points_per_refit=POINTS_PER_REFIT, floor_sd=EDGE_SD)
    return OptimumError(_M_GRID, _W_GRID, weights, num_misses, num_refits, prior)


def estimate(runs, law: Law, *, prior: OptimumPrior | None = None,
             max_cuts: int = extrapolation.MAX_CUTS, shrink: float = 0.0) -> OptimumError:
    """The optimum-error model of ``law`` on ``runs``: its leave-future-out misses
    (:func:`lfo_optimum_misses`, refitted with ``shrink``) with ``prior``; runs without
    held-out isoFLOP profiles get the prior."""
    misses = lfo_optimum_misses(runs, law, max_cuts=max_cuts, shrink=shrink)
    return posterior(misses, prior)
