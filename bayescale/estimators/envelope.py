"""Hoffmann et al.'s Approach 1: the compute-optimal allocation from the lower envelope
of training curves, with a bootstrap over runs for the interval.

Approach 1 (Hoffmann et al. 2022, Section 3.1) trains each model size for several
lengths, each with its own learning-rate schedule, and asks at each compute ``C`` (1500
log-spaced FLOP values) which run reaches the lowest loss. The model sizes (and token
counts) of those envelope points are fitted with power laws, ``N_opt = G_N C**a`` and
``D_opt = G_D C**b``. Their Table 2 gives ``a = 0.50 (0.488, 0.502)`` and
``b = 0.50``.

The rule used here
------------------
1. **Points.** By default one point per training run: its final checkpoint (with a
   ``run`` column the row of largest ``D``; without one every row is a run). With
   ``use_checkpoints=True`` every checkpoint counts, which is only sound when a run's
   intermediate checkpoints are at the loss a run tuned to end there would reach (a
   constant or warmup-stable-decay schedule); a :class:`~bayescale.errors.DataWarning`
   says so. Several learning rates per ``(N, D)`` cell: the lowest-loss run of each
   cell is kept (``best_per_cell=True``; ``info["best_per_cell"]`` says how many runs).
2. **Curves.** With final checkpoints, each model size's runs of different lengths form
   one loss-versus-compute curve, linear in ``(log C, log L)`` between its runs (the
   role of Hoffmann's smoothed training curves). With checkpoints, each run is a curve
   through its own checkpoints.
3. **Envelope.** On a grid of ``grid`` log-spaced ``C`` over the data's range, each
   curve's loss is read where the curve reaches: between its first and last point, or
   within half a grid step of one of them (so a lone run, such as one point of an
   isoFLOP sweep, counts at the grid point whose bin holds its compute). The curve with
   the lowest loss at a grid ``C`` is the envelope there: ``N`` its model size and
   ``D = C / (6 N)``.
4. **Censoring.** An envelope point whose model size is the smallest or largest among
   the curves that reach that ``C`` says only that the optimum is at most (at least)
   that size, so it is left out of the fit. With noisy losses the winner scatters over
   neighbouring sizes, and near the ends of the data's range that scatter is cut off on
   one side, which flattens the slope; ``bracket=k`` keeps only the grid points where at
   least ``k`` smaller and ``k`` larger model sizes reach that compute (default 1), and
   ``margin=m`` keeps only those where the fitted optimum lies at least a factor ``m``
   inside the range of model sizes reaching that compute (default 1.5; the line is
   refitted three times; ``None`` turns the rule off, which is Hoffmann's plain rule).
   On synthetic curves with the noise of the Chinchilla runs (sd 0.0075 in log loss),
   without the margin rule ``a`` came out 0.038 low and the 90% interval held the truth
   in 7 of 20 seeds; with ``margin=1.5`` the bias was -0.004 (se 0.008) and 19 of 20
   intervals held it (``benchmarks/bench_envelope.py``). Both are counted in
   ``info["grid_points"]``.
5. **Fit.** ``log N = log_G_N + a log C`` by least squares over the kept grid points.
   Because ``D = C / (6 N)`` on the envelope, ``b = 1 - a`` and
   ``log_G_D = -log 6 - log_G_N`` exactly.
6. **Interval.** Whole runs are resampled with replacement (``resamples`` times); each
   resample's curves, envelope and fit are recomputed (vectorised and compiled with
   JAX). A resample whose envelope has fewer than two distinct sizes is unusable, left
   out and counted in ``info["resamples_usable"]``.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Section 3.1 (Approach 1), Figure 2 and Table 2.
M. Li, S. Kudugunta, L. Zettlemoyer, "(Mis)Fitting Scaling Laws: A Survey of Scaling
Law Fitting Techniques in Deep Learning", ICLR 2025, arXiv:2502.18969 (the
``misfitting`` runs: several lengths and learning rates per model size).
"""

