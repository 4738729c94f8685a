"""Compiles of the frontier solver per request shape: one program per (draws, budgets)
(the old way) against fixed-size chunks of (draw, budget) pairs (the new way).

The shapes are those one ``bayescale report data_constrained --law data_constrained
--resamples 40 --draws 40 --chains 2`` asks for (80 and 40 draws, 1 draw; 17, 80 and 1
budgets). For each problem, in one process:

* old: ``_solve_optimal_jit`` (the nested vmap over draws x budgets in one jit, what
  ``_solve_optimal_log`` was), first call per shape (compile + run) and steady state;
* new: ``_solve_optimal_log`` on concrete inputs (``over_pairs``: chunks of
  ``PAIRS_SMALL``/``PAIRS_CHUNK`` pairs), the same.

``--sweep`` also times the steady state of the chunked solve for a few chunk sizes.
Run: ``BAYESCALE_NO_CACHE=1 .venv/bin/python benchmarks/bench_frontier_compiles.py``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("BAYESCALE_NO_CACHE", "1")

import jax
import numpy as np

from bayescale.laws.chinchilla import BESIROGLU_2024
from bayescale.laws.data_constrained import MUENNIGHOFF_2023
from bayescale.planning import _common
from bayescale.planning import frontier as F
from bayescale.planning.costs import AttentionCost, TrainCost

SHAPES = [(80, 17), (40, 17), (80, 80), (40, 80), (80, 1), (40, 1), (1, 1)]
PROBLEMS = {  # name: (params, cost, unique tokens)
    "data_constrained/train": (MUENNIGHOFF_2023, TrainCost(), 25e9),
    "data_constrained/attention": (MUENNIGHOFF_2023, AttentionCost(), 25e9),
    "chinchilla/attention": (BESIROGLU_2024, AttentionCost(), None),
}
OPTS = dict(max_iter=64, init="chinchilla", fused_iters=2)


def problem(base, draws: int, budgets: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scale = np.exp(0.05 * rng.standard_normal(draws))
    params = type(base)(*(np.asarray(v, dtype=np.float32) * scale for v in base))
    return params, np.logspace(19, 25, budgets)


def timed(fn, repeats: int):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times)), out


def run(name: str, repeats: int) -> None:
    base, cost, U = PROBLEMS[name]
    print(f"\n## {name}\n")
    print("| draws x budgets | old first call s | old steady ms | new first call s | new steady ms |")
    print("|---|---|---|---|---|")
    tot = dict(of=0.0, os=0.0, nf=0.0, ns=0.0)
    mism = 0
    for P, B in SHAPES:
        params, C = problem(base, P, B)
        log_C = F.working_log(C)
        of, os_, old = timed(lambda: F._solve_optimal_jit(params, C, cost=cost, unique_tokens=U,
                                                          **OPTS), repeats)
        nf, ns, new = timed(lambda: F._solve_optimal_log(params, log_C, cost=cost,
                                                         unique_tokens=U, **OPTS), repeats)
        ok = np.asarray(old.converged) & np.asarray(new.converged)  # same answers
        for a, b in zip(old[:3], new[:3]):
            np.testing.assert_allclose(np.asarray(a, float)[ok], np.asarray(b, float)[ok], rtol=2e-3)
        mism += int((np.asarray(old.converged) != np.asarray(new.converged)).sum())
        tot["of"] += of; tot["os"] += os_; tot["nf"] += nf; tot["ns"] += ns
        print(f"| {P} x {B} | {of:.2f} | {1e3 * os_:.1f} | {nf:.2f} | {1e3 * ns:.1f} |")
    print(f"| **total** | {tot['of']:.2f} | {1e3 * tot['os']:.1f} | {tot['nf']:.2f} | "
          f"{1e3 * tot['ns']:.1f} |")
    comp_old = tot["of"] - tot["os"]
    comp_new = tot["nf"] - tot["ns"]
    print(f"\ncompile (first call - steady) old {comp_old:.2f} s, new {comp_new:.2f} s "
          f"(x{comp_old / comp_new:.1f} less); steady state new/old "
          f"{tot['ns'] / tot['os']:.2f}; per-pair programs compiled: "
          f"{_common._pairs_program._cache_size()} so far in this process; pairs whose "
          f"converged flag differs old/new: {mism}")


def sweep(repeats: int) -> None:
    base, cost, U = PROBLEMS["data_constrained/train"]
    print("\n## chunk size sweep (data_constrained/train, steady ms, first call s)\n")
    print("| chunk | 80 x 1 | 80 x 17 | 80 x 80 | first call 80 x 80 s |")
    print("|---|---|---|---|---|")
    small, chunk = _common.PAIRS_SMALL, _common.PAIRS_CHUNK
    for size in (256, 1024, 2048, 4096, 8192):
        _common.PAIRS_SMALL, _common.PAIRS_CHUNK = 0, size  # every request in `size` chunks
        row, first = [], 0.0
        for P, B in ((80, 1), (80, 17), (80, 80)):
            params, C = problem(base, P, B)
            f, s, _ = timed(lambda: F._solve_optimal_log(params, F.working_log(C), cost=cost,
                                                         unique_tokens=U, **OPTS), repeats)
            row.append(f"{1e3 * s:.1f}")
            first = f
        print(f"| {size} | " + " | ".join(row) + f" | {first:.2f} |")
    _common.PAIRS_SMALL, _common.PAIRS_CHUNK = small, chunk


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    args = ap.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"PAIRS_SMALL={_common.PAIRS_SMALL}, PAIRS_CHUNK={_common.PAIRS_CHUNK}")
    if args.sweep:
        sweep(args.repeats)
    for name in args.problems:
        run(name, args.repeats)
