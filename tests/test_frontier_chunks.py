"""The frontier solvers on concrete inputs run (draw, budget) pairs in fixed-size chunks.

Oracles: the per-pair function vmapped over all pairs in one program (no chunks, no
padding), for a law with a closed form (Chinchilla) and one without (data-constrained,
solved numerically); and the compiled per-pair program's cache, which must not grow
when only the numbers of draws and budgets change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayescale.laws.chinchilla import BESIROGLU_2024
from bayescale.laws.data_constrained import MUENNIGHOFF_2023
from bayescale.planning import _common
from bayescale.planning import frontier as F
from bayescale.planning.costs import AttentionCost, TrainCost

U = 25e9
OPTS = dict(cost=TrainCost(), max_iter=64, init="chinchilla", fused_iters=2)
SMALL, CHUNK = 8, 32  # small sizes for the tests: a bucket, a chunk, chunks + remainder
# (draws, budgets): below the small bucket, exactly one chunk, two chunks + 13 pairs
SHAPES = [(2, 3), (4, 8), (7, 11)]


def _params(base, draws, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.exp(0.05 * rng.standard_normal(draws))
    return type(base)(*(np.asarray(v, dtype=np.float32) * scale for v in base))


def _reference(fn_one, params, log_C, unique_tokens=None, **options):
    """All draws x budgets as one vmap of the same one-pair function (no chunks)."""
    law, d, _ = _common.draws(params, unique_tokens)
    P, B = d.theta.shape[0], log_C.shape[0]
    pairs = jax.tree.map(lambda v: jnp.repeat(v, B, axis=0), d)
    lc = jnp.tile(jnp.asarray(log_C, d.theta.dtype), P)
    out = jax.jit(jax.vmap(lambda di, c: fn_one(law, di, c, **options)))(pairs, lc)
    return [np.asarray(o).reshape(P, B) for o in out]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_common, "PAIRS_SMALL", SMALL)
    monkeypatch.setattr(_common, "PAIRS_CHUNK", CHUNK)


def _check(got, ref, P, B):
    for g, r in zip(got, ref):
        assert g.shape == (P, B)
        np.testing.assert_allclose(np.asarray(g, float), r[:P, :B].astype(float), rtol=1e-6)


@pytest.mark.parametrize("law", ["chinchilla", "data_constrained"])
def test_chunked_equals_one_vmap_of_the_pairs(small_chunks, law):
    Pm, Bm = SHAPES[-1]
    base, U_ = (BESIROGLU_2024, None) if law == "chinchilla" else (MUENNIGHOFF_2023, U)
    params = _params(base, Pm)
    log_C = F.working_log(np.logspace(19, 25, Bm))
    if law == "chinchilla":
        fn, opts = F._closed_pair, {}
    else:
        fn, opts = F._numerical_pair, OPTS
    ref = _reference(fn, params, log_C, U_, **opts)
    if law == "data_constrained":
        assert np.all(ref[3])  # every reference solve converged
    for P, B in SHAPES:  # sub-problems: the first P draws and B budgets
        sub = type(params)(*(v[:P] for v in params))
        got = F._compute_optimal_log(sub, log_C[:B], U_)
        _check(got, ref, P, B)
        assert all(isinstance(g, jax.Array) for g in got)
        assert got.converged.dtype == bool


def test_no_recompile_for_new_numbers_of_draws_or_budgets(small_chunks):
    """After the two chunk sizes have compiled, no request shape compiles again."""
    C = np.logspace(19, 25, 80)

    def call(P, B):
        jax.block_until_ready(F.compute_optimal(_params(MUENNIGHOFF_2023, P), C[:B], U))

    call(2, 3)  # the small bucket
    call(7, 11)  # the chunk
    before = _common._pairs_program._cache_size()
    for P, B in [(3, 5), (40, 17), (80, 1), (1, 1), (5, 7)]:
        call(P, B)
    assert _common._pairs_program._cache_size() == before


def test_default_chunk_sizes_closed_form_and_no_recompile():
    """The real sizes: below PAIRS_SMALL, one PAIRS_CHUNK chunk, several chunks +
    remainder; the closed form (cheap to compile) against its one-vmap reference."""
    B = 64
    P = 2 * _common.PAIRS_CHUNK // B + 2  # two chunks + a remainder of 2 B pairs
    params = _params(BESIROGLU_2024, P)
    log_C = F.working_log(np.logspace(18, 26, B))
    ref = _reference(F._closed_pair, params, log_C)
    shapes = [(3, 5), (_common.PAIRS_CHUNK // B, B), (P, B)]  # small, exactly a chunk, more
    sizes = []
    for p, b in shapes:
        sub = type(params)(*(v[:p] for v in params))
        _check(F._compute_optimal_log(sub, log_C[:b]), ref, p, b)
        sizes.append(_common._pairs_program._cache_size())
    for p, b in [(1, 1), (40, 17), (80, 1), (80, 64)]:
        sub = type(params)(*(v[:p] for v in params))
        F.compute_optimal(sub, np.exp(log_C[:b]))
    assert _common._pairs_program._cache_size() == sizes[-1]


def test_empty_requests_compile_once():
    """No draw or no budget: the empty leaves (shapes, dtypes) come from one compiled
    program per function and shapes, not a new one per call."""
    empty = _params(BESIROGLU_2024, 0)
    log_C = F.working_log(np.logspace(19, 25, 3))
    got = F._compute_optimal_log(empty, log_C)
    assert [(g.shape, g.dtype) for g in got] == [((0, 3), np.float32)] * 3 + [((0, 3), bool)]
    before = _common._empty_program._cache_size()
    for _ in range(3):
        F._compute_optimal_log(_params(BESIROGLU_2024, 0), log_C)
    assert _common._empty_program._cache_size() == before


def _close(a, b):
    """Same allocation to the solver's tolerance where both solves converged: the one
    program over draws x budgets is compiled differently from the per-pair one, and its
    rounding moves the numerical root within the stopping step (256 eps (1 + |log N|),
    ~6e-4 in log N in float32) and can tip a borderline solve (data-constrained at a
    budget of 1e19 FLOPs) over ``converged``."""
    ok = np.asarray(a.converged) & np.asarray(b.converged)
    assert ok.mean() >= 0.9
    for q, rtol in (("N_opt", 2e-3), ("D_opt", 2e-3), ("L_opt", 1e-5)):
        np.testing.assert_allclose(np.asarray(getattr(a, q), float)[ok],
                                   np.asarray(getattr(b, q), float)[ok], rtol=rtol)


def test_traced_inputs_take_the_one_program_and_agree():
    """Inside jit (as planning/decisions.py calls it) the nested vmap path runs; same values."""
    params = _params(MUENNIGHOFF_2023, 5)
    C = np.logspace(19, 25, 4)
    _close(F.compute_optimal(params, C, U), jax.jit(lambda p: F.compute_optimal(p, C, U))(params))
    chin = _params(BESIROGLU_2024, 3)
    _close(F.solve_optimal(chin, C, cost=AttentionCost()),
           jax.jit(lambda p: F.solve_optimal(p, C, cost=AttentionCost()))(chin))
    _close(F.compute_optimal(chin, C), jax.jit(lambda p: F.compute_optimal(p, C))(chin))


def test_concrete_inputs_inside_an_outer_jit_are_staged_not_converted():
    # every argument concrete (a closure), but called while another jit traces: the chunked
    # program is staged into that trace, and its outputs are tracers, not arrays to gather
    chin = _params(BESIROGLU_2024, 3)
    C = np.logspace(19, 25, 4)
    eager = F.compute_optimal(chin, C).N_opt
    staged = jax.jit(lambda x: x + F.compute_optimal(chin, C).N_opt)(jnp.zeros(()))
    np.testing.assert_allclose(np.asarray(staged), np.asarray(eager), rtol=1e-5)  # float32
