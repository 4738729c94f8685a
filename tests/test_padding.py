"""Size buckets: padded, masked runs give the same fit, and data of a new size in the
same bucket reuse the compiled programs (issue 9, "No compile per dataset size")."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

from bayescale.data.simulate import simulate_runs
from bayescale.errors import ConvergenceWarning
from bayescale.estimators import huber
from bayescale.estimators import model as models
from bayescale.estimators import nuts as inference
from bayescale.estimators.padding import MIN_BUCKET, bucket_size, pad_rows
from bayescale.laws.chinchilla import LAW as CHINCHILLA

TINY = dict(chains=1, warmup=40, draws=40)


@pytest.mark.parametrize("n", list(range(1, 70)) + [239, 240, 241, 1000, 4843, 200_000])
def test_bucket_holds_the_rows_and_wastes_at_most_a_quarter(n):
    size = bucket_size(n)
    assert size >= n
    # the smallest of 2^k * (1, 1.25, 1.5, 1.75): waste below 25% beyond the minimum bucket
    assert size == MIN_BUCKET or size < 1.25 * n + 1
    # brute force: no smaller admissible size holds n
    admissible = sorted({int(2**k * s) for k in range(3, 20) for s in (1, 1.25, 1.5, 1.75)
                         if float(2**k * s).is_integer() and 2**k * s >= MIN_BUCKET})
    assert size == next(m for m in admissible if m >= n)


def test_no_buckets_switch(monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_BUCKETS", "1")
    assert bucket_size(241) == 241


def test_pad_rows_cycles_real_rows():
    X = np.arange(10.0).reshape(5, 2)
    y = np.arange(5.0)
    Xp, yp, mask = pad_rows(8, X, y)
    np.testing.assert_array_equal(yp, [0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(Xp[5:], X[:3])
    np.testing.assert_array_equal(mask, [True] * 5 + [False] * 3)
    with pytest.raises(ValueError):
        pad_rows(4, X, y)


def test_masked_padded_model_has_the_unpadded_log_density():
    # The oracle: NumPyro's joint log density of the model on the real runs alone.
    runs = simulate_runs(seed=5, models_per_budget=5)
    log_X = np.column_stack([runs.log_N, runs.log_D])
    y = runs.log_loss
    centre = models.data_centre(*log_X.T)
    kwargs = dict(law=CHINCHILLA, priors=None, likelihood="student_t", centre=centre,
                  E_max=float(np.exp(np.median(y))))
    params = {"E": 1.7, "alpha": 0.33, "beta": 0.29, "sigma": 0.01,
              "a_c": 6.0 - 0.33 * centre[0], "b_c": 6.0 - 0.29 * centre[1]}
    with jax.enable_x64(True):
        ref, _ = log_density(models.law_model, (jnp.asarray(log_X), jnp.asarray(y)), kwargs,
                             params)
        Xp, yp, mask = pad_rows(bucket_size(len(y)) + 7, log_X, y)
        pad, _ = log_density(models.law_model, (jnp.asarray(Xp), jnp.asarray(yp)),
                             {**kwargs, "mask": jnp.asarray(mask)}, params)
        unmasked, _ = log_density(models.law_model, (jnp.asarray(Xp), jnp.asarray(yp)), kwargs,
                                  params)
    assert float(pad) == pytest.approx(float(ref), rel=1e-12, abs=1e-9)
    assert abs(float(unmasked) - float(ref)) > 1.0  # the mask is what makes them equal


@pytest.mark.float64
def test_padded_huber_fit_is_the_unpadded_fit(monkeypatch):
    runs = simulate_runs(seed=7)
    args = (np.log(runs.N), np.log(runs.D), runs.log_loss)
    assert bucket_size(len(runs)) > len(runs)  # the default fit really pads
    padded = huber.fit_huber(*args)
    monkeypatch.setenv("BAYESCALE_NO_BUCKETS", "1")
    plain = huber.fit_huber(*args)
    assert padded.info["objective"] == pytest.approx(plain.info["objective"], rel=1e-10)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert float(getattr(padded.params, name)) == pytest.approx(
            float(getattr(plain.params, name)), rel=1e-6)


def test_nuts_on_another_size_in_the_same_bucket_reuses_the_program(monkeypatch):
    monkeypatch.setattr(inference, "_PROGRAMS", OrderedDict())
    runs = simulate_runs(seed=11, models_per_budget=6)  # 54 runs: bucket 56
    fewer = runs.resample(np.arange(50))  # 50 runs: bucket 56
    assert bucket_size(len(runs)) == bucket_size(len(fewer)) != len(fewer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = inference.sample_posterior(runs, seed=0, **TINY)
        b = inference.sample_posterior(fewer, seed=0, **TINY)
    assert len(inference._PROGRAMS) == 1
    # pointwise log-likelihood only for the real runs (arviz.loo sees n, not the bucket)
    assert a.idata.log_likelihood["log_loss"].shape[-1] == len(runs)
    assert b.idata.log_likelihood["log_loss"].shape[-1] == len(fewer)
