"""Cost models: formulas, inverses ``log D(log N, log C)``, validation, hashing."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayescale.planning.costs import (
    AttentionCost,
    Cost,
    CostFn,
    InferenceCost,
    NonEmbeddingCost,
    TrainCost,
    get_cost,
)
from bayescale.errors import BayescaleError
from bayescale.planning.frontier import solve_optimal
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams

COSTS = [TrainCost(), AttentionCost(), AttentionCost(n_ctx=8192, aspect_ratio=64),
         NonEmbeddingCost(), InferenceCost(D_inf=1e12), CostFn(lambda N, D: 6 * N * D + 1e9 * D)]
IDS = ["train", "attention", "attention-8k", "non-embedding", "inference", "custom"]


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_train_cost_is_6ND():
    assert float(TrainCost()(70e9, 1.4e12)) == pytest.approx(6 * 70e9 * 1.4e12, rel=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_attention_cost_matches_chinchilla_architecture():
    """Chinchilla 70B (Hoffmann et al. 2022, Table 4): 80 layers, d_model 8192, so
    aspect ratio 102.4; non-embedding N = 12 n_layer d_model**2 (Kaplan eq. 2.1)."""
    n_layer, d_model, n_ctx = 80, 8192, 2048
    N = 12 * n_layer * d_model**2
    D = 1.4e12
    cost = AttentionCost(n_ctx=n_ctx, aspect_ratio=d_model / n_layer)
    expected = D * (6 * N + 6 * n_layer * n_ctx * d_model)  # Kaplan et al. 2020, Table 1
    assert float(cost(N, D)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_non_embedding_cost_formula():
    V, r, N, D = 32000.0, 128.0, 1e9, 2e10
    d_model = (r * N / 12) ** (1 / 3)
    cost = NonEmbeddingCost(vocab_size=V, aspect_ratio=r)
    assert float(cost(N, D)) == pytest.approx(6 * (N - V * d_model) * D, rel=1e-12)
    lo, hi = cost.log_N_bounds(math.log(1e20))
    N_lo = math.exp(float(lo))  # the embedding share is one half there
    assert V * (r * N_lo / 12) ** (1 / 3) / N_lo == pytest.approx(0.5, rel=1e-12)
    assert math.isinf(float(hi))


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_inference_cost_formula_and_domain():
    cost = InferenceCost(D_inf=1e12)
    assert float(cost(7e9, 1e12)) == pytest.approx(6 * 7e9 * 1e12 + 2 * 7e9 * 1e12, rel=1e-12)
    lo, hi = cost.log_N_bounds(math.log(1e22))
    assert math.exp(float(hi)) == pytest.approx(1e22 / 2e12, rel=1e-12)  # all of C on inference
    assert float(InferenceCost(D_inf=0.0)(7e9, 1e12)) == pytest.approx(6 * 7e21, rel=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("cost", COSTS, ids=IDS)
def test_log_D_inverts_log_cost(cost):
    log_C = math.log(1e24)  # inside every model's domain for these N
    for N in (1e9, 7e10, 3e11):
        y = cost.log_D(math.log(N), log_C)
        assert float(cost.log_cost(math.log(N), y)) == pytest.approx(log_C, rel=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_custom_cost_newton_inverse_is_differentiable():
    # A CostFn solves for log D by Newton with implicit differentiation; compare with
    # the analytic inverse of the same formula.
    attn = AttentionCost(n_ctx=2048, aspect_ratio=128)
    fn = CostFn(lambda N, D: attn(N, D))
    x, lc = math.log(7e10), math.log(1e23)
    np.testing.assert_allclose(fn.log_D(x, lc), attn.log_D(x, lc), rtol=1e-12)
    g_fn = jax.grad(fn.log_D, argnums=(0, 1))(x, lc)
    g_an = jax.grad(attn.log_D, argnums=(0, 1))(x, lc)
    np.testing.assert_allclose(g_fn, g_an, rtol=1e-10)


@pytest.mark.slow
def test_custom_cost_solver_matches_builtin():
    attn = AttentionCost()
    p = LawParams(*(np.float64(v) for v in BESIROGLU_2024))
    C = np.float64(5.76e23)
    a = solve_optimal(p, C, cost=attn)
    b = solve_optimal(p, C, cost=CostFn(lambda N, D: attn(N, D)))
    assert bool(a.converged) and bool(b.converged)
    np.testing.assert_allclose(b.N_opt, a.N_opt, rtol=1e-9)


def test_costs_hash_by_value():
    assert AttentionCost() == AttentionCost(n_ctx=2048.0, aspect_ratio=128.0)
    assert hash(AttentionCost()) == hash(AttentionCost())
    assert InferenceCost(D_inf=1e12) != InferenceCost(D_inf=2e12)
    f = lambda N, D: 6 * N * D  # noqa: E731
    assert CostFn(f) == CostFn(f)


def test_get_cost():
    assert isinstance(get_cost("train"), TrainCost)
    assert get_cost("Non_Embedding") == NonEmbeddingCost()
    assert get_cost("inference", inference_tokens=3e12) == InferenceCost(D_inf=3e12)
    assert get_cost("attention", n_ctx=4096) == AttentionCost(n_ctx=4096)
    c = AttentionCost()
    assert get_cost(c) is c
    assert isinstance(get_cost(lambda N, D: 6 * N * D), CostFn)
    assert get_cost("train").describe() == {"name": "train"}
    assert get_cost("inference", inference_tokens=1e12).describe() == {"name": "inference",
                                                                       "D_inf": 1e12}


@pytest.mark.parametrize("make, match", [
    (lambda: get_cost("flops"), "unknown cost"),
    (lambda: get_cost("inference"), "inference tokens"),
    (lambda: get_cost(3.0), "name, a Cost or a callable"),
    (lambda: InferenceCost(D_inf=-1.0), "D_inf"),
    (lambda: InferenceCost(D_inf=float("inf")), "D_inf"),
    (lambda: AttentionCost(n_ctx=0), "n_ctx"),
    (lambda: NonEmbeddingCost(vocab_size=-5), "vocab_size"),
    (lambda: CostFn(fn=None), "callable"),
])
def test_bad_cost_settings(make, match):
    with pytest.raises(BayescaleError, match=match):
        make()


def test_base_class_needs_log_cost():
    with pytest.raises(NotImplementedError):
        Cost().log_cost(0.0, 0.0)


def test_float32_safe():
    with jax.enable_x64(False):
        for cost in COSTS[:5]:
            v = cost(jnp.float32(7e10), jnp.float32(1.4e12))
            assert v.dtype == jnp.float32 and bool(jnp.isfinite(v))
