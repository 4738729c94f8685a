"""The plug-in plan is the optimum of an actual draw (issue 13).

Oracle: the closed-form 6ND allocation of Hoffmann et al. (2022, eq. 4 and
Appendix D.2), ``N_opt = G (C/6)**(beta/(alpha+beta))``,
``G = (alpha A / (beta B))**(1/(alpha+beta))``, written out in NumPy, and a brute-force
search for the draw nearest the median ``log N_opt``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams
from bayescale.planning.decisions import plug_in


def _closed_form(p: LawParams, C):
    E, A, B, alpha, beta = (np.asarray(v, dtype=float)[:, None] for v in p)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (beta / (alpha + beta))
    return N, C / (6 * N)


def _correlated_draws(rng, n=401):
    # log A and alpha (log B and beta) move together, as over the bootstrap (corr ~ 0.999).
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    alpha = BESIROGLU_2024.alpha + 0.015 * z1
    beta = BESIROGLU_2024.beta + 0.02 * z2
    A = BESIROGLU_2024.A * np.exp(20.0 * (alpha - BESIROGLU_2024.alpha))
    B = BESIROGLU_2024.B * np.exp(22.0 * (beta - BESIROGLU_2024.beta))
    E = BESIROGLU_2024.E + 0.02 * rng.standard_normal(n)
    return LawParams(E, A, B, alpha, beta)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_plug_in_is_the_allocation_of_the_draw_nearest_the_median(rng):
    p = _correlated_draws(rng)
    C = np.array([1e21, 5.76e23, 1e25])
    N, D = _closed_form(p, C)  # (draw, budget)
    plan = plug_in(p, C)
    for k in range(C.size):
        # the plan is some draw's own optimum ...
        j = int(np.argmin(np.abs(np.log(N[:, k]) - np.log(plan.N[k]))))
        np.testing.assert_allclose([plan.N[k], plan.D[k]], [N[j, k], D[j, k]], rtol=1e-9)
        # ... and that draw is the one whose log N_opt is nearest the median (401 draws:
        # the median is a draw, so the nearest is that draw itself).
        x = np.log(N[:, k])
        assert abs(x[j] - np.median(x)) <= np.min(np.abs(x - np.median(x))) + 1e-12
        assert int(plan.draw[k]) == j
        np.testing.assert_allclose(plan.N[k], np.exp(np.median(x)), rtol=1e-9)
    assert plan.converged.all()


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_one_draw_is_its_own_plug_in():
    C = np.array([5.76e23])
    N, D = _closed_form(LawParams(*(np.atleast_1d(v) for v in BESIROGLU_2024)), C)
    plan = plug_in(BESIROGLU_2024, C)
    np.testing.assert_allclose([plan.N[0], plan.D[0]], [N[0, 0], D[0, 0]], rtol=1e-9)
