"""User-defined costs: correct against the 6ND closed form, with a status for the inner solve.

(Their speed, within 3x of the built-in costs, is measured by
``benchmarks/bench_frontier.py``, not asserted here.) Oracle: the closed-form 6ND
allocation of Hoffmann et al. (2022, eq. 4) in float64 NumPy; a cost ``k 6 N D``
has the 6ND optimum at the budget ``C / k``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams
from bayescale.planning.costs import CostFn
from bayescale.planning.frontier import frontier, solve_optimal


def _closed_form(p: LawParams, C):
    E, A, B, alpha, beta = (np.asarray(v, dtype=float)[..., None] for v in p)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (np.asarray(C) / 6) ** (beta / (alpha + beta))
    return N, np.asarray(C) / (6 * N)


def _draws(rng, n=64):
    return LawParams(*(np.asarray(v) * np.exp(0.1 * rng.standard_normal(n))
                       for v in BESIROGLU_2024))


def six_nd(N, D):
    return 6 * N * D


@pytest.mark.parametrize("x64,rtol", [(False, 1e-5), (True, 1e-9)])
def test_user_6nd_cost_matches_the_closed_form(rng, x64, rtol):
    p = _draws(rng)
    C = np.logspace(18, 26, 17)
    with jax.enable_x64(x64):
        f = frontier(p, C, cost=six_nd)
        g = solve_optimal(p, C, cost=CostFn(six_nd), init="tokens20")
    N, D = _closed_form(p, C)
    for res in ((f.N_opt, f.D_opt, f.converged), (g.N_opt, g.D_opt, g.converged)):
        assert bool(np.all(res[2]))  # in float32 the old inner solve left 84% unconverged
        np.testing.assert_allclose(np.asarray(res[0], float), N, rtol=rtol)
        np.testing.assert_allclose(np.asarray(res[1], float), D, rtol=rtol)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_an_unsolved_inner_solve_is_not_converged():
    # D is 1e-20 x C / 6N: 46 nats from the inner Newton's start, beyond 8 steps of at
    # most 5 nats. The old solver reported these points converged, off the surface.
    k = 1e-20
    cost = CostFn(lambda N, D: k * 6 * N * D)
    f = frontier(BESIROGLU_2024, [1e22, 1e24], cost=cost)
    assert not np.any(np.asarray(f.converged))
    # With enough inner iterations it is solved, and equals the 6ND optimum at C / k.
    more = CostFn(lambda N, D: k * 6 * N * D, newton_iters=16)
    f = frontier(BESIROGLU_2024, [1e22, 1e24], cost=more)
    assert np.all(np.asarray(f.converged))
    N, D = _closed_form(BESIROGLU_2024, np.array([1e22, 1e24]) / k)
    np.testing.assert_allclose(np.asarray(f.N_opt, float)[0], N, rtol=1e-9)


def test_user_cost_gradient_matches_finite_differences():
    # d N_opt / d C through the implicit derivatives (outer and inner solves).
    cost = CostFn(six_nd)

    def log_N(log_C):
        return jax.numpy.log(solve_optimal(BESIROGLU_2024, jax.numpy.exp(log_C), cost=cost).N_opt)

    with jax.enable_x64(True):
        lc = np.log(1e23)
        g = float(jax.grad(log_N)(lc))
        h = 1e-4
        fd = (float(log_N(lc + h)) - float(log_N(lc - h))) / (2 * h)
    a = BESIROGLU_2024.beta / (BESIROGLU_2024.alpha + BESIROGLU_2024.beta)
    np.testing.assert_allclose(g, a, rtol=1e-7)  # N_opt ~ C**a (closed form)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
