"""Where the bootstrap's resamples start (:func:`bayescale.estimators.bootstrap.resample_start`).

Oracles: the same resamples solved from two starts reach the same minima on a
well-identified law (the start changes the cost, not the answer); the start recorded in
``info["init"]`` is the full data's fit, Hoffmann et al.'s published parameters on their
own data, and Hoffmann's again when the full fit is degenerate (9 noisy runs, ``E ~ 0``).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayescale import fit, load_runs
from bayescale.data.simulate import simulate_runs
from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.estimators.bootstrap import fit_bootstrap, resample_start, start_for
from bayescale.laws.chinchilla import HOFFMANN_2022_UNROUNDED, LAW, LawParams

# A law far from Hoffmann's (about misfitting_checkpoints' Huber fit), so the two starts
# are far apart.
TRUE = LawParams(E=2.4, A=1800.0, B=3.3e5, alpha=0.43, beta=0.62)


def _theta(params) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(LAW.to_theta(type(params)(*(np.float64(v) for v in params))))


def _init(f) -> np.ndarray:
    return np.array([f.info["init"][c] for c in LAW.coords])


def test_two_starts_reach_the_same_resample_minima():
    runs = simulate_runs(TRUE, noise=0.01, seed=3)
    args = (runs.log_N, runs.log_D, runs.log_loss)
    published = fit_bootstrap(*args, resamples=64, seed=0, init="published")
    reference = fit_bootstrap(*args, resamples=64, seed=0, init="reference")
    np.testing.assert_allclose(_init(published), _theta(HOFFMANN_2022_UNROUNDED), rtol=1e-12)
    np.testing.assert_allclose(_init(reference), _theta(reference.reference), rtol=1e-12)
    assert published.info["num_kept"] == reference.info["num_kept"] == 64
    for name in LAW.param_names:
        np.testing.assert_allclose(getattr(reference.params, name),
                                   getattr(published.params, name), rtol=2e-3, err_msg=name)


def test_fit_starts_at_the_full_fit_except_on_hoffmanns_data():
    runs = simulate_runs(TRUE, noise=0.01, seed=3)
    assert start_for(runs.source) == "reference"
    boot = fit(runs, method="bootstrap", resamples=8, seed=0)
    huber = fit(runs, method="huber")
    np.testing.assert_allclose(_init(boot), _theta(huber.params), rtol=1e-9)
    assert boot.info["start"] == "reference"
    again = fit(runs, method="bootstrap", resamples=8, seed=0, init=None)
    np.testing.assert_allclose(_init(again), _init(boot), rtol=0)

    assert start_for("chinchilla") == "published"
    chin = fit(load_runs("chinchilla"), method="bootstrap", resamples=8, seed=0)
    np.testing.assert_allclose(_init(chin), _theta(HOFFMANN_2022_UNROUNDED), rtol=1e-12)
    assert chin.info["start"] == "published"


def test_a_degenerate_full_fit_is_not_a_start():
    runs = simulate_runs(models_per_budget=1, noise=0.02, seed=0)  # its Huber fit has E ~ 0
    ref = fit(runs, method="huber").params
    assert float(ref.E) < 1e-6
    start, label = resample_start(LAW, ref, init="reference",
                                  min_loss=float(np.exp(runs.log_loss.min())))
    assert start is HOFFMANN_2022_UNROUNDED and label == "published (the full fit is degenerate)"
    with pytest.warns(ConvergenceWarning, match="degenerate"):
        boot = fit(runs, method="bootstrap", resamples=32, seed=0)
    np.testing.assert_allclose(_init(boot), _theta(HOFFMANN_2022_UNROUNDED), rtol=1e-12)
    assert boot.info["start"] == "published (the full fit is degenerate)"


def test_explicit_starts():
    ref = LawParams(*(np.float64(v) for v in TRUE))
    assert resample_start(LAW, ref, init=HOFFMANN_2022_UNROUNDED) == (HOFFMANN_2022_UNROUNDED,
                                                                        "given")
    assert resample_start(LAW, ref) == (HOFFMANN_2022_UNROUNDED, "published")
    assert resample_start(LAW, ref, init="published")[0] is HOFFMANN_2022_UNROUNDED
    assert resample_start(LAW, ref, init="published", shrink=10.0) == (ref, "reference")
    assert resample_start(LAW, ref, init="reference", min_loss=2.5) == (ref, "reference")
    # an unconverged full fit is not a start either
    assert resample_start(LAW, ref, init="reference", min_loss=2.5,
                          reference_converged=False)[1] == "published (the full fit is degenerate)"
    with pytest.raises(BayescaleError, match="init must be"):
        resample_start(LAW, ref, init="hoffmann")
