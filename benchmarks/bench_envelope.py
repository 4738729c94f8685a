"""Benchmark Hoffmann et al.'s Approach 1 (``fit_envelope``) on the misfitting runs and on
synthetic training curves, against the loop a user would write, and beside Approach 3.

* ``misfitting`` (Li, Kudugunta, Zettlemoyer, ICLR 2025, arXiv:2502.18969): final
  checkpoints, best learning rate per (N, D) cell; a, b with 90% bootstrap intervals
  (1000 resamples of runs) and N_opt at 1e22 and 1e24 FLOPs;
* ``misfitting_checkpoints`` with ``use_checkpoints=True`` (every checkpoint of the
  cosine-decayed runs, for contrast: intermediate checkpoints overestimate the loss);
* synthetic curves from Hoffmann et al.'s law (``simulate_curves``), noiseless and with
  the default noise, beside the true ``a``; the bias and 90% coverage over 20 seeds,
  on the data's whole compute range and on the computes whose optimum the design's
  sizes bracket well;
* timing: compile (first call) and steady state (median of repeats) of the full fit
  with 1000 resamples, against a plain NumPy/pandas loop (groupby per size,
  ``np.interp`` onto the grid, argmin, ``np.polyfit``) timed on a subset of resamples
  and scaled to 1000; the loop's full-data ``a`` is checked against ``fit_envelope``'s;
* Approach 3 on the same runs: ``bayescale.fit(runs, method="huber")``, its ``a`` and
  N_opt at the same budgets.

Run ``python benchmarks/bench_envelope.py`` (``--quick`` for a smoke run). Writes
``benchmarks/results/envelope.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale
from bayescale._util import to_jsonable
from bayescale.data.curves import optimal_allocation, simulate_curves
from bayescale.errors import DataWarning
from bayescale.estimators.bootstrap import bootstrap_weights
from bayescale.estimators.envelope import fit_envelope

RESULTS = Path(__file__).resolve().parent / "results" / "envelope.json"
BUDGETS = (1e22, 1e24)


def summarise(f) -> dict:
    ivals = f.intervals(0.9)
    est = f.point_estimate()
    fr = f.frontier(list(BUDGETS))
    out = {k: {"estimate": est[k], "lower": ivals[k][0], "upper": ivals[k][1]}
           for k in ("a", "b")}
    ref = f.reference
    for j, C in enumerate(BUDGETS):
        lo, hi = np.quantile(fr.N_opt[:, j], [0.05, 0.95])
        out[f"N_opt@{C:.0e}"] = {"estimate": float(np.exp(ref.log_G_N + ref.a * np.log(C))),
                                 "lower": float(lo), "upper": float(hi)}
    out["resamples_usable"] = f.info.get("resamples_usable")
    out["grid_points"] = f.info["grid_points"]
    out["envelope_sizes"] = f.info["envelope_sizes"]
    out["notes"] = f.info["notes"]
    return out


def loop_envelope(frame: pd.DataFrame, xg: np.ndarray, bracket: int = 1) -> float:
    """The loop a user would write: per size, np.interp of log loss over log C (with the
    same half-step rule at the ends), argmin over sizes, the bracket rule, np.polyfit."""
    half = np.gradient(xg) / 2
    vals, covs, Ns = [], [], []
    for N, g in frame.groupby("N"):
        g = g.sort_values("x")
        lo, hi = g["x"].iloc[0], g["x"].iloc[-1]
        xc = np.clip(xg, lo, hi)
        cov = np.abs(xg - xc) <= half
        vals.append(np.where(cov, np.interp(xc, g["x"], g["y"]), np.inf))
        covs.append(cov)
        Ns.append(N)
    vals, covs, logN = np.array(vals), np.array(covs), np.log(np.array(Ns))
    win = np.argmin(vals, axis=0)
    nw = logN[win]
    smaller = (covs & (logN[:, None] < nw)).sum(0)
    larger = (covs & (logN[:, None] > nw)).sum(0)
    keep = np.isfinite(vals.min(0)) & (smaller >= bracket) & (larger >= bracket)
    if np.unique(nw[keep]).size < 2:
        return float("nan")
    return float(np.polyfit(xg[keep], nw[keep], 1)[0])


def time_baseline(runs, num_grid: int, resamples: int, subset: int, seed: int = 0):
    frame = pd.DataFrame({"N": runs.N, "x": np.log(runs.C), "y": runs.log_loss})
    xg = np.linspace(frame["x"].min(), frame["x"].max(), num_grid)
    a_full = loop_envelope(frame, xg)
    w = bootstrap_weights(len(frame), resamples, seed)[:subset]
    start = time.perf_counter()
    for row in w:
        loop_envelope(frame[row > 0], xg)
    per = (time.perf_counter() - start) / subset
    return a_full, per * resamples


def time_jax(runs, resamples: int, repeats: int, **kwargs):
    start = time.perf_counter()
    f = fit_envelope(runs, resamples=resamples, **kwargs)
    first = time.perf_counter() - start
    steady = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit_envelope(runs, resamples=resamples, **kwargs)
        steady.append(time.perf_counter() - start)
    return f, first, float(np.median(steady))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    resamples = 100 if args.quick else 1000
    repeats = 2 if args.quick else 5
    out: dict = {"platform": {"python": platform.python_version(), "machine": platform.machine(),
                              "cpus": os.cpu_count(), "jax": __import__("jax").__version__},
                 "resamples": resamples, "level": 0.9}

    runs = bayescale.load_runs("misfitting")
    # timed with margin=None, the rule the loop implements (the margin rule adds 3 refits)
    f, first, steady = time_jax(runs, resamples, repeats, margin=None)
    out["misfitting_margin_none"] = summarise(f)
    out["misfitting"] = summarise(fit_envelope(runs, resamples=resamples))
    a_loop, loop_s = time_baseline(runs, 1500, resamples, subset=20 if args.quick else 50)
    out["timing"] = {"data": "misfitting (81 runs), grid 1500, resamples %d, margin=None "
                             "(both)" % resamples,
                     "jax_first_call_s": first, "jax_steady_s": steady,
                     "jax_compile_s_approx": first - steady,
                     "numpy_loop_s": loop_s, "loop_over_jax_steady": loop_s / steady,
                     "loop_full_data_a": a_loop, "jax_full_data_a": f.reference.a,
                     "note": "2 CPU cores shared with other processes; wall-clock times"}

    ck = bayescale.load_runs("misfitting_checkpoints")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fc = fit_envelope(ck, resamples=resamples, use_checkpoints=True)
        out["misfitting_checkpoints_use_checkpoints"] = summarise(fc)
        out["misfitting_checkpoints_use_checkpoints_margin_none"] = summarise(
            fit_envelope(ck, resamples=resamples, use_checkpoints=True, margin=None))
    out["misfitting_checkpoints_final"] = summarise(fit_envelope(ck, resamples=resamples))

    start = time.perf_counter()
    huber = bayescale.fit(runs, method="huber")
    huber_s = time.perf_counter() - start
    fr = huber.frontier(list(BUDGETS))
    est = huber.point_estimate()
    out["approach3_huber_misfitting"] = {
        "a": est.get("a_opt"), "b": est.get("b_opt"), "seconds": huber_s,
        **{f"N_opt@{C:.0e}": float(fr.N_opt[0, j]) for j, C in enumerate(BUDGETS)},
        "params": {k: est[k] for k in ("E", "A", "B", "alpha", "beta")}}

    truth = optimal_allocation()
    out["synthetic"] = {"truth": truth}
    for noise in (0.0, 0.0075):
        sf = fit_envelope(simulate_curves(noise=noise, seed=0), resamples=resamples)
        out["synthetic"][f"noise={noise}"] = summarise(sf)
    # the fit over computes whose optimum the design brackets well (N_opt 2e8-1.25e9)
    C_of = lambda N: np.exp((np.log(N) - truth["log_G_N"]) / truth["a"])  # noqa: E731
    inner = np.geomspace(C_of(2e8), C_of(1.25e9), 1500)
    sf = fit_envelope(simulate_curves(noise=0.0075, seed=0), resamples=resamples, grid=inner)
    out["synthetic"]["noise=0.0075, inner grid"] = summarise(sf)

    # bias and coverage over seeds: the full data range vs the inner grid
    seeds = range(5 if args.quick else 20)
    for name, grid, margin in (("full range", 1500, 1.5), ("full range, margin None", 1500, None),
                               ("inner grid", inner, 1.5)):
        a_hat, hits = [], 0
        for seed in seeds:
            sf = fit_envelope(simulate_curves(noise=0.0075, seed=1000 + seed),
                              resamples=200, grid=grid, seed=seed, margin=margin)
            lo, hi = sf.intervals(0.9)["a"]
            a_hat.append(sf.reference.a)
            hits += lo <= truth["a"] <= hi
        out["synthetic"][f"over seeds, {name}"] = {
            "num_seeds": len(a_hat), "mean_a": float(np.mean(a_hat)),
            "sd_a": float(np.std(a_hat, ddof=1)), "bias": float(np.mean(a_hat) - truth["a"]),
            "se_bias": float(np.std(a_hat, ddof=1) / np.sqrt(len(a_hat))),
            "coverage_90": hits / len(a_hat)}

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(to_jsonable(out), indent=2) + "\n")
    for key in ("misfitting", "misfitting_margin_none", "misfitting_checkpoints_use_checkpoints",
                "misfitting_checkpoints_use_checkpoints_margin_none",
                "misfitting_checkpoints_final"):
        r = out[key]
        print(f"{key:52s} a={r['a']['estimate']:.3f} ({r['a']['lower']:.3f}, "
              f"{r['a']['upper']:.3f})  N_opt@1e22={r['N_opt@1e+22']['estimate']:.3g} "
              f"({r['N_opt@1e+22']['lower']:.3g}, {r['N_opt@1e+22']['upper']:.3g})  "
              f"N_opt@1e24={r['N_opt@1e+24']['estimate']:.3g} "
              f"({r['N_opt@1e+24']['lower']:.3g}, {r['N_opt@1e+24']['upper']:.3g})")
    h = out["approach3_huber_misfitting"]
    print(f"approach 3 (huber) a={h['a']:.3f} N_opt@1e22={h['N_opt@1e+22']:.3g} "
          f"N_opt@1e24={h['N_opt@1e+24']:.3g}")
    for k, r in out["synthetic"].items():
        if k.startswith("over seeds"):
            print(f"synthetic {k:28s} bias {r['bias']:+.4f} (se {r['se_bias']:.4f}), "
                  f"90% coverage {r['coverage_90']:.2f} over {r['num_seeds']} seeds")
        elif k != "truth":
            print(f"synthetic {k:28s} a={r['a']['estimate']:.4f} ({r['a']['lower']:.4f}, "
                  f"{r['a']['upper']:.4f}) truth {truth['a']:.4f}")
    print(json.dumps(out["timing"], indent=1, default=float))


if __name__ == "__main__":
    main()