from __future__ import annotations

import time
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.data.curves import bucket, check_runs, envelope_points, pad_curves
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError, DataWarning
from bayescale.estimators.allocation import AllocationFit, AllocationParams
from bayescale.estimators.bootstrap import bootstrap_weights

__all__ = ["fit_envelope", "HOFFMANN_GRID_SIZE"]

HOFFMANN_GRID_SIZE = 1500  # "1500 logarithmically spaced FLOP values" (Section 3.1)
_PASSES = 3  # refits of the margin rule (static: part of the compiled program)
_BATCH = 32  # resamples per vectorised step (bounds memory: batch x curves x grid x points)


# ---------------------------------------------------------------- the compiled core


def _curve_values(x, y, present, xg, half):
    """Each curve's log loss at each grid ``log C``: ``(val, covered)``, both
    ``(curves, grid)``; ``val = inf`` where the curve does not reach.

    ``x, y, present``: ``(curves, points)``, points sorted by ``x`` within a curve.
    """
    K = x.shape[1]
    lo = jnp.min(jnp.where(present, x, jnp.inf), axis=1)[:, None]
    hi = jnp.max(jnp.where(present, x, -jnp.inf), axis=1)[:, None]
    xc = jnp.clip(xg[None, :], lo, hi)
    covered = (lo <= hi) & (jnp.abs(xg[None, :] - xc) <= half[None, :])
    k = jnp.arange(K)
    left = present[:, None, :] & (x[:, None, :] <= xc[:, :, None])
    right = present[:, None, :] & (x[:, None, :] >= xc[:, :, None])
    il = jnp.clip(jnp.max(jnp.where(left, k, -1), axis=2), 0, K - 1)
    ir = jnp.clip(jnp.min(jnp.where(right, k, K), axis=2), 0, K - 1)
    xl, xr = jnp.take_along_axis(x, il, axis=1), jnp.take_along_axis(x, ir, axis=1)
    yl, yr = jnp.take_along_axis(y, il, axis=1), jnp.take_along_axis(y, ir, axis=1)
    t = jnp.where(xr > xl, (xc - xl) / jnp.where(xr > xl, xr - xl, 1.0), 0.0)
    return jnp.where(covered, yl + t * (yr - yl), jnp.inf), covered


def _line(keep, xg, n_win):
    """Least squares ``n_win = g + a xg`` over the grid points ``keep``."""
    w = keep.astype(xg.dtype)
    n = jnp.sum(w)
    xm = jnp.sum(w * xg) / n
    ym = jnp.sum(w * n_win) / n
    sxx = jnp.sum(w * (xg - xm) ** 2)
    a = jnp.sum(w * (xg - xm) * (n_win - ym)) / sxx
    return a, ym - a * xm, sxx


def _envelope(val, covered, log_N, sizes, xg, bracket, margin):
    """The envelope of ``val`` over curves and its least-squares line in ``log C``."""
    win = jnp.argmin(val, axis=0)
    reached = jnp.isfinite(jnp.min(val, axis=0))
    n_win = log_N[win]
    # distinct model sizes reaching each grid point: (sizes, grid)
    size_id = jnp.searchsorted(sizes, log_N)
    at = jax.ops.segment_max(covered.astype(jnp.int32), size_id,
                             num_segments=sizes.shape[0]) > 0
    smaller = jnp.sum(at & (sizes[:, None] < n_win[None, :]), axis=0)
    larger = jnp.sum(at & (sizes[:, None] > n_win[None, :]), axis=0)
    bracketed = reached & (smaller >= bracket) & (larger >= bracket)
    # the fitted optimum must lie ``margin`` inside the sizes reaching each compute;
    # refitted a fixed number of times (a no-op for margin = -inf)
    lo = jnp.min(jnp.where(at, sizes[:, None], jnp.inf), axis=0)
    hi = jnp.max(jnp.where(at, sizes[:, None], -jnp.inf), axis=0)
    valid = bracketed
    a, g, sxx = _line(valid, xg, n_win)
    for _ in range(_PASSES):
        pred = g + a * xg
        valid = bracketed & (pred >= lo + margin) & (pred <= hi - margin)
        a, g, sxx = _line(valid, xg, n_win)
    won = jnp.any(valid[None, :] & (win[None, :] == jnp.arange(log_N.shape[0])[:, None]), axis=1)
    same = log_N[:, None] == log_N[None, :]
    earlier = jnp.tril(jnp.ones(same.shape, dtype=bool), k=-1)
    first = ~jnp.any(same & earlier & won[None, :], axis=1)
    num_sizes = jnp.sum(won & first)
    ok = (num_sizes >= 2) & (sxx > 0)
    return (jnp.where(ok, a, jnp.nan), jnp.where(ok, g, jnp.nan), jnp.sum(valid), num_sizes,
            win, valid)


