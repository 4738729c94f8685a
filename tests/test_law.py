"""Tests of bayescale.laws.chinchilla: L(N, D) = E + A / N**alpha + B / D**beta, in log space.

References for the constants:
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), eq. 10 (Approach 3) and Table 2.
T. Besiroglu, E. Erdil, M. Barnett, J. You, "Chinchilla Scaling: A replication
attempt", arXiv:2404.10102 (2024), and their notebook (see
../shared/data/PROVENANCE-chinchilla_svg_extracted.md).
"""

from __future__ import annotations

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayescale.laws import chinchilla as law
from bayescale.laws.chinchilla import (
    BESIROGLU_2024,
    HOFFMANN_2022,
    HOFFMANN_2022_UNROUNDED,
    LawParams,
    allocation_exponents,
    log_loss,
    log_loss_from_theta,
    loss,
    params_from_theta,
    theta_from_params,
)

PARAM_SETS = {
    "hoffmann": HOFFMANN_2022,
    "hoffmann_unrounded": HOFFMANN_2022_UNROUNDED,
    "besiroglu": BESIROGLU_2024,
    "small_exponents": LawParams(E=0.5, A=3.0, B=7.0, alpha=0.05, beta=0.1),
    "large_exponents": LawParams(E=2.5, A=1e6, B=3e7, alpha=1.2, beta=0.9),
}

# Model sizes 1e6..1e13, tokens 1e7..1e15 (well past any real run).
N_GRID = np.geomspace(1e6, 1e13, 15)
D_GRID = np.geomspace(1e7, 1e15, 17)


def direct(params: LawParams, N, D):
    """The law as written, in NumPy float64."""
    p = [float(v) for v in params]
    E, A, B, alpha, beta = p
    return E + A / np.power(N, alpha) + B / np.power(D, beta)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("name", sorted(PARAM_SETS))
