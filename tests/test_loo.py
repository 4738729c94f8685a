"""PSIS-LOO on every row or a subsample of rows (bayescale.estimators.loo).

Oracles: the log-likelihood recomputed from the draws equals the one NUTS recorded; with
every row the estimate is arviz.loo's; the subsampled estimate (Magnusson et al. 2019),
over many seeds, misses arviz.loo on all rows by about its own subsampling standard error
(z-scores with mean ~0 and sd ~1, within Monte Carlo error)."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.errors import BayescaleError, ConvergenceWarning, DataWarning
from bayescale.estimators import loo as loo_mod
from bayescale.laws.chinchilla import HOFFMANN_2022 as P


@pytest.fixture(scope="module")
def full_fit():
    """A full-data NUTS fit of 1,200 checkpoint-like rows (Student-t noise with a few
    outliers, so the rows' elpd_i differ), with its recorded log-likelihood."""
    rng = np.random.default_rng(4)
    n = 1200
    N = np.repeat(np.geomspace(1e7, 1e10, 12), n // 12)
    D = N * np.exp(rng.uniform(0.0, np.log(200.0), n))
    noise = 0.01 * rng.standard_t(5, n)
    loss = (P.E + P.A / N**P.alpha + P.B / D**P.beta) * np.exp(noise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        runs = bayescale.load_runs(pd.DataFrame({"N": N, "D": D, "loss": loss}))
    with warnings.catch_warnings():  # short chains; the oracles need draws, not convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        return bayescale.fit(runs, method="bayes", chains=2, warmup=300, draws=300,
                             progress=False, retry=False, subsample=None)


def _without_log_likelihood(fit):
    """The fit as a subsampled fit leaves it: no recorded log-likelihood."""
    idata = copy.copy(fit.idata)
    del idata.log_likelihood
    assert "log_likelihood" not in idata.groups()
    return dataclasses.replace(fit, idata=idata)


def test_recomputed_log_likelihood_is_the_recorded_one(full_fit):
    got = loo_mod.pointwise_log_lik(full_fit)
    recorded = np.asarray(full_fit.idata.log_likelihood["log_loss"])
    assert got.shape == recorded.shape
    np.testing.assert_allclose(got, recorded, rtol=1e-4, atol=1e-4)


def test_every_row_is_arviz_loo(full_fit):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = az.loo(full_fit.idata, pointwise=True)
    got = loo_mod.psis_loo(full_fit)
    assert not got.subsampled and got.subsampling_se == 0.0
    assert np.isclose(got.elpd, float(ref.elpd_loo)) and np.isclose(got.se, float(ref.se))
    # m >= rows on a fit without log-likelihood: every row recomputed, the same numbers
    again = loo_mod.psis_loo(_without_log_likelihood(full_fit), m=5000)
    assert not again.subsampled and again.subsampling_se == 0.0
    assert abs(again.elpd - got.elpd) < 0.05 and abs(again.se - got.se) < 0.05
    assert abs(again.p_loo - got.p_loo) < 0.05


def test_subsampled_estimate_is_unbiased_with_honest_error(full_fit):
    """40 subsamples of m = 100 of the 1,200 rows: z = (estimate - all rows) / subsampling
    se. Unbiased with an honest se: the z have mean 0 (its Monte Carlo sd 1/sqrt(40) =
    0.16; allowed 0.5, 3 of those) and sd 1 (sd of a sample sd of 40 ~ 0.11; allowed
    0.6-1.5). The paired difference of two copies of the same fit is exactly 0."""
    ref = loo_mod.psis_loo(full_fit)
    sub = _without_log_likelihood(full_fit)
    z = []
    for seed in range(40):
        est = loo_mod.psis_loo(sub, m=100, seed=seed)
        assert est.subsampled and len(est.rows) == 100 and est.subsampling_se > 0
        z.append((est.elpd - ref.elpd) / est.subsampling_se)
        assert abs(est.se / ref.se - 1) < 0.5
    z = np.asarray(z)
    assert abs(z.mean()) < 0.5, z
    assert 0.6 < z.std(ddof=1) < 1.5, z
    a = loo_mod.psis_loo(sub, m=100, seed=1)
    diff = loo_mod.elpd_difference(a, a)
    assert diff["elpd_diff"] == 0.0 and diff["dse"] == 0.0


def test_differences_need_the_same_rows(full_fit):
    sub = _without_log_likelihood(full_fit)
    with pytest.raises(BayescaleError, match="different rows"):
        loo_mod.elpd_difference(loo_mod.psis_loo(sub, m=50, seed=0),
                                loo_mod.psis_loo(sub, m=50, seed=1))
    with pytest.raises(BayescaleError, match="m must be"):
        loo_mod.psis_loo(sub, m=1)


def test_forced_subsample_pairs_a_full_fit_with_a_thin_one(full_fit):
    """``subsample=True`` on a fit with every row recorded takes the recorded values at the
    same rows as the recomputed ones of a fit without them: the two pair row by row."""
    thin = loo_mod.psis_loo(_without_log_likelihood(full_fit), m=100, seed=2)
    forced = loo_mod.psis_loo(full_fit, m=100, seed=2, subsample=True)
    assert forced.subsampled and np.array_equal(forced.rows, thin.rows)
    np.testing.assert_allclose(forced.elpd_i, thin.elpd_i, rtol=1e-4, atol=1e-3)
    assert abs(loo_mod.elpd_difference(forced, thin)["elpd_diff"]) < 0.05


def test_fixed_nu_is_the_fits_own():
    """A fit with a fixed, non-default nu: the recomputed log-likelihood uses that nu
    (the recorded one is the oracle), read back from the fit's priors."""
    from bayescale.data.simulate import simulate_runs
    from bayescale.estimators.priors import DEFAULT_NU, fixed_nu

    assert fixed_nu({"priors": {"nu": "fixed 10"}}) == 10.0 and fixed_nu({}) == DEFAULT_NU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bayescale.fit(simulate_runs(seed=2), method="bayes", chains=1, warmup=150,
                            draws=100, progress=False, retry=False, priors={"nu": 10.0})
    got = loo_mod.pointwise_log_lik(fit)
    recorded = np.asarray(fit.idata.log_likelihood["log_loss"])
    np.testing.assert_allclose(got, recorded, rtol=1e-4, atol=1e-4)