@partial(jax.jit, static_argnames=("per_point",))
def _fit_batch(weights, x, y, owner, log_N, sizes, curve_owner, xg, half, bracket, margin, *,
               per_point: bool):
    """The envelope and its fit for each row of ``weights`` (multiplicities of runs,
    ``(batch, runs)``): ``a, log_G_N, num_points, num_sizes`` per row, and the
    per-grid ``win, valid, min log loss``. ``per_point``: the curves are rebuilt from the
    points each row keeps (one curve per model size); otherwise a curve is a run,
    present or not as a whole, interpolated once. One program serves the full-data fit
    (a row of ones) and the bootstrap, called on fixed-size batches."""
    if not per_point:
        val0, cov0 = _curve_values(x, y, owner >= 0, xg, half)

    def one(wr):
        if per_point:
            present = (owner >= 0) & (wr[jnp.maximum(owner, 0)] > 0)
            val, cov = _curve_values(x, y, present, xg, half)
        else:
            cov = cov0 & (wr[curve_owner] > 0)[:, None]
            val = jnp.where(cov, val0, jnp.inf)
        return (*_envelope(val, cov, log_N, sizes, xg, bracket, margin), jnp.min(val, axis=0))

    return jax.vmap(one)(weights)


def _run_batches(weights, args, per_point):
    """``_fit_batch`` over ``weights`` in batches of :data:`_BATCH` rows (the last padded
    with rows of ones), as NumPy arrays."""
    R = weights.shape[0]
    padded = np.concatenate([weights, np.ones((-R % _BATCH, weights.shape[1]))])
    parts = [_fit_batch(padded[i:i + _BATCH], *args, per_point=per_point)
             for i in range(0, padded.shape[0], _BATCH)]
    return [np.concatenate([np.asarray(p[k]) for p in parts])[:R] for k in range(7)]


# ---------------------------------------------------------------- preparing the data


def _grid(grid, log_C: np.ndarray) -> np.ndarray:
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        if grid < 10:
            raise BayescaleError(f"grid must be at least 10 compute values, got {grid}.")
        return np.linspace(log_C.min(), log_C.max(), int(grid))
    arr = np.asarray(grid, dtype=float)
    if arr.ndim != 1 or arr.size < 10 or not np.all(np.isfinite(arr) & (arr > 0)) \
            or np.any(np.diff(arr) <= 0):
        raise BayescaleError("grid must be a number of compute values (default 1500) or an "
                             "increasing 1-d array of at least 10 positive FLOP counts.")
    return np.log(arr)


def _segments(env: dict) -> list[dict]:
    """The envelope as stretches of one model size: ``N``, the compute range, and how
    many of its grid points were kept (the rest censored)."""
    change = np.flatnonzero(np.diff(env["N"]) != 0) + 1
    return [{"N": float(env["N"][i]), "C_min": float(env["C"][i]),
             "C_max": float(env["C"][j - 1]), "grid_points": int(j - i),
             "kept": int(env["kept"][i:j].sum())}
            for i, j in zip(np.r_[0, change], np.r_[change, env["N"].size])]


