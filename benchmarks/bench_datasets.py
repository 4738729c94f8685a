"""Fits across datasets in one process: compile time per dataset, with and without buckets.

Run ``python benchmarks/bench_datasets.py``; writes ``benchmarks/results/datasets.json``.

A user re-analysing published sweeps fits one dataset after another in one Python
process. Each has its own number of runs; a jitted program is specialised to its
shapes, so without padding every new size traces and compiles NUTS again (and the
Huber grid fit). bayescale pads runs to size buckets
(:mod:`bayescale.estimators.padding`). This benchmark fits every registered dataset
(each group of the grouped ones) with ``method="bayes"`` (package defaults: 4 chains x
1000 + 1000, Chinchilla law) and ``method="huber"``, in order, in one process, and
records per dataset the compile time JAX reports (``jax.monitoring`` spans) and the
rest (sampling / solving). It runs twice, each in a fresh process with JAX's persistent
cache off: with buckets (the default) and with ``BAYESCALE_NO_BUCKETS=1`` (the
baseline: one program per size, as before buckets).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (label, load_runs name, keyword arguments), in the order a user might fit them.
DATASETS = [
    ("chinchilla", "chinchilla", {}),
    ("synthetic", "synthetic", {}),
    ("gadre2024/C4", "gadre2024", {"group": "C4"}),
    ("gadre2024/RedPajama", "gadre2024", {"group": "RedPajama"}),
    ("gadre2024/RefinedWeb", "gadre2024", {"group": "RefinedWeb"}),
    ("misfitting", "misfitting", {}),
    ("marin_isoflop/comma", "marin_isoflop", {"group": "comma"}),
    ("marin_isoflop/dclm", "marin_isoflop", {"group": "dclm"}),
    ("marin_isoflop/nemotron", "marin_isoflop", {"group": "nemotron"}),
    ("steplaw", "steplaw", {}),
    ("data_constrained", "data_constrained", {}),
    ("farseer", "farseer", {}),
]


def one_process(methods: list[str]) -> list[dict]:
    """Fit every dataset in this process; one row per (dataset, method)."""
    import warnings

    from bayescale import fit, load_runs
    from bayescale.errors import ConvergenceWarning, DataWarning
    from bayescale.estimators._nuts_program import CompileClock
    from bayescale.estimators.padding import bucket_size

    rows = []
    for label, name, kw in DATASETS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            runs = load_runs(name, **kw)
        for method in methods:
            with warnings.catch_warnings(record=True) as caught, CompileClock() as clock:
                warnings.simplefilter("always", ConvergenceWarning)
                t0 = time.perf_counter()
                res = fit(runs, method=method)
                total = time.perf_counter() - t0
            row = {"dataset": label, "method": method, "runs": len(runs),
                   "bucket": bucket_size(len(runs)), "seconds": total,
                   "compile": clock.seconds, "rest": max(total - clock.seconds, 0.0),
                   "warnings": [str(w.message)[:120] for w in caught
                                if issubclass(w.category, ConvergenceWarning)]}
            if method == "bayes":
                d = res.diagnostics
                row.update({"rhat_max": float(d.rhat_max), "ess_bulk_min": float(d.ess_bulk_min),
                            "divergences": int(d.divergences), "gate_ok": bool(d.ok),
                            "retried": "retry" in res.info})
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="huber,bayes")
    ap.add_argument("--out", default=str(HERE / "results" / "datasets.json"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    methods = args.methods.split(",")
    if args.child:
        json.dump(one_process(methods), sys.stdout)
        return
    from bayescale.io import atomic_write, dumps_json

    out = {"load_average_start": os.getloadavg(), "methods": methods, "modes": {}}
    for mode, extra in (("buckets", {}), ("no_buckets", {"BAYESCALE_NO_BUCKETS": "1"})):
        env = {**os.environ, **extra, "JAX_ENABLE_COMPILATION_CACHE": "false"}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", "--methods", args.methods],
                              env=env, capture_output=True, text=True, check=True)
        rows = json.loads(proc.stdout.strip().splitlines()[-1])
        out["modes"][mode] = {"rows": rows, "wall": time.perf_counter() - t0}
        for m in methods:
            sel = [r for r in rows if r["method"] == m]
            print(f"{mode:>10} {m:>5}: compile {sum(r['compile'] for r in sel):6.1f} s, "
                  f"rest {sum(r['rest'] for r in sel):6.1f} s over {len(sel)} datasets")
    out["load_average_end"] = os.getloadavg()
    for m in methods:
        b = sum(r["compile"] for r in out["modes"]["buckets"]["rows"] if r["method"] == m)
        nb = sum(r["compile"] for r in out["modes"]["no_buckets"]["rows"] if r["method"] == m)
        out[f"compile_ratio_{m}"] = b / nb if nb else None
        print(f"{m}: compile with buckets / without = {out[f'compile_ratio_{m}']:.2f}")
    atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(dumps_json(out, indent=1) + "\n"))


if __name__ == "__main__":
    main()
