"""The report's bootstrap runs in a thread beside NUTS (bayescale.report.compare.fit_methods).

Oracles: the bootstrap of fit_methods equals the bootstrap fitted alone with the same seed
(bit for bit); a warning or an error raised in the thread reaches the caller; the compile
clock of NUTS counts its own thread's compiles only (a compile in another thread adds
nothing, one in its own thread adds its time).
"""

from __future__ import annotations

import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayescale.estimators._nuts_program import CompileClock
from bayescale.errors import ConvergenceWarning
from bayescale.estimators.fit import fit
from bayescale.report import compare
from _report_fits import small_fits


def test_the_bootstrap_beside_nuts_is_the_bootstrap_alone():
    fits = small_fits()
    alone = compare.valid_draws(fit(fits["bayes"].runs, method="bootstrap", resamples=100,
                                    seed=0, level=0.9))
    for got, want in zip(fits["bootstrap"].params, alone.params):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _fake_fits(monkeypatch, bootstrap):
    fits = small_fits()

    def fake_fit(runs, method, **kwargs):
        if method == "bootstrap":
            return bootstrap(fits)
        time.sleep(0.5)  # NUTS: the bootstrap thread runs meanwhile
        return fits["bayes"]

    monkeypatch.setattr(compare, "fit", fake_fit)
    return fits


def test_a_warning_of_the_bootstrap_thread_reaches_the_caller_and_is_not_nuts(monkeypatch):
    """The bootstrap warns while NUTS runs (ordered by events): the warning reaches the
    caller, and a ConvergenceWarning of the bootstrap is not counted as NUTS's."""
    started, warned = threading.Event(), threading.Event()
    fits = small_fits()

    def fake_fit(runs, method, **kwargs):
        if method == "bootstrap":
            assert started.wait(30)
            warnings.warn(ConvergenceWarning("resample 7 did not converge"))
            warned.set()
            return fits["bootstrap"]
        started.set()
        assert warned.wait(30)  # NUTS still running when the bootstrap warns
        return fits["bayes"]

    monkeypatch.setattr(compare, "fit", fake_fit)
    with pytest.warns(ConvergenceWarning, match="resample 7"):
        out = compare.fit_methods(fits["bayes"].runs, resamples=100)
    assert out["bootstrap"] is fits["bootstrap"]
    assert out["bayes"].info["convergence_warnings"] == []


def test_an_error_of_the_bootstrap_thread_is_raised(monkeypatch):
    def bootstrap(fits):
        raise ValueError("the bootstrap failed")

    fits = _fake_fits(monkeypatch, bootstrap)
    with pytest.raises(ValueError, match="the bootstrap failed"):
        compare.fit_methods(fits["bayes"].runs, resamples=100)


def test_waiting_for_the_thread_stops_on_an_interrupt():
    release = threading.Event()
    job = compare._Beside(lambda: release.wait(30))

    calls = []

    def interrupted():  # Ctrl-C pressed after the wait began
        calls.append(1)
        if len(calls) >= 3:
            raise KeyboardInterrupt

    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        job.result(check=interrupted)
    assert len(calls) == 3 and time.perf_counter() - t0 < 10  # not the thread's 30 s
    release.set()
    assert job.result() is True


def test_the_compile_clock_counts_its_own_thread_only():
    def compile_once(k):  # a new function each time: a fresh trace and compile
        jax.jit(lambda x: jnp.sin(x) * k + jnp.cumsum(x)).lower(jnp.ones(7)).compile()

    with CompileClock() as clock:
        other = threading.Thread(target=compile_once, args=(2.0,))
        other.start()
        other.join()
    assert clock.seconds == 0.0
    with CompileClock() as clock:
        compile_once(3.0)
    assert clock.seconds > 0.0