def test_loss_matches_direct_formula_float64(name):
    params = PARAM_SETS[name]
    N, D = N_GRID[:, None], D_GRID[None, :]
    got = np.asarray(loss(params, N, D))
    assert got.dtype == np.float64 and got.shape == (15, 17)
    np.testing.assert_allclose(got, direct(params, N, D), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(log_loss(params, N, D)), np.log(direct(params, N, D)),
                               rtol=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_loss_on_paired_runs_and_scalars():
    N = np.array([1e8, 4e8, 1.6e9])
    D = np.array([2e9, 8e9, 3.2e10])
    np.testing.assert_allclose(loss(HOFFMANN_2022, N, D), direct(HOFFMANN_2022, N, D), rtol=1e-12)
    assert jnp.shape(loss(HOFFMANN_2022, 1e9, 2e10)) == ()
    np.testing.assert_allclose(float(loss(HOFFMANN_2022, 1e9, 2e10)),
                               direct(HOFFMANN_2022, 1e9, 2e10), rtol=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_log_loss_from_theta_is_the_logsumexp_form():
    a, b, e, alpha, beta = 6.0, 7.5, 0.6, 0.35, 0.37
    theta = jnp.array([a, b, e, alpha, beta])
    logN, logD = np.log(N_GRID), np.log(D_GRID[:15])
    want = np.logaddexp(np.logaddexp(a - alpha * logN, b - beta * logD), e)
    np.testing.assert_allclose(log_loss_from_theta(theta, logN, logD), want, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(PARAM_SETS))
def test_log_space_is_finite_and_accurate_in_float32(name):
    params = PARAM_SETS[name]
    N = np.geomspace(1e6, 1e12, 13)[:, None]
    D = np.geomspace(1e7, 1e14, 15)[None, :]
    want = np.log(direct(params, N, D))
    with jax.enable_x64(False):
        got = log_loss(LawParams(*(np.float32(v) for v in params)),
                       N.astype(np.float32), D.astype(np.float32))
        assert got.dtype == jnp.float32
        got = np.asarray(got)
    assert np.all(np.isfinite(got))
    # float32 has ~7 digits; the parameters themselves are rounded to float32.
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_log_space_survives_where_the_direct_float32_form_overflows():
    # Large scales and exponents (a = b = 25 as at a corner of Hoffmann's start grid,
    # beta = 3): D**beta reaches 1e42, past float32's 3.4e38. The log-space form never
    # forms it, so its value and gradient stay finite and accurate.
    theta64 = np.array([25.0, 25.0, 1.0, 2.0, 3.0])
    logN = np.log(np.geomspace(1e6, 1e12, 7))
    logD = np.log(np.geomspace(1e8, 1e14, 7))
    terms = np.stack([theta64[0] - theta64[3] * logN, theta64[1] - theta64[4] * logD,
                      np.full(7, theta64[2])])
    want = np.log(np.exp(terms).sum(axis=0))
    with jax.enable_x64(False):
        theta = jnp.asarray(theta64, dtype=jnp.float32)
        lN, lD = jnp.asarray(logN, jnp.float32), jnp.asarray(logD, jnp.float32)
        direct32 = jnp.power(jnp.exp(lD), theta[4])  # D**beta in float32
        assert not bool(jnp.all(jnp.isfinite(direct32)))
        got = np.asarray(log_loss_from_theta(theta, lN, lD))
        grad = np.asarray(jax.grad(lambda t: log_loss_from_theta(t, lN, lD).sum())(theta))
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_vmap_over_draws_matches_a_loop(rng):
    k = 11
    draws = LawParams(
        E=rng.uniform(1.5, 2.0, k), A=rng.uniform(200, 800, k), B=rng.uniform(300, 3000, k),
        alpha=rng.uniform(0.25, 0.45, k), beta=rng.uniform(0.25, 0.45, k),
    )
    N = np.geomspace(1e7, 1e11, 6)
    D = np.geomspace(1e9, 1e13, 6)
    batched = np.asarray(jax.vmap(loss, in_axes=(0, None, None))(draws, N, D))
    assert batched.shape == (k, 6)
    looped = np.stack([np.asarray(loss(LawParams(*(v[i] for v in draws)), N, D)) for i in range(k)])
    np.testing.assert_allclose(batched, looped, rtol=1e-14)
    np.testing.assert_allclose(
        batched, np.stack([direct(LawParams(*(v[i] for v in draws)), N, D) for i in range(k)]),
        rtol=1e-12)
    # jit(vmap(...)) and vmap over theta vectors agree too.
    jitted = jax.jit(jax.vmap(loss, in_axes=(0, None, None)))(draws, N, D)
    np.testing.assert_allclose(jitted, batched, rtol=1e-14)
    thetas = theta_from_params(draws)
    assert thetas.shape == (k, 5)
    via_theta = jax.vmap(log_loss_from_theta, in_axes=(0, None, None))(thetas, np.log(N), np.log(D))
    np.testing.assert_allclose(np.exp(via_theta), batched, rtol=1e-13)


@pytest.mark.parametrize("theta", [
    [6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083],  # Hoffmann, unrounded
    [6.17796, 7.64273, 0.59711, 0.34781, 0.36585],  # Besiroglu et al. 2024
    [2.0, 9.0, -0.5, 0.1, 0.6],
])
@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_gradient_matches_finite_differences(theta):
    theta = np.array(theta)
    logN = np.log(np.geomspace(5e7, 2e10, 9))
    logD = np.log(np.geomspace(3e8, 4e11, 9))
    jac = np.asarray(jax.jacfwd(log_loss_from_theta)(jnp.asarray(theta), logN, logD))
    jac_rev = np.asarray(jax.jacrev(log_loss_from_theta)(jnp.asarray(theta), logN, logD))
    assert jac.shape == (9, 5)
    np.testing.assert_allclose(jac_rev, jac, rtol=1e-12, atol=1e-15)
    h = 1e-6
    steps = h * np.eye(5)
    f = jax.jit(jax.vmap(log_loss_from_theta, in_axes=(0, None, None)))
    up = np.asarray(f(jnp.asarray(theta + steps), logN, logD))  # (5, 9)
    down = np.asarray(f(jnp.asarray(theta - steps), logN, logD))
    fd = ((up - down) / (2 * h)).T
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9)
    # Softmax weights of the three terms: d/da + d/db + d/de = 1.
    np.testing.assert_allclose(jac[:, :3].sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_theta_params_round_trip(rng):
    theta = np.array([6.0, 7.5, 0.6, 0.35, 0.37])
    params = params_from_theta(theta)
    assert isinstance(params, LawParams)
    np.testing.assert_allclose([params.A, params.B, params.E], np.exp(theta[:3]), rtol=1e-15)
    assert float(params.alpha) == 0.35 and float(params.beta) == 0.37
    np.testing.assert_allclose(theta_from_params(params), theta, rtol=1e-14)
    # Batched: (k, 5) -> fields of shape (k,) -> (k, 5).
    thetas = np.column_stack([rng.uniform(0, 25, 8), rng.uniform(0, 25, 8), rng.uniform(-1, 1, 8),
                              rng.uniform(0.1, 2, 8), rng.uniform(0.1, 2, 8)])
    batch = params_from_theta(thetas)
    assert all(np.shape(v) == (8,) for v in batch)
    np.testing.assert_allclose(theta_from_params(batch), thetas, rtol=1e-13, atol=1e-14)
    for p in (HOFFMANN_2022, BESIROGLU_2024):
        back = params_from_theta(theta_from_params(p))
        np.testing.assert_allclose(np.array(back, dtype=float), np.array(p, dtype=float),
                                   rtol=1e-14)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_from_log():
    p = LawParams.from_log(a=math.log(406.4), b=math.log(410.7), e=math.log(1.69),
                           alpha=0.34, beta=0.28)
    np.testing.assert_allclose(np.array(p, dtype=float), np.array(HOFFMANN_2022, dtype=float),
                               rtol=1e-14)


def test_law_params_is_a_pytree():
    leaves, treedef = jax.tree_util.tree_flatten(HOFFMANN_2022)
    assert leaves == [1.69, 406.4, 410.7, 0.34, 0.28]
    assert jax.tree_util.tree_unflatten(treedef, leaves) == HOFFMANN_2022
    assert HOFFMANN_2022._fields == ("E", "A", "B", "alpha", "beta")


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_allocation_exponents_sum_to_one(rng):
    for p in PARAM_SETS.values():
        a, b = allocation_exponents(p)
        assert float(a + b) == pytest.approx(1.0, abs=1e-15)
        assert float(p.a_opt) == float(a) and float(p.b_opt) == float(b)
    draws = LawParams(E=np.ones(50), A=np.ones(50), B=np.ones(50),
                      alpha=rng.uniform(0.05, 2, 50), beta=rng.uniform(0.05, 2, 50))
    a, b = allocation_exponents(draws)
    assert a.shape == (50,)
    np.testing.assert_allclose(a + b, 1.0, rtol=1e-15)
    np.testing.assert_allclose(a, draws.beta / (draws.alpha + draws.beta), rtol=1e-15)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_docstring_value():
    # bayescale.laws.chinchilla.log_loss's example: Chinchilla (70B params, 1.4T tokens) under eq. 10.
    assert round(float(jnp.exp(log_loss(HOFFMANN_2022, 70e9, 1.4e12))), 3) == 1.937
    assert float(loss(HOFFMANN_2022, 70e9, 1.4e12)) == pytest.approx(
        1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28, rel=1e-12)


def test_module_doctests_pass():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(law) if t.examples]
    assert tests
    for t in tests:
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_hoffmann_2022_eq10_constants():
    # Hoffmann et al. 2022, eq. 10: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28.
    assert tuple(HOFFMANN_2022) == (1.69, 406.4, 410.7, 0.34, 0.28)
    # The unrounded values Besiroglu et al. 2024 recovered round to the printed ones.
    u = HOFFMANN_2022_UNROUNDED
    assert round(u.E, 2) == 1.69 and round(u.A, 1) == 406.4 and round(u.B, 1) == 410.7
    assert round(u.alpha, 2) == 0.34 and round(u.beta, 2) == 0.28
    np.testing.assert_allclose(theta_from_params(u),
                               [6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083],
                               rtol=1e-12)
    # Hoffmann et al. 2022, Table 2, Approach 3: N_opt ~ C^0.46, D_opt ~ C^0.54.
    a, b = allocation_exponents(u)
    assert round(float(a), 2) == 0.46 and round(float(b), 2) == 0.54


def test_besiroglu_2024_constants():
    # Besiroglu et al. 2024: A = 482.01, B = 2085.43, E = 1.817, alpha = 0.3478, beta = 0.3658;
    # log-space [a, b, e, alpha, beta] = [6.17796, 7.64273, 0.59711, 0.34781, 0.36585].
    assert tuple(BESIROGLU_2024) == (1.817, 482.01, 2085.43, 0.3478, 0.3658)
    np.testing.assert_allclose(theta_from_params(BESIROGLU_2024),
                               [6.17796, 7.64273, 0.59711, 0.34781, 0.36585], rtol=2e-4)
    # Their allocation exponent a = beta / (alpha + beta) = 0.513.
    assert round(float(BESIROGLU_2024.a_opt), 3) == 0.513


@jax.jit
def _loss3(params, N, D, factor):
    return loss(params, jnp.stack([N, N * factor, N]), jnp.stack([D, D, D * factor]))


@jax.jit
def _slopes(params, log_N, log_D):
    return jax.grad(lambda lN, lD: log_loss(params, jnp.exp(lN), jnp.exp(lD)),
                    argnums=(0, 1))(log_N, log_D)


_valid = dict(
    E=st.floats(0.1, 5.0), A=st.floats(1.0, 1e4), B=st.floats(1.0, 1e4),
    alpha=st.floats(0.1, 1.0), beta=st.floats(0.1, 1.0),
    N=st.floats(1e6, 1e12), D=st.floats(1e7, 1e12), factor=st.floats(2.0, 100.0),
)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@settings(max_examples=40, deadline=None, database=None)
@given(**_valid)
def test_loss_decreases_in_N_and_in_D(E, A, B, alpha, beta, N, D, factor):
    params = LawParams(E=E, A=A, B=B, alpha=alpha, beta=beta)
    base, more_N, more_D = (float(v) for v in _loss3(params, N, D, factor))
    assert more_N < base and more_D < base
    # ... and never falls below the irreducible loss.
    assert more_N > E and more_D > E
    # The derivatives in log N and log D are -alpha * (A / N**alpha) / L < 0 (and for D).
    slope_N, slope_D = (float(v) for v in _slopes(params, math.log(N), math.log(D)))
    assert slope_N < 0 and slope_D < 0


def test_log_sum_exp_matches_jax_logsumexp_to_second_order():
    """The kernels' max-shifted log-sum-exp (its shift held constant under differentiation)
    against jax.scipy.special.logsumexp: values, gradients and Hessians, float64, including
    terms far apart and near float32's range."""
    import jax
    from jax.scipy.special import logsumexp

    from bayescale.laws.base import log_sum_exp

    with jax.enable_x64(True):
        for t in ([0.3, -1.2, 2.0], [80.0, -70.0, 79.5], [-30.0, -30.0, -29.0]):
            t = jnp.asarray(t)
            ours = lambda v: log_sum_exp(v[0], v[1], v[2])
            ref = lambda v: logsumexp(v)
            np.testing.assert_allclose(ours(t), ref(t), rtol=1e-14)
            np.testing.assert_allclose(jax.grad(ours)(t), jax.grad(ref)(t), rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(jax.hessian(ours)(t), jax.hessian(ref)(t), rtol=1e-10,
                                       atol=1e-15)
