"""Hoffmann et al.'s three approaches side by side (issue 11): ``compare_approaches``,
its figure and ``bayescale compare --approaches``.

Oracle: synthetic runs from a known Chinchilla law with alpha = beta, for which all
three approaches estimate the same allocation, ``a = b = 1/2`` (Hoffmann et al. 2022,
eq. 4: a = beta / (alpha + beta)), and ``N_opt = G (C/6)**a`` in closed form.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from bayescale.cli import main
from bayescale.data.simulate import simulate_runs
from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import LawParams
from bayescale.report.approaches import compare_approaches, plot_approaches

# alpha = beta, and A / B chosen so that the optimum is 20 tokens per parameter:
# G = (A / B)**(1 / 0.6), D_opt / N_opt = G**-2 = 20.
TRUTH = LawParams(E=1.69, A=1000.0 * 20 ** -0.3, B=1000.0, alpha=0.3, beta=0.3)
FAST = {1: {"resamples": 100}, 2: {"resamples": 100}, 3: {"resamples": 100}}


def _closed_form_N(C):
    G = (TRUTH.alpha * TRUTH.A / (TRUTH.beta * TRUTH.B)) ** (1 / (TRUTH.alpha + TRUTH.beta))
    return G * (np.asarray(C) / 6) ** 0.5


@pytest.fixture(scope="module")
def comparison():
    runs = simulate_runs(TRUTH, budgets=np.geomspace(1e18, 1e21, 8), noise=0.003, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Approach 1 on an isoFLOP sweep: few sizes per C
        return compare_approaches(runs, (1, 2, 3), budgets=[1e22, 1e24], options=FAST)


def test_each_approach_recovers_the_known_allocation(comparison):
    assert list(comparison.table.index) == [1, 2, 3] and not comparison.skipped
    for k, row in comparison.table.iterrows():
        # the interval holds a = 1/2, and b = 1 - a for approaches 2 and 3 (D* = C / 6N*)
        assert row["a_lower"] <= 0.5 <= row["a_upper"], (k, row["a_lower"], row["a_upper"])
        assert row["a_upper"] - row["a_lower"] < 0.2, k
        if k in (2, 3):
            assert row["a"] + row["b"] == pytest.approx(1.0, abs=1e-9)
        # N_opt at 1e22 FLOPs, 1 decade beyond the runs: the truth inside the interval
        lo, hi = row["N_opt@1e+22_lower"], row["N_opt@1e+22_upper"]
        assert lo <= _closed_form_N(1e22) <= hi, (k, lo, hi, _closed_form_N(1e22))


def test_table_is_each_fits_own_frontier(comparison):
    # the table's numbers are the fits' frontiers: recomputed by hand from the draws
    for k, result in comparison.fits.items():
        N = np.asarray(result.frontier([1e24]).N_opt)[:, 0]
        lo, med, hi = np.quantile(N, [0.05, 0.5, 0.95])
        row = comparison.table.loc[k]
        assert row["N_opt@1e+24_median"] == pytest.approx(med, rel=1e-12)
        assert row["N_opt@1e+24_lower"] == pytest.approx(lo, rel=1e-12)
        assert row["N_opt@1e+24_upper"] == pytest.approx(hi, rel=1e-12)
    iso = comparison.fits[2]
    d = iso.draws()
    by_hand = np.exp(d["log_G_N"] + d["a"] * np.log(1e24))
    assert np.median(by_hand) == pytest.approx(comparison.table.loc[2, "N_opt@1e+24_median"],
                                               rel=1e-12)


def test_json_shape(comparison):
    out = json.loads(json.dumps(comparison.to_dict()))
    assert [r["approach"] for r in out["approaches"]] == [1, 2, 3]
    first = out["approaches"][0]
    assert set(first["a"]) == {"median", "lower", "upper"}
    assert [b["C"] for b in first["at_budgets"]] == [1e22, 1e24]
    assert out["hoffmann_2022_table_2"]["2"]["a_interval"] == [0.462, 0.534]


def test_figure_draws_each_approach_band(comparison):
    fig = plot_approaches(comparison)
    for k, result in comparison.fits.items():
        C, med, lo, hi = fig.drawn[f"Approach {k}"]
        N = np.asarray(result.frontier(C).N_opt)
        np.testing.assert_allclose(med, np.median(N, axis=0), rtol=1e-6)  # float32
        assert np.all(lo <= med) and np.all(med <= hi)
    C, N, _, _ = fig.drawn["Kaplan et al. (2020)"]
    # Kaplan et al. (2020), Table 6: N = 1.3e9 (C / 8.64e19)**0.73
    np.testing.assert_allclose(N, 1.3e9 * (C / 8.64e19) ** 0.73, rtol=1e-12)


def test_an_approach_the_data_do_not_allow_is_skipped_with_the_reason():
    # two budgets only: Approach 2 needs three for intervals
    runs = simulate_runs(TRUTH, budgets=[1e19, 1e20], models_per_budget=8, noise=0.003,
                         seed=1)
    with pytest.raises(BayescaleError, match="Approach 2: .*budget"):
        compare_approaches(runs, (2,), options=FAST)
    with pytest.raises(BayescaleError, match="approaches are 1"):
        compare_approaches(runs, (4,))


@pytest.mark.slow
def test_the_others_are_fitted_when_one_is_skipped():
    runs = simulate_runs(TRUTH, budgets=[1e19, 1e20], models_per_budget=8, noise=0.003,
                         seed=1)
    res = compare_approaches(runs, (2, 3), options=FAST)
    assert list(res.table.index) == [3]
    assert 2 in res.skipped and "budget" in res.skipped[2]


def test_cli_compare_approaches_json(tmp_path, capsys):
    runs = simulate_runs(TRUTH, budgets=np.geomspace(1e18, 1e21, 8), noise=0.003, seed=2)
    path = tmp_path / "runs.csv"
    runs.to_frame().to_csv(path, index=False)
    fig = tmp_path / "approaches.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["compare", str(path), "--approaches", "2,3", "--resamples", "100",
                     "--reference-budget", "1e22", "--json", "--figure", str(fig)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["approach"] for r in out["approaches"]] == [2, 3]
    assert fig.stat().st_size > 10_000
    assert main(["compare", str(path), "--approaches", "2,5"]) == 2
    assert "--approaches takes" in capsys.readouterr().err
