"""Tests of Approach 1 (bayescale.estimators.envelope) and its synthetic training curves
(bayescale.data.curves).

Oracles: the closed-form allocation of the law the curves are drawn from (Hoffmann et
al. 2022, eq. 4, checked against ``compute_optimal``); a brute-force envelope built with
``np.interp``; a bound on the error that finitely many model sizes allow; the coverage of
the bootstrap interval over seeds, against the binomial error.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

import bayescale
from bayescale.data.curves import optimal_allocation, simulate_curves
from bayescale.data.runs import load_runs
from bayescale.errors import BayescaleError, DataWarning
from bayescale.estimators.allocation import AllocationFit
from bayescale.estimators.envelope import fit_envelope
from bayescale.laws.chinchilla import HOFFMANN_2022, log_loss
from bayescale.planning.frontier import compute_optimal

TRUTH = optimal_allocation(HOFFMANN_2022)


def _C_of(N):
    """The compute at which the true optimum is ``N``."""
    return np.exp((np.log(N) - TRUTH["log_G_N"]) / TRUTH["a"])


def test_truth_is_the_compute_optimal_frontier():
    C = np.geomspace(1e18, 1e25, 8)
    opt = compute_optimal(HOFFMANN_2022, C)
    np.testing.assert_allclose(np.log(np.asarray(opt.N_opt, dtype=float)),
                               TRUTH["log_G_N"] + TRUTH["a"] * np.log(C), atol=1e-4)
    np.testing.assert_allclose(np.log(np.asarray(opt.D_opt, dtype=float)),
                               TRUTH["log_G_D"] + TRUTH["b"] * np.log(C), atol=1e-4)
    a, b = 0.28 / (0.34 + 0.28), 0.34 / (0.34 + 0.28)
    assert TRUTH["a"] == pytest.approx(a) and TRUTH["b"] == pytest.approx(b)


def test_simulated_curves_design():
    runs = simulate_curves(sizes=[1e8, 4e8], lengths=[10, 40], checkpoints=3, noise=0.0)
    assert len(runs) == 2 * 2 * 4 and runs.group is None and len(set(runs.run)) == 4
    final = runs.to_frame().groupby("run")["D"].max().to_numpy()
    np.testing.assert_allclose(np.sort(final), [1e9, 4e9, 4e9, 1.6e10])
    np.testing.assert_allclose(runs.log_loss, np.asarray(log_loss(HOFFMANN_2022, runs.N, runs.D)),
                               rtol=1e-6)
    with pytest.raises(BayescaleError, match="sizes"):
        simulate_curves(sizes=[1e8, -1.0])
    with pytest.raises(BayescaleError, match="checkpoints"):
        simulate_curves(checkpoints=-1)


def test_noiseless_recovery_within_the_size_spacing():
    # The envelope can only pick one of the trained sizes, and under a unimodal isoFLOP
    # profile it picks one of the two that bracket the optimum: |log N_env - log N_opt|
    # <= h, the log spacing of sizes. For least squares over the kept grid points x,
    # that gives |a_hat - a| <= h * sum|x - xbar| / sum (x - xbar)^2 and the line at
    # xbar within h, hence within h + |da| |x - xbar| at any x.
    sizes = np.geomspace(1e7, 1e11, 81)
    h = np.log(sizes[1] / sizes[0])
    runs = simulate_curves(sizes=sizes, lengths=np.geomspace(5, 500, 31), noise=0.0)
    f = fit_envelope(runs, resamples=0)
    assert f.is_point and f.method == "envelope"
    env = f.info["envelope"]
    x = np.log(env["C"][env["kept"]])
    xbar = x.mean()
    bound = h * np.abs(x - xbar).sum() / ((x - xbar) ** 2).sum()
    est = f.point_estimate()
    assert bound < 0.02  # the design makes the check sharp
    assert abs(est["a"] - TRUTH["a"]) <= bound
    assert est["b"] == pytest.approx(1 - est["a"]) and abs(est["b"] - TRUTH["b"]) <= bound
    # N_opt at 1e22 (beyond the data) against compute_optimal
    n22 = float(f.frontier([1e22]).N_opt[0, 0])
    true22 = float(compute_optimal(HOFFMANN_2022, 1e22).N_opt)
    assert abs(np.log(n22 / true22)) <= h + bound * abs(np.log(1e22) - xbar)
    # every kept envelope point is one of the two sizes bracketing the optimum
    true_logN = TRUTH["log_G_N"] + TRUTH["a"] * x
    assert np.all(np.abs(np.log(env["N"][env["kept"]]) - true_logN) <= h + 1e-9)


def _brute_force(runs, grid):
    """Per size: np.interp of log loss over log C between its runs, or, within half a
    grid step beyond the ends, the end point's loss; the envelope is the min over sizes."""
    xg = np.log(grid)
    half = np.gradient(xg) / 2
    frame = pd.DataFrame({"N": runs.N, "x": np.log(runs.C), "y": runs.log_loss})
    best = np.full(xg.shape, np.inf)
    arg = np.full(xg.shape, np.nan)
    for N, g in frame.groupby("N"):
        g = g.sort_values("x")
        lo, hi = g["x"].iloc[0], g["x"].iloc[-1]
        xc = np.clip(xg, lo, hi)
        val = np.where(np.abs(xg - xc) <= half, np.interp(xc, g["x"], g["y"]), np.inf)
        better = val < best
        best, arg = np.where(better, val, best), np.where(better, N, arg)
    return best, arg


