"""Tests of bayescale.data.synthetic: the Epoch-like isoFLOP design and its noise."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import HOFFMANN_2022, log_loss
from bayescale.data.simulate import simulate_runs
from bayescale.data.synthetic import DEFAULT_NOISE, optimal_N


def test_design_matches_isoflop_budgets():
    runs = simulate_runs(seed=3)
    assert len(runs) == 90 and runs.source == "synthetic"
    C = runs.C.reshape(9, 10)
    np.testing.assert_allclose(C, np.repeat(np.geomspace(6e18, 3e21, 9)[:, None], 10, axis=1),
                               rtol=1e-12)
    # the budget's optimum sits in the middle of each profile
    N = runs.N.reshape(9, 10)
    n_opt = optimal_N(HOFFMANN_2022, np.geomspace(6e18, 3e21, 9))
    np.testing.assert_allclose(np.sqrt(N[:, 0] * N[:, -1]), n_opt, rtol=1e-9)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_noiseless_runs_lie_on_the_law():
    runs = simulate_runs(noise=0.0, models_per_budget=5)
    np.testing.assert_allclose(runs.log_loss, np.asarray(log_loss(HOFFMANN_2022, runs.N, runs.D)),
                               rtol=1e-12)


def test_noise_level_and_seeding():
    a, b = simulate_runs(seed=7), simulate_runs(seed=7)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss, simulate_runs(seed=8).loss)
    big = simulate_runs(seed=1, models_per_budget=400)
    resid = big.log_loss - np.asarray(log_loss(HOFFMANN_2022, big.N, big.D))
    assert abs(np.std(resid) / DEFAULT_NOISE - 1) < 0.05


def test_optimal_N_is_argmin_on_the_isoflop():
    C = 1e21
    N = np.geomspace(1e8, 1e11, 20001)
    # float64: in float32 the isoFLOP curve is flat to rounding over ~0.1% of N at its
    # minimum, so the argmin would be rounding noise, not the oracle
    with jax.enable_x64(True):
        L = np.asarray(log_loss(HOFFMANN_2022, N, C / (6 * N)))
    np.testing.assert_allclose(N[np.argmin(L)], optimal_N(HOFFMANN_2022, C), rtol=1e-3)


@pytest.mark.parametrize("kwargs", [{"noise": -1.0}, {"models_per_budget": 0},
                                    {"budgets": [1e20, -1.0]}, {"models_per_budget": 2.5}])
def test_bad_arguments(kwargs):
    with pytest.raises(BayescaleError):
        simulate_runs(**kwargs)
