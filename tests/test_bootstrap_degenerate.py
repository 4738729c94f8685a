"""The bootstrap on few, noisy runs: degenerate resamples are dropped, counted, warned about.

On 9 noisy synthetic runs (one model per isoFLOP budget) some resamples leave the
law unidentified and run off to ``E = 0``, exponents in the thousands or infinite
``A`` (issue 13). Oracles: the rule of
:func:`bayescale.estimators.bootstrap.degenerate_resamples` checked on hand-built
draws, and, on the awkward settings, that everything downstream of the fit
(summary, intervals, frontier, decisions) runs and is finite.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayescale import fit
from bayescale.data.simulate import simulate_runs
from bayescale.errors import ConvergenceWarning
from bayescale.estimators.bootstrap import (
    MAX_EXPONENT,
    MIN_E_FRACTION,
    degenerate_resamples,
)
from bayescale.laws.chinchilla import LAW, LawParams
from bayescale.planning.decisions import compare_plans


def test_the_rule_on_hand_built_draws():
    #            ok     nan     unconv  E=0     alpha   beta=6 A=inf   E tiny
    E = np.array([1.8, np.nan, 1.8, 0.0, 1.8, 1.8, 1.8, 1e-7])
    A = np.array([400, 400, 400, 400, 400, 400, np.inf, 400.0])
    B = np.full(8, 1500.0)
    alpha = np.array([0.3, 0.3, 0.3, 0.3, 4285.0, 0.3, 0.3, 0.3])
    beta = np.array([0.3, 0.3, 0.3, 0.3, 0.3, MAX_EXPONENT + 1, 0.3, 0.3])
    converged = np.array([True, True, False, True, True, True, True, True])
    bad, counts = degenerate_resamples(LAW, LawParams(E, A, B, alpha, beta), converged,
                                       min_loss=2.0)
    np.testing.assert_array_equal(bad, [False] + [True] * 7)
    assert counts == {"non-finite": 2, "not converged": 1, "non-positive": 1,
                      "exponent > 5": 2, "E ~ 0": 1}
    # The E threshold is relative to the smallest loss: 1e-7 is fine for losses ~ 0.01.
    assert 1e-7 >= MIN_E_FRACTION * 0.01
    bad, _ = degenerate_resamples(LAW, LawParams(E[-1:], A[-1:], B[-1:], alpha[-1:], beta[-1:]),
                                  converged[-1:], min_loss=0.01)
    assert not bad.any()


def test_a_parameter_beyond_float32_is_degenerate():
    # A data-constrained resample whose R_N* ran off to 4.5e154 (seen on the
    # data_constrained runs): the float32 frontier cannot hold it, so it is dropped and
    # counted, not passed on to crash `bayescale design`.
    from bayescale.laws.data_constrained import LAW as DC, MUENNIGHOFF_2023

    draws = type(MUENNIGHOFF_2023)
    cols = {k: np.full(3, float(v)) for k, v in MUENNIGHOFF_2023._asdict().items()}
    cols["R_N"][1] = 4.52475e154
    cols["A"][2] = 1e-40  # non-zero and below float32's smallest normal
    bad, counts = degenerate_resamples(DC, draws(**cols), np.ones(3, bool), min_loss=2.0)
    np.testing.assert_array_equal(bad, [False, True, True])
    assert counts == {"beyond float32": 2}


# Settings where the undropped bootstrap had degenerate resamples (issue 13).
AWKWARD = [(0.02, 0), (0.02, 3), (0.01, 2)]


@pytest.mark.parametrize("noise,seed", AWKWARD)
def test_nine_noisy_runs_give_a_usable_bootstrap(noise, seed):
    runs = simulate_runs(models_per_budget=1, noise=noise, seed=seed)
    assert len(runs) == 9
    R = 400
    with pytest.warns(ConvergenceWarning, match=r"\d+ of 400 resamples were degenerate"):
        boot = fit(runs, method="bootstrap", resamples=R, seed=0)
    info = boot.info
    dropped = info["dropped"]
    assert dropped and info["num_kept"] + sum(dropped.values()) == R
    assert boot.num_draws == info["num_kept"]
    p = boot.params
    assert all(np.all(np.isfinite(v)) for v in p)
    assert np.all(p.alpha <= MAX_EXPONENT) and np.all(p.beta <= MAX_EXPONENT)
    assert np.all(p.E >= MIN_E_FRACTION * math.exp(runs.log_loss.min()))
    # Nothing the fit produced can crash the tool: summary, intervals, frontier, decisions.
    table = boot.summary()
    assert np.all(np.isfinite(table[["estimate", "lower", "upper"]].to_numpy()))
    assert all(math.isfinite(lo) and math.isfinite(hi) for lo, hi in boot.intervals().values())
    front = boot.frontier([1e22, 5.76e23])
    summ = front.summary()
    assert np.all(np.isfinite(summ["N_opt_median"].to_numpy()))
    plans = compare_plans(boot.params, [1e22])
    assert np.all(np.isfinite(plans["expected_loss"].to_numpy()))
    assert "dropped" in boot.to_dict()
