"""The law families: kernels against the papers' own numbers, frontiers against brute force.

Oracles: Kaplan et al. (2020) eq. (1.5)'s limits eq. (1.1)/(1.2); the values that
Muennighoff et al.'s (2023) datablations README prints from their published
coefficients; a brute-force grid over N on the 6ND budget line.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from bayescale.errors import BayescaleError
from bayescale.laws import get_law, law_names, law_of, loss
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams
from bayescale.laws.data_constrained import MUENNIGHOFF_2023, DataConstrainedParams
from bayescale.laws.kaplan import KAPLAN_2020, KaplanParams
from bayescale.planning.frontier import compute_optimal, frontier


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_registry_lists_the_shipped_laws():
    assert {"chinchilla", "kaplan", "data_constrained"} <= set(law_names())
    assert law_of(KAPLAN_2020) is get_law("kaplan")
    assert get_law("data_constrained").param_names == ("E", "A", "B", "alpha", "beta", "R_N", "R_D")
    with pytest.raises(BayescaleError, match="unknown law 'chinchila'"):
        get_law("chinchila")


# --- Kaplan et al. (2020) ----------------------------------------------------------

def test_kaplan_limits_reproduce_eq_1_1_and_1_2(x64):
    p = KAPLAN_2020
    N = np.array([1e6, 1e8, 1e10])
    # D -> infinity: L(N) = (N_c / N)**alpha_N  (Kaplan et al. 2020, eq. 1.1)
    np.testing.assert_allclose(loss(p, N, 1e40), (8.8e13 / N) ** 0.076, rtol=1e-6)
    # N -> infinity: L(D) = (D_c / D)**alpha_D  (eq. 1.2)
    D = np.array([1e8, 1e10, 1e12])
    np.testing.assert_allclose(loss(p, 1e60, D), (5.4e13 / D) ** 0.095, rtol=1e-6)


def test_kaplan_kernel_matches_eq_1_5_directly(x64):
    rng = np.random.default_rng(0)
    N, D = 10 ** rng.uniform(6, 11, 50), 10 ** rng.uniform(8, 13, 50)
    p = KAPLAN_2020
    direct = ((p.N_c / N) ** (p.alpha_N / p.alpha_D) + p.D_c / D) ** p.alpha_D
    np.testing.assert_allclose(loss(p, N, D), direct, rtol=1e-12)


def _brute_force_N_opt(params, C, U=None, num=200_001):
    # Every split of the budget on a fine log grid of N; the loss from the direct formula.
    x = np.linspace(np.log(C / 6) - 40, 40 if np.log(C / 6) > 40 else np.log(C / 6), num)
    x = x[(x > 0) & (x < np.log(C / 6))]
    N = np.exp(x)
    D = C / (6 * N)
    with jax.enable_x64(True):
        L = np.asarray(loss(params, N, D) if U is None else loss(params, N, D, U))
    i = int(np.argmin(L))
    return N[i], L[i]


@pytest.mark.parametrize("C", [1e19, 1e22, 1e25])
def test_kaplan_frontier_matches_brute_force(x64, C):
    opt = compute_optimal(KAPLAN_2020, C)
    assert bool(opt.converged)
    N_bf, L_bf = _brute_force_N_opt(KAPLAN_2020, C)
    # the grid spacing in log N is < 2e-4, so the brute-force N is within 1e-4 relative
    np.testing.assert_allclose(float(opt.N_opt), N_bf, rtol=1e-4)
    assert float(opt.L_opt) <= L_bf * (1 + 1e-12)
    np.testing.assert_allclose(6 * float(opt.N_opt) * float(opt.D_opt), C, rtol=1e-9)


# --- Muennighoff et al. (2023) ------------------------------------------------------

def test_data_constrained_reproduces_the_datablations_readme(x64):
    # huggingface/datablations README, "Parametric Fit" (see shared/data/active_sl/PROVENANCE.md)
    np.testing.assert_allclose(float(loss(MUENNIGHOFF_2023, 6.34e9, 242e9, 25e9)),
                               2.2256440889984477, rtol=1e-9)
    np.testing.assert_allclose(float(loss(MUENNIGHOFF_2023, 8.67e9, 178e9, 25e9)),
                               2.2269634075087867, rtol=1e-9)


def test_data_constrained_without_repetition_is_chinchilla(x64):
    p = MUENNIGHOFF_2023
    chin = LawParams(p.E, p.A, p.B, p.alpha, p.beta)
    N, D = np.array([1e8, 1e9, 7e9]), np.array([2e9, 2e10, 1.4e11])
    np.testing.assert_allclose(loss(p, N, D, 1e15), loss(chin, N, D), rtol=1e-12)


def test_data_constrained_allocation_matches_muennighoff_grid_search(x64):
    # Their README: C = 1e22 FLOPs, U = 25e9 -> 7.022e9 parameters, 2.373e11 tokens
    # (9.49 epochs), from a 1000-point grid search.
    f = frontier(MUENNIGHOFF_2023, [1e22], unique_tokens=25e9)
    assert bool(f.converged[0, 0])
    N, D = float(f.N_opt[0, 0]), float(f.D_opt[0, 0])
    L_theirs = float(loss(MUENNIGHOFF_2023, 7.022e9, 2.373e11, 25e9))
    assert float(f.L_opt[0, 0]) <= L_theirs * (1 + 1e-12)
    np.testing.assert_allclose(N, 7.022e9, rtol=0.02)
    np.testing.assert_allclose(D, 2.373e11, rtol=0.02)
    N_bf, _ = _brute_force_N_opt(MUENNIGHOFF_2023, 1e22, U=25e9)
    np.testing.assert_allclose(N, N_bf, rtol=1e-4)


def test_data_constrained_with_ample_unique_tokens_equals_chinchilla_answer(x64):
    p = MUENNIGHOFF_2023
    chin = LawParams(p.E, p.A, p.B, p.alpha, p.beta)
    ref = compute_optimal(chin, 1e22)
    f = frontier(p, [1e22], unique_tokens=1e16)  # U far above D_opt
    np.testing.assert_allclose(float(f.N_opt[0, 0]), float(ref.N_opt), rtol=1e-8)


def test_data_constrained_needs_unique_tokens():
    with pytest.raises(BayescaleError, match="unique_tokens"):
        frontier(MUENNIGHOFF_2023, [1e22])
    with pytest.raises(BayescaleError, match="unique tokens"):
        frontier(BESIROGLU_2024, [1e22], unique_tokens=1e10)


# --- one kernel: consumers agree with it on random points ---------------------------

def test_consumers_evaluate_the_kernel(x64):
    """Every consumer that evaluates a law agrees with the law's kernel."""
    from bayescale.data.synthetic import simulate_frame
    from bayescale.planning.decisions import plan_loss

    rng = np.random.default_rng(3)
    draws = LawParams(E=rng.uniform(1.5, 2, 7), A=rng.uniform(200, 600, 7),
                      B=rng.uniform(300, 3000, 7), alpha=rng.uniform(0.25, 0.4, 7),
                      beta=rng.uniform(0.25, 0.4, 7))
    N, D = 10 ** rng.uniform(7, 11, 5), 10 ** rng.uniform(9, 13, 5)
    direct = np.array([[float(e + a / n**al + b / d**be) for n, d in zip(N, D)]
                       for e, a, b, al, be in zip(*draws)])
    np.testing.assert_allclose(plan_loss(draws, N, D), direct, rtol=1e-12)
    frame = simulate_frame(BESIROGLU_2024, noise=0.0)
    np.testing.assert_allclose(frame["loss"], loss(BESIROGLU_2024, frame["N"], frame["D"]),
                               rtol=1e-12)
    for law, p in [("kaplan", KaplanParams(8.8e13, 5.4e13, 0.076, 0.095)),
                   ("data_constrained", MUENNIGHOFF_2023)]:
        assert law_of(p).name == law
    assert math.isfinite(float(loss(MUENNIGHOFF_2023, 1e9, 1e10, 1e9)))


