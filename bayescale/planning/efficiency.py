"""Compute efficiency of a plan for any law: the budget at which the optimum matches it.

A plan ``(N, D)`` at budget ``C`` reaches loss ``L``; its *compute-equivalent* ``C_eq``
is the ``6 N D`` budget at which the compute-optimal allocation reaches the same loss,
and ``C_eq / C`` its compute efficiency (1 at the optimum, below 1 for any other plan on
budget). For the Chinchilla law ``L_opt(C) - E`` is a power of ``C`` and the inverse is
closed-form (:func:`bayescale.planning.frontier.compute_equivalent`). Other laws have no
closed-form ``L_opt(C)``: :func:`compute_efficiency` inverts the numerical frontier,

1. ``L_opt`` per draw on a fixed grid of budgets ``C * 10**t``, ``t`` from
   :data:`LOG10_RANGE` in steps of :data:`LOG10_STEP` decades (one call of
   :func:`~bayescale.planning.frontier.compute_optimal` per plan, the same shapes every
   time, so one compiled program);
2. per draw, the crossing of ``log L_opt`` (decreasing in ``C``) with ``log L``, linear
   in ``log C`` between the two grid budgets around it.

``log L_opt`` is smooth and nearly linear in ``log C`` (a power law plus a constant), so
the interpolation error is of order ``step**2`` times its curvature: below 1e-4 relative
in ``C_eq`` for the shipped laws (tests/test_efficiency.py checks the Chinchilla law's
closed form to 1e-4 and a Kaplan draw against scipy's ``brentq`` on the frontier).
Efficiencies outside the grid are clipped to its ends (a plan more than a million
times less efficient than the optimum is reported as 1e-6).
"""

from __future__ import annotations

import numpy as np

from bayescale.planning.frontier import compute_optimal

__all__ = ["compute_efficiency", "LOG10_RANGE", "LOG10_STEP"]

#: Range of ``log10(C_eq / C)`` searched: plans down to 1e-6 of the optimum's efficiency,
#: and over-budget plans up to 10x.
LOG10_RANGE = (-6.0, 1.0)
#: Grid step in decades of compute.
LOG10_STEP = 0.025


def compute_efficiency(params, L, C, unique_tokens=None) -> np.ndarray:
    """``C_eq / C`` per draw and plan, by inverting the numerical ``L_opt(C)``.

    Parameters
    ----------
    params : draws of any registered law (leaves of shape ``(draw,)``) or a point.
    L : the plans' losses per draw, shape ``(draw, plan)`` (``(1, plan)`` for a point).
    C : the plans' budgets, shape ``(plan,)``.
    unique_tokens : U, for laws that take it.

    Returns
    -------
    ndarray of shape ``(draw, plan)``.
    """
    L = np.asarray(L, dtype=float)
    C = np.atleast_1d(np.asarray(C, dtype=float))
    t = np.arange(LOG10_RANGE[0], LOG10_RANGE[1] + LOG10_STEP / 2, LOG10_STEP)
    out = np.empty_like(L)
    for k, c in enumerate(C):
        L_opt = np.asarray(compute_optimal(params, c * 10.0 ** t, unique_tokens).L_opt,
                           dtype=float).reshape(L.shape[0], t.size)
        out[:, k] = _crossing(np.log(L_opt), np.log(L[:, k]), t)
    return 10.0 ** out


def _crossing(log_L_opt: np.ndarray, target: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per row, the ``t`` where the decreasing ``log_L_opt[row]`` crosses ``target[row]``,
    linear between grid points; clipped to ``t``'s ends."""
    above = np.sum(log_L_opt > target[:, None], axis=1)  # grid points before the crossing
    i = np.clip(above, 1, t.size - 1)
    rows = np.arange(log_L_opt.shape[0])
    y0, y1 = log_L_opt[rows, i - 1], log_L_opt[rows, i]
    frac = np.where(y0 > y1, (y0 - target) / np.where(y0 > y1, y0 - y1, 1.0), 0.0)
    return np.clip(t[i - 1] + np.clip(frac, 0.0, 1.0) * (t[i] - t[i - 1]), t[0], t[-1])
