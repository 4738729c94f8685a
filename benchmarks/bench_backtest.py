"""Leave-future-out backtests on the registered datasets: in-model against with the
extrapolation error (issue 10).

For every dataset (and group) with at least 4 compute budgets, and for the published test
splits (data_constrained, farseer), the Chinchilla law is fitted with the fast Huber path
(coarse grid, :func:`bayescale.estimators.extrapolation.masked_fits`; NUTS on 22 backtests
does not fit in 2 CPU cores' time) on all but the held-out runs, and each held-out run is
predicted with the in-model predictive (parameters + observation noise) and with the
extrapolation error.

The extrapolation error's prior must not have seen the dataset it is tested on. So this
script first learns, for every dataset, ``(tau, b)`` from its own leave-future-out misses
under a vague prior (``--learn-prior`` prints these, the numbers behind
``DEFAULT_PRIOR``), then backtests each dataset with a prior built from the *other*
datasets only (leave-one-dataset-out: geometric mean of their tau, median of their b).

Run ``python benchmarks/bench_backtest.py`` (about 20-30 minutes on 2 busy cores); writes
``benchmarks/results/backtest.json`` and prints the markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators import extrapolation as ex
from bayescale.laws.registry import get_law
from bayescale.validation.backtest import backtest

CASES = [("chinchilla", None), ("data_constrained", None), ("farseer", None),
         ("misfitting", None),
         ("marin_isoflop", "comma"), ("marin_isoflop", "dclm"), ("marin_isoflop", "nemotron"),
         ("gadre2024", "C4"), ("gadre2024", "RedPajama"), ("gadre2024", "RefinedWeb")]
SPLITS = ("data_constrained", "farseer")
HOLDOUTS = ("top-budgets:1", "top-budgets:2")
VAGUE = ex.ErrorPrior(tau=0.03, log_sd=3.0, bias=0.0, bias_sd=1.0)


def _label(name, group):
    return name if group is None else f"{name}/{group}"


def learn(law) -> dict:
    out = {}
    for name, group in CASES:
        runs = load_runs(name, group=group) if group else load_runs(name)
        t0 = time.perf_counter()
        misses = ex.lfo_misses(runs, law)
        s = ex.posterior(misses, VAGUE).summary()
        s["seconds"] = time.perf_counter() - t0
        out[_label(name, group)] = {"dataset": name, **s}
        print(f"{_label(name, group):26s} tau {s['tau']:.4f}  b {s['bias']:+.4f}  "
              f"misses {s['num_misses']:3d} refits {s['num_refits']}  ({s['seconds']:.0f} s)",
              flush=True)
    taus = [v["tau"] for v in out.values()]
    biases = [v["bias"] for v in out.values()]
    print(f"pooled: tau geometric mean {np.exp(np.mean(np.log(taus))):.4f}, b median "
          f"{np.median(biases):+.4f}")
    return out


def loo_prior(learned: dict, dataset: str) -> ex.ErrorPrior:
    others = [v for v in learned.values() if v["dataset"] != dataset]
    tau = float(np.exp(np.mean(np.log([v["tau"] for v in others]))))
    bias = float(np.median([v["bias"] for v in others]))
    d = ex.DEFAULT_PRIOR
    return ex.ErrorPrior(tau=tau, log_sd=d.log_sd, bias=bias, bias_sd=d.bias_sd)


def main(args) -> dict:
    law = get_law("chinchilla")
    warnings.simplefilter("ignore")
    learned = learn(law)
    rows = []
    jobs = [(n, g, h) for n, g in CASES for h in HOLDOUTS] + [(n, None, "split") for n in SPLITS]
    for name, group, holdout in jobs:
        prior = loo_prior(learned, name)
        t0 = time.perf_counter()
        try:
            b = backtest(name, holdout=holdout, group=group, law=law, prior=prior,
                         num_draws=args.num_draws)
        except Exception as exc:  # a dataset too small for this hold-out: say so, go on
            print(f"{_label(name, group):26s} {holdout:14s} skipped: {exc}", flush=True)
            continue
        row = {"case": _label(name, group), "holdout": holdout,
               "seconds": time.perf_counter() - t0, "prior": prior._asdict(),
               "info": b.info, "with_error": b.summaries["auto"],
               "in_model": b.summaries["none"],
               "pit": {k: b.tables[k]["pit"].tolist() for k in ("auto", "none")},
               "decades": b.tables["auto"]["extrapolation_decades"].tolist(),
               "width_90": (b.tables["auto"]["upper_0.9"] - b.tables["auto"]["lower_0.9"]).tolist()}
        rows.append(row)
        a, m = row["with_error"], row["in_model"]
        print(f"{row['case']:26s} {holdout:14s} n={a['n_heldout']:3d} d={b.info['mean_decades']:.2f} "
              f"cov90 {m['coverage']['0.9']:.2f}->{a['coverage']['0.9']:.2f} "
              f"crps {m['crps']:.4f}->{a['crps']:.4f} ({row['seconds']:.0f} s)", flush=True)
    result = {"learned": learned, "rows": rows, "pooled": pooled(rows)}
    out = Path(__file__).parent / "results" / "backtest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(table(rows, result["pooled"]))
    return result


def pooled(rows) -> dict:
    out = {}
    for key, pit_key in (("in_model", "none"), ("with_error", "auto")):
        pit = np.concatenate([r["pit"][pit_key] for r in rows])
        n = np.array([r[key]["n_heldout"] for r in rows])
        w = np.concatenate([np.full(k, 1.0 / k) for k in n]) / len(n)  # each backtest equally
        cov = {f"{a:g}": float(np.mean(np.abs(pit - 0.5) <= a / 2)) for a in (0.5, 0.8, 0.9, 0.95)}
        cov_eq = {f"{a:g}": float(np.sum(w * (np.abs(pit - 0.5) <= a / 2)))
                  for a in (0.5, 0.8, 0.9, 0.95)}
        crps = float(np.sum(n * np.array([r[key]["crps"] for r in rows])) / n.sum())
        out[key] = {"n_heldout": int(n.sum()), "coverage_runs": cov,
                    "coverage_backtests": cov_eq, "crps": crps,
                    "mean_width_90": float(np.sum(n * np.array([r[key]["mean_width_90"]
                                                               for r in rows])) / n.sum())}
    d = np.concatenate([r["decades"] for r in rows])
    w = np.concatenate([r["width_90"] for r in rows])
    out["width_90_by_decades"] = {f"{lo:g}-{hi:g}": (float(np.median(w[(d > lo) & (d <= hi)]))
                                                     if np.any((d > lo) & (d <= hi)) else None)
                                  for lo, hi in ((0, 0.5), (0.5, 1.5), (1.5, 2.5))}
    return out


def table(rows, pool) -> str:
    lines = ["| dataset | hold-out | n | decades | cov50 | cov90 | cov95 | width90 | CRPS |",
             "|---|---|---:|---:|---|---|---|---|---|"]
    for r in rows:
        m, a = r["in_model"], r["with_error"]
        c = lambda k: f"{m['coverage'][k]:.2f} / {a['coverage'][k]:.2f}"  # noqa: E731
        lines.append(f"| {r['case']} | {r['holdout']} | {a['n_heldout']} | "
                     f"{r['info']['mean_decades']:.2f} | {c('0.5')} | {c('0.9')} | {c('0.95')} | "
                     f"{m['mean_width_90']:.4f} / {a['mean_width_90']:.4f} | "
                     f"{m['crps']:.4f} / {a['crps']:.4f} |")
    for key in ("in_model", "with_error"):
        p = pool[key]
        lines.append(f"| **pooled, {key}** | all | {p['n_heldout']} | | "
                     f"{p['coverage_runs']['0.5']:.2f} | {p['coverage_runs']['0.9']:.2f} | "
                     f"{p['coverage_runs']['0.95']:.2f} | {p['mean_width_90']:.4f} | "
                     f"{p['crps']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-draws", type=int, default=2000)
    parser.add_argument("--learn-prior", action="store_true",
                        help="only learn the per-dataset (tau, b) and print them")
    a = parser.parse_args()
    os.environ.setdefault("BAYESCALE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    if a.learn_prior:
        learn(get_law("chinchilla"))
    else:
        main(a)