@pytest.mark.float64
def test_envelope_is_the_brute_force_minimum():
    runs = simulate_curves(sizes=[1e8, 2e8, 4e8, 8e8, 1.6e9], lengths=[4, 12, 40, 120],
                           noise=0.01, seed=5)
    grid = np.geomspace(runs.C.min(), runs.C.max(), 400)
    f = fit_envelope(runs, resamples=0, grid=grid, bracket=0, margin=None)
    best, arg = _brute_force(runs, grid)
    env = f.info["envelope"]
    reached = np.isfinite(best)
    np.testing.assert_allclose(env["C"], grid[reached], rtol=1e-12)
    np.testing.assert_allclose(np.log(env["loss"]), best[reached], atol=1e-10)
    np.testing.assert_array_equal(env["N"], arg[reached])
    np.testing.assert_allclose(env["D"], env["C"] / (6 * env["N"]), rtol=1e-12)
    segs = f.info["envelope_segments"]
    assert sum(s["grid_points"] for s in segs) == env["C"].size
    assert [s["N"] for s in segs] == [n for i, n in enumerate(arg[reached])
                                      if i == 0 or n != arg[reached][i - 1]]


@pytest.mark.float64
def test_lone_runs_count_in_their_grid_bin():
    # an isoFLOP-like sweep: one run per size (each budget its own sizes), three budgets;
    # a lone run counts at the grid point whose bin holds its compute, so each budget's
    # bin holds its best run
    rng = np.random.default_rng(0)
    rows = []
    for i, C in enumerate((1e19, 1e20, 1e21)):
        for N in np.geomspace(5e7, 2e9, 12) * 1.01 ** i:
            D = C / (6 * N)
            loss = float(np.exp(np.log(HOFFMANN_2022.E + HOFFMANN_2022.A / N ** 0.34
                                       + HOFFMANN_2022.B / D ** 0.28) + 0.003 * rng.normal()))
            rows.append({"N": N, "D": D, "loss": loss})
    runs = load_runs(pd.DataFrame(rows))
    f = fit_envelope(runs, resamples=0, grid=np.geomspace(1e19, 1e21, 201), bracket=0,
                     margin=None)
    env = f.info["envelope"]
    np.testing.assert_allclose(env["C"], [1e19, 1e20, 1e21], rtol=1e-9)
    frame = runs.to_frame()
    for C, N, L in zip(env["C"], env["N"], env["loss"]):
        at = frame[np.isclose(frame["C"], C, rtol=1e-6)]
        assert N == at.loc[at["loss"].idxmin(), "N"] and L == pytest.approx(at["loss"].min())


