"""The Huber/L-BFGS baselines against published numbers and synthetic truth.

Oracles:
* scipy's L-BFGS-B from Hoffmann's 4500 starts on Besiroglu et al.'s 240 runs
  (issue 2; Epoch's notebook ``data_analysis.ipynb`` prints the same optimum);
* the point estimate Besiroglu et al. (2024, arXiv:2404.10102, Table 1) report;
* their bootstrap 95% intervals (same paper, and the notebook at
  epoch-research/analyzing-chinchilla@9225883, cells 24-26);
* parameters used to simulate noiseless runs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayescale import load_runs
from bayescale.estimators import bootstrap
from bayescale.estimators import huber as baseline
from bayescale.estimators.fit import fit
from bayescale.laws.chinchilla import HOFFMANN_2022, LawParams, log_loss_from_theta

# scipy L-BFGS-B from the 4500-point grid on the 240 runs (issue 2).
SCIPY_GRID_OBJECTIVE = 0.00101827402
SCIPY_GRID = {"A": 477.8, "B": 2143.4, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672}
# Besiroglu et al. (2024), Table 1: MLE under a Huber density with free scale.
EPOCH_MLE = {"A": 482.0, "B": 2085.4, "E": 1.817, "alpha": 0.3478, "beta": 0.3658}
# Besiroglu et al. (2024): bootstrap 95% intervals (4000 resamples).
EPOCH_BOOTSTRAP_95 = {"alpha": (0.317, 0.373), "beta": (0.331, 0.415), "E": (1.769, 1.871)}


def _epoch_huber_sum(theta, log_N, log_D, log_loss, delta=1e-3):
    """Besiroglu et al.'s notebook formula, written out in NumPy."""
    a, b, e, alpha, beta = theta
    pred = np.log(np.exp(a - alpha * log_N) + np.exp(b - beta * log_D) + np.exp(e))
    diff = log_loss - pred
    return np.sum(np.where(np.abs(diff) <= delta, 0.5 * diff**2,
                           delta * (np.abs(diff) - 0.5 * delta)))


def test_hoffmann_grid_is_4500_points():
    grid = baseline.hoffmann_grid()
    assert grid.shape == (4500, 5)
    assert set(grid[:, 3]) == {0.0, 0.5, 1.0, 1.5, 2.0}
    assert set(grid[:, 2]) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(grid[:, 0]) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}
    assert baseline.hoffmann_grid(a=[5.0], b=[5.0]).shape == (125, 5)
    with pytest.raises(ValueError, match="unknown grid"):
        baseline.hoffmann_grid(gamma=[1.0])


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_objective_matches_the_published_formula_and_gradient(rng):
    log_N = np.log(rng.uniform(1e8, 1e10, 50))
    log_D = np.log(rng.uniform(1e9, 1e11, 50))
    log_loss = np.log(2.0 + rng.uniform(0, 1, 50))
    theta = np.array([6.0, 7.0, 0.6, 0.34, 0.36])
    ours = baseline.huber_objective(jnp.asarray(theta), jnp.ones(50), log_N, log_D, log_loss)
    np.testing.assert_allclose(float(ours), _epoch_huber_sum(theta, log_N, log_D, log_loss),
                               rtol=1e-12)
    grad = np.asarray(jax.grad(baseline.huber_objective)(jnp.asarray(theta), jnp.ones(50),
                                                         log_N, log_D, log_loss))
    h = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = h
        fd = (_epoch_huber_sum(theta + e, log_N, log_D, log_loss)
              - _epoch_huber_sum(theta - e, log_N, log_D, log_loss)) / (2 * h)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-5, atol=1e-10)


def test_huber_density_normaliser_integrates_to_one():
    delta = 1e-3
    x = np.linspace(-50, 50, 2_000_001)
    dens = np.exp(-np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta)))
    # The tails beyond |x| = 50 are exp(-delta |x|): add them in closed form.
    tail = 2 * math.exp(-delta * (50 - 0.5 * delta)) / delta
    z = np.trapezoid(dens, x) + tail
    assert math.isclose(math.log(z), baseline.huber_log_normaliser(delta), rel_tol=1e-6)


