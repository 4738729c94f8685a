"""Hoffmann et al.'s Approach 2 (``method="isoflop"``) against closed forms and known laws.

Oracles: profiles that are exactly quadratic in log N (the vertex and the regression are
then known in closed form); the symmetry of the Chinchilla profile when alpha = beta on a
grid centred on the optimum (the parabola's vertex is then exactly the optimum, so a =
1/2 exactly); an independent numpy.polyfit implementation of Approach 2 for the size of
its bias on off-centre grids; and bootstrap coverage over seeds against its Monte Carlo
error.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.data.runs import load_runs
from bayescale.data.simulate import simulate_runs
from bayescale.errors import BayescaleError, DataWarning
from bayescale.estimators.fit import fit
from bayescale.estimators.isoflop import fit_isoflop
from bayescale.laws.chinchilla import LawParams

A_TRUE, LOG_G_TRUE = 0.47, -0.6
BUDGETS = np.geomspace(1e19, 1e22, 6)
# alpha = beta: the isoFLOP profile of log loss is symmetric about the optimum, a = 1/2
SYMMETRIC = LawParams(E=1.69, A=406.4, B=410.7, alpha=0.3, beta=0.3)


def quadratic_frame(offsets=np.geomspace(0.3, 5.0, 7), kappa=None, budgets=BUDGETS,
                    sizes=None):
    """Runs whose log loss is exactly ``c_k + kappa_k (log N - log N*_k)^2`` with
    ``log N*_k = LOG_G_TRUE + A_TRUE log C_k`` (the grid need not be centred)."""
    kappa = np.full(len(budgets), 0.02) if kappa is None else np.asarray(kappa)
    rows = []
    for k, C in enumerate(budgets):
        n_star = np.exp(LOG_G_TRUE + A_TRUE * np.log(C))
        offs = offsets if sizes is None or sizes[k] is None else sizes[k]
        N = n_star * np.asarray(offs)
        y = 1.0 - 0.02 * k + kappa[k] * np.log(N / n_star) ** 2
        rows.append(pd.DataFrame({"N": N, "D": C / (6 * N), "loss": np.exp(y), "budget": C}))
    return pd.concat(rows, ignore_index=True)


def test_exact_quadratic_profiles_recover_a_and_G():
    frame = quadratic_frame()
    runs = load_runs(frame)
    f = fit_isoflop(runs, uncertainty="none")
    est = f.point_estimate()
    assert est["a"] == pytest.approx(A_TRUE, abs=1e-6)
    assert est["log_G_N"] == pytest.approx(LOG_G_TRUE, abs=1e-6)
    assert est["b"] == pytest.approx(1 - A_TRUE, abs=1e-6)
    assert est["log_G_D"] == pytest.approx(-np.log(6) - LOG_G_TRUE, abs=1e-6)
    n_star = np.exp(LOG_G_TRUE + A_TRUE * np.log(BUDGETS))
    got = [b["N_star"] for b in f.info["budgets"]]
    np.testing.assert_allclose(got, n_star, rtol=1e-6)
    np.testing.assert_allclose([b["curvature"] for b in f.info["budgets"]], 0.04, rtol=1e-6)
    # every bootstrap resample of exact profiles has the same vertices: a degenerate interval
    fb = fit_isoflop(runs, resamples=64)
    assert fb.num_draws == 64 - fb.info["dropped"] and fb.num_draws > 50
    np.testing.assert_allclose(fb.params.a, A_TRUE, atol=1e-6)


def test_frontier_is_G_C_to_the_a_by_hand():
    runs = load_runs(quadratic_frame())
    f = fit(runs, method="isoflop", uncertainty="none")
    est = f.point_estimate()
    fr = f.frontier([1e22])
    assert float(np.ravel(fr.N_opt)[0]) == pytest.approx(np.exp(est["log_G_N"]) * 1e22 ** est["a"],
                                                         rel=1e-9)
    assert float(np.ravel(fr.D_opt)[0]) == pytest.approx(np.exp(est["log_G_D"]) * 1e22 ** est["b"],
                                                         rel=1e-9)
    assert np.isnan(fr.L_opt).all()


def test_symmetric_law_on_centred_grid_is_exact():
    """alpha = beta, grid centred on N_opt: the fitted vertex is the optimum, a = 1/2."""
    runs = simulate_runs(SYMMETRIC, noise=0.0)
    f = fit_isoflop(runs, uncertainty="none")
    assert f.point_estimate()["a"] == pytest.approx(0.5, abs=1e-9)
    assert abs(f.info["median_centring_decades"]) < 1e-9
    assert not f.info["offcentre"]


def test_bootstrap_interval_covers_the_truth_over_seeds():
    """Coverage of the 90% interval of a over 16 noisy sweeps (noise 0.0075, as
    Chinchilla's residuals). Binomial Monte Carlo sd of the coverage: 0.075; we require
    >= 0.9 - 3 sd, and the intervals must be informative (median width < 0.2)."""
    covered, widths = [], []
    for s in range(16):
        runs = simulate_runs(SYMMETRIC, noise=0.0075, seed=100 + s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shallow-profile notes on some seeds
            f = fit_isoflop(runs, resamples=200, seed=s)
        lo, hi = f.intervals(0.9)["a"]
        covered.append(lo <= 0.5 <= hi)
        widths.append(hi - lo)
    assert np.mean(covered) >= 0.9 - 3 * np.sqrt(0.9 * 0.1 / 16)
    assert np.median(widths) < 0.2


def _polyfit_approach2(runs, budgets):
    """Independent oracle: least-squares parabolas (numpy.polyfit) and a line."""
    logC, v = [], []
    for C in np.unique(budgets):
        m = budgets == C
        c2, c1, _ = np.polyfit(runs.log_N[m], runs.log_loss[m], 2)
        logC.append(np.log(C))
        v.append(-c1 / (2 * c2))
    return np.polyfit(logC, v, 1)[0]


@pytest.mark.parametrize("offset", [0.3, -0.3])
def test_off_centre_grid_shifts_a_as_theory_predicts_and_is_reported(offset):
    """Grid centred 0.3 decades above (below) N_opt, alpha = beta, no noise. At small C
    the log-loss profile flattens in its tails (log of a cosh-like curve whose reducible
    part dominates), at large C it approaches the cosh itself (reducible loss << E), so
    the parabola's vertex moves from away-from to towards the grid's middle as C grows:
    a is biased up for grids above the optimum and down for grids below it. The size
    matches an independent numpy.polyfit implementation."""
    runs = simulate_runs(SYMMETRIC, noise=0.0, offset=offset)
    with pytest.warns(DataWarning, match="off-centre"):
        f = fit_isoflop(runs, uncertainty="none")
    a = f.point_estimate()["a"]
    assert np.sign(a - 0.5) == np.sign(offset)
    assert abs(a - 0.5) > 1e-4
    C_run = np.repeat(np.geomspace(6e18, 3e21, 9), 10)
    assert a == pytest.approx(_polyfit_approach2(runs, C_run), abs=1e-7)
    assert f.info["offcentre"]
    assert f.info["median_centring_decades"] == pytest.approx(-offset, abs=0.01)
    for b in f.info["budgets"]:
        assert b["centring"] == pytest.approx(-offset, abs=0.01)


def test_concave_profile_is_flagged_and_left_out():
    kappa = np.array([0.02, 0.02, -0.02, 0.02, 0.02, 0.02])
    runs = load_runs(quadratic_frame(kappa=kappa))
    pattern = re.escape(f"C = {BUDGETS[2]:.3g} FLOPs") + ".*no interior minimum"
    with pytest.warns(DataWarning, match=pattern):
        f = fit_isoflop(runs, uncertainty="none")
    assert f.point_estimate()["a"] == pytest.approx(A_TRUE, abs=1e-6)  # the others are exact
    flagged = f.info["flagged"]
    assert len(flagged) == 1 and flagged[0]["C"] == pytest.approx(BUDGETS[2], rel=1e-9)
    assert not f.info["budgets"][2]["used"]


def test_minimum_at_the_edge_and_too_few_runs_are_flagged():
    sizes = [None] * len(BUDGETS)
    sizes[1] = np.geomspace(0.05, 1.2, 7)  # the minimum (1.0) lies in the last gap
    sizes[4] = [0.5, 1.0, 2.0]  # three runs
    runs = load_runs(quadratic_frame(sizes=sizes))
    with pytest.warns(DataWarning) as record:
        f = fit_isoflop(runs, uncertainty="none")
    messages = [str(w.message) for w in record]
    assert any(f"C = {BUDGETS[1]:.3g}" in m and "edge of the grid" in m for m in messages)
    assert any(f"C = {BUDGETS[4]:.3g}" in m and "only 3 distinct" in m for m in messages)
    assert [b["used"] for b in f.info["budgets"]] == [True, False, True, True, False, True]
    with pytest.warns(DataWarning):
        kept = fit_isoflop(runs, uncertainty="none", keep_flagged=True)
    assert kept.point_estimate()["a"] == pytest.approx(A_TRUE, abs=1e-6)  # exact all the same


def test_budget_labels_given_explicitly():
    frame = quadratic_frame()
    runs = load_runs(frame)
    f = fit_isoflop(runs, uncertainty="none", budgets=frame["budget"].to_numpy())
    assert f.point_estimate()["a"] == pytest.approx(A_TRUE, abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    runs = load_runs(quadratic_frame())
    with pytest.raises(BayescaleError, match="uncertainty must be one of"):
        fit_isoflop(runs, uncertainty="jackknife")
    with pytest.raises(BayescaleError, match="resamples"):
        fit_isoflop(runs, resamples=1)
    with pytest.raises(BayescaleError, match="one label per run"):
        fit_isoflop(runs, budgets=[1, 2, 3])
    with pytest.raises(BayescaleError, match="takes no option 'degree'"):
        fit(runs, method="isoflop", degree=3)
    with pytest.raises(BayescaleError, match="takes no law"):
        fit(runs, method="isoflop", law="kaplan")
    kappa = np.array([0.02, -0.02, -0.02, -0.02, -0.02, 0.02])
    concave = load_runs(quadratic_frame(kappa=kappa))
    with pytest.warns(DataWarning), pytest.raises(BayescaleError, match="usable budget.*Fix"):
        fit_isoflop(concave)


def test_cli_json_carries_a_b_intervals_and_minimisers(tmp_path, capsys):
    from bayescale.cli import main

    path = tmp_path / "sweep.csv"
    quadratic_frame().to_csv(path, index=False)
    rc = main(["fit", str(path), "--method", "isoflop", "--budget-column", "budget",
               "--resamples", "64", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "isoflop"
    assert out["params"]["a"] == pytest.approx(A_TRUE, abs=1e-6)
    assert out["params"]["b"] == pytest.approx(1 - A_TRUE, abs=1e-6)
    assert out["intervals"]["a"]["lower"] == pytest.approx(A_TRUE, abs=1e-6)
    assert len(out["budgets"]) == len(BUDGETS)
    assert out["budgets"][0]["N_star"] == pytest.approx(np.exp(LOG_G_TRUE) * BUDGETS[0] ** A_TRUE,
                                                        rel=1e-6)
    assert out["flagged"] == []
    rc = main(["fit", str(path), "--method", "isoflop", "--uncertainty", "none"])
    text = capsys.readouterr().out
    assert rc == 0 and "Approach 2" in text and "centring" in text


def test_cli_frontier_and_decide(tmp_path, capsys):
    from bayescale.cli import main

    path = tmp_path / "sweep.csv"
    quadratic_frame().to_csv(path, index=False)
    rc = main(["frontier", str(path), "--method", "isoflop", "--resamples", "32", "-C", "1e22",
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    row = out["budgets"][0]
    assert row["N_opt"]["median"] == pytest.approx(np.exp(LOG_G_TRUE) * 1e22 ** A_TRUE, rel=1e-5)
    assert row["L_opt"]["median"] is None
    # decide with an allocation fit: where the plan's N sits among the N_opt draws. On
    # exactly quadratic profiles every resample recovers the true allocation, so a plan
    # 2% above the true N_opt is above every draw, within 5% of all and within 1% of none.
    n_true = float(np.exp(LOG_G_TRUE) * 1e22 ** A_TRUE)
    N = 1.02 * n_true
    rc = main(["decide", str(path), "--method", "isoflop", "--resamples", "32", "-C", "1e22",
               "-N", repr(N), "-D", repr(1e22 / (6 * N)), "--within", "1%", "--within", "5%",
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["N_opt"]["median"] == pytest.approx(n_true, rel=1e-5)
    assert out["plan_N_quantile"] == 1.0
    assert out["p_N_opt_within"] == {"1%": 0.0, "5%": 1.0}
    assert "loss law" in out["note"]


@pytest.mark.slow
def test_bayes_joint_model_recovers_a_with_good_diagnostics():
    runs = simulate_runs(SYMMETRIC, budgets=np.geomspace(1e18, 1e21, 10), noise=0.0075, seed=3)
    f = fit_isoflop(runs, uncertainty="bayes", seed=0)
    lo, hi = f.intervals(0.9)["a"]
    assert lo <= 0.5 <= hi and hi - lo < 0.1
    assert f.diagnostics.ok and f.diagnostics.divergences == 0
    assert f.idata is not None and "a" in f.idata.posterior
    assert np.allclose(f.params.b, 1 - f.params.a)


def test_weighted_regression_matches_numpy_polyfit():
    from bayescale.estimators.isoflop import regress

    rng = np.random.default_rng(0)
    log_C = np.log(BUDGETS)
    v = 0.4 * log_C + 1.0 + 0.05 * rng.standard_normal((3, log_C.size))
    w = rng.uniform(0.5, 2.0, log_C.size)
    a, g = regress(log_C, v, w)
    for r in range(3):
        slope, intercept = np.polyfit(log_C, v[r], 1, w=np.sqrt(w))  # polyfit weights residuals
        assert a[r] == pytest.approx(slope, rel=1e-10)
        assert g[r] == pytest.approx(intercept, rel=1e-10)


def test_precision_weighting_needs_the_bootstrap_and_keeps_exact_fits_exact():
    runs = load_runs(quadratic_frame())
    with pytest.raises(BayescaleError, match="precision.*bootstrap"):
        fit_isoflop(runs, uncertainty="none", weighting="precision")
    f = fit_isoflop(runs, resamples=32, weighting="precision")
    assert f.point_estimate()["a"] == pytest.approx(A_TRUE, abs=1e-6)