def test_best_per_cell_keeps_the_lowest_loss_run():
    runs = simulate_curves(sizes=np.geomspace(1e8, 1e9, 6), lengths=[5, 20, 80], noise=0.0)
    worse = dataclasses.replace(runs, loss=runs.loss * 1.05, run=runs.run + 1000,
                                row=runs.row + 1000)
    both = load_runs(pd.concat([runs.to_frame(), worse.to_frame()]).reset_index(drop=True),
                     run_column="run")
    f0 = fit_envelope(runs, resamples=0)
    f1 = fit_envelope(both, resamples=0)
    assert f1.point_estimate() == f0.point_estimate()
    np.testing.assert_array_equal(f1.info["envelope"]["loss"], f0.info["envelope"]["loss"])
    assert "18 of 36 runs" in f1.info["notes"]["best_per_cell"]
    assert len(f1.runs) == 18 and np.all(np.isin(f1.runs.loss, runs.loss))
    with pytest.raises(BayescaleError, match="best_per_cell"):
        fit_envelope(both, resamples=0, best_per_cell=False)


def _slope_bound(f, h):
    """The bound on |a_hat - a| of test_noiseless_recovery_within_the_size_spacing."""
    env = f.info["envelope"]
    x = np.log(env["C"][env["kept"]])
    return h * np.abs(x - x.mean()).sum() / ((x - x.mean()) ** 2).sum()


def test_checkpoints_final_by_default_and_warned_when_used():
    sizes, lengths = np.geomspace(1e8, 1e10, 11), np.geomspace(5, 500, 6)
    runs = simulate_curves(sizes=sizes, lengths=lengths, checkpoints=2, noise=0.0)
    f = fit_envelope(runs, resamples=0)
    assert "final checkpoint" in f.info["notes"]["checkpoints"] and len(f.runs) == 11 * 6
    finals = simulate_curves(sizes=sizes, lengths=lengths, noise=0.0)
    assert f.point_estimate() == fit_envelope(finals, resamples=0).point_estimate()
    with pytest.warns(DataWarning, match="schedule"):
        fc = fit_envelope(runs, resamples=0, use_checkpoints=True)
    assert fc.info["settings"]["curves"].startswith("one per run")
    # checkpoints on the law (no schedule gap) give the law's allocation too
    h = np.log(sizes[1] / sizes[0])
    assert abs(fc.point_estimate()["a"] - TRUTH["a"]) <= _slope_bound(fc, h)
    with pytest.raises(BayescaleError, match="run column"):
        fit_envelope(dataclasses.replace(finals, run=None), resamples=0, use_checkpoints=True)


def test_decaying_schedule_checkpoints_bias_the_envelope():
    # One length per size, read at 40 checkpoints: on the law (no gap) the checkpoint
    # envelope recovers a within the size-spacing bound; with a decaying schedule's gap
    # (intermediate checkpoints above the law) the larger models, earlier in their runs
    # at a given compute, lose to smaller ones and a comes out low: what the warning says.
    sizes = np.geomspace(1e8, 1e10, 41)
    h = np.log(sizes[1] / sizes[0])
    est = {}
    for gap in (0.0, 0.02):
        runs = simulate_curves(sizes=sizes, lengths=[400], checkpoints=39, schedule_gap=gap,
                               noise=0.0)
        with pytest.warns(DataWarning, match="schedule"):
            # noiseless: Hoffmann's plain rule (no margin), to isolate the schedule's effect
            est[gap] = fit_envelope(runs, resamples=0, use_checkpoints=True, margin=None)
    bound = _slope_bound(est[0.0], h)
    assert abs(est[0.0].point_estimate()["a"] - TRUTH["a"]) <= bound
    assert est[0.02].point_estimate()["a"] < TRUTH["a"] - bound


