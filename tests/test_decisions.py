"""Decisions: plan loss distribution, probabilities near the optimum, regret,
Bayes-optimal vs plug-in plans, rules of thumb."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from bayescale.planning.decisions import (
    KAPLAN_2020,
    PF_DAY,
    assess,
    assess_plan,
    bayes_optimal,
    compare_plans,
    kaplan_2020,
    plan_loss,
    plug_in,
    tokens_20,
)
from bayescale.errors import BayescaleError
from bayescale.planning.frontier import compute_optimal
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams

GOPHER_C = 5.76e23
BUDGETS = np.array([1e21, GOPHER_C, 1e25])


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(7)
    return LawParams(*(np.asarray(v) * np.exp(0.1 * rng.standard_normal(200))
                       for v in BESIROGLU_2024))


def _closed_form_np(p, C):
    """Hoffmann et al. (2022), eq. (4), in numpy: N_opt, D_opt, L_opt per draw."""
    A, B, E, a, b = (np.asarray(v, dtype=float)[..., None] for v in (p.A, p.B, p.E, p.alpha, p.beta))
    G = (a * A / (b * B)) ** (1 / (a + b))
    N = G * (np.asarray(C, dtype=float) / 6) ** (b / (a + b))
    D = np.asarray(C, dtype=float) / (6 * N)
    return N, D, E + A / N**a + B / D**b


def _expected_loss_np(p, N, C):
    D = C / (6 * N)
    return float(np.mean(p.E + p.A / N**p.alpha + p.B / D**p.beta))


def test_rules_of_thumb():
    t = tokens_20([GOPHER_C])
    assert t.D[0] / t.N[0] == pytest.approx(20.0)
    assert 6 * t.N[0] * t.D[0] == pytest.approx(GOPHER_C)
    k = kaplan_2020([GOPHER_C])
    # Kaplan et al. (2020), Table 6: N = 1.3e9 (C / PF-day)**0.73, PF-day = 8.64e19 FLOPs
    assert PF_DAY == 8.64e19 and KAPLAN_2020 == {"N_e": 1.3e9, "p_N": 0.73}
    assert k.N[0] == pytest.approx(1.3e9 * (GOPHER_C / 8.64e19) ** 0.73)
    assert 6 * k.N[0] * k.D[0] == pytest.approx(GOPHER_C)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_point_estimate_bayes_equals_plug_in_equals_closed_form():
    N_closed = _closed_form_np(BESIROGLU_2024, BUDGETS)[0]
    b, q = bayes_optimal(BESIROGLU_2024, BUDGETS), plug_in(BESIROGLU_2024, BUDGETS)
    assert b.converged.all()
    np.testing.assert_allclose(b.N, N_closed, rtol=1e-9)
    np.testing.assert_allclose(q.N, N_closed, rtol=1e-9)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_bayes_optimal_minimises_expected_loss(draws):
    plan = bayes_optimal(draws, BUDGETS)
    assert plan.converged.all()
    np.testing.assert_allclose(6 * plan.N * plan.D, BUDGETS, rtol=1e-12)
    for C, N in zip(BUDGETS, plan.N):
        ref = minimize_scalar(lambda x: _expected_loss_np(draws, math.exp(x), C),
                              bracket=(math.log(N) - 1, math.log(N) + 1), tol=1e-12)
        assert math.log(N) == pytest.approx(ref.x, abs=1e-5)
        assert _expected_loss_np(draws, N, C) <= ref.fun + 1e-14


def test_regret_nonnegative_and_rules_ranked(draws):
    table = compare_plans(draws, BUDGETS)
    assert list(table.index.get_level_values("plan").unique()) == [
        "bayes_optimal", "plug_in", "tokens_20", "kaplan_2020"]
    assert (table["regret"] >= -1e-12).all()
    np.testing.assert_allclose(table.xs("bayes_optimal", level="plan")["regret"], 0, atol=1e-12)
    for C in BUDGETS:
        r = table.loc[C, "regret"]
        assert r["kaplan_2020"] > r["tokens_20"] > 0
        assert r["kaplan_2020"] > 0.01  # Kaplan's allocation is far off Chinchilla's
    for col in ("p_within_loss", "p_within_compute"):
        assert table[col].between(0, 1).all()
    eff = table["compute_efficiency_median"]
    assert (eff <= 1 + 1e-12).all() and (eff > 0).all()


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_plan_loss_distribution(draws):
    L = plan_loss(draws, 70e9, 1.4e12)
    assert L.shape == (200,)
    np.testing.assert_allclose(L, draws.E + draws.A / 70e9**draws.alpha
                               + draws.B / 1.4e12**draws.beta, rtol=1e-12)
    assert plan_loss(draws, np.array([1e9, 2e9]), np.array([2e10, 4e10])).shape == (200, 2)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_compute_equivalent_consistency(draws):
    from bayescale.planning.decisions import _assess

    # the compute-optimal allocation at C_eq = efficiency * C reaches the plan's loss
    a = assess(draws, [3e10], [3e12], [GOPHER_C])
    L, L_opt, log_eff = (np.asarray(v) for v in _assess(draws, np.array([3e10]), np.array([3e12]),
                                                          np.array([GOPHER_C])))
    C_eq = GOPHER_C * np.exp(log_eff[:, 0])
    reached = compute_optimal(draws, C_eq)  # shape (draw, draw): take the diagonal
    np.testing.assert_allclose(np.diagonal(np.asarray(reached.L_opt)), L[:, 0], rtol=1e-10)
    assert np.all(L >= L_opt - 1e-12)
    # Independent oracle: per draw, the budget C_eq whose closed-form optimum
    # (Hoffmann eq. 4) reaches the plan's loss, by root finding; then the median.
    from scipy.optimize import brentq

    eff = []
    for i in range(len(draws.E)):
        p_i = LawParams(*(np.asarray(v)[i] for v in draws))
        L_plan = float(p_i.E + p_i.A / 3e10**p_i.alpha + p_i.B / 3e12**p_i.beta)
        gap = lambda lc: float(_closed_form_np(p_i, math.exp(lc))[2][0]) - L_plan  # noqa: E731
        eff.append(math.exp(brentq(gap, math.log(GOPHER_C) - 30, math.log(GOPHER_C) + 1,
                                   xtol=1e-13)) / GOPHER_C)
    np.testing.assert_allclose(a["compute_efficiency_median"][0], np.median(eff), rtol=1e-8)


def test_assess_plan_chinchilla(draws):
    out = assess_plan(draws, 70e9, 1.4e12, within=(0.01, 0.05))
    assert out["num_draws"] == 200 and out["plan"]["C"] == pytest.approx(5.88e23)
    assert not out["plan"]["over_budget"]
    assert out["loss"]["lower"] <= out["loss"]["median"] <= out["loss"]["upper"]
    assert 0 <= out["p_within_loss"]["1%"] <= out["p_within_loss"]["5%"] <= 1
    assert 0 <= out["p_within_compute"]["1%"] <= out["p_within_compute"]["5%"] <= 1
    assert out["regret"] >= 0 and out["bayes_optimal"]["regret"] == pytest.approx(0, abs=1e-12)
    assert out["plug_in"]["regret"] >= -1e-12
    assert out["excess_loss"]["lower"] >= -1e-12
    assert set(out["optimum"]) == {"L_opt", "N_opt", "D_opt"}


def test_assess_plan_point_estimate_at_optimum():
    opt = compute_optimal(BESIROGLU_2024, GOPHER_C)
    out = assess_plan(BESIROGLU_2024, float(opt.N_opt), float(opt.D_opt))
    assert out["p_within_loss"]["1%"] == 1.0 and out["p_within_compute"]["1%"] == 1.0
    assert out["compute_efficiency"]["median"] == pytest.approx(1.0, abs=1e-9)
    assert out["regret"] == pytest.approx(0.0, abs=1e-12)


def test_over_budget_plan_is_flagged(draws):
    # Chinchilla itself (6 x 70e9 x 1.4e12 = 5.88e23) is 2.1% over Gopher's budget: within
    # the shared 5% tolerance; 1.5e12 tokens (9.4% over) is beyond it.
    assert not assess_plan(draws, 70e9, 1.4e12, budget=GOPHER_C)["plan"]["over_budget"]
    assert assess_plan(draws, 70e9, 1.5e12, budget=GOPHER_C)["plan"]["over_budget"]


@pytest.mark.parametrize("kwargs, match", [
    ({"N": -1.0, "D": 1e12}, "positive"),
    ({"N": 1e9, "D": float("nan")}, "positive"),
    ({"N": 1e9, "D": 1e12, "budget": 0.0}, "positive"),
    ({"N": 1e9, "D": 1e12, "level": 2.0}, "level"),
    ({"N": 1e9, "D": 1e12, "within": (-0.1,)}, "within"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(BayescaleError, match=match):
        assess_plan(BESIROGLU_2024, **kwargs)


def test_unknown_rule():
    with pytest.raises(BayescaleError, match="rules"):
        compare_plans(BESIROGLU_2024, [1e22], rules=["gpt3"])


# ---------------------------------------------------------------------------
# A law with unique tokens as an input: data_constrained (Muennighoff et al. 2023)
# ---------------------------------------------------------------------------

def _common_allocation_draws(n=40, seed=0):
    """Data-constrained draws that share one allocation: E varies, and A and B by one
    factor per draw (G = (alpha A / (beta B))**(1 / (alpha + beta)) is the same in every
    draw). With U ample (no repetition, D' = D) the law is Chinchilla's only where
    N <= N_of(D) = D G**2 (the excess-parameter term compares N with the tokens, U_D =
    min(U, D)); every plan tested here has N <= N_of(D) in every draw."""
    from bayescale.laws.data_constrained import MUENNIGHOFF_2023 as P, DataConstrainedParams

    rng = np.random.default_rng(seed)
    k, e = np.exp(0.1 * rng.standard_normal(n)), np.exp(0.05 * rng.standard_normal(n))
    full = lambda v: np.full(n, float(v))  # noqa: E731
    return DataConstrainedParams(P.E * e, P.A * k, P.B * k, full(P.alpha), full(P.beta),
                                 full(P.R_N), full(P.R_D))


@pytest.mark.float64  # equality with the Chinchilla answer to float64 precision
def test_data_constrained_with_ample_unique_tokens_decides_as_chinchilla():
    U = 1e16  # far above every D here: no repetition (as tests/test_law_families.py)
    for dc in (_common_allocation_draws(),):  # one draw: test_data_constrained_binding_...
        chin = LawParams(*dc[:5])
        C = [1e22]
        b_dc, b_ch = bayes_optimal(dc, C, unique_tokens=U), bayes_optimal(chin, C)
        assert b_dc.converged.all()
        np.testing.assert_allclose(b_dc.N, b_ch.N, rtol=1e-6)
        np.testing.assert_allclose(b_dc.D, b_ch.D, rtol=1e-6)
        # tokens_20 has D/N = 20 >= the optimum's 19.6 (alpha = beta): N <= N_of(D)
        t_dc = compare_plans(dc, C, rules=("tokens_20",), unique_tokens=U)
        t_ch = compare_plans(chin, C, rules=("tokens_20",))
        assert t_dc.index.equals(t_ch.index)
        for col in ("N", "D", "expected_loss", "excess_loss_median", "excess_loss_lower",
                    "excess_loss_upper", "p_within_loss"):
            np.testing.assert_allclose(t_dc[col], t_ch[col], rtol=1e-6, atol=1e-12, err_msg=col)
        np.testing.assert_allclose(t_dc["regret"], t_ch["regret"], rtol=1e-6, atol=1e-12)
        assert t_ch["regret"].max() > 1e-7  # not all trivially zero
        # the data-constrained law's efficiency inverts its numerical frontier; with ample
        # U it is the Chinchilla law's closed form (1e-4: the inversion's grid, see
        # bayescale/planning/efficiency.py)
        for col in ("compute_efficiency_median", "compute_efficiency_lower",
                    "compute_efficiency_upper"):
            np.testing.assert_allclose(t_dc[col], t_ch[col], rtol=1e-4, err_msg=col)
        a_dc = assess_plan(dc, 2e9, 2e11, budget=1e22, unique_tokens=U)  # 100 tokens/param
        a_ch = assess_plan(chin, 2e9, 2e11, budget=1e22)
        assert a_dc["unique_tokens"] == U
        for key in ("loss", "excess_loss", "bayes_optimal", "plug_in"):
            for f in a_ch[key]:
                assert a_dc[key][f] == pytest.approx(a_ch[key][f], rel=1e-6), (key, f)
        for q in ("L_opt", "N_opt", "D_opt"):
            for f in ("median", "lower", "upper"):
                assert a_dc["optimum"][q][f] == pytest.approx(a_ch["optimum"][q][f], rel=1e-6)
        assert a_dc["regret"] == pytest.approx(a_ch["regret"], rel=1e-6)
        assert a_dc["p_within_loss"] == a_ch["p_within_loss"]


@pytest.mark.float64  # oracles to float64 precision
def test_data_constrained_binding_unique_tokens():
    """U = 25e9 binds at C = 1e22 (D_opt ~ 2.4e11 tokens, ~10 epochs)."""
    from bayescale.laws import loss as law_loss
    from bayescale.laws.data_constrained import MUENNIGHOFF_2023 as P, DataConstrainedParams

    U, C = 25e9, 1e22
    opt = compute_optimal(P, C, U)
    plan = bayes_optimal(P, [C], unique_tokens=U)  # one draw: the frontier's optimum
    assert plan.converged.all() and float(opt.D_opt) > 5 * U
    np.testing.assert_allclose(plan.N[0], float(opt.N_opt), rtol=1e-6)
    np.testing.assert_allclose(plan.D[0], float(opt.D_opt), rtol=1e-6)
    np.testing.assert_allclose(plug_in(P, [C], unique_tokens=U).N[0], float(opt.N_opt), rtol=1e-6)
    out = assess_plan(P, 7e9, 2.3e11, budget=C, unique_tokens=U)
    assert out["loss"]["mean"] == pytest.approx(float(law_loss(P, 7e9, 2.3e11, U)), rel=1e-10)
    assert out["optimum"]["L_opt"]["median"] == pytest.approx(float(opt.L_opt), rel=1e-10)
    assert out["bayes_optimal"]["expected_loss"] == pytest.approx(
        float(law_loss(P, plan.N[0], plan.D[0], U)), rel=1e-10)
    assert out["regret"] > 0 and out["regret"] == pytest.approx(
        float(law_loss(P, 7e9, 2.3e11, U)) - float(opt.L_opt), rel=1e-6)
    np.testing.assert_allclose(plan_loss(P, [7e9, 1e9], [2.3e11, 1e12], U),
                               law_loss(P, np.array([7e9, 1e9]), np.array([2.3e11, 1e12]), U),
                               rtol=1e-12)
    # many draws: the Bayes-optimal N minimises the expected loss along 6 N D = C
    rng = np.random.default_rng(1)
    draws = DataConstrainedParams(*(np.asarray(v) * np.exp(0.05 * rng.standard_normal(30))
                                    for v in P))
    b = bayes_optimal(draws, [C], unique_tokens=U)
    assert b.converged.all()
    def mean_loss(x):
        return float(np.mean(law_loss(draws, math.exp(x), C / (6 * math.exp(x)), U)))

    x0 = math.log(b.N[0])
    ref = minimize_scalar(mean_loss, bracket=(x0 - 0.5, x0 + 0.5), tol=1e-12)
    assert x0 == pytest.approx(ref.x, abs=1e-4)
    assert mean_loss(x0) <= ref.fun + 1e-12


def test_unique_tokens_errors():
    from bayescale.laws.data_constrained import MUENNIGHOFF_2023 as P

    for call in (lambda **k: bayes_optimal(P, [1e22], **k), lambda **k: plug_in(P, [1e22], **k),
                 lambda **k: assess_plan(P, 7e9, 2.3e11, **k),
                 lambda **k: compare_plans(P, [1e22], **k),
                 lambda **k: assess(P, [7e9], [2.3e11], **k),
                 lambda **k: plan_loss(P, 7e9, 2.3e11, **k)):
        with pytest.raises(BayescaleError, match="needs a unique-token budget"):
            call()
    for call in (lambda **k: bayes_optimal(BESIROGLU_2024, [1e22], **k),
                 lambda **k: plug_in(BESIROGLU_2024, [1e22], **k),
                 lambda **k: assess_plan(BESIROGLU_2024, 7e9, 2.3e11, **k),
                 lambda **k: compare_plans(BESIROGLU_2024, [1e22], **k),
                 lambda **k: assess(BESIROGLU_2024, [7e9], [2.3e11], **k),
                 lambda **k: plan_loss(BESIROGLU_2024, 7e9, 2.3e11, **k)):
        with pytest.raises(BayescaleError, match="the chinchilla law has none"):
            call(unique_tokens=25e9)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(BayescaleError, match="positive"):
            assess_plan(P, 7e9, 2.3e11, unique_tokens=bad)
