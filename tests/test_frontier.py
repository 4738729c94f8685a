"""The compute-optimal frontier: closed form, numerical solver, Frontier object.

Oracles: the closed form (Hoffmann et al. 2022, eq. 4 / App. D.2) for the solver,
the budget constraint 6 N D = C, finite differences for gradients, and the
published headline numbers at Gopher's budget.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bayescale.planning.costs import AttentionCost, InferenceCost, NonEmbeddingCost, TrainCost
from bayescale.errors import BayescaleError
from bayescale.planning.frontier import (
    Frontier,
    compute_equivalent,
    compute_optimal,
    frontier,
    optimal_loss_curve,
    solve_optimal,
)
from bayescale.planning.serving import inference_optimal
from bayescale.laws.chinchilla import (
    BESIROGLU_2024,
    HOFFMANN_2022,
    HOFFMANN_2022_UNROUNDED,
    LawParams,
    loss,
)

GOPHER_C = 5.76e23  # Gopher's training budget (Rae et al. 2021; Hoffmann et al. 2022, Table 3)


def _draws(rng, num=16, spread=0.1, base=BESIROGLU_2024):
    """Perturbed parameter draws around ``base`` (log-normal, all positive)."""
    return LawParams(*(np.asarray(v) * np.exp(spread * rng.standard_normal(num)) for v in base))


BUDGETS = np.logspace(17, 27, 11)


def _f64(p):
    """Scalar float64 parameters: one compiled signature shared by the scalar tests."""
    return LawParams(*(np.float64(v) for v in p))


P0 = _f64(BESIROGLU_2024)


# ---------------------------------------------------------------------------
# Headline numbers (issue 4)
# ---------------------------------------------------------------------------

def test_gopher_budget_hoffmann_unrounded():
    """Hoffmann et al. (2022) Approach 3, unrounded coefficients as recovered by
    Besiroglu et al. (2024): N_opt = 40.4B, D_opt = 2.38T, ~59 tokens/parameter
    (Hoffmann's Table 3 lists 40B for Approach 3 at Gopher's budget)."""
    opt = compute_optimal(HOFFMANN_2022_UNROUNDED, GOPHER_C)
    assert round(float(opt.N_opt) / 1e9, 1) == 40.4
    assert round(float(opt.D_opt) / 1e12, 2) == 2.38
    assert round(float(opt.D_opt / opt.N_opt)) == 59


def test_gopher_budget_hoffmann_rounded():
    """The rounded published values (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28;
    Hoffmann et al. 2022, eq. 10) give 32.2B, not the 40B of their Table 3."""
    opt = compute_optimal(HOFFMANN_2022, GOPHER_C)
    assert round(float(opt.N_opt) / 1e9, 1) == 32.2


def test_gopher_budget_besiroglu_refit():
    """Besiroglu et al. (2024), eq. 4 refit: 72.2B parameters on 1.33T tokens, ~18
    tokens/parameter, in line with Chinchilla's 70B / 1.4T (Hoffmann et al. 2022)."""
    opt = compute_optimal(BESIROGLU_2024, GOPHER_C)
    assert round(float(opt.N_opt) / 1e9, 1) == 72.2
    assert round(float(opt.D_opt) / 1e12, 2) == 1.33
    assert round(float(opt.D_opt / opt.N_opt)) == 18


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("params", [HOFFMANN_2022_UNROUNDED, HOFFMANN_2022, BESIROGLU_2024])
def test_headline_numbers_numerical_solver_agrees(params):
    closed = compute_optimal(_f64(params), np.float64(GOPHER_C))
    num = solve_optimal(_f64(params), np.float64(GOPHER_C), cost=TrainCost(), init="tokens20")
    assert bool(num.converged)
    np.testing.assert_allclose(num.N_opt, closed.N_opt, rtol=1e-9)


# ---------------------------------------------------------------------------
# Closed form
# ---------------------------------------------------------------------------

