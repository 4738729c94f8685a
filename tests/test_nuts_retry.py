"""The automatic second NUTS attempt: when the first attempt fails the diagnostics for the
sampler's sake (divergences or R-hat), the fit samples again with target_accept 0.95 and a
longer warmup, keeps the second attempt, and records the first."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from bayescale.data.simulate import simulate_runs
from bayescale.estimators import diagnostics as diag_mod
from bayescale.estimators import nuts
from bayescale.errors import ConvergenceWarning


def _fail_first(monkeypatch, **failure):
    real = diag_mod.compute_diagnostics
    calls = []

    def fake(idata, exclude=()):
        d = real(idata, exclude=exclude)
        calls.append(d)
        if len(calls) == 1:
            d = dataclasses.replace(d, ok=False, **failure) if dataclasses.is_dataclass(d) \
                else d._replace(ok=False, **failure)
        return d

    monkeypatch.setattr(diag_mod, "compute_diagnostics", fake)
    monkeypatch.setattr(nuts, "RETRY_WARMUP", 60)  # keep the test short
    return calls


def test_divergences_trigger_a_second_attempt(monkeypatch):
    calls = _fail_first(monkeypatch, divergences=3)
    starts = []  # the start (a Huber fit for other laws and for HMCECS) is found once
    real_start = nuts.initial_values
    monkeypatch.setattr(nuts, "initial_values", lambda *a: starts.append(1) or real_start(*a))
    runs = simulate_runs(models_per_budget=4, seed=1)
    with warnings.catch_warnings():
        # the second attempt is short too (a test): its own diagnostics may warn
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = nuts.sample_posterior(runs, chains=2, warmup=50, draws=200, seed=0)
    assert len(calls) == 2 and len(starts) == 1
    assert post.info["target_accept"] == nuts.RETRY_TARGET_ACCEPT
    assert post.info["warmup"] == max(2 * 50, 60)
    first = post.info["retry"]["first_attempt"]
    assert first["divergences"] == 3 and first["target_accept"] == 0.8 and first["warmup"] == 50


def test_no_retry_for_a_short_run_or_when_disabled(monkeypatch):
    calls = _fail_first(monkeypatch, divergences=3)
    runs = simulate_runs(models_per_budget=4, seed=1)
    with pytest.warns(Warning):
        post = nuts.sample_posterior(runs, chains=2, warmup=50, draws=200, seed=0, retry=False)
    assert len(calls) == 1 and "retry" not in post.info
    calls.clear()
    with pytest.warns(Warning):  # 2 x 100 draws cannot reach 400 ESS: retrying is pointless
        nuts.sample_posterior(runs, chains=2, warmup=50, draws=100, seed=0)
    assert len(calls) == 1