def test_noiseless_recovery_from_a_small_grid():
    truth = LawParams(E=1.7, A=400.0, B=1500.0, alpha=0.33, beta=0.36)
    N, D = np.meshgrid(np.geomspace(5e7, 1e10, 7), np.geomspace(5e8, 3e11, 7))
    N, D = N.ravel(), D.ravel()
    theta = np.array([math.log(truth.A), math.log(truth.B), math.log(truth.E),
                      truth.alpha, truth.beta])
    log_loss = np.asarray(log_loss_from_theta(jnp.asarray(theta), np.log(N), np.log(D)))
    res = baseline.fit_huber(np.log(N), np.log(D), log_loss,
                             starts=baseline.hoffmann_grid(a=[0, 10], b=[0, 10], e=[0, 1]))
    est = res.params
    for name in ("E", "A", "B", "alpha", "beta"):
        np.testing.assert_allclose(float(getattr(est, name)), getattr(truth, name), rtol=1e-3)
    assert res.info["objective"] < 1e-12


def test_bad_starts_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        baseline.fit_huber(np.zeros(3), np.zeros(3), np.zeros(3), starts=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="resamples"):
        bootstrap.fit_bootstrap(np.zeros(3), np.zeros(3), np.zeros(3), resamples=1)


@pytest.fixture(scope="module")
def grid_fit(chinchilla_240):
    return fit(chinchilla_240, method="huber")


@pytest.fixture(scope="module")
def bootstrap_fit(chinchilla_240):
    return fit(chinchilla_240, method="bootstrap", resamples=4000, seed=0, level=0.95)


class TestChinchilla:
    def test_grid_fit_reaches_scipy_optimum(self, grid_fit, chinchilla_240):
        info = grid_fit.info
        assert info["num_starts"] == 4500
        assert info["objective"] <= SCIPY_GRID_OBJECTIVE + 1e-10
        for name, value in SCIPY_GRID.items():
            assert float(getattr(grid_fit.params, name)) == pytest.approx(value, rel=5e-3), name
        # The reported objective is the published formula at the reported parameters.
        p = grid_fit.params
        theta = np.array([math.log(p.A), math.log(p.B), math.log(p.E), p.alpha, p.beta])
        r = chinchilla_240
        assert _epoch_huber_sum(theta, r.log_N, r.log_D, r.log_loss) == pytest.approx(
            info["objective"], rel=1e-10)
        assert info["converged"]
        assert grid_fit.is_point

    def test_huber_mle_reproduces_besiroglu_table_1(self, chinchilla_240, grid_fit):
        res = fit(chinchilla_240, method="huber_mle", init=grid_fit.params)
        for name, value in EPOCH_MLE.items():
            assert float(getattr(res.params, name)) == pytest.approx(value, rel=5e-3), name
        # Epoch's notebook reports a log-scale of -12.27 for this fit.
        assert res.info["log_sigma"] == pytest.approx(-12.27, abs=0.05)

    def test_bootstrap_intervals_agree_with_epoch(self, bootstrap_fit):
        res = bootstrap_fit
        # Degenerate resamples (issue 13's rule) are left out of the draws and counted.
        assert res.info["resamples"] == 4000 and res.num_draws == res.info["num_kept"]
        assert res.info["converged_fraction"] > 0.99
        draws = res.draws()
        n = len(draws)
        for name, (lo, hi) in EPOCH_BOOTSTRAP_95.items():
            values = np.sort(draws[name].to_numpy())
            for p, published in ((0.025, lo), (0.975, hi)):
                # Distribution-free Monte Carlo band for the p-quantile from the order
                # statistics; z = 4 allows for Epoch's own resampling error too, and
                # 5e-4 for their 3-decimal rounding.
                half = 4 * math.sqrt(n * p * (1 - p))
                k_lo = max(int(math.floor(n * p - half)), 0)
                k_hi = min(int(math.ceil(n * p + half)), n - 1)
                assert values[k_lo] - 5e-4 <= published <= values[k_hi] + 5e-4, (name, p)
        # The allocation exponents are reported with the parameters.
        ivals = res.intervals(0.95)
        assert 0.45 < ivals["a_opt"][0] < ivals["a_opt"][1] < 0.58
        assert res.reference is not None

    def test_published_hoffmann_fit_is_outside_the_bootstrap(self, bootstrap_fit):
        # Besiroglu et al.'s finding: Hoffmann's published beta (0.28) is far outside
        # the bootstrap interval of the digitised data.
        lo, hi = bootstrap_fit.intervals(0.95)["beta"]
        assert not lo <= HOFFMANN_2022.beta <= hi
        summary = bootstrap_fit.summary()
        assert {"estimate", "lower", "upper", "sd", "reference"} <= set(summary.columns)


