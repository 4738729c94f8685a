"""Hoffmann et al.'s Approach 2: parabolas through isoFLOP profiles, with uncertainty.

For each compute budget ``C_k`` the runs trace an isoFLOP profile: loss against model
size at fixed compute. Approach 2 fits a parabola of log loss (or loss) in ``log N`` to
each profile, takes its vertex as the budget's compute-optimal size ``N*_k`` (and
``D*_k = C_k / (6 N*_k)``), then fits ``log N*_k = log G_N + a log C_k`` (and ``D*``
alike; ``b = 1 - a`` exactly, since ``N* D* = C / 6``) by least squares.

* The parabolas are fitted robustly (Huber loss with ``delta`` in log loss, as Marin
  does; iteratively reweighted least squares, which converges to the Huber minimum), all
  budgets and all bootstrap resamples at once: one ``jax.vmap``-ed, jitted program over
  arrays padded to power-of-two sizes, so datasets of similar size share one compile.
* ``uncertainty="bootstrap"`` (default): runs are resampled with replacement within each
  budget, every parabola and the regression refitted per resample, so the minimisers'
  uncertainty propagates into ``a`` and ``G``; ``params`` are arrays over resamples and
  ``reference`` the fit to all the data. ``"bayes"``: one joint NumPyro model (per-budget
  parabolas, their vertices regressed on ``log C`` with a scatter term) sampled with NUTS
  (:mod:`bayescale.estimators.isoflop_bayes`). ``"none"``: the point estimate.
* Budgets are flagged and left out (``keep_flagged=False``), with a ``DataWarning``
  naming the budget: fewer than ``min_runs`` runs; a parabola with no interior minimum
  (curvature <= 0); a vertex outside the sampled log-N range; or a vertex *at the edge*,
  i.e. in the outermost gap of the grid (below the second-smallest or above the
  second-largest sampled N), where a single run decides on which side the minimum lies.

The bias. The isoFLOP profile is not a parabola: ``L = E + A N^-alpha + B (C/6N)^-beta``
is asymmetric in ``log N`` unless ``alpha = beta``, and its shape changes with ``C`` (the
reducible loss shrinks relative to ``E``). The vertex of a fitted parabola is therefore
off the true minimum by an amount that depends on where the grid sits and on ``C``, so
``a`` is biased when grids are off-centre or ``alpha != beta`` (Open-Athena 2026). Measured
on noiseless Chinchilla-like sweeps (``benchmarks/bench_isoflop.py``: 9 budgets, 10 sizes
over a factor 16): the error in ``a`` grows with the grid's offset (+0.0006 at +0.3
decades, +0.0018 at +0.4; the sign of the offset) and hardly depends on ``alpha - beta``,
which biases the intercept instead (``N_opt`` at 1e24 FLOPs off by up to 0.013 decades at
``|alpha - beta| = 0.1``); both are small beside the noise (sd of ``a`` about 0.02 with
noise 0.0075), so trust Approach 2 on grids centred within ~0.2 decades. This module reports each budget's *centring*: the vertex's distance from the middle of the
sampled log-N range, in decades (``info["budgets"][k]["centring"]``), and warns when the
grids are systematically off-centre (median centring beyond ``offcentre_tol`` of the grid's
half-width). ``benchmarks/bench_isoflop.py`` measures the bias.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models", arXiv:2203.15556
(2022), Section 3.2 and Table 2 (Approach 2: a = 0.49 (0.462, 0.534), b = 0.51).
Open-Athena, "Problems with Chinchilla Approach 2", github.com/Open-Athena/scaling-law-analysis
(2026).
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np

from bayescale._util import check_level
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError, ConvergenceWarning, DataWarning
from bayescale.estimators.allocation import AllocationFit, AllocationParams
from bayescale.estimators.extrapolation import budgets as detect_budgets
from bayescale.estimators.isoflop_parabola import DELTA, parabola_fits, profile_flag

__all__ = ["fit_isoflop", "budget_labels", "parabola_fits", "regress", "profile_flag", "DELTA", "MIN_RUNS",
           "OFFCENTRE_TOL", "UNCERTAINTIES"]

MIN_RUNS = 4  # a parabola through 3 points fits exactly and checks nothing
OFFCENTRE_TOL = 0.25  # fraction of the grid's half-width (median over budgets)
UNCERTAINTIES = ("bootstrap", "bayes", "none")
LOG10 = np.log(10.0)
_MARIN_NAME = re.compile(r"isoflop-([0-9.]+e[+\-]?[0-9]+)-")


def budget_labels(runs: Runs, budgets=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-run budget index ``0..K-1`` (ascending compute) and each budget's compute.

    ``budgets``: ``None`` (Marin-style run names ``isoflop-<C>-...`` when every run has one,
    else clusters of ``log10 C`` from :func:`bayescale.estimators.extrapolation.budgets`),
    or an array with one label (any hashable, e.g. the nominal budget) per run. A budget's
    compute is the geometric mean of its runs' ``6 N D``.
    """
    n = len(runs)
    if budgets is None:
        names = None if runs.run is None else [_MARIN_NAME.search(str(s)) for s in runs.run]
        raw = (np.array([float(m.group(1)) for m in names]) if names and all(names)
               else detect_budgets(runs.C))
    else:
        raw = np.asarray(budgets)
        if raw.ndim != 1 or raw.shape[0] != n:
            raise BayescaleError(
                f"budgets must give one label per run ({n} runs), got shape {raw.shape}; pass "
                f"e.g. the nominal budget column, or budgets=None to detect them from C.")
        if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):
            raise BayescaleError("budgets has NaN or infinite labels; give every run a budget.")
    _, labels = np.unique(raw, return_inverse=True)
    logC = np.log(runs.C)
    mean_logC = np.array([logC[labels == k].mean() for k in range(labels.max() + 1)])
    order = np.argsort(mean_logC, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[labels], np.exp(mean_logC[order])


def regress(log_C, log_N_star, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``log N*`` on ``log C`` along the last axis: ``(a, log_G)``.

    Rows with a NaN ``log N*`` among the budgets used give NaN."""
    y = np.atleast_2d(np.asarray(log_N_star, dtype=float))
    w = np.ones(y.shape[-1]) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    xbar = np.sum(w * log_C)
    ybar = np.sum(w * y, axis=-1)
    a = np.sum(w * (log_C - xbar) * (y - ybar[:, None]), axis=-1) / np.sum(w * (log_C - xbar) ** 2)
    return a, ybar - a * xbar


def _check_args(runs, level, uncertainty, resamples, loss_space, delta, min_runs, weighting):
    if not isinstance(runs, Runs):
        raise BayescaleError("fit_isoflop takes Runs; use bayescale.fit(data, method='isoflop') "
                             "or bayescale.load_runs(...) first.")
    check_level(level)
    if uncertainty not in UNCERTAINTIES:
        raise BayescaleError(f"uncertainty must be one of {', '.join(UNCERTAINTIES)}, got "
                             f"{uncertainty!r}.")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 2:
        raise BayescaleError(f"resamples must be an integer >= 2, got {resamples!r}.")
    if loss_space not in ("log", "loss"):
        raise BayescaleError(f"loss_space must be 'log' (parabola of log loss) or 'loss', got "
                             f"{loss_space!r}.")
    if not (np.isfinite(delta) and delta > 0):
        raise BayescaleError(f"delta (the Huber threshold) must be positive, got {delta!r}.")
    if isinstance(min_runs, bool) or not isinstance(min_runs, (int, np.integer)) or min_runs < 3:
        raise BayescaleError(f"min_runs must be an integer >= 3 (a parabola has 3 "
                             f"coefficients), got {min_runs!r}.")
    if weighting not in ("equal", "precision"):
        raise BayescaleError(f"weighting must be 'equal' or 'precision', got {weighting!r}.")


def fit_isoflop(runs: Runs, *, level: float = 0.9, seed: int = 0, budgets=None,
                uncertainty: str = "bootstrap", resamples: int = 2000, loss_space: str = "log",
                delta: float = DELTA, min_runs: int = MIN_RUNS, keep_flagged: bool = False,
                weighting: str = "equal", offcentre_tol: float = OFFCENTRE_TOL,
                chains: int = 4, warmup: int = 500, draws: int = 500,
                strict: bool = False) -> AllocationFit:
    """Hoffmann et al.'s (2022) Approach 2 with uncertainty: ``N_opt = G_N C^a``, ``D_opt = G_D C^b``.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` of an isoFLOP sweep (several model sizes per budget).
    level : default interval level.
    seed : bootstrap / NUTS seed.
    budgets : per-run budget labels (array, one per run), or ``None`` to detect them (see
        :func:`budget_labels`).
    uncertainty : ``"bootstrap"`` (default), ``"bayes"`` (NUTS) or ``"none"``.
    resamples : bootstrap resamples (2000).
    loss_space : parabola of ``"log"`` loss (default) or of ``"loss"``.
    delta : Huber threshold on log-loss residuals (scaled by the median loss for ``"loss"``).
    min_runs : fewest distinct model sizes a budget needs (4).
    keep_flagged : keep flagged budgets in the regression (default: leave them out).
    weighting : ``"equal"`` (ordinary least squares over budgets, as Hoffmann et al.) or
        ``"precision"`` (weights ``1 / (var_k + median var)`` from the bootstrap variance of
        each budget's vertex; bootstrap only).
    offcentre_tol : warn when the median over budgets of the vertex's offset from the grid's
        middle exceeds this fraction of the grid's half-width.
    chains, warmup, draws, strict : NUTS settings (``uncertainty="bayes"``).

    Returns
    -------
    AllocationFit
        ``method="isoflop"``; ``info["budgets"]``: per budget ``C, n_runs, N_star, D_star,
        N_star_interval, curvature, centring`` (decades), ``position`` (0 = smallest sampled
        N, 1 = largest), ``flag`` and ``used``; ``info["flagged"]``: the flagged budgets.

    Raises
    ------
    BayescaleError
        Bad settings, or fewer than 2 usable budgets (3 with intervals).

    Warns
    -----
    DataWarning
        For each flagged budget (its C and why), and for systematically off-centre grids.

    References
    ----------
    Hoffmann et al. (2022), arXiv:2203.15556, Approach 2, Table 2: a = 0.49 (0.462, 0.534),
    b = 0.51. Open-Athena (2026), "Problems with Chinchilla Approach 2".
    """
    _check_args(runs, level, uncertainty, resamples, loss_space, delta, min_runs, weighting)
    t0 = time.perf_counter()
    labels, C_k = budget_labels(runs, budgets)
    K = C_k.size
    x_all = runs.log_N
    y_all = runs.log_loss if loss_space == "log" else runs.loss
    if loss_space == "loss":
        delta = float(delta * np.median(runs.loss))
    x_k = [x_all[labels == k] for k in range(K)]
    y_k = [y_all[labels == k] for k in range(K)]
    n_k = np.array([x.size for x in x_k])
    R = int(resamples) if uncertainty == "bootstrap" else 0
    rng = np.random.default_rng(seed)
    weights_k = []
    for n in n_k:
        w = np.ones((R + 1, n))
        if R:
            idx = rng.integers(0, n, size=(R, n))
            w[1:] = np.stack([np.bincount(i, minlength=n) for i in idx])
        weights_k.append(w)
    vertex, curv = parabola_fits(x_k, y_k, weights_k, delta=delta)
    ref_v, ref_c = vertex[0], curv[0]
    flags = [profile_flag(x_k[k], ref_c[k], ref_v[k], min_runs) for k in range(K)]
    used = np.array([keep_flagged and np.isfinite(ref_v[k]) or f is None
                     for k, f in enumerate(flags)])
    for k, f in enumerate(flags):
        if f is not None:
            action = "kept (keep_flagged=True)" if used[k] else "left out"
            warnings.warn(f"isoflop: budget C = {C_k[k]:.3g} FLOPs ({n_k[k]} runs) {action}: {f}.",
                          DataWarning, stacklevel=3)
    need = 3 if uncertainty != "none" else 2
    if used.sum() < need:
        raise BayescaleError(
            f"isoflop: {used.sum()} usable budget(s) of {K} (needs {need}"
            f"{' for intervals' if need == 3 else ''}); flagged: "
            f"{'; '.join(f'C = {C_k[k]:.3g}: {f}' for k, f in enumerate(flags) if f) or 'none'}. "
            f"Fix: add runs (>= {min_runs} model sizes per budget, grids spanning each "
            f"budget's minimum), give budgets= explicitly, or uncertainty='none' for a point fit.")
    lo = np.array([x.min() for x in x_k])
    hi = np.array([x.max() for x in x_k])
    centring = (ref_v - (lo + hi) / 2) / LOG10
    position = (ref_v - lo) / np.where(hi > lo, hi - lo, np.nan)
    rel = (ref_v - (lo + hi) / 2) / np.where(hi > lo, (hi - lo) / 2, np.nan)
    med_rel = float(np.median(rel[used]))
    if abs(med_rel) > offcentre_tol:
        side = "above" if med_rel > 0 else "below"
        warnings.warn(
            f"isoflop: the grids are off-centre: the fitted minima sit {side} the middle of "
            f"their sampled model sizes by a median {abs(np.median(centring[used])):.2f} decades "
            f"({100 * abs(med_rel):.0f}% of the half-width). Approach 2 is biased on off-centre "
            f"grids (Open-Athena 2026); centre each budget's sizes on its minimum, or compare "
            f"with method='huber' (Approach 3).", DataWarning, stacklevel=3)
    logC = np.log(C_k[used])
    boot_v = vertex[1:][:, used]
    var = np.nanvar(boot_v, axis=0) if R else None
    w = None
    if weighting == "precision":
        if not R:
            raise BayescaleError("weighting='precision' needs uncertainty='bootstrap' (the "
                                 "variance of each budget's minimiser comes from the resamples).")
        w = 1.0 / (var + np.median(var) + 1e-300)
    a_ref, gn_ref = regress(logC, ref_v[used][None, :], w)
    log6 = np.log(6.0)
    reference = AllocationParams(a=float(a_ref[0]), b=float(1 - a_ref[0]), log_G_N=float(gn_ref[0]),
                                 log_G_D=float(-log6 - gn_ref[0]))
    info = {"uncertainty": uncertainty, "loss_space": loss_space, "delta": delta,
            "min_runs": int(min_runs), "weighting": weighting, "keep_flagged": bool(keep_flagged),
            "edge_rule": "minimum beyond the second-smallest or second-largest sampled N",
            "median_centring_decades": float(np.median(centring[used])),
            "offcentre": abs(med_rel) > offcentre_tol}
    diagnostics = idata = None
    if uncertainty == "bootstrap":
        a, gn = regress(logC, boot_v, w)
        ok = np.isfinite(a)
        dropped = int((~ok).sum())
        info.update(resamples=R, dropped=dropped)
        p_none = np.mean(~np.isfinite(vertex[1:]), axis=0)
        if dropped > 0.1 * R:
            worst = [k for k in np.argsort(-p_none) if used[k] and p_none[k] > 0.02][:3]
            warnings.warn(
                f"isoflop bootstrap: {dropped} of {R} resamples had a budget without an interior "
                f"minimum and were left out, so the interval may be too narrow; shallow "
                f"profiles: {', '.join(f'C = {C_k[k]:.3g} ({100 * p_none[k]:.0f}%)' for k in worst)}. "
                f"Fix: more runs or a wider grid of model sizes at those budgets, or "
                f"uncertainty='bayes'.", ConvergenceWarning, stacklevel=3)
        params = AllocationParams(a=a[ok], b=1 - a[ok], log_G_N=gn[ok], log_G_D=-log6 - gn[ok])
        per_v = vertex[1:]
    elif uncertainty == "bayes":
        from bayescale.estimators.isoflop_bayes import sample_isoflop

        post = sample_isoflop([x_k[k] for k in np.flatnonzero(used)],
                              [y_k[k] for k in np.flatnonzero(used)], logC, seed=seed,
                              chains=chains, warmup=warmup, draws=draws, strict=strict,
                              ref_vertex=ref_v[used])
        params, idata, diagnostics = post.params, post.idata, post.diagnostics
        per_v = np.full((params.a.shape[0], K), np.nan)
        per_v[:, used] = post.vertex
        info.update(post.info)
    else:
        params, per_v = reference, None
    q = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for k in range(K):
        ival = [None, None]
        if per_v is not None and np.isfinite(per_v[:, k]).sum() > 1:
            ival = [float(np.exp(v)) for v in np.nanquantile(per_v[:, k], q)]
        rows.append({"C": float(C_k[k]), "n_runs": int(n_k[k]), "N_star": float(np.exp(ref_v[k])),
                     "D_star": float(C_k[k] / (6 * np.exp(ref_v[k]))), "N_star_interval": ival,
                     "curvature": float(ref_c[k]),
                     "p_no_minimum": None if not R else float(np.mean(~np.isfinite(vertex[1:, k]))),
                     "centring": float(centring[k]),
                     "position": float(position[k]), "flag": flags[k], "used": bool(used[k])})
    info["budgets"] = rows
    info["flagged"] = [{"C": r["C"], "reason": r["flag"]} for r in rows if r["flag"]]
    info["timing"] = {"total": time.perf_counter() - t0}
    return AllocationFit(method="isoflop", params=params, runs=runs, level=level, info=info,
                         reference=None if uncertainty == "bayes" else reference,
                         idata=idata, diagnostics=diagnostics)