def test_closed_form_marginal_ratios_match_the_kernel(x64):
    """A law's closed-form log ratio of elasticities (used by the numerical frontier)
    equals the kernel's, by central finite differences and by autodiff."""
    import dataclasses

    from bayescale.laws.base import registered
    from bayescale.planning._common import Draw, log_marginal_ratio

    rng = np.random.default_rng(11)
    checked = 0
    for law in registered().values():
        if law.log_marginal_ratio is None:
            continue
        assert law.inputs == ("N", "D") and law.coords[:5] == ("a", "b", "e", "alpha", "beta")
        checked += 1
        generic_law = dataclasses.replace(law, log_marginal_ratio=None)
        for _ in range(20):
            theta = np.array([rng.uniform(4, 8), rng.uniform(4, 9), rng.uniform(0.3, 0.8),
                              rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6)])
            x = np.array([rng.uniform(16, 26), rng.uniform(18, 30)])
            h = 1e-5

            def dk(i, theta=theta, x=x, h=h):
                e = np.zeros_like(x)
                e[i] = h
                return (float(law.kernel(theta, x + e)) - float(law.kernel(theta, x - e))) / (2 * h)

            closed = float(law.log_marginal_ratio(theta, x))
            np.testing.assert_allclose(closed, math.log(dk(0) / dk(1)), rtol=1e-6, atol=1e-6)
            generic = float(log_marginal_ratio(generic_law, Draw(theta, 0.0), x[0], x[1]))
            np.testing.assert_allclose(closed, generic, rtol=1e-10, atol=1e-10)
    assert checked >= 1
