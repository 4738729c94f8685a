"""Benchmark Hoffmann et al.'s Approach 2 (``fit(method="isoflop")``): speed, bias, results.

1. **Timing** on a 100-run sweep (synthetic: 10 budgets x 10 model sizes) and on each
   ``marin_isoflop`` corpus, compile (first call) separate from steady state (median of
   repeats), for the bootstrap (2000 resamples) and for the joint NUTS model (4 chains x
   500 + 500). Baselines a user would otherwise run, in the same process: a Python loop of
   ``numpy.polyfit`` per budget and per resample (least squares, not robust), and the same
   loop with ``scipy.optimize.least_squares(loss="huber")`` per budget (the robust fit
   this package does; timed on 100 resamples and scaled linearly).
2. **Bias** on noiseless synthetic sweeps (so the error is pure bias, no noise): Approach
   2's error in ``a`` (fit minus ``beta / (alpha + beta)``) against the grid's centring
   (decades between the grid's middle and the true N_opt, the same for every budget;
   -0.4 to 0.4, beyond which the minimum falls in the grid's outermost gap and is flagged) and
   against ``alpha - beta`` (``alpha + beta = 0.6``), and the error of the extrapolated
   ``log10 N_opt`` at 1e24 FLOPs (the intercept's bias shows there); plus, at a few points, the mean and
   sd of the error under noise 0.0075 over 20 seeds, to set the bias beside the noise.
   Figure ``benchmarks/results/isoflop_bias.png``.
3. **Results**: ``a`` and ``N_opt`` at 1e22 and 1e24 FLOPs with 90% intervals for each
   ``marin_isoflop`` corpus and for ``chinchilla``, beside Approach 3 (``method="huber"``,
   Hoffmann's Huber fit of the law, and its bootstrap with 200 resamples).

Run ``python benchmarks/bench_isoflop.py`` (``--quick`` for a smoke run). Writes
``benchmarks/results/isoflop.json`` and the figure, and prints the tables.

References: Hoffmann et al. (2022) arXiv:2203.15556, Approach 2, Table 2; Open-Athena
(2026), "Problems with Chinchilla Approach 2".
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
import scipy.optimize

from bayescale.data.runs import load_runs
from bayescale.data.simulate import simulate_runs
from bayescale.data.synthetic import optimal_N
from bayescale.estimators.fit import fit
from bayescale.estimators.isoflop import budget_labels
from bayescale.laws.chinchilla import LawParams

RESULTS = Path(__file__).resolve().parent / "results"
CORPORA = ("comma", "dclm", "nemotron")
TIMING_BUDGETS = np.geomspace(6e18, 3e21, 10)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _time(fn, repeats):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    steady = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        steady.append(time.perf_counter() - t0)
    return {"first_call": first, "steady": float(np.median(steady)) if steady else None,
            "compile_estimate": first - (float(np.median(steady)) if steady else 0.0)}


def _baseline(runs, resamples, robust, seed=0):
    """A user's loop: per resample, per budget, a parabola; then a line."""
    labels, C_k = budget_labels(runs)
    x, y = runs.log_N, runs.log_loss
    groups = [np.flatnonzero(labels == k) for k in range(C_k.size)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        v = []
        for g in groups:
            i = rng.choice(g, size=g.size)
            if robust:
                res = scipy.optimize.least_squares(
                    lambda c: c[0] + c[1] * x[i] + c[2] * x[i] ** 2 - y[i],
                    np.polyfit(x[i], y[i], 2)[::-1], loss="huber", f_scale=1e-2)
                c0, c1, c2 = res.x
            else:
                c2, c1, c0 = np.polyfit(x[i], y[i], 2)
            v.append(-c1 / (2 * c2))
        out.append(np.polyfit(np.log(C_k), v, 1)[0])
    return np.array(out)


def timing(quick):
    R = 200 if quick else 2000
    rows = {}
    synth = simulate_runs(budgets=TIMING_BUDGETS, models_per_budget=10, seed=0)
    sets = {"synthetic 10x10": synth}
    for c in CORPORA:
        sets[f"marin {c}"] = _quiet(load_runs, "marin_isoflop", group=c)
    for name, runs in sets.items():
        row = {"n_runs": len(runs)}
        row["bootstrap"] = _time(lambda: _quiet(fit, runs, method="isoflop", resamples=R), 3)
        nuts = dict(uncertainty="bayes", warmup=100 if quick else 500, draws=100 if quick else 500)
        row["nuts"] = _time(lambda: _quiet(fit, runs, method="isoflop", **nuts), 1)
        t0 = time.perf_counter()
        _quiet(_baseline, runs, R, robust=False)
        row["baseline_polyfit"] = time.perf_counter() - t0
        r_h = 20 if quick else 100
        t0 = time.perf_counter()
        _quiet(_baseline, runs, r_h, robust=True)
        row["baseline_scipy_huber"] = (time.perf_counter() - t0) * R / r_h
        row["ratio_polyfit"] = row["baseline_polyfit"] / row["bootstrap"]["steady"]
        row["ratio_scipy_huber"] = row["baseline_scipy_huber"] / row["bootstrap"]["steady"]
        rows[name] = row
        print(f"{name:18s} n={len(runs):3d}  bootstrap first {row['bootstrap']['first_call']:.2f}s "
              f"steady {row['bootstrap']['steady']:.2f}s | NUTS first {row['nuts']['first_call']:.1f}s "
              f"steady {row['nuts']['steady']:.1f}s | polyfit loop {row['baseline_polyfit']:.2f}s "
              f"(x{row['ratio_polyfit']:.1f}) | scipy Huber loop {row['baseline_scipy_huber']:.1f}s "
              f"(x{row['ratio_scipy_huber']:.0f})", flush=True)
    return {"resamples": R, "rows": rows}


def bias(quick):
    offsets = np.linspace(-0.4, 0.4, 5 if quick else 9)
    diffs = np.array([-0.1, -0.05, 0.0, 0.05, 0.1])
    err = np.zeros((diffs.size, offsets.size))
    err_N = np.zeros_like(err)
    for i, d in enumerate(diffs):
        alpha, beta = 0.3 + d / 2, 0.3 - d / 2
        law = LawParams(E=1.69, A=406.4, B=410.7, alpha=alpha, beta=beta)
        for j, off in enumerate(offsets):
            runs = simulate_runs(law, noise=0.0, offset=float(off))
            f = _quiet(fit, runs, method="isoflop", uncertainty="none")
            err[i, j] = f.point_estimate()["a"] - beta / (alpha + beta)
            err_N[i, j] = np.log10(float(np.ravel(f.frontier([1e24]).N_opt)[0])
                                   / float(optimal_N(law, np.array([1e24]))[0]))
    noisy = []
    for d, off in [(0.0, 0.0), (0.0, 0.3), (0.06, 0.0), (0.06, 0.3)]:
        alpha, beta = 0.3 + d / 2, 0.3 - d / 2
        law = LawParams(E=1.69, A=406.4, B=410.7, alpha=alpha, beta=beta)
        e = [_quiet(fit, simulate_runs(law, offset=off, seed=s), method="isoflop",
                    uncertainty="none").point_estimate()["a"] - beta / (alpha + beta)
             for s in range(5 if quick else 20)]
        noisy.append({"alpha_minus_beta": d, "offset": off, "mean_error": float(np.mean(e)),
                      "sd_error": float(np.std(e, ddof=1))})
    return {"offsets_decades": offsets.tolist(), "alpha_minus_beta": diffs.tolist(),
            "error_a": err.tolist(), "error_log10_N_opt_1e24": err_N.tolist(), "noisy": noisy,
            "design": "9 budgets 6e18-3e21 FLOPs, 10 sizes over N_opt*10^offset*[1/4, 4], "
                      "E=1.69, A=406.4, B=410.7, alpha+beta=0.6, no noise"}


def plot_bias(b, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    err = np.array(b["error_a"])
    for i, d in enumerate(b["alpha_minus_beta"]):
        ax[0].plot(b["offsets_decades"], err[i], marker="o", label=f"alpha - beta = {d:+.2f}")
    ax[0].axhline(0, color="k", lw=0.5)
    ax[0].set_xlabel("grid centre - true N_opt (decades)")
    ax[0].set_ylabel("error in a (fit - truth)")
    ax[0].set_title("Approach 2 bias, noiseless sweeps")
    ax[0].legend(fontsize=8)
    j0 = int(np.argmin(np.abs(np.array(b["offsets_decades"]))))
    ax[1].plot(b["alpha_minus_beta"], err[:, j0], marker="o", label="centred grid")
    for n in b["noisy"]:
        ax[1].errorbar(n["alpha_minus_beta"] + 0.004 * (n["offset"] > 0), n["mean_error"],
                       yerr=n["sd_error"], fmt="s", capsize=3,
                       label=f"noise 0.0075, offset {n['offset']:+.1f} (mean +- sd)")
    ax[1].axhline(0, color="k", lw=0.5)
    ax[1].set_xlabel("alpha - beta")
    ax[1].set_ylabel("error in a")
    ax[1].set_title("bias vs alpha - beta, and noise for scale")
    ax[1].legend(fontsize=7)
    errN = np.array(b["error_log10_N_opt_1e24"])
    for i, d in enumerate(b["alpha_minus_beta"]):
        ax[2].plot(b["offsets_decades"], errN[i], marker="o", label=f"alpha - beta = {d:+.2f}")
    ax[2].axhline(0, color="k", lw=0.5)
    ax[2].set_xlabel("grid centre - true N_opt (decades)")
    ax[2].set_ylabel("error in log10 N_opt(1e24 FLOPs)")
    ax[2].set_title("bias of the extrapolated N_opt")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _row(f, level=0.9):
    fr = f.frontier([1e22, 1e24])
    q = [0.5, (1 - level) / 2, (1 + level) / 2]
    N = np.asarray(fr.N_opt)
    out = {"method": f.method, "num_draws": f.num_draws}
    if f.method == "isoflop":
        est = f.point_estimate()
        out["a"] = [est["a"], *f.intervals(level)["a"]] if not f.is_point else [est["a"]]
        out["flagged"] = f.info["flagged"]
        out["median_centring_decades"] = f.info["median_centring_decades"]
    else:
        d = f.draws()
        out["a"] = [float(np.median(d["a_opt"])), *np.quantile(d["a_opt"], q[1:]).tolist()] \
            if f.num_draws > 1 else [float(d["a_opt"].iloc[0])]
    for j, C in enumerate(("1e22", "1e24")):
        out[f"N_opt_{C}"] = (np.quantile(N[:, j], q).tolist() if N.shape[0] > 1
                             else [float(N[0, j])])
    return out


def results(quick):
    sets = {f"marin {c}": ("marin_isoflop", {"group": c}) for c in CORPORA}
    sets["chinchilla"] = ("chinchilla", {"exclude_top": 5})
    out = {}
    for name, (ds, kw) in sets.items():
        runs = _quiet(load_runs, ds, **kw)
        rows = {"isoflop_bootstrap": _row(_quiet(fit, runs, method="isoflop", seed=0)),
                "isoflop_bayes": _row(_quiet(fit, runs, method="isoflop", uncertainty="bayes")),
                "huber": _row(_quiet(fit, runs, method="huber")),
                "bootstrap": _row(_quiet(fit, runs, method="bootstrap",
                                         resamples=50 if quick else 200))}
        out[name] = rows
        for k, r in rows.items():
            def fmt(v):
                return f"{v[0]:.3g}" + (f" [{v[1]:.3g}, {v[2]:.3g}]" if len(v) == 3 else "")
            print(f"{name:15s} {k:18s} a {fmt(r['a']):26s} N_opt(1e22) {fmt(r['N_opt_1e22']):30s} "
                  f"N_opt(1e24) {fmt(r['N_opt_1e24'])}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "isoflop.json")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "loadavg_before": os.getloadavg()}}
    report["timing"] = timing(args.quick)
    report["bias"] = bias(args.quick)
    plot_bias(report["bias"], RESULTS / "isoflop_bias.png")
    err = np.array(report["bias"]["error_a"])
    print("bias of a (rows alpha-beta, columns offset in decades):")
    print("        " + " ".join(f"{o:+7.2f}" for o in report["bias"]["offsets_decades"]))
    for d, row in zip(report["bias"]["alpha_minus_beta"], err):
        print(f"{d:+6.2f}  " + " ".join(f"{e:+7.4f}" for e in row))
    print("error in log10 N_opt at 1e24 FLOPs (same layout):")
    for d, row in zip(report["bias"]["alpha_minus_beta"], np.array(report["bias"]["error_log10_N_opt_1e24"])):
        print(f"{d:+6.2f}  " + " ".join(f"{e:+7.4f}" for e in row))
    for n in report["bias"]["noisy"]:
        print(f"noisy: alpha-beta {n['alpha_minus_beta']:+.2f} offset {n['offset']:+.1f}: "
              f"mean error {n['mean_error']:+.4f}, sd {n['sd_error']:.4f}")
    report["results"] = results(args.quick)
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {args.out} and {RESULTS / 'isoflop_bias.png'}")


if __name__ == "__main__":
    main()
