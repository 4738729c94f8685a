"""Stacking laws by leave-future-out predictive performance (bayescale.estimators.stacking)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bayescale import fit, load_runs
from bayescale.data.synthetic import simulate_frame
from bayescale.errors import BayescaleError
from bayescale.estimators.stacking import (LawStack, mixture, mixture_indices, stack_laws,
                                           stacking_weights)
from bayescale.laws.kaplan import KaplanParams
from bayescale.planning.frontier import Frontier



def _objective(lp, w):
    return np.sum(np.log(np.exp(lp) @ w))


def _kaplan_frame(p: KaplanParams, *, noise=0.01, seed=0, n_per=8):
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.geomspace(1e18, 1e21, 6):
        for N in np.geomspace(C ** 0.5 / 300, C ** 0.5 / 3, n_per):
            D = C / (6 * N)
            L = ((p.N_c / N) ** (p.alpha_N / p.alpha_D) + p.D_c / D) ** p.alpha_D
            rows.append((N, D, L * np.exp(noise * rng.standard_normal())))
    return pd.DataFrame(rows, columns=["N", "D", "loss"])


def _chinchilla_frame(seed=0):
    return simulate_frame(budgets=np.geomspace(1e18, 1e21, 6), models_per_budget=8,
                          noise=0.01, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_weights_match_a_brute_force_grid_for_two_models(seed):
    rng = np.random.default_rng(seed)
    n = 12
    lp = np.stack([rng.normal(0, 1.5, n), rng.normal(0.3 * seed - 0.5, 1.5, n)], axis=1)
    grid = np.linspace(0, 1, 100_001)
    values = np.log(np.exp(lp) @ np.stack([grid, 1 - grid])).sum(axis=0)
    best = grid[int(np.argmax(values))]
    assert values.max() >= _objective(lp, stacking_weights(lp)) - 1e-9
    w = stacking_weights(lp)
    assert w.shape == (2,) and abs(w.sum() - 1) < 1e-9
    assert abs(w[0] - best) < 1e-3


def test_weights_go_to_the_model_that_always_predicts_better():
    lp = np.array([[0.0, -5.0], [1.0, -2.0], [0.5, -1.0]])
    w = stacking_weights(lp)
    assert w[0] > 0.999
    # A constant offset per point does not change the weights.
    w2 = stacking_weights(lp + np.array([[100.0], [-50.0], [3.0]]))
    np.testing.assert_allclose(w, w2, atol=1e-6)


def test_stacking_weights_reject_bad_input():
    with pytest.raises(BayescaleError, match="2-d"):
        stacking_weights(np.zeros(3))
    with pytest.raises(BayescaleError, match="NaN"):
        stacking_weights(np.array([[0.0, np.nan]]))
    with pytest.raises(BayescaleError, match="no model"):
        stacking_weights(np.array([[-np.inf, -np.inf], [0.0, 0.0]]))


def _frontier(N, budgets=(1e22, 1e24)):
    N = np.asarray(N, float)
    D = np.asarray(budgets, float)[None, :] / (6 * N)
    return Frontier(N_opt=N, D_opt=D, L_opt=np.ones_like(N), tokens_per_param=D / N,
                    budgets=np.asarray(budgets, float), converged=np.ones(N.shape, bool),
                    extrapolation=np.zeros(len(budgets)))


def test_mixture_quantiles_equal_the_pooled_draws_by_hand():
    rng = np.random.default_rng(0)
    a = _frontier(10 ** rng.normal(9, 0.1, (100, 2)))
    b = _frontier(10 ** rng.normal(10, 0.2, (50, 2)))
    mixed = mixture([a, b], [0.75, 0.25], num_draws=400, seed=3)
    # 300 draws of a (3 whole copies), 100 of b (2 whole copies).
    pooled = np.concatenate([np.tile(a.N_opt, (3, 1)), np.tile(b.N_opt, (2, 1))])
    assert mixed.num_draws == 400
    table = mixed.summary(0.9)
    np.testing.assert_allclose(table["N_opt_median"], np.quantile(pooled, 0.5, axis=0))
    np.testing.assert_allclose(table["N_opt_lower"], np.quantile(pooled, 0.05, axis=0))
    np.testing.assert_allclose(table["N_opt_upper"], np.quantile(pooled, 0.95, axis=0))
    # A remainder is drawn without replacement from the law's own draws.
    odd = mixture([a, b], [0.705, 0.295], num_draws=200, seed=1)
    assert np.isin(odd.N_opt[:141, 0], a.N_opt[:, 0]).all()
    assert np.isin(odd.N_opt[141:, 0], b.N_opt[:, 0]).all()
    assert len(np.unique(odd.N_opt[100:141, 0])) == 41


def test_mixture_indices_are_the_documented_draws_and_mixture_pools_them():
    """Largest-remainder counts, whole copies plus a remainder without replacement from
    ``default_rng(seed)``, laws in order: recomputed here with numpy."""
    rng = np.random.default_rng(1)
    a = _frontier(10 ** rng.normal(9, 0.1, (30, 2)))
    b = _frontier(10 ** rng.normal(10, 0.2, (20, 2)))
    c = _frontier(10 ** rng.normal(11, 0.2, (7, 2)))
    w, num, seed = [0.512, 0.333, 0.155], 101, 5
    idx = mixture_indices([30, 20, 7], w, num_draws=num, seed=seed)
    # 101 w = 51.712, 33.633, 15.655: floors 51, 33, 15 (99); the two largest remainders
    # (0.712, 0.655) get one more: 52, 33, 16
    assert [len(i) for i in idx] == [52, 33, 16]
    by_hand = np.random.default_rng(seed)
    expected = []
    for S, m in ((30, 52), (20, 33), (7, 16)):
        expected.append(np.concatenate([np.tile(np.arange(S), m // S),
                                        np.sort(by_hand.choice(S, m % S, replace=False))]))
    for got, want in zip(idx, expected):
        np.testing.assert_array_equal(got, want)
    mixed = mixture([a, b, c], w, num_draws=num, seed=seed)
    np.testing.assert_array_equal(mixed.N_opt, np.concatenate(
        [f.N_opt[i] for f, i in zip((a, b, c), expected)]))
    # a weight of zero takes no draw; a weight of one takes every draw once, in order
    none, all_ = mixture_indices([30, 20], [0.0, 1.0], num_draws=20, seed=0)
    assert none.size == 0
    np.testing.assert_array_equal(all_, np.arange(20))
    with pytest.raises(BayescaleError, match="sum to 1"):
        mixture_indices([3, 3], [0.7, 0.7], num_draws=4)


def test_mixture_rejects_bad_input():
    a = _frontier(np.ones((4, 2)))
    with pytest.raises(BayescaleError, match="one weight per frontier"):
        mixture([a, a], [1.0], num_draws=4)
    with pytest.raises(BayescaleError, match="sum to 1"):
        mixture([a, a], [0.7, 0.7], num_draws=4)
    with pytest.raises(BayescaleError, match="num_draws"):
        mixture([a, a], [0.5, 0.5], num_draws=0)
    with pytest.raises(BayescaleError, match="different budgets"):
        mixture([a, _frontier(np.ones((4, 2)), budgets=(1e21, 1e24))], [0.5, 0.5], num_draws=4)


@pytest.mark.slow
def test_kaplan_data_give_kaplan_most_weight():
    runs = load_runs(_kaplan_frame(KaplanParams(8.8e13, 5.4e13, 0.076, 0.095)))
    s = stack_laws(runs, method="huber")
    assert s.laws == ("chinchilla", "kaplan") and s.top == "kaplan"
    assert s.weights[1] > 0.6
    assert s.log_density.shape == (s.info["n_heldout"], 2) and s.info["n_heldout"] == 8 + 16 + 24 and s.info["cuts"] == [1, 2, 3]


@pytest.fixture(scope="module")
def huber_stack():
    return stack_laws(load_runs(_chinchilla_frame()), method="huber")


@pytest.mark.slow
def test_chinchilla_data_give_chinchilla_most_weight(huber_stack):
    s = huber_stack
    assert s.top == "chinchilla" and s.weights[0] > 0.6


@pytest.mark.slow
def test_the_mixture_band_holds_each_laws_median():
    runs = load_runs(_chinchilla_frame(seed=1))
    fits = {law: fit(runs, method="bootstrap", law=law, resamples=100, seed=0)
            for law in ("chinchilla", "kaplan")}
    stack = LawStack(laws=("chinchilla", "kaplan"), weights=np.array([0.6, 0.4]), fits=fits,
                     log_density=np.zeros((1, 2)), info={"seed": 0})
    budgets = [1e22, 1e24]
    own = {k: np.median(np.asarray(f.N_opt, float), axis=0)
           for k, f in stack.frontiers(budgets).items()}
    assert not np.allclose(own["chinchilla"], own["kaplan"], rtol=0.05)
    table = stack.summary(budgets, 0.9)
    band = table[table["band"] == "structural"]
    within = table[table["band"] == "within"]
    assert (within["law"] == "chinchilla").all()
    np.testing.assert_allclose(within["N_opt_median"], own["chinchilla"], rtol=1e-6)
    for med in own.values():
        assert np.all(band["N_opt_lower"].to_numpy() <= med)
        assert np.all(med <= band["N_opt_upper"].to_numpy())
    d = stack.to_dict(budgets)
    assert d["weights"] == [0.6, 0.4] and d["top"] == "chinchilla"
    assert set(d["budgets"][0]["N_opt"]) == {"within", "structural"}


@pytest.mark.slow  # shares the stack of the test above
def test_the_structural_band_moves_each_laws_optimum_beyond_the_data(huber_stack):
    # huber fits (one draw per law) and a point-mass optimum error of drift +0.3 decades of
    # N per decade of compute: beyond C_max every structural draw is the law's N_opt moved
    # by exactly 10**(0.3 d), D_opt the other way; inside the data nothing moves
    from bayescale.estimators.optimum_error import OptimumError

    s = huber_stack
    assert set(s.info["optimum_error"]) == {"chinchilla", "kaplan"}
    assert "optimum error" in s.optimum_note
    point = OptimumError(np.array([0.3]), np.array([1e-12]), np.ones((1, 1)))
    moved = dataclasses.replace(s, optimum_errors={k: point for k in s.laws},
                                weights=np.array([1.0, 0.0]), C_max=1e21)
    plain = dataclasses.replace(moved, optimum_errors={})
    a, b = moved.frontier([1e20, 1e23]), plain.frontier([1e20, 1e23])
    # a point fit's one draw is repeated (MIN_DRAWS) so that the band is the error's
    assert a.num_draws == 1000 and b.num_draws == 1
    np.testing.assert_allclose(a.N_opt[:, 0], b.N_opt[0, 0], rtol=1e-12)
    np.testing.assert_allclose(a.N_opt[:, 1], b.N_opt[0, 1] * 10**0.6, rtol=1e-6)  # float32
    np.testing.assert_allclose(a.D_opt[:, 1], b.D_opt[0, 1] / 10**0.6, rtol=1e-6)
    # the error is learned on 6ND: another cost model's budgets are left alone
    c = moved.frontier([1e23], cost="attention")
    np.testing.assert_allclose(c.N_opt, plain.frontier([1e23], cost="attention").N_opt)
    np.testing.assert_allclose(moved.moved_n_opt("chinchilla", [1e9, 2e9], 1e23),
                               [10**9.6, 2 * 10**9.6], rtol=1e-9)


def test_stack_laws_rejects_bad_input():
    runs = load_runs(_chinchilla_frame())
    with pytest.raises(BayescaleError, match="at least two laws"):
        stack_laws(runs, laws=("chinchilla",))
    with pytest.raises(BayescaleError, match="left out"):
        stack_laws(runs, laws=("chinchilla", "data_constrained"))
    with pytest.raises(BayescaleError, match="distinct"):
        stack_laws(runs, laws=("chinchilla", "chinchilla"))
    with pytest.raises(BayescaleError, match="cuts"):
        stack_laws(runs, cuts=0)
    with pytest.raises(BayescaleError, match="unknown|law"):
        stack_laws(runs, laws=("chinchilla", "nope"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")  # short chains
def test_fewer_than_4_budgets_are_weighed_by_psis_loo():
    """3 budgets leave no leave-future-out cut: the weights stack the laws' pointwise
    PSIS-LOO densities (arviz.loo on each law's own NUTS fit, recomputed here), and on
    Kaplan-law data the Kaplan law gets most of the weight (it does with 6 budgets under
    leave-future-out, test_kaplan_data_give_kaplan_most_weight)."""
    import arviz as az

    import warnings

    frame = _kaplan_frame(KaplanParams(8.8e13, 5.4e13, 0.076, 0.095))
    runs = load_runs(frame[frame["N"] * frame["D"] * 6 < 2e19])
    s = stack_laws(runs, method="bayes", chains=2, warmup=300, draws=300, retry=False)
    assert s.info["scores"] == "psis-loo" and s.info["cuts"] == [] and "PSIS-LOO" in s.scored_by
    assert "interpolation, not extrapolation" in s.info["note"]
    with warnings.catch_warnings():  # Pareto-k: counted in info, not the subject here
        warnings.simplefilter("ignore", UserWarning)
        by_hand = np.stack([np.asarray(az.loo(s.fits[k].idata, pointwise=True).loo_i)
                            for k in ("chinchilla", "kaplan")], axis=1)
    assert set(s.info["pareto_k_bad"]) == {"chinchilla", "kaplan"}
    np.testing.assert_allclose(s.log_density, by_hand, rtol=1e-10)
    np.testing.assert_allclose(s.weights, stacking_weights(by_hand), atol=1e-9)
    assert s.top == "kaplan" and s.weights[1] > 0.6


@pytest.mark.slow
def test_cli_frontier_structural_json(tmp_path, capsys):
    import json

    from bayescale.cli import main

    csv = tmp_path / "runs.csv"
    _chinchilla_frame(seed=2).to_csv(csv, index=False)
    rc = main(["frontier", str(csv), "--budget", "1e22", "--budget", "1e24",
               "--resamples", "50", "--structural", "chinchilla,kaplan", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    st = out["structural"]
    assert st["laws"] == ["chinchilla", "kaplan"] and abs(sum(st["weights"]) - 1) < 1e-9
    assert [r["C"] for r in st["budgets"]] == [1e22, 1e24]
    n = st["budgets"][1]["N_opt"]
    assert n["structural"]["lower"] <= n["structural"]["median"] <= n["structural"]["upper"]
    # The chinchilla-law fit of the main output is the "within" band when chinchilla leads.
    if st["top"] == "chinchilla":
        assert n["within"]["median"] == pytest.approx(out["budgets"][1]["N_opt"]["median"])


@pytest.mark.slow
def test_cli_frontier_structural_text(tmp_path, capsys):
    from bayescale.cli import main

    csv = tmp_path / "runs.csv"
    _chinchilla_frame(seed=2).to_csv(csv, index=False)
    rc = main(["frontier", str(csv), "--budget", "1e22", "--resamples", "50",
               "--structural", "chinchilla,kaplan"])
    text = capsys.readouterr().out
    assert rc == 0 and "stacking weights chinchilla" in text and "structural" in text


def test_cli_structural_needs_data(capsys):
    from bayescale.cli import main

    rc = main(["frontier", "besiroglu2024", "--budget", "1e22", "--structural",
               "chinchilla,kaplan"])
    assert rc != 0
    assert "needs SOURCE data" in capsys.readouterr().err