def test_bad_inputs_raise_clear_errors():
    runs = simulate_curves(sizes=np.geomspace(1e8, 1e9, 6), lengths=[5, 20, 80], noise=0.0)
    one = simulate_curves(sizes=[1e8], lengths=[5, 20, 80], noise=0.0)
    with pytest.raises(BayescaleError, match="at least two model sizes"):
        fit_envelope(one, resamples=0)
    two = simulate_curves(sizes=[1e8, 2e8], lengths=[5, 20, 80], noise=0.0)
    with pytest.raises(BayescaleError, match="bracket"):
        fit_envelope(two, resamples=0)
    with pytest.warns(DataWarning, match="only 2 distinct model sizes"):
        fit_envelope(two, resamples=0, bracket=0, margin=None)
    bad = dataclasses.replace(runs, loss=np.where(np.arange(len(runs)) == 3, -1.0, runs.loss))
    with pytest.raises(BayescaleError, match="loss must be positive"):
        fit_envelope(bad, resamples=0)
    with pytest.raises(BayescaleError, match="Runs"):
        fit_envelope(runs.to_frame(), resamples=0)
    for kwargs, match in [({"grid": 3}, "grid"), ({"grid": [1e20, 1e19] * 6}, "grid"),
                          ({"resamples": -1}, "resamples"), ({"bracket": -1}, "bracket"),
                          ({"margin": 0.5}, "margin")]:
        with pytest.raises(BayescaleError, match=match):
            fit_envelope(runs, **{"resamples": 0, **kwargs})
    with pytest.raises(BayescaleError, match="no option 'bins'"):
        bayescale.fit(runs, method="envelope", bins=3)


def test_fit_dispatch_and_frontier_by_hand():
    runs = simulate_curves(noise=0.0075, seed=3)
    f = bayescale.fit(runs, method="envelope", resamples=50, seed=1)  # shapes as _coverage
    assert isinstance(f, AllocationFit) and f.num_draws == f.info["resamples_usable"]
    assert f.info["resamples_usable"] > 45
    p = f.params
    fr = f.frontier([1e22])
    np.testing.assert_allclose(fr.N_opt[:, 0], np.exp(p.log_G_N) * 1e22 ** p.a, rtol=1e-10)
    np.testing.assert_allclose(fr.D_opt[:, 0], np.exp(p.log_G_D) * 1e22 ** p.b, rtol=1e-10)
    np.testing.assert_allclose(fr.N_opt * fr.D_opt * 6, 1e22, rtol=1e-10)
    d = f.to_dict()
    assert d["method"] == "envelope" and set(d["intervals"]) >= {"a", "b"}
    same = bayescale.fit(runs, method="envelope", resamples=50, seed=1)
    np.testing.assert_array_equal(same.params.a, p.a)


def _coverage(seeds, resamples, num_grid=None, noise=0.0075):
    # num_grid: a grid over the computes whose optimum lies well inside the trained sizes
    # (5e7-5e9), N_opt from 2e8 to 1.25e9; None: the default grid over the whole range,
    # where the margin rule keeps the fit off the edges
    grid = 1500 if num_grid is None else np.geomspace(_C_of(2e8), _C_of(1.25e9), num_grid)
    hits = 0
    for seed in seeds:
        f = fit_envelope(simulate_curves(noise=noise, seed=seed), resamples=resamples,
                         grid=grid, seed=seed)
        lo, hi = f.intervals(0.9)["a"]
        hits += lo <= TRUTH["a"] <= hi
    return hits


def test_bootstrap_interval_covers_the_truth():
    # default settings over the data's whole range, 10 seeds at level 0.9: fewer than 7
    # hits has probability < 1.3% if coverage is 0.9 (without the margin rule, 0.35)
    n = 10
    assert binom.cdf(6, n, 0.9) < 0.013
    assert _coverage(range(100, 100 + n), resamples=100) >= 7


@pytest.mark.slow
def test_bootstrap_interval_coverage_many_seeds():
    # 40 seeds: fewer than 31 hits has probability 0.5% at coverage 0.9
    n = 40
    assert binom.cdf(30, n, 0.9) < 0.006
    assert _coverage(range(200, 200 + n), resamples=400, num_grid=300) >= 31
