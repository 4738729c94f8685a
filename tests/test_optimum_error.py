"""The optimum-error model (bayescale.estimators.optimum_error): the discrepancy in N and D
that moves N_opt beyond the data (issue 10).

Oracles: the law's closed-form optimum for a noiseless isoFLOP profile; simulated misses
from known (m, w) for the grid posterior; C = 6 N D kept by the shift; a misspecified
synthetic truth (a Kaplan-form law fitted with the Chinchilla form) whose true N_opt the
moved band covers where the law's own band does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError
from bayescale.estimators import optimum_error as oe
from bayescale.laws.chinchilla import BESIROGLU_2024, LAW
from bayescale.planning.frontier import compute_optimal, frontier


def _profile(params, C, sizes=9, spread=1.2, offset=0.0):
    """A noiseless isoFLOP profile of ``params`` at ``C``: ``sizes`` model sizes over
    ``spread`` decades, centred ``offset`` decades from the law's optimum."""
    n_opt = float(np.asarray(compute_optimal(params, C).N_opt).reshape(-1)[0])
    N = n_opt * np.logspace(-spread / 2, spread / 2, sizes) * 10**offset
    D = C / (6 * N)
    E, A, B, alpha, beta = (float(v) for v in params)
    L = E + A / N**alpha + B / D**beta
    return N, D, L, n_opt


def test_observed_optimum_is_the_laws_optimum_on_a_noiseless_profile():
    # Approach 2's parabola is biased by the profile's asymmetry, by at most about 0.013
    # decades of N for grids centred on the optimum (bayescale.estimators.isoflop's
    # docstring, benchmarks/bench_isoflop.py); the bootstrap se of a noiseless profile is
    # that bias's variation over resamples of the sizes only
    for C in (1e19, 1e21, 1e23):
        N, D, L, n_opt = _profile(BESIROGLU_2024, C)
        vertex, se = oe.observed_optima(np.log(N), np.log(L))
        assert vertex == pytest.approx(np.log10(n_opt), abs=0.015)
        assert se < 0.005


def test_a_profile_without_an_interior_optimum_gives_none():
    N, D, L, _ = _profile(BESIROGLU_2024, 1e21, offset=0.55)  # minimum at the grid's edge
    assert oe.observed_optima(np.log(N), np.log(L)) is None
    N, D, L, _ = _profile(BESIROGLU_2024, 1e21, sizes=3)  # too few sizes
    assert oe.observed_optima(np.log(N), np.log(L)) is None


def _simulated(m, w, refits, per, rng):
    d = rng.uniform(0.1, 1.5, (refits, per))
    se = np.full_like(d, 0.02)
    edge = np.sqrt(se**2 + oe.EDGE_SD**2)  # the model's scatter that does not grow with d
    miss = m * d + w * d * rng.standard_normal((refits, per)) + edge * rng.standard_normal(d.shape)
    cut = np.repeat(np.arange(refits), per)
    return oe.OptimumMisses(miss.ravel(), se.ravel(), d.ravel(), np.ones(d.size), cut)


def test_grid_posterior_recovers_drift_and_spread():
    # 20 simulated sets of misses from known (m, w); each refit's misses count as
    # POINTS_PER_REFIT observations, so one miss per refit is an honest likelihood (the
    # power is 1). The central 98% marginal intervals should contain the truth about 19.6
    # times in 20; fewer than 16 has probability < 0.001 under the binomial.
    m, w = 0.15, 0.2
    hits = {"drift": 0, "w": 0}
    for seed in range(20):
        post = oe.posterior(_simulated(m, w, 150, 1, np.random.default_rng(seed)),
                            oe.VAGUE_PRIOR)
        for name, grid, marginal, truth in (("drift", post.drift, post.weights.sum(1), m),
                                            ("w", post.w, post.weights.sum(0), w)):
            c = np.cumsum(marginal)
            lo, hi = grid[np.searchsorted(c, 0.01)], grid[np.searchsorted(c, 0.99)]
            hits[name] += int(lo <= truth <= hi)
            assert hi - lo < (0.15 if name == "drift" else 0.12)  # informative, not the prior
    assert hits["drift"] >= 16 and hits["w"] >= 16, hits


def test_no_misses_give_the_prior_and_a_bad_prior_is_refused():
    post = oe.posterior(oe.OptimumMisses.empty())
    s = post.summary()
    assert s["num_misses"] == 0 and s["w"] == pytest.approx(oe.DEFAULT_PRIOR.w, rel=0.15)
    assert s["drift"] == pytest.approx(oe.DEFAULT_PRIOR.drift, abs=0.02)
    with pytest.raises(BayescaleError, match="positive"):
        oe.posterior(oe.OptimumMisses.empty(), oe.OptimumPrior(0.0, 1.0, 0.0, 0.1))