@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_closed_form_matches_textbook_formula(rng):
    p = _draws(rng, 16)
    opt = compute_optimal(p, BUDGETS)
    assert opt.N_opt.shape == (16, BUDGETS.size)
    a = p.beta / (p.alpha + p.beta)
    G = (p.alpha * p.A / (p.beta * p.B)) ** (1 / (p.alpha + p.beta))
    N = G[:, None] * (BUDGETS[None, :] / 6) ** a[:, None]
    np.testing.assert_allclose(opt.N_opt, N, rtol=1e-10)
    np.testing.assert_allclose(opt.D_opt, BUDGETS / (6 * N), rtol=1e-10)
    L = loss(LawParams(*(v[:, None] for v in p)), N, BUDGETS / (6 * N))
    np.testing.assert_allclose(opt.L_opt, L, rtol=1e-10)


def test_shapes_scalar_and_vector():
    assert compute_optimal(BESIROGLU_2024, 1e22).N_opt.shape == ()
    assert compute_optimal(BESIROGLU_2024, BUDGETS).N_opt.shape == BUDGETS.shape
    p = LawParams(*(np.full(16, v) for v in BESIROGLU_2024))
    assert compute_optimal(p, 1e22).N_opt.shape == (16,)
    assert solve_optimal(p, BUDGETS, cost=AttentionCost()).N_opt.shape == (16, BUDGETS.size)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_optimal_loss_curve_and_compute_equivalent_are_inverse(rng):
    p = _draws(rng)
    L = optimal_loss_curve(p, GOPHER_C)
    np.testing.assert_allclose(compute_equivalent(p, L), GOPHER_C, rtol=1e-9)
    assert np.all(np.isinf(compute_equivalent(p, p.E * 0.99)))


# ---------------------------------------------------------------------------
# Numerical solver vs closed form
# ---------------------------------------------------------------------------

@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("init", ["tokens20", "chinchilla"])
def test_numerical_matches_closed_form_float64(rng, init):
    p = _draws(rng, spread=0.2)
    closed = compute_optimal(p, BUDGETS)
    num = solve_optimal(p, BUDGETS, cost=TrainCost(), init=init)
    assert num.N_opt.dtype == jnp.float64
    assert bool(num.converged.all())
    np.testing.assert_allclose(num.N_opt, closed.N_opt, rtol=1e-9)
    np.testing.assert_allclose(num.D_opt, closed.D_opt, rtol=1e-9)
    np.testing.assert_allclose(num.L_opt, closed.L_opt, rtol=1e-9)
    np.testing.assert_allclose(6 * num.N_opt * num.D_opt, np.broadcast_to(BUDGETS, num.N_opt.shape),
                               rtol=1e-9)


