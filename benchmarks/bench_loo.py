"""Subsampled PSIS-LOO (bayescale.estimators.loo) on many rows: time, memory and error.

Run ``python benchmarks/bench_loo.py [--rows 10000,1000000]``; writes
``benchmarks/results/loo_rows.json``.

A fit that subsampled its rows (HMCECS, from 50,000 rows on) records no pointwise
log-likelihood, and the baseline a user would otherwise reach for, ``arviz.loo`` on every
row, needs chains x draws x rows log-likelihood values: 4000 x 1,000,000 float64 is 32 GB.
Per size, in a fresh process (peak memory its own): the default subsampled fit of
synthetic checkpoints (``bench_rows.synthetic_checkpoints``), then ``psis_loo`` with the
default 1,000 rows, timed. Where every row fits in memory (up to 20,000 rows), the baseline
in the same process: PSIS-LOO on every row from the same draws (``psis_loo(m=rows)``,
which is ``arviz.loo`` on the recomputed log-likelihood), its time, and the subsampled
estimate's error in units of its subsampling standard error.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL_ROWS_UP_TO = 20_000


def child(n: int) -> dict:
    import warnings

    sys.path.insert(0, str(HERE))
    from bench_rows import synthetic_checkpoints

    from bayescale import fit, load_runs
    from bayescale.estimators.loo import psis_loo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_runs(synthetic_checkpoints(n))
        res = fit(runs, method="bayes", progress=False, subsample=1000)
    t0 = time.perf_counter()
    est = psis_loo(res)
    out = {"rows": n, "m": len(est.rows), "subsampled": est.subsampled,
           "loo_s": time.perf_counter() - t0, "elpd": est.elpd, "se": est.se,
           "subsampling_se": est.subsampling_se, "p_loo": est.p_loo,
           "pareto_k_max": float(est.pareto_k.max()),
           "fit_s": res.info["timing"]["total"], "gate": bool(res.diagnostics.ok)}
    if n <= ALL_ROWS_UP_TO:
        t0 = time.perf_counter()
        every = psis_loo(res, m=n)
        out["all_rows_s"] = time.perf_counter() - t0
        out["all_rows_elpd"] = every.elpd
        out["z"] = (est.elpd - every.elpd) / est.subsampling_se
    out["peak_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000,1000000")
    ap.add_argument("--out", default=str(HERE / "results" / "loo_rows.json"))
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from bayescale.io import atomic_write, dumps_json

    rows = []
    for n in map(int, args.rows.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(n)],
                              capture_output=True, text=True)
        if proc.returncode:
            rows.append({"rows": n, "returncode": proc.returncode, "error": proc.stderr[-2000:]})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    atomic_write(Path(args.out),
                 lambda tmp: Path(tmp).write_text(dumps_json({"rows": rows}, indent=1) + "\n"))


if __name__ == "__main__":
    main()
