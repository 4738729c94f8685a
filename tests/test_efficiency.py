"""Compute efficiency C_eq / C for any law (bayescale.planning.efficiency).

Oracles: the Chinchilla law's closed-form inverse of L_opt(C) (Hoffmann et al. 2022,
eq. 4; :func:`bayescale.planning.decisions.assess` uses it for that law), and for the
Kaplan law scipy's ``brentq`` on ``L_opt(C) - L`` over the numerical frontier.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams
from bayescale.laws.kaplan import KaplanParams
from bayescale.planning.decisions import assess, plan_loss
from bayescale.planning.efficiency import LOG10_RANGE, compute_efficiency
from bayescale.planning.frontier import compute_optimal

PLANS_N = np.array([7e10, 2e10, 3e11, 1e9])
PLANS_D = np.array([1.4e12, 4e12, 2e11, 1e14])


def _chinchilla_draws(n=64, seed=0):
    rng = np.random.default_rng(seed)
    p = BESIROGLU_2024
    return LawParams(E=p.E * np.exp(rng.normal(0, 0.02, n)), A=p.A * np.exp(rng.normal(0, 0.2, n)),
                     B=p.B * np.exp(rng.normal(0, 0.2, n)), alpha=p.alpha + rng.normal(0, 0.01, n),
                     beta=p.beta + rng.normal(0, 0.01, n))


@pytest.mark.float64
def test_inversion_equals_the_chinchilla_closed_form():
    params = _chinchilla_draws()
    C = 6 * PLANS_N * PLANS_D
    closed = assess(params, PLANS_N, PLANS_D)["compute_efficiency_draws"]
    L = np.asarray(plan_loss(params, PLANS_N, PLANS_D))
    inverted = compute_efficiency(params, L, C)
    assert inverted.shape == closed.shape == (64, 4)
    assert closed.min() < 0.5 and closed.max() > 0.99  # far-off and near-optimal plans
    np.testing.assert_allclose(inverted, closed, rtol=1e-4)


@pytest.mark.float64
def test_kaplan_efficiency_matches_brentq_on_the_frontier():
    p = KaplanParams(8.8e13, 5.4e13, 0.076, 0.095)
    C = 6 * PLANS_N * PLANS_D
    a = assess(p, PLANS_N, PLANS_D)  # a point: one "draw"
    got = np.asarray(a["compute_efficiency_draws"]).reshape(-1)
    L = np.asarray(plan_loss(p, PLANS_N, PLANS_D)).reshape(-1)
    for k, c in enumerate(C):
        gap = lambda t: float(compute_optimal(p, c * 10.0 ** t).L_opt) - L[k]  # noqa: E731
        want = 10.0 ** brentq(gap, LOG10_RANGE[0], 0.5, xtol=1e-12)
        assert got[k] == pytest.approx(want, rel=1e-4), k
    assert np.all(got <= 1 + 1e-6) and got.min() < 0.9


def test_efficiency_is_clipped_to_the_grid():
    p = KaplanParams(8.8e13, 5.4e13, 0.076, 0.095)
    N, D = np.array([1e12]), np.array([1e6])  # absurd: a trillion parameters, a million tokens
    L = np.asarray(plan_loss(p, N, D)).reshape(1, 1)
    assert compute_efficiency(p, L, 6 * N * D)[0, 0] == pytest.approx(10.0 ** LOG10_RANGE[0])