def test_numerical_matches_closed_form_float32(rng):
    p = _draws(rng, spread=0.2)
    truth = compute_optimal(p, BUDGETS)  # float64 reference
    with jax.enable_x64(False):
        p32 = LawParams(*(np.asarray(v, np.float32) for v in p))
        C32 = np.asarray(BUDGETS, np.float32)
        num = solve_optimal(p32, C32, cost=TrainCost(), init="tokens20")
        closed = compute_optimal(p32, C32)
        assert num.N_opt.dtype == jnp.float32
        assert bool(num.converged.all())
        N, D, L = (np.asarray(v, np.float64) for v in (num.N_opt, num.D_opt, num.L_opt))
        Nc = np.asarray(closed.N_opt, np.float64)
    np.testing.assert_allclose(N, truth.N_opt, rtol=1e-5)
    np.testing.assert_allclose(Nc, truth.N_opt, rtol=1e-5)
    np.testing.assert_allclose(D, truth.D_opt, rtol=1e-5)
    np.testing.assert_allclose(L, truth.L_opt, rtol=1e-5)
    np.testing.assert_allclose(6 * N * D, np.broadcast_to(BUDGETS, N.shape), rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    E=st.floats(0.3, 4.0), A=st.floats(1.0, 1e5), B=st.floats(1.0, 1e5),
    alpha=st.floats(0.05, 1.0), beta=st.floats(0.05, 1.0),
    log10_C=st.floats(12.0, 30.0),
)
@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_property_solver_equals_closed_form(E, A, B, alpha, beta, log10_C):
    p = LawParams(E=np.float64(E), A=np.float64(A), B=np.float64(B),
                  alpha=np.float64(alpha), beta=np.float64(beta))
    C = np.float64(10.0 ** log10_C)
    closed = compute_optimal(p, C)
    assume(float(closed.N_opt) >= 1 and float(closed.D_opt) >= 1)  # a model and a token at least
    num = solve_optimal(p, C, cost=TrainCost(), init="tokens20")
    assert bool(num.converged)
    np.testing.assert_allclose(num.N_opt, closed.N_opt, rtol=1e-9)
    np.testing.assert_allclose(6 * num.N_opt * num.D_opt, C, rtol=1e-9)
    # The optimum beats any other split of the same budget.
    for f in (0.5, 0.9, 1.1, 2.0):
        assert float(closed.L_opt) <= float(loss(p, closed.N_opt * f, closed.D_opt / f)) + 1e-12


@pytest.mark.float64  # the cost is checked to rtol 1e-9
@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.1, 0.8), beta=st.floats(0.1, 0.8), log10_C=st.floats(19.0, 27.0),
       n_ctx=st.sampled_from([2048.0]))
def test_property_attention_optimum_is_a_minimum(alpha, beta, log10_C, n_ctx):
    p = LawParams(E=np.float64(1.8), A=np.float64(400.0), B=np.float64(1000.0),
                  alpha=np.float64(alpha), beta=np.float64(beta))
    cost = AttentionCost(n_ctx=n_ctx)
    C = np.float64(10.0 ** log10_C)
    opt = solve_optimal(p, C, cost=cost)
    assert bool(opt.converged)
    np.testing.assert_allclose(cost(opt.N_opt, opt.D_opt), C, rtol=1e-9)
    logC = math.log(C)
    for f in (0.97, 1.03):
        N = float(opt.N_opt) * f
        D = math.exp(float(cost.log_D(math.log(N), logC)))
        assert float(opt.L_opt) <= float(loss(p, N, D)) + 1e-12


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------

def _log_N_opt(theta, C, solver):
    a, b, e, alpha, beta = theta
    p = LawParams(E=jnp.exp(e), A=jnp.exp(a), B=jnp.exp(b), alpha=alpha, beta=beta)
    return jnp.log(solver(p, C).N_opt)


def _theta(p):
    return jnp.array([math.log(p.A), math.log(p.B), math.log(p.E), p.alpha, p.beta])


@pytest.mark.parametrize("cost", [
    TrainCost(), pytest.param(AttentionCost(), marks=pytest.mark.slow)], ids=["train", "attention"])