@pytest.mark.float64
def test_screening_on_a_subsample_reaches_the_exhaustive_optimum(chinchilla_240, grid_fit):
    # Issue 9: with many rows the starts are screened on a subsample spread over the
    # design and only the best are solved on all rows; on the Chinchilla runs that must
    # give the exhaustive grid's optimum (objective within 1e-10 relative).
    r = chinchilla_240
    sub = baseline.fit_huber(r.log_N, r.log_D, r.log_loss, screen_rows=60)
    assert sub.info["screened_on_rows"] == 60 and grid_fit.info["screened_on_rows"] == 240
    assert sub.info["objective"] == pytest.approx(grid_fit.info["objective"], rel=1e-10)


@pytest.mark.float64
def test_polish_through_few_slots_gives_the_same_optimum(chinchilla_240, grid_fit,
                                                         monkeypatch):
    # Many rows: the polish's 32 problems go through fewer slots (memory linear in the
    # rows, POLISH_ROW_SLOTS); the queue solves the same problems, so the same optimum.
    r = chinchilla_240
    monkeypatch.setattr(baseline, "POLISH_ROW_SLOTS", 4 * 256)  # 240 runs pad to 256: 4 slots
    few = baseline.fit_huber(r.log_N, r.log_D, r.log_loss)
    assert few.info["polish_slots"] == 4 and grid_fit.info["polish_slots"] == 32
    assert few.info["objective"] == pytest.approx(grid_fit.info["objective"], rel=1e-12)
    # The parameters agree to the solver's tolerance on this flat objective (measured 5e-8:
    # a batch of 4 and one of 32 sum in different orders, and the polish stops once the
    # objective changes by less than 1e-14).
    np.testing.assert_allclose(list(few.info["theta"].values()),
                               list(grid_fit.info["theta"].values()), rtol=1e-6)


def test_design_subsample_spreads_over_the_sizes():
    rng = np.random.default_rng(0)
    sizes = np.repeat(np.geomspace(1e7, 1e9, 8), 500)  # 8 sizes, 500 checkpoints each
    log_X = np.column_stack([np.log(sizes), np.log(rng.uniform(1e8, 1e11, sizes.size))])
    idx = baseline.design_subsample(log_X, 80)
    assert idx.size == np.unique(idx).size == 80
    counts = np.unique(log_X[idx, 0], return_counts=True)[1]
    assert counts.size == 8 and counts.min() >= 9  # ~10 per size, not all from a few
    assert log_X[:, 1][idx].min() < np.quantile(log_X[:, 1], 0.05)  # tokens' range kept


def test_weight_chunks_are_the_bootstrap_weights_in_blocks():
    clusters = np.repeat(np.arange(7), 3)
    for c in (None, clusters):
        whole = bootstrap.bootstrap_weights(21, 50, seed=5, clusters=c)
        blocks = list(bootstrap.weight_chunks(21, 50, 5, c, chunk=7))
        assert [b.shape[0] for b in blocks] == [7] * 7 + [1]
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.float64
def test_bootstrap_in_chunks_is_the_bootstrap(chinchilla_240, monkeypatch):
    # Many rows: the resamples are solved in chunks (memory linear in the rows); the
    # same resamples from the same start, so the same fits (to the solver's tolerance:
    # batches of different widths sum in different orders).
    r = chinchilla_240
    whole = bootstrap.fit_bootstrap(r.log_N, r.log_D, r.log_loss, resamples=100, seed=1)
    monkeypatch.setattr(bootstrap, "RESAMPLE_ROWS", 32 * 256)  # 240 runs pad to 256
    parts = bootstrap.fit_bootstrap(r.log_N, r.log_D, r.log_loss, resamples=100, seed=1)
    assert whole.info["resample_chunks"] == 1 and parts.info["resample_chunks"] == 4
    assert parts.info["num_kept"] == whole.info["num_kept"]
    for a, b in zip(parts.params, whole.params):
        np.testing.assert_allclose(a, b, rtol=1e-5)
