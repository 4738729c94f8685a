"""The Bayesian posterior side by side with the Huber point estimate and the bootstrap.

On Besiroglu et al.'s 240 digitised Chinchilla runs (arXiv:2404.10102), the three
estimators should tell one story: the posterior medians sit inside the bootstrap's 95%
intervals, the Huber grid optimum (Hoffmann et al. 2022, Approach 3) sits inside the
posterior's 90% interval, and Hoffmann et al.'s published beta = 0.28 is excluded by
both.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayescale.estimators.fit import fit
from bayescale.laws.chinchilla import HOFFMANN_2022

NAMES = ("E", "A", "B", "alpha", "beta", "a_opt")


@pytest.fixture(scope="module")
def three_fits(chinchilla_240):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bayes = fit(chinchilla_240, method="bayes", seed=1,  # the default 4 x (1000 + 1000)
                    progress=False)
    boot = fit(chinchilla_240, method="bootstrap", resamples=2000, seed=1, level=0.95)
    huber = fit(chinchilla_240, method="huber")
    return bayes, boot, huber


def test_posterior_medians_inside_bootstrap_intervals(three_fits):
    bayes, boot, _ = three_fits
    assert bayes.diagnostics.ok
    med = bayes.point_estimate()
    ivals = boot.intervals(0.95)
    for name in NAMES:
        lo, hi = ivals[name]
        assert lo <= med[name] <= hi, (name, med[name], (lo, hi))


def test_huber_estimate_inside_posterior_interval(three_fits):
    bayes, _, huber = three_fits
    est = huber.point_estimate()
    ivals = bayes.intervals(0.9)
    for name in NAMES:
        lo, hi = ivals[name]
        assert lo <= est[name] <= hi, (name, est[name], (lo, hi))


def test_published_beta_excluded_by_posterior_and_bootstrap(three_fits):
    bayes, boot, _ = three_fits
    for result in (bayes, boot):
        beta = np.asarray(result.params.beta)
        assert np.mean(beta <= HOFFMANN_2022.beta) < 0.001


def test_frontier_agrees_across_methods(three_fits):
    # N_opt at Gopher's budget. Besiroglu et al.'s printed coefficients give 72.2B. Our
    # Huber optimum reaches their objective (0.00101827402) with coefficients that differ
    # from the printed ones by more than rounding, along the weakly identified (A, alpha)
    # and (B, beta) ridges (a differs by 1.3e-3); along those ridges the allocation
    # moves little, so N_opt agrees to 2% (measured: 73.2B, 1.4%).
    bayes, boot, huber = three_fits
    n_huber = float(huber.frontier([5.76e23]).N_opt[0, 0])
    assert n_huber == pytest.approx(72.2e9, rel=0.02)
    q = {}
    for name, r, level in (("bayes", bayes, 0.9), ("bootstrap", boot, 0.95)):
        N = np.asarray(r.frontier([5.76e23]).N_opt)[:, 0]
        q[name] = np.quantile(N, [0.5, (1 - level) / 2, (1 + level) / 2])
        assert q[name][1] <= n_huber <= q[name][2], (name, q[name], n_huber)
    width = q["bayes"][2] - q["bayes"][1]
    assert abs(q["bayes"][0] - q["bootstrap"][0]) <= 0.25 * width, (q, width)