@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_gradients_finite_and_match_finite_differences(cost):
    theta = _theta(P0)

    def solver(p, C):
        return solve_optimal(p, C, cost=cost, init="tokens20")

    grad = np.asarray(jax.grad(_log_N_opt)(theta, GOPHER_C, solver))
    assert np.all(np.isfinite(grad))
    eps = 1e-6
    fd = np.array([(float(_log_N_opt(theta.at[i].add(eps), GOPHER_C, solver))
                    - float(_log_N_opt(theta.at[i].add(-eps), GOPHER_C, solver))) / (2 * eps)
                   for i in range(5)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
    if isinstance(cost, TrainCost):
        closed = np.asarray(jax.grad(_log_N_opt)(theta, GOPHER_C, compute_optimal))
        np.testing.assert_allclose(grad, closed, rtol=1e-8, atol=1e-12)
    # and with respect to the budget: d log N_opt / d log C = beta / (alpha + beta) for 6ND
    dC = jax.grad(lambda lc: jnp.log(solver(P0, jnp.exp(lc)).N_opt))(math.log(GOPHER_C))
    assert np.isfinite(float(dC))
    if isinstance(cost, TrainCost):
        p = BESIROGLU_2024
        np.testing.assert_allclose(float(dC), p.beta / (p.alpha + p.beta), rtol=1e-9)


# ---------------------------------------------------------------------------
# Other cost models through the solver
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cost", [AttentionCost(), NonEmbeddingCost(), InferenceCost(D_inf=1e12)],
                         ids=["attention", "non-embedding", "inference"])
@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_other_costs_satisfy_constraint_and_beat_neighbours(cost, rng):
    p = _draws(rng)
    opt = solve_optimal(p, BUDGETS, cost=cost)
    C = BUDGETS[4:]  # 1e21 .. 1e27: interior optima for every model and draw
    opt = opt._replace(**{k: getattr(opt, k)[:, 4:] for k in opt._fields})
    assert bool(opt.converged.all())
    np.testing.assert_allclose(cost(opt.N_opt, opt.D_opt), np.broadcast_to(C, opt.N_opt.shape),
                               rtol=1e-9)
    pb = LawParams(*(np.asarray(v)[:, None] for v in p))
    for f in (0.98, 1.02):
        N = opt.N_opt * f
        D = jnp.exp(jax.vmap(jax.vmap(cost.log_D))(jnp.log(N), jnp.log(jnp.broadcast_to(C, N.shape))))
        assert np.all(np.asarray(opt.L_opt) <= np.asarray(loss(pb, N, D)) + 1e-12)


def test_small_attention_and_embedding_corrections_move_the_optimum_a_little():
    C = np.float64(GOPHER_C)
    train = compute_optimal(P0, C)
    attn = solve_optimal(P0, C, cost=AttentionCost(n_ctx=2048))
    emb = solve_optimal(P0, C, cost=NonEmbeddingCost())
    # attention FLOPs make every token dearer: a slightly lower loss is not reachable
    assert float(attn.L_opt) > float(train.L_opt)
    assert float(emb.L_opt) < float(train.L_opt)  # free embeddings buy a little
    for o in (attn, emb):
        assert abs(float(o.N_opt / train.N_opt) - 1) < 0.05


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_inference_split_reduces_to_train_without_inference():
    C = np.float64(GOPHER_C)
    closed = compute_optimal(P0, C)
    none = solve_optimal(P0, C, cost=InferenceCost(D_inf=0.0))
    np.testing.assert_allclose(none.N_opt, closed.N_opt, rtol=1e-9)
    more = solve_optimal(P0, C, cost=InferenceCost(D_inf=1e13))
    assert bool(more.converged) and float(more.N_opt) < float(closed.N_opt)
    np.testing.assert_allclose(6 * more.N_opt * more.D_opt + 2 * more.N_opt * 1e13, C, rtol=1e-9)


def test_no_stationary_point_is_flagged_not_converged():
    from bayescale._solvers.newton import safeguarded_newton

    # h < 0 everywhere: the objective rises across the whole bracket, so the solver
    # bisects down to the left edge and must not call that a minimum.
    x, ok = jax.jit(lambda x0: safeguarded_newton(lambda x: -1.0 - x**2, x0, x0 - 5, x0 + 5,
                                                   max_iter=200, rtol=1e-14))(1.0)
    assert not bool(ok)
    assert float(x) == pytest.approx(-4.0, abs=1e-9)
    x, ok = jax.jit(lambda x0: safeguarded_newton(lambda x: 2.0 - x, x0, x0 - 5, x0 + 5,
                                                   max_iter=200, rtol=1e-14))(0.0)
    assert bool(ok) and float(x) == pytest.approx(2.0, rel=1e-14)


# ---------------------------------------------------------------------------
# Inference-aware allocation for a target loss (Sardana et al. 2023)
# ---------------------------------------------------------------------------

@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_inference_optimal_without_inference_is_chinchilla_optimal():
    plan = inference_optimal(BESIROGLU_2024, [2.0, 1.95], inference_tokens=0.0)
    assert bool(plan.converged.all())
    chin = compute_optimal(BESIROGLU_2024, np.asarray(plan.C_train[0]))
    np.testing.assert_allclose(plan.N_opt[0], chin.N_opt, rtol=1e-8)
    np.testing.assert_allclose(chin.L_opt, [2.0, 1.95], rtol=1e-10)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_inference_optimal_trades_size_for_tokens(rng):
    p = _draws(rng, spread=0.05)
    base = inference_optimal(p, 2.3, inference_tokens=0.0)  # every draw's E is below 2.3
    plan = inference_optimal(p, 2.3, inference_tokens=1e13)
    assert bool(plan.converged.all())
    assert np.all(plan.N_opt < base.N_opt) and np.all(plan.tokens_per_param > base.tokens_per_param)
    pb = LawParams(*(np.asarray(v)[:, None] for v in p))
    np.testing.assert_allclose(loss(pb, plan.N_opt, plan.D_opt), 2.3, rtol=1e-9)
    lifetime_base = base.C_train + 2 * base.N_opt * 1e13
    assert np.all(plan.C_total <= lifetime_base * (1 + 1e-12))
    table = plan.summary(0.9)
    assert table.index.name == "target_loss" and "C_total_median" in table


def test_inference_optimal_unreachable_target():
    plan = inference_optimal(BESIROGLU_2024, [1.5, 2.0], inference_tokens=1e12)  # E = 1.817
    assert plan.converged[0].tolist() == [False, True]
    assert np.isnan(plan.N_opt[0, 0])


# ---------------------------------------------------------------------------
# No recompiles
# ---------------------------------------------------------------------------

def test_no_recompiles_for_same_shapes(rng):
    p = _draws(rng)
    C = BUDGETS
    solve_optimal(p, C, cost=AttentionCost())
    compute_optimal(p, C)
    frontier(p, C)
    # Count compilations through JAX's public monitoring events: every backend compile
    # records a duration under this name.
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for k in range(3):
            q = _draws(rng)
            solve_optimal(q, C * (k + 2), cost=AttentionCost())  # an equal cost object
            compute_optimal(q, C * (k + 2))
            frontier(q, C * (k + 2))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_traces_once_per_shape():
    traces = []

    @jax.jit
    def f(p, C):
        traces.append(1)  # Python side effect: runs only while tracing
        return compute_optimal(p, C).N_opt

    for scale in (1.0, 2.0, 3.0):
        f(LawParams(*(np.full(4, v * scale) for v in BESIROGLU_2024)), np.logspace(20, 22, 3))
    assert len(traces) == 1


# ---------------------------------------------------------------------------
# Frontier object
# ---------------------------------------------------------------------------

def test_frontier_point_estimate_is_one_draw():
    f = frontier(BESIROGLU_2024, [1e21, GOPHER_C])
    assert isinstance(f, Frontier)
    for q in (f.N_opt, f.D_opt, f.L_opt, f.tokens_per_param, f.converged):
        assert q.shape == (1, 2)
    table = f.summary()
    assert list(table.index) == [1e21, GOPHER_C]
    row = table.loc[GOPHER_C]
    assert row["N_opt_lower"] == row["N_opt_median"] == row["N_opt_upper"]
    assert np.isnan(row["extrapolation"])  # no data range given
    assert f.to_dict()["budgets"][0]["extrapolation"] is None


def test_frontier_summary_and_json_shape(rng):
    p = _draws(rng, 200)
    f = frontier(p, [1e20, 1e22, 1e24], data_C_range=(1e18, 1e22))
    np.testing.assert_allclose(f.extrapolation, [0.0, 0.0, 2.0])
    table = f.summary(level=0.8)
    for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param"):
        assert np.all(table[f"{q}_lower"] <= table[f"{q}_median"])
        assert np.all(table[f"{q}_median"] <= table[f"{q}_upper"])
        np.testing.assert_allclose(table[f"{q}_median"], np.median(np.asarray(getattr(f, q)), axis=0))
    assert table.attrs["level"] == 0.8
    out = f.to_dict(0.8)
    assert out["num_draws"] == 200 and len(out["budgets"]) == 3
    b = out["budgets"][2]
    assert set(b) >= {"C", "N_opt", "D_opt", "L_opt", "tokens_per_param", "extrapolation"}
    assert set(b["N_opt"]) == {"median", "lower", "upper"}
    assert b["extrapolation"] == pytest.approx(2.0)
    below = frontier(p, [1e16], data_C_range=(1e18, 1e22))
    np.testing.assert_allclose(below.extrapolation, [2.0])


@pytest.mark.parametrize("cost", ["attention", "non-embedding"])
def test_frontier_named_costs(cost, rng):
    p = _draws(rng)
    f = frontier(p, BUDGETS, cost=cost)
    assert f.converged[:, 4:].all()
    closed = frontier(p, BUDGETS)
    # small corrections at large budgets: within 10% of the 6ND optimum from 1e23 FLOPs on
    assert np.all(np.abs(f.N_opt[:, 6:] / closed.N_opt[:, 6:] - 1) < 0.1)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_frontier_callable_cost_and_numerical_method():
    f = frontier(BESIROGLU_2024, BUDGETS, cost=lambda N, D: 6 * N * D)
    g = frontier(BESIROGLU_2024, BUDGETS, method="numerical")
    closed = frontier(BESIROGLU_2024, BUDGETS)
    assert bool(f.converged.all()) and bool(g.converged.all())
    np.testing.assert_allclose(f.N_opt, closed.N_opt, rtol=1e-9)
    np.testing.assert_allclose(g.N_opt, closed.N_opt, rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"budgets": [-1e20]}, "positive"),
    ({"budgets": [float("nan")]}, "finite"),
    ({"budgets": []}, "1-D"),
    ({"budgets": ["abc"]}, "numbers"),
    ({"budgets": [1e20], "cost": "nope"}, "unknown cost"),
    ({"budgets": [1e20], "cost": "inference"}, "inference tokens"),
    ({"budgets": [1e20], "cost": "attention", "method": "closed"}, "closed form"),
    ({"budgets": [1e20], "method": "magic"}, "method"),
    ({"budgets": [1e20], "data_C_range": (1e22, 1e18)}, "data_C_range"),
])
def test_frontier_bad_input(kwargs, match):
    with pytest.raises(BayescaleError, match=match):
        frontier(BESIROGLU_2024, **kwargs)


def test_frontier_bad_params_and_level():
    bad = BESIROGLU_2024._replace(alpha=-0.3)
    with pytest.raises(BayescaleError, match="alpha"):
        frontier(bad, [1e20])
    with pytest.raises(BayescaleError, match="level"):
        frontier(BESIROGLU_2024, [1e20]).summary(level=1.5)


def test_scaling_fit_frontier_flags_extrapolation(rng):
    from bayescale.data.runs import Runs
    from bayescale.estimators.fit import ScalingFit

    N = np.array([1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9])
    D = np.array([2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10])
    runs = Runs(N=N, D=D, loss=np.array([3.4, 3.1, 3.1, 2.7, 2.8, 2.5]), row=np.arange(6))
    fit = ScalingFit(method="bootstrap", params=_draws(rng), runs=runs)
    f = fit.frontier([runs.C.max() * 1000, runs.C.min()])
    np.testing.assert_allclose(f.extrapolation, [3.0, 0.0])
    assert f.N_opt.shape == (16, 2)
