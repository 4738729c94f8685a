"""Benchmark the compute-optimal frontier: 4000 draws x 1000 budgets.

Times, separately, compilation and steady state (``block_until_ready``, median of
repeats) for

* the closed form (``compute_optimal``, ``C = 6 N D``);
* the numerical solver on the same problem (``solve_optimal`` with ``TrainCost``,
  started from 20 tokens per parameter so that it has to find the optimum itself);
* the numerical solver on ``6 N D`` plus attention FLOPs (``AttentionCost``), the
  case it exists for (started from each draw's 6ND optimum, its default);
* the numerical solver on a user cost, ``CostFn(lambda N, D: 6 * N * D)`` (the
  generic path: ``D`` is solved for by Newton's method inside the iteration), started
  from 20 tokens per parameter like the built-in 6ND row, with its ratio to that row
  (issue 8: within 3x);

against a SciPy loop: ``scipy.optimize.minimize_scalar`` (Brent, ``xtol=1e-10``) in
``log N`` per draw and budget, timed on a random subset of the 4M problems and
scaled linearly to all of them (the loop has no fixed cost worth the name).

Run ``python benchmarks/bench_frontier.py`` (``--x64`` for float64, ``--quick`` for
a small smoke run). Writes ``benchmarks/results/frontier.json`` and prints a table.
JAX's default precision is float32; ``--x64`` switches to float64 for the duration
of the benchmark only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from bayescale.planning.costs import AttentionCost, CostFn, TrainCost
from bayescale.planning.frontier import compute_optimal, solve_optimal
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams

RESULTS = Path(__file__).resolve().parent / "results" / "frontier.json"


def _six_nd(N, D):
    """The 6ND cost written as a user would pass it (``cost=lambda N, D: 6 * N * D``)."""
    return 6 * N * D


def make_problem(num_draws: int, num_budgets: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = LawParams(*(np.asarray(v) * np.exp(0.1 * rng.standard_normal(num_draws))
                         for v in BESIROGLU_2024))
    budgets = np.logspace(18, 26, num_budgets)
    return params, budgets


def time_jax(fn, args, kwargs, repeats: int):
    """(compile seconds, median steady-state seconds, result)."""
    dtype = jax.numpy.result_type(float)
    args = jax.tree.map(lambda a: jax.numpy.asarray(a, dtype=dtype), args)
    t0 = time.perf_counter()
    compiled = fn.lower(*args, **kwargs).compile()
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(fn(*args, **kwargs))  # warm the dispatch cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args, **kwargs))
        times.append(time.perf_counter() - t0)
    del compiled
    return compile_s, float(np.median(times)), out


def time_scipy(params: LawParams, budgets: np.ndarray, num_samples: int, seed: int = 1):
    """Seconds per solve of a minimize_scalar loop over a random subset of problems."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(seed)
    P, K = np.size(params.E), budgets.size
    idx = rng.integers(0, P, num_samples), rng.integers(0, K, num_samples)
    E, A, B, al, be = (np.asarray(v, dtype=float) for v in params)
    N_ref = np.empty(num_samples)
    t0 = time.perf_counter()
    for j, (i, k) in enumerate(zip(*idx)):
        C = budgets[k]
        e_, a_, b_, alpha, beta = E[i], A[i], B[i], al[i], be[i]

        def f(x):
            N = math.exp(x)
            return e_ + a_ / N**alpha + b_ / (C / (6 * N)) ** beta

        x0 = 0.5 * math.log(C / 120)
        res = minimize_scalar(f, bracket=(x0 - 2, x0 + 2), method="brent", tol=1e-10)
        N_ref[j] = math.exp(res.x)
    per_solve = (time.perf_counter() - t0) / num_samples
    return per_solve, idx, N_ref


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--budgets", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--scipy-samples", type=int, default=4000)
    ap.add_argument("--x64", action="store_true", help="float64 (default: JAX's float32)")
    ap.add_argument("--quick", action="store_true", help="small smoke run (no results file)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.draws, args.budgets, args.repeats, args.scipy_samples = 50, 20, 2, 50

    with jax.enable_x64(args.x64):
        return _run(args)


def _run(args) -> dict:
    params, budgets = make_problem(args.draws, args.budgets)
    num = args.draws * args.budgets
    dtype = str(jax.numpy.result_type(float))
    rows = {}
    closed_c, closed_s, closed = time_jax(compute_optimal, (params, budgets), {}, args.repeats)
    rows["closed form (6ND)"] = (closed_c, closed_s, True)
    num_c, num_s, numr = time_jax(solve_optimal, (params, budgets),
                                  {"cost": TrainCost(), "init": "tokens20"}, args.repeats)
    rows["numerical (6ND)"] = (num_c, num_s, bool(np.all(numr.converged)))
    att_c, att_s, att = time_jax(solve_optimal, (params, budgets), {"cost": AttentionCost()},
                                 max(2, args.repeats // 2))
    rows["numerical (6ND + attention)"] = (att_c, att_s, bool(np.all(att.converged)))
    user_cost = CostFn(_six_nd)  # one object: one compiled program across calls
    usr_c, usr_s, usr = time_jax(solve_optimal, (params, budgets),
                                 {"cost": user_cost, "init": "tokens20"}, args.repeats)
    rows["numerical (user cost 6ND)"] = (usr_c, usr_s, bool(np.all(usr.converged)))

    per_solve, (i, k), N_ref = time_scipy(params, budgets, args.scipy_samples)
    scipy_total = per_solve * num
    rel_err_scipy = float(np.max(np.abs(N_ref / np.asarray(closed.N_opt)[i, k] - 1)))
    rel_err_num = float(np.max(np.abs(np.asarray(numr.N_opt, float) / np.asarray(closed.N_opt, float) - 1)))
    rel_err_usr = float(np.max(np.abs(np.asarray(usr.N_opt, float) / np.asarray(closed.N_opt, float) - 1)))

    result = {
        "problem": {"draws": args.draws, "budgets": args.budgets, "solves": num, "dtype": dtype,
                    "budget_range": [float(budgets[0]), float(budgets[-1])]},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "jax": jax.__version__, "backend": jax.default_backend()},
        "timings": {name: {"compile_s": c, "steady_s": s, "ns_per_solve": 1e9 * s / num,
                           "all_converged": ok, "speedup_vs_scipy": scipy_total / s}
                    for name, (c, s, ok) in rows.items()},
        "scipy": {"method": "minimize_scalar(brent, tol=1e-10) in log N, Python loop",
                  "timed_solves": args.scipy_samples, "s_per_solve": per_solve,
                  "scaled_total_s": scipy_total, "scaled": True,
                  "max_rel_err_N_vs_closed": rel_err_scipy},
        "accuracy": {"numerical_6ND_max_rel_err_N_vs_closed": rel_err_num,
                     "user_cost_6ND_max_rel_err_N_vs_closed": rel_err_usr},
        "user_cost_vs_builtin": {"steady_ratio": usr_s / num_s, "compile_ratio": usr_c / num_c},
        "targets": {"numerical_steady_s_below": 0.1, "speedup_at_least": 1000.0,
                    "user_cost_steady_ratio_at_most": 3.0},
        "repeats": args.repeats,
    }
    print(f"frontier benchmark: {args.draws} draws x {args.budgets} budgets = {num:,} solves, "
          f"{dtype}, {os.cpu_count()} CPU cores, jax {jax.__version__}")
    print(f"{'solver':<30} {'compile s':>10} {'steady ms':>10} {'ns/solve':>9} "
          f"{'vs scipy':>10} converged")
    for name, r in result["timings"].items():
        print(f"{name:<30} {r['compile_s']:>10.2f} {1e3 * r['steady_s']:>10.1f} "
              f"{r['ns_per_solve']:>9.1f} {r['speedup_vs_scipy']:>9.0f}x {r['all_converged']}")
    print(f"{'scipy minimize_scalar loop':<30} {'-':>10} {1e3 * scipy_total:>10.0f} "
          f"{1e9 * per_solve:>9.0f} {1:>9.0f}x  (timed on {args.scipy_samples} solves, "
          "scaled linearly)")
    print(f"max |N/N_closed - 1|: numerical {rel_err_num:.1e}, user cost {rel_err_usr:.1e}, "
          f"scipy {rel_err_scipy:.1e}")
    print(f"user cost / built-in 6ND (numerical): steady {usr_s / num_s:.2f}x, "
          f"compile {usr_c / num_c:.2f}x")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