def _point_mass(m, w):
    drift, spread = np.array([m]), np.array([w])
    return oe.OptimumError(drift, spread, np.ones((1, 1)))


def test_apply_moves_n_opt_and_d_opt_keeping_the_budget():
    model = _point_mass(0.2, 0.1)
    draws = type(BESIROGLU_2024)(*(np.full(4000, float(v)) for v in BESIROGLU_2024))
    front = frontier(draws, [1e20, 1e22, 1e24])
    moved = model.apply(front, C_max=1e22, rng=np.random.default_rng(0))
    # inside the data (1e20 < 1e22, and 1e22 itself): no move
    np.testing.assert_allclose(moved.N_opt[:, :2], front.N_opt[:, :2], rtol=1e-12)
    # two decades beyond: e ~ Normal(0.2 * 2, (0.1 * 2)**2), N_opt * D_opt unchanged
    e = np.log10(moved.N_opt[:, 2] / np.asarray(front.N_opt)[:, 2])
    assert abs(e.mean() - 0.4) < 4 * 0.2 / np.sqrt(e.size)
    assert e.std() == pytest.approx(0.2, rel=0.05)
    np.testing.assert_allclose(moved.N_opt * moved.D_opt,
                               np.asarray(front.N_opt) * np.asarray(front.D_opt), rtol=1e-6)
    np.testing.assert_allclose(moved.tokens_per_param, moved.D_opt / moved.N_opt, rtol=1e-6)
    np.testing.assert_array_equal(moved.L_opt, front.L_opt)


def test_lfo_misses_are_zero_when_the_law_is_exact():
    # isoFLOP profiles drawn from the Chinchilla law itself, without noise: every refit
    # recovers the law, so each held-out profile's vertex misses the refit's optimum by
    # the parabola's own bias only (about 0.01 decades, see above)
    N, D, L = [], [], []
    for C in np.logspace(18, 21, 7):
        n, d, loss, _ = _profile(BESIROGLU_2024, C)
        N.append(n), D.append(d), L.append(loss)
    N, D, L = np.concatenate(N), np.concatenate(D), np.concatenate(L)
    runs = Runs(N=N, D=D, loss=L, row=np.arange(N.size))
    misses = oe.lfo_optimum_misses(runs, LAW)
    assert len(misses.miss) == 6  # cuts 1, 2, 3 hold out 1 + 2 + 3 profiles
    np.testing.assert_allclose(misses.miss, 0.0, atol=0.02)
    assert np.all(misses.d > 0) and sorted(set(misses.cut)) == [1, 2, 3]


def test_a_refit_already_made_is_not_made_again(monkeypatch):
    # the optimum error refits the runs without the same budgets as the loss discrepancy
    # and the stacking scores: each (data, mask) is fitted once per process. Oracle: the
    # fits asked of the compiled program, counted, and the thetas equal either way.
    from bayescale.estimators import extrapolation as ex

    rng = np.random.default_rng(5)
    N = np.geomspace(1e7, 1e9, 30)
    D = 20 * N * rng.uniform(0.5, 2.0, N.size)
    L = np.asarray([float(v) for v in BESIROGLU_2024.E + BESIROGLU_2024.A / N**BESIROGLU_2024.alpha
                    + BESIROGLU_2024.B / D**BESIROGLU_2024.beta])
    X = np.column_stack([np.log(N), np.log(D)])
    y = np.log(L) + 0.01 * rng.standard_normal(N.size)
    masks = np.stack([N < 3e8, N < 5e8])
    asked = []
    real = ex._masked_fits

    def counting(law, X_, y_, masks_, *args):
        asked.append(len(masks_))
        return real(law, X_, y_, masks_, *args)

    monkeypatch.setattr(ex, "_masked_fits", counting)
    first = ex.masked_fits(LAW, X, y, masks)
    again = ex.masked_fits(LAW, X, y, masks[::-1])          # the same two, reordered
    more = ex.masked_fits(LAW, X, y, np.stack([masks[0], N < 7e8]))  # one new
    assert asked == [2, 1]
    np.testing.assert_array_equal(again, first[::-1])
    np.testing.assert_array_equal(more[0], first[0])
    other = ex.masked_fits(LAW, X, y + 0.01, masks[:1])      # other data: fitted anew
    assert asked == [2, 1, 1] and not np.array_equal(other[0], first[0])
