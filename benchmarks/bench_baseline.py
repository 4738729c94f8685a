"""Benchmark: bayescale's Huber grid fit and bootstrap against scipy loops.

Same data (Besiroglu et al.'s 240 Chinchilla runs), same objective, same starts:

* grid: 4500 starts (Hoffmann et al. 2022). Baseline: a scipy L-BFGS-B loop with an
  analytic NumPy gradient, as a careful user would write it.
* bootstrap: 4000 resamples refitted from Hoffmann's parameters. Baseline: a scipy
  BFGS loop (Besiroglu et al. used BFGS) with the analytic gradient.

The scipy loops are timed on a subset (every k-th start / the first resamples) and
scaled to the full count; the output says so. bayescale is timed cold (first call in
this process: compile + run) and in steady state; compile time is the difference.
Every timing is the minimum over ``--repeats`` runs (for scipy too), the usual guard
against other load on a shared machine. Run: ``python benchmarks/bench_baseline.py [--scipy-fraction F]``;
writes ``benchmarks/results/baseline-<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def huber_value_and_grad(theta, log_N, log_D, log_loss, weights, delta=1e-3):
    """Analytic objective and gradient in NumPy (what a scipy user would write)."""
    a, b, e, alpha, beta = theta
    z1 = a - alpha * log_N
    z2 = b - beta * log_D
    m = np.maximum(np.maximum(z1, z2), e)
    e1, e2, e3 = np.exp(z1 - m), np.exp(z2 - m), np.exp(e - m)
    s = e1 + e2 + e3
    r = m + np.log(s) - log_loss
    absr = np.abs(r)
    f = np.sum(weights * np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)))
    hp = weights * np.clip(r, -delta, delta) / s
    g1, g2 = hp * e1, hp * e2
    grad = np.array([g1.sum(), g2.sum(), (hp * e3).sum(), -(g1 * log_N).sum(),
                     -(g2 * log_D).sum()])
    return f, grad


def scipy_grid(starts, data, method="L-BFGS-B"):
    from scipy.optimize import minimize

    best = (np.inf, None)
    for x0 in starts:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            res = minimize(huber_value_and_grad, x0, args=data, jac=True, method=method)
        if np.isfinite(res.fun) and res.fun < best[0]:
            best = (res.fun, res.x)
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scipy-fraction", type=float, default=0.1,
                        help="fraction of starts/resamples timed for scipy (scaled up)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import jax

    from bayescale import load_runs
    from bayescale.estimators import bootstrap
    from bayescale.estimators import huber as baseline
    from bayescale.laws.chinchilla import HOFFMANN_2022_UNROUNDED, LAW as CHINCHILLA

    runs = load_runs("chinchilla", exclude_top=5)
    lN, lD, lL = runs.log_N, runs.log_D, runs.log_loss
    backend = jax.default_backend()
    device = str(jax.devices()[0].device_kind) if backend != "cpu" else platform.processor() or "cpu"
    report: dict = {"backend": backend, "device": device, "cpu_count": os.cpu_count(),
                    "jax": jax.__version__, "n_runs": len(runs)}

    # --- grid fit -----------------------------------------------------------------
    t = time.perf_counter()
    res = baseline.fit_huber(lN, lD, lL)
    cold = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = baseline.fit_huber(lN, lD, lL)
        times.append(time.perf_counter() - t)
    steady = min(times)
    grid = {"starts": 4500, "objective": res.info["objective"],
            "params": {k: float(v) for k, v in res.params._asdict().items()},
            "evaluations": res.info["evaluations"], "first_call_s": cold, "steady_s": steady,
            "compile_s": max(cold - steady, 0.0)}

    starts = baseline.hoffmann_grid()
    step = max(int(round(1 / args.scipy_fraction)), 1)
    subset = starts[::step]
    data = (lN, lD, lL, np.ones_like(lL))
    sub_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        best_fun, _ = scipy_grid(subset, data)
        sub_times.append(time.perf_counter() - t)
    sub_s = min(sub_times)
    grid["scipy_lbfgsb"] = {"timed_starts": len(subset), "timed_s": sub_s,
                            "scaled_to_4500_s": sub_s * len(starts) / len(subset),
                            "subset_best_objective": float(best_fun)}
    grid["speedup_steady"] = grid["scipy_lbfgsb"]["scaled_to_4500_s"] / steady
    report["grid"] = grid

    # --- bootstrap ----------------------------------------------------------------
    R = args.resamples
    t = time.perf_counter()
    boot = bootstrap.fit_bootstrap(lN, lD, lL, resamples=R, seed=0)
    cold_b = boot.info["timing"]["total"]
    first_wall = time.perf_counter() - t
    times = []
    for i in range(args.repeats):
        b = bootstrap.fit_bootstrap(lN, lD, lL, resamples=R, seed=i + 1)
        times.append(b.info["timing"]["total"])  # the resample fits, not the reference fit
    steady_b = min(times)
    weights = bootstrap.bootstrap_weights(len(lL), R, 0)
    k = max(int(R * args.scipy_fraction), 1)
    x0 = np.asarray(CHINCHILLA.to_theta(HOFFMANN_2022_UNROUNDED), dtype=float)
    from scipy.optimize import minimize

    sub_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        scipy_alpha, scipy_fun = [], []
        for w in weights[:k]:
            r = minimize(huber_value_and_grad, x0, args=(lN, lD, lL, w), jac=True, method="BFGS")
            scipy_alpha.append(r.x[3])
            scipy_fun.append(r.fun)
        sub_times.append(time.perf_counter() - t)
    sub_b = min(sub_times)
    p = boot.params
    ours_theta = np.stack([np.log(p.A), np.log(p.B), np.log(p.E), p.alpha, p.beta], -1)[:k]
    ours_alpha = ours_theta[:, 3]
    ours_fun = np.array([huber_value_and_grad(t, lN, lD, lL, w)[0]
                         for t, w in zip(ours_theta, weights[:k])])
    gap = ours_fun - np.asarray(scipy_fun)
    report["bootstrap"] = {
        "resamples": R, "first_call_s": cold_b, "first_call_wall_s_incl_reference_fit": first_wall,
        "steady_s": steady_b, "compile_s": max(cold_b - steady_b, 0.0),
        "alpha_95": [float(np.percentile(boot.params.alpha, 2.5)),
                     float(np.percentile(boot.params.alpha, 97.5))],
        "scipy_bfgs": {"timed_resamples": k, "timed_s": sub_b, "scaled_s": sub_b * R / k,
                       "median_abs_alpha_difference": float(np.median(np.abs(ours_alpha - scipy_alpha))),
                       "fraction_ours_not_worse_1e-9": float(np.mean(gap <= 1e-9)),
                       "objective_gap_ours_minus_scipy_min_max": [float(gap.min()), float(gap.max())]},
        "speedup_steady": (sub_b * R / k) / steady_b,
    }

    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"baseline-{backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    g, bt = report["grid"], report["bootstrap"]
    print(f"backend={backend} device={device} cpus={os.cpu_count()}")
    print(f"grid 4500 starts: ours first call {g['first_call_s']:.2f}s (compile ~{g['compile_s']:.2f}s), "
          f"steady {g['steady_s']:.3f}s, objective {g['objective']:.12g}")
    print(f"  scipy L-BFGS-B: {g['scipy_lbfgsb']['timed_starts']} starts in "
          f"{g['scipy_lbfgsb']['timed_s']:.2f}s -> {g['scipy_lbfgsb']['scaled_to_4500_s']:.1f}s "
          f"for 4500 (scaled); speed-up {g['speedup_steady']:.1f}x")
    print(f"bootstrap {R}: ours first call {bt['first_call_s']:.2f}s, steady {bt['steady_s']:.3f}s")
    print(f"  scipy BFGS: {k} resamples in {bt['scipy_bfgs']['timed_s']:.2f}s -> "
          f"{bt['scipy_bfgs']['scaled_s']:.1f}s for {R} (scaled); speed-up {bt['speedup_steady']:.1f}x; "
          f"median |alpha_ours - alpha_scipy| = {bt['scipy_bfgs']['median_abs_alpha_difference']:.1e}; "
          f"our objective <= scipy's + 1e-9 on {100 * bt['scipy_bfgs']['fraction_ours_not_worse_1e-9']:.1f}% "
          f"of resamples")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