# ---------------------------------------------------------------- the public entry point


def fit_envelope(runs: Runs, *, level: float = 0.9, seed: int = 0, resamples: int = 1000,
                 grid=HOFFMANN_GRID_SIZE, best_per_cell: bool = True,
                 use_checkpoints: bool = False, bracket: int = 1,
                 margin: float | None = 1.5) -> AllocationFit:
    """Approach 1 of Hoffmann et al. (2022): ``N_opt = G_N C**a`` from the lower envelope
    of training curves, with a bootstrap over runs (the rule: module docstring).

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs` with several lengths per model size (a
        ``run`` column marks the checkpoints of one run).
    level : default interval level.
    seed : seed of the bootstrap.
    resamples : bootstrap resamples of whole runs (default 1000; 0 for the point
        estimate alone).
    grid : number of log-spaced compute values over the data's range (default 1500, as
        Hoffmann et al.), or an increasing array of FLOP counts.
    best_per_cell : keep the lowest-loss run of each ``(N, D)`` cell (default True).
    use_checkpoints : use intermediate checkpoints (warns: check the schedule).
    bracket : keep only envelope points with at least ``bracket`` smaller and
        ``bracket`` larger model sizes reaching that compute (default 1; 0 keeps all).
    margin : keep only grid points where the fitted optimum lies at least a factor
        ``margin`` inside the model sizes reaching that compute (default 1.5; ``None``
        keeps every bracketed point, as Hoffmann et al.).

    Returns
    -------
    AllocationFit
        ``method="envelope"``, ``params`` arrays over the usable resamples (scalars with
        ``resamples=0``), ``reference`` the fit to all the data, ``info`` with the
        envelope (``C, N, D, loss, kept`` per grid point the curves reach, and as
        ``envelope_segments``: stretches of one size), ``grid_points`` (reached, kept,
        censored), the settings, ``notes``, ``resamples_usable`` and any warnings.

    Raises
    ------
    BayescaleError
        Non-positive values, fewer than two model sizes on the envelope, a bad grid or
        resample count, ``use_checkpoints`` without checkpoints.

    Examples
    --------
    >>> from bayescale.data.curves import simulate_curves
    >>> from bayescale.estimators.envelope import fit_envelope
    >>> f = fit_envelope(simulate_curves(noise=0.0), resamples=0)
    >>> round(f.point_estimate()["a"], 2)
    0.45

    References
    ----------
    Hoffmann et al. (2022), arXiv:2203.15556, Section 3.1 and Table 2
    (``a = 0.50 (0.488, 0.502)``, ``b = 0.50``).
    """
    start = time.perf_counter()
    check_runs(runs)
    if isinstance(bracket, bool) or not isinstance(bracket, (int, np.integer)) or bracket < 0:
        raise BayescaleError(f"bracket must be a non-negative integer, got {bracket!r}.")
    bracket = int(bracket)
    if margin is not None and not (isinstance(margin, (int, float, np.floating))
                                   and not isinstance(margin, bool) and margin >= 1):
        raise BayescaleError(f"margin must be a factor >= 1 (or None), got {margin!r}.")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) \
            or resamples < 0:
        raise BayescaleError(f"resamples must be a non-negative integer, got {resamples!r}.")
    frame, notes = envelope_points(runs, bool(use_checkpoints), bool(best_per_cell))
    frame["run_index"] = pd.factorize(frame["run"])[0]
    num_runs = int(frame["run_index"].max()) + 1
    per_point = not use_checkpoints
    x, y, owner, log_N, curve_owner, curve_N = pad_curves(frame, "N" if per_point else "run_index")
    if np.unique(curve_N).size < 2:
        raise BayescaleError(f"Approach 1 needs runs of at least two model sizes (three or "
                             f"more to trust it); these data have {np.unique(curve_N).size}.")
    xg = _grid(grid, x[owner >= 0])
    half = np.gradient(xg) / 2
    sizes = np.unique(np.log(curve_N))
    sizes = np.concatenate([sizes, np.full(bucket(sizes.size, 8) - sizes.size, np.inf)])
    args = (x, y, owner, log_N, sizes, curve_owner, xg, half, bracket,
            -np.inf if margin is None else float(np.log(margin)))
    width = bucket(num_runs, 32)
    with jax.enable_x64(True):
        a, gN, n_pts, n_sizes, win, valid, vmin = (
            v[0] for v in _run_batches(np.ones((1, width)), args, per_point))
        a, gN, n_pts, n_sizes = float(a), float(gN), int(n_pts), int(n_sizes)
        if n_sizes < 2:
            raise BayescaleError(
                f"the envelope holds {n_sizes} model size(s) at the {n_pts} grid points kept: "
                f"Approach 1 needs at least two (three or more to trust the slope). Fix: add "
                f"runs of more sizes and lengths"
                + (f", or lower margin (now {margin}) or bracket (now {bracket}) to keep "
                   f"envelope points nearer the smallest or largest size reaching each compute."
                   if bracket or margin is not None else "."))
        boot = None
        if resamples:
            w = bootstrap_weights(num_runs, int(resamples), int(seed))
            w = np.pad(w, ((0, 0), (0, width - num_runs)))
            boot = _run_batches(w, args, per_point)
    warned = []
    if n_sizes < 3:
        warned.append(f"the envelope holds only {n_sizes} distinct model sizes, so a and b "
                      f"rest on one step between them; add runs of more sizes.")
        warnings.warn("Approach 1: " + warned[-1], DataWarning, stacklevel=2)
    reference = AllocationParams(a=a, b=1.0 - a, log_G_N=gN, log_G_D=-np.log(6.0) - gN)
    info = {"settings": {"grid": int(xg.size), "resamples": int(resamples),
                         "best_per_cell": bool(best_per_cell),
                         "use_checkpoints": bool(use_checkpoints),
                         "bracket": bracket, "margin": margin, "seed": int(seed),
                         "curves": "one per model size (final checkpoints)" if per_point
                         else "one per run (checkpoints)"},
            "notes": notes, "warnings": warned, "num_runs": num_runs,
            "envelope_sizes": n_sizes}
    reached = np.isfinite(vmin)
    N_env = curve_N[np.minimum(win, curve_N.size - 1)]
    C_grid = np.exp(xg)
    info["envelope"] = {"C": C_grid[reached], "N": N_env[reached],
                        "D": C_grid[reached] / (6.0 * N_env[reached]),
                        "loss": np.exp(vmin[reached]), "kept": valid[reached]}
    info["envelope_segments"] = _segments(info["envelope"])
    info["grid_points"] = {"total": int(xg.size), "reached": int(reached.sum()),
                           "kept": n_pts, "censored": int(reached.sum()) - n_pts}
    params = reference
    if boot is not None:
        ba, bg = boot[0], boot[1]
        usable = np.isfinite(ba) & np.isfinite(bg)
        info["resamples_usable"] = int(usable.sum())
        if usable.sum() < 0.9 * resamples:
            warned.append(f"{resamples - int(usable.sum())} of {resamples} bootstrap "
                          f"resamples had fewer than two sizes on the envelope and were left "
                          f"out; the interval rests on the rest.")
            warnings.warn("Approach 1: " + warned[-1], DataWarning, stacklevel=2)
        if usable.sum() < 2:
            raise BayescaleError("fewer than two bootstrap resamples were usable; add runs "
                                 "of more sizes, or pass resamples=0 for the point estimate.")
        params = AllocationParams(a=ba[usable], b=1.0 - ba[usable], log_G_N=bg[usable],
                                  log_G_D=-np.log(6.0) - bg[usable])
    info["seconds"] = time.perf_counter() - start
    used = runs.resample(frame["pos"].to_numpy())
    return AllocationFit(method="envelope", params=params, runs=used, level=level, info=info,
                         reference=reference)
