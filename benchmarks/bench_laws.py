"""Benchmark: each law's Huber grid fit, NUTS fit and PSIS-LOO on the Chinchilla and
data-constrained runs (issue 8).

Pairs: the 240 Chinchilla runs of Besiroglu et al. (2024) (``exclude_top=5``) x
{chinchilla, kaplan}; Muennighoff et al.'s (2023) data-constrained runs (``data_constrained``,
161 training runs) x {chinchilla, kaplan, data_constrained}. Per pair:

(a) Huber grid fit, ``bayescale.fit(runs, method="huber", law=law)`` over the law's whole
    start grid (``law.starts()``): first call (compile + run) and steady state (minimum
    over ``--repeats`` calls); compile = first - steady. Baseline: what a user would
    otherwise write, ``scipy.optimize.minimize(method="L-BFGS-B")`` looped over the same
    starts, value and gradient from ``jax.jit(jax.value_and_grad(law_objective))`` for one
    problem in float64. scipy is timed on a random subset of ``--scipy-starts`` starts
    (minimum over ``--scipy-repeats`` loops; the jit compile is done before timing) and
    scaled linearly to the full grid. Both are checked to reach the same best objective
    on that subset (bayescale fitted with ``starts=subset``), within 1e-6 relative.
(b) NUTS, ``fit(runs, method="bayes", law=law)`` with the package defaults (4 chains x
    1000 warmup x 1000 draws, Student-t; the automatic retry when the diagnostics fail):
    first call in this process (compile included) and a second call (steady; the fit
    that :func:`bayescale.report.law_comparison.compare_laws` makes, timed by
    ``info["timing"]["total"]``); min bulk ESS over the law's parameters, ESS per second of
    sampling, divergences, max R-hat.
(c) PSIS-LOO per law on each dataset from :func:`compare_laws` (``arviz.compare`` with
    stacking weights; Pareto k > 0.7 counted), and the posterior median (90% interval)
    N_opt at 1e22 and 5.76e23 FLOPs under C = 6ND; the data-constrained law at a
    unique-token budget U = 25e9 (Muennighoff et al.'s example), also passed to
    ``compare_laws(..., unique_tokens=25e9)`` for its own reference-budget columns.

Run ``python benchmarks/bench_laws.py [--quick]``; writes ``benchmarks/results/laws.json``
(``laws-quick.json`` with ``--quick``, a smoke run: 20 scipy starts, 1 repeat, NUTS 2 x 200 x 200).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BUDGETS = (1e22, 5.76e23)
UNIQUE_TOKENS = 25e9
REL_TOL = 1e-6
PAIRS = {"chinchilla": ("chinchilla", "kaplan"),
         "data_constrained": ("chinchilla", "kaplan", "data_constrained")}


def load(dataset: str):
    from bayescale import load_runs

    return load_runs("chinchilla", exclude_top=5) if dataset == "chinchilla" else load_runs(dataset)


def frontier_kwargs(law_name: str) -> dict:
    return {"unique_tokens": UNIQUE_TOKENS} if law_name == "data_constrained" else {}


def n_opt(fit_, law_name: str, level: float = 0.9) -> dict:
    from bayescale._util import median_interval

    f = fit_.frontier(list(BUDGETS), **frontier_kwargs(law_name))
    N = np.asarray(f.N_opt, dtype=float)
    out = {}
    for j, C in enumerate(BUDGETS):
        m, lo, hi = median_interval(N[:, j], level)
        out[f"{C:.3g}"] = {"median": float(m), "lower": float(lo), "upper": float(hi)}
    return out


def scipy_loop(vg, starts):
    """scipy L-BFGS-B from every start; ``vg`` returns (float, float64 gradient)."""
    from scipy.optimize import minimize

    best, funs, nits, failed = np.inf, [], [], 0
    for x0 in starts:
        try:
            with np.errstate(all="ignore"):
                res = minimize(vg, x0, jac=True, method="L-BFGS-B")
        except (ValueError, FloatingPointError):
            failed += 1
            continue
        f = float(res.fun)
        funs.append(f)
        nits.append(int(res.nit))
        if np.isfinite(f) and f < best:
            best = f
    return best, {"failed": failed, "mean_iterations": float(np.mean(nits)) if nits else None}


def bench_huber(runs, law_name: str, args, rng) -> dict:
    import jax
    import jax.numpy as jnp

    from bayescale import fit
    from bayescale.estimators.huber import DELTA, law_objective, log_inputs
    from bayescale.laws.registry import get_law

    law = get_law(law_name)
    starts = law.starts()
    t = time.perf_counter()
    res = fit(runs, method="huber", law=law_name)
    first = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = fit(runs, method="huber", law=law_name)
        times.append(time.perf_counter() - t)
    steady = min(times)
    out = {"starts": int(starts.shape[0]), "objective": res.info["objective"],
           "params": {k: float(v) for k, v in res.point_estimate().items() if k in law.param_names},
           "starts_near_best": res.info.get("starts_near_best"),
           "N_opt": {k: v["median"] for k, v in n_opt(res, law_name).items()},
           "first_call_s": first, "steady_s": steady, "compile_s": max(first - steady, 0.0),
           "steady_all_s": times}

    # --- the scipy baseline on a random subset of the same grid ----------------------
    k = min(int(args.scipy_starts), starts.shape[0])
    idx = np.sort(rng.choice(starts.shape[0], size=k, replace=False))
    subset = starts[idx]
    ours_sub = fit(runs, method="huber", law=law_name, starts=subset)
    log_U = np.log(np.asarray(runs.U, dtype=float)) if "U" in law.inputs else None
    log_X = log_inputs(law, runs.log_N, runs.log_D, log_U)
    with jax.enable_x64(True):
        lX = jnp.asarray(log_X, jnp.float64)
        lL = jnp.asarray(np.asarray(runs.log_loss, dtype=float), jnp.float64)
        w = jnp.ones_like(lL)
        jvg = jax.jit(jax.value_and_grad(
            lambda th: law_objective(th, w, lX, lL, delta=DELTA, law=law)))

        def vg(x):
            f, g = jvg(jnp.asarray(x, jnp.float64))
            return float(f), np.asarray(g, dtype=np.float64)

        t = time.perf_counter()
        vg(subset[0])  # compile outside the timed loop
        jit_compile = time.perf_counter() - t
        loop_times = []
        for _ in range(args.scipy_repeats):
            t = time.perf_counter()
            best, extra = scipy_loop(vg, subset)
            loop_times.append(time.perf_counter() - t)
    sub_s = min(loop_times)
    scaled = sub_s * starts.shape[0] / k
    ours_obj = float(ours_sub.info["objective"])
    rel = (best - ours_obj) / abs(ours_obj)
    out["scipy_lbfgsb"] = {
        "timed_starts": k, "subset_seed": args.seed, "timed_s": sub_s, "timed_all_s": loop_times,
        "jit_compile_s": jit_compile, f"scaled_to_{starts.shape[0]}_s": scaled, "scaled_s": scaled,
        "subset_best_objective": float(best), "bayescale_subset_objective": ours_obj,
        "relative_gap_scipy_minus_ours": float(rel),
        "same_best_within_1e-6": bool(abs(rel) <= REL_TOL),
        "ours_not_worse": bool(ours_obj <= best * (1 + REL_TOL)), **extra}
    out["speedup_steady"] = scaled / steady
    return out


def law_param_diagnostics(fit_, law_name: str) -> dict:
    import arviz as az

    from bayescale.laws.registry import get_law

    names = [n for n in get_law(law_name).param_names if n in fit_.idata.posterior]
    post = fit_.idata.posterior[names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ess = az.ess(post, method="bulk")
        rhat = az.rhat(post)
    return {"ess_bulk_min": float(min(float(ess[n]) for n in names)),
            "ess_bulk_min_param": min(names, key=lambda n: float(ess[n])),
            "rhat_max": float(max(float(rhat[n]) for n in names))}


def bench_bayes(runs, laws, args) -> dict:
    from bayescale import fit
    from bayescale.laws.registry import get_law
    from bayescale.report.law_comparison import compare_laws

    options = {}
    if args.quick:
        options = {"chains": 2, "warmup": 200, "draws": 200}
    first = {}
    for name in laws:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            f1 = fit(runs, method="bayes", law=name, **options)
            wall = time.perf_counter() - t
        first[name] = {"wall_s": wall, "timing": f1.info["timing"],
                       "retried": "retry" in f1.info,
                       "warnings": [str(w.message)[:200] for w in caught]}
    out: dict = {"options": options or "package defaults", "laws": {}}
    t = time.perf_counter()
    # the unique-token budget of the data-constrained law's N_opt at compare_laws' reference
    # budget (required when that law is compared; the other laws do not take one)
    unique_tokens = UNIQUE_TOKENS if any("U" in get_law(n).inputs for n in laws) else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cmp = compare_laws(runs, list(laws), unique_tokens=unique_tokens, **options)
    fits, table = cmp.fits, cmp.table
    out["loo_source"] = "bayescale.report.law_comparison.compare_laws"
    out["compare_laws_unique_tokens"] = unique_tokens
    out["compare_laws"] = cmp.to_dict()
    out["compare_warnings"] = [str(w.message)[:200] for w in caught]
    out["compare_wall_s"] = time.perf_counter() - t
    best = table.index[0]
    for name in laws:
        f2 = fits[name]
        d = f2.diagnostics
        timing = f2.info["timing"]
        diag = law_param_diagnostics(f2, name)
        row = table.loc[name]
        out["laws"][name] = {
            "params_median": {k: float(v) for k, v in f2.point_estimate().items()
                              if k in f2.param_names},
            "nuts": {
                "first_call_wall_s": first[name]["wall_s"],
                "first_call_timing": first[name]["timing"],
                "first_call_retried": first[name]["retried"],
                "first_call_warnings": first[name]["warnings"],
                "steady_wall_s": timing["total"], "steady_timing": timing,
                "compile_s": max(first[name]["wall_s"] - timing["total"], 0.0),
                "retried": "retry" in f2.info,
                "retry": f2.info.get("retry"),
                "target_accept": f2.info["target_accept"], "warmup": f2.info["warmup"],
                "chains": f2.info["chains"], "draws": f2.info["draws"],
                "leapfrog_per_draw": f2.info["leapfrog_per_draw"],
                "divergences": int(d.divergences),
                "rhat_max_all": float(d.rhat_max), "ess_bulk_min_all": float(d.ess_bulk_min),
                **diag,
                "ess_bulk_min_per_sampling_s": diag["ess_bulk_min"] / max(timing["sampling"], 1e-9),
                "ess_bulk_min_per_steady_wall_s": diag["ess_bulk_min"] / timing["total"],
                "diagnostics_ok": bool(d.ok),
            },
            "loo": {"elpd_loo": float(row["elpd_loo"]), "se": float(row["se"]),
                    "p_loo": float(row["p_loo"]), "elpd_diff": float(row["elpd_diff"]),
                    "dse": float(row["dse"]), "weight": float(row["weight"]),
                    "pareto_k_gt_0.7": int(row["pareto_k_bad"]), "best": name == best},
            "N_opt": n_opt(f2, name),
        }
    out["preferred"] = best
    return out


def git_head() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (minutes, not tens)")
    parser.add_argument("--repeats", type=int, default=3, help="steady-state Huber repeats")
    parser.add_argument("--scipy-starts", type=int, default=200)
    parser.add_argument("--scipy-repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the scipy start subset")
    parser.add_argument("--datasets", default="chinchilla,data_constrained")
    parser.add_argument("--skip-bayes", action="store_true")
    parser.add_argument("--skip-huber", action="store_true")
    parser.add_argument("--update", action="store_true",
                        help="load the output JSON and replace only the parts run now (e.g. "
                             "with --skip-bayes: each dataset's Huber entries; the NUTS/LOO "
                             "entries are kept as they were); the run is recorded under "
                             "'reruns' with its machine and load average")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.scipy_starts, args.scipy_repeats = 1, 20, 1
    os.environ.setdefault("BAYESCALE_DATA", str(ROOT.parent / "shared" / "data"))

    import jax

    t_all = time.perf_counter()
    report: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
                    "jax": jax.__version__, "git_head": git_head(),
                    "loadavg_before": list(os.getloadavg())},
        "settings": {"quick": args.quick, "repeats": args.repeats,
                     "scipy_starts": args.scipy_starts, "scipy_repeats": args.scipy_repeats,
                     "budgets": list(BUDGETS), "unique_tokens_for_data_constrained": UNIQUE_TOKENS,
                     "scipy_scaling": "timed on a random subset of the grid, scaled linearly"},
        "datasets": {}}
    name = "laws-quick.json" if args.quick else "laws.json"
    out = Path(args.out) if args.out else HERE / "results" / name
    if args.update and out.exists():  # rerun some parts, keep the rest of an earlier run
        earlier = json.loads(out.read_text())
        earlier.setdefault("reruns", []).append({"argv": sys.argv[1:], "machine": report["machine"]})
        report = {**earlier, "machine_rerun": report["machine"]}
    report.setdefault("datasets", {})

    def save():
        report["machine_rerun" if "machine_rerun" in report else "machine"]["loadavg_after"] = \
            list(os.getloadavg())
        report["total_wall_s" if not args.update else "rerun_wall_s"] = time.perf_counter() - t_all
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=float) + "\n")

    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        rng = np.random.default_rng(args.seed)  # per dataset: reruns draw the same subsets
        runs = load(dataset)
        laws = PAIRS[dataset]
        entry = report["datasets"].setdefault(dataset, {})
        entry["n_runs"] = len(runs)
        if not args.skip_huber:
            entry["huber"] = {}
            for name in laws:
                print(f"[{time.perf_counter() - t_all:6.0f}s] huber {dataset} x {name}", flush=True)
                try:
                    entry["huber"][name] = bench_huber(runs, name, args, rng)
                except Exception as err:  # keep the other pairs; say what failed
                    entry["huber"][name] = {"error": f"{type(err).__name__}: {err}"}
                entry["huber"][name]["loadavg"] = list(os.getloadavg())
                save()
        if not args.skip_bayes:
            print(f"[{time.perf_counter() - t_all:6.0f}s] nuts + loo {dataset}", flush=True)
            try:
                entry["bayes"] = bench_bayes(runs, laws, args)
            except Exception as err:
                import traceback

                entry["bayes"] = {"error": f"{type(err).__name__}: {err}",
                                  "traceback": traceback.format_exc()[-2000:]}
            entry["bayes"]["loadavg"] = list(os.getloadavg())
            save()
    save()
    print_summary(report)
    print(f"wrote {out} in {time.perf_counter() - t_all:.0f} s")
    return report


def print_summary(report: dict) -> None:
    for dataset, entry in report["datasets"].items():
        print(f"== {dataset} ({entry['n_runs']} runs)")
        for name, h in entry.get("huber", {}).items():
            if "error" in h:
                print(f"  huber {name}: {h['error']}")
                continue
            s = h["scipy_lbfgsb"]
            print(f"  huber {name:16s} starts {h['starts']:5d} objective {h['objective']:.8g} "
                  f"first {h['first_call_s']:.2f}s steady {h['steady_s']:.2f}s | scipy "
                  f"{s['timed_starts']} starts {s['timed_s']:.2f}s -> {s['scaled_s']:.1f}s "
                  f"({h['speedup_steady']:.1f}x); subset gap {s['relative_gap_scipy_minus_ours']:.1e}")
        b = entry.get("bayes")
        if not b or "error" in b:
            print(f"  bayes: {b and b['error']}")
            continue
        for name, r in b["laws"].items():
            n, lo = r["nuts"], r["loo"]
            nopt = ", ".join(f"{C}: {v['median'] / 1e9:.1f}B" for C, v in r["N_opt"].items())
            print(f"  nuts {name:16s} first {n['first_call_wall_s']:.1f}s steady "
                  f"{n['steady_wall_s']:.1f}s ess {n['ess_bulk_min']:.0f} "
                  f"({n['ess_bulk_min_per_sampling_s']:.0f}/s) div {n['divergences']} rhat "
                  f"{n['rhat_max']:.3f} | elpd {lo['elpd_loo']:.1f} ({lo['se']:.1f}) diff "
                  f"{lo['elpd_diff']:.1f} ({lo['dse']:.1f}) w {lo['weight']:.2f} k>0.7 "
                  f"{lo['pareto_k_gt_0.7']} | N_opt {nopt}")


if __name__ == "__main__":
    main()
    sys.exit(0)
