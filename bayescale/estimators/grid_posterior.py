"""A posterior on a grid of ``(location, scale)``: the error models' shared machinery.

The loss discrepancy (:mod:`bayescale.estimators.extrapolation`, ``(b, tau)``) and the
optimum error (:mod:`bayescale.estimators.optimum_error`, ``(m, w)``) model a miss at
``d`` decades beyond the data as ``Normal(loc d, sd**2 + floor_sd**2 + (scale d)**2)``,
with a drift ``loc`` and a spread ``scale`` per decade. Both learn ``(loc, scale)`` the
same way: a posterior on a fixed grid (:func:`grid_posterior`), under a prior ``loc ~
Normal(prior_loc, loc_sd)``, ``log scale ~ Normal(log prior_scale, log_sd)``, the misses
of one leave-future-out refit counting together as at most ``points_per_refit``
observations (:func:`refit_power`, a power likelihood); both read it back the same way:
marginal medians (:func:`marginal_medians`) and ``(loc, scale)`` drawn by the grid's
weights (:func:`draw_grid`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["refit_power", "grid_posterior", "grid_median", "marginal_medians", "draw_grid"]


def refit_power(cut, points_per_refit: float) -> np.ndarray:
    """The power of each miss in the likelihood: ``min(1, points_per_refit / n)`` for a
    miss of a refit (``cut``) with ``n`` misses, so that one refit's misses, which share
    its error, count together as at most ``points_per_refit`` observations."""
    cut = np.asarray(cut)
    counts = {c: np.sum(cut == c) for c in np.unique(cut)}
    return np.array([min(1.0, points_per_refit / counts[c]) for c in cut])


def grid_posterior(loc_grid, scale_grid, x, sd, d, cut, *, prior_loc: float,
                   loc_sd: float, prior_scale: float, log_sd: float,
                   points_per_refit: float, floor_sd: float = 0.0):
    """The posterior on the grid ``loc_grid x scale_grid`` given misses ``x`` (n,) with
    standard errors ``sd`` (n,) at distances ``d`` (n,) from refits ``cut`` (n,); misses
    that are not finite, or not beyond the data (``d <= 0``), are left out. Returns
    ``(weights, num_misses, num_refits)``: ``weights`` of shape ``(len(loc_grid),
    len(scale_grid))``, summing to 1 (the prior alone when no miss is left), and the
    misses and refits behind it."""
    L, S = np.meshgrid(loc_grid, scale_grid, indexing="ij")
    logp = (-0.5 * ((np.log(S) - np.log(prior_scale)) / log_sd) ** 2
            - 0.5 * ((L - prior_loc) / loc_sd) ** 2)
    ok = np.isfinite(x) & np.isfinite(sd) & (np.asarray(d) > 0)
    x, sd, d, cut = (np.asarray(v)[ok] for v in (x, sd, d, cut))
    if x.size:
        power = refit_power(cut, points_per_refit)
        var = sd[None, None, :] ** 2 + floor_sd**2 + (S[..., None] * d[None, None, :]) ** 2
        ll = -0.5 * ((x[None, None, :] - L[..., None] * d[None, None, :]) ** 2 / var
                     + np.log(var))
        logp = logp + np.sum(power * ll, axis=-1)
    weights = np.exp(logp - logp.max())
    return weights / weights.sum(), int(x.size), int(len(np.unique(cut)))


def grid_median(values, weights) -> float:
    """The median of ``values`` (sorted) with probabilities ``weights``."""
    c = np.cumsum(weights)
    return float(values[np.searchsorted(c, 0.5 * c[-1])])


def marginal_medians(loc, scale, weights) -> tuple[float, float]:
    """The marginal posterior medians ``(loc, scale)`` of a grid posterior ``weights``
    (shape ``(len(loc), len(scale))``)."""
    return grid_median(loc, weights.sum(1)), grid_median(scale, weights.sum(0))


def draw_grid(loc, scale, weights, rng: np.random.Generator,
              num: int) -> tuple[np.ndarray, np.ndarray]:
    """``num`` draws of ``(loc, scale)`` from the grid posterior ``weights``, each of shape
    ``(num, 1)``."""
    flat = weights.reshape(-1)
    idx = rng.choice(flat.size, size=num, p=flat / flat.sum())
    return loc[idx // scale.size][:, None], scale[idx % scale.size][:, None]
