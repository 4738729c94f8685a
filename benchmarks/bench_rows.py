"""Row scaling of the Huber grid fit: time and peak memory from 1e3 to 1e6 rows.

Run ``python benchmarks/bench_rows.py``; writes ``benchmarks/results/rows.json``.

Users fit whole loss curves and checkpoint dumps, not only final points (issue 9: a
200,000-row file took 1,345 s and 6.5 GB before the starts were screened on a
subsample). Each size is fitted in a fresh process (so its peak memory is its own,
read from ``resource.getrusage``) on synthetic checkpoints: 12 model sizes from 1e7 to
1e10 parameters, tokens log-uniform from 1 to 200 per parameter (the checkpoints of
each run), loss from Hoffmann et al.'s (2022) published law with 0.01 noise on
log loss. Reported: the whole ``fit(..., method="huber")`` (first call, compile
included) and a second call in the same process (steady state), peak resident memory,
and the recovered parameters against the truth. The baseline is the exhaustive grid
(every start on every row, ``screen_rows=None``), run at the sizes where it is
affordable on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (1_000, 10_000, 100_000, 200_000, 1_000_000)
EXHAUSTIVE_UP_TO = 10_000


def synthetic_checkpoints(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    from bayescale.laws.chinchilla import HOFFMANN_2022 as P

    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 1e10, 12), -(-n // 12))[:n]
    D = N * np.exp(rng.uniform(np.log(1.0), np.log(200.0), n))
    loss = (P.E + P.A / N**P.alpha + P.B / D**P.beta) * np.exp(rng.normal(0, 0.01, n))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


def child(n: int, exhaustive: bool, method: str = "huber", resamples: int = 4000) -> dict:
    import warnings

    from bayescale import fit, load_runs
    from bayescale.errors import DataWarning
    from bayescale.laws.chinchilla import HOFFMANN_2022 as P

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        runs = load_runs(synthetic_checkpoints(n))
    kw = {"screen_rows": None} if exhaustive else {}
    if method == "bayes":  # the defaults: 4 chains x (1000 warmup + 1000 draws)
        kw = {"progress": False}
    if method == "bootstrap":
        kw = {"resamples": resamples}
    t0 = time.perf_counter()
    res = fit(runs, method=method, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    if method == "huber":
        fit(runs, method=method, **kw)
    steady = time.perf_counter() - t0 if method == "huber" else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    import numpy as np

    est = {k: float(np.median(getattr(res.params, k))) for k in ("E", "A", "B", "alpha", "beta")}
    out = {"rows": n, "method": method, "exhaustive": exhaustive, "first_s": first,
           "steady_s": steady, "peak_MiB": peak, "objective": res.info.get("objective"),
           "screened_on_rows": res.info.get("screened_on_rows"), "params": est,
           "truth": {k: float(getattr(P, k)) for k in est}}
    if method == "bootstrap":
        out["resample_chunks"] = res.info.get("resample_chunks")
        from bayescale.estimators.bootstrap import RESAMPLE_ROWS
        from bayescale.estimators.padding import bucket_size

        # the loop over chunks of resamples (its first chunk compiles; the full-data Huber
        # fit before it is not counted); each chunk solves `chunk` resamples, the last one
        # padded, so time scales with the chunks: 4000 resamples take ceil(4000 / chunk)
        chunk = max(1, min(resamples, RESAMPLE_ROWS // bucket_size(n)))
        chunks = res.info.get("resample_chunks")
        out["resamples"] = resamples
        out["resamples_s"] = res.info["timing"]["total"]
        out["chunk"] = chunk
        out["per_solved_resample_s"] = out["resamples_s"] / (chunks * chunk)
        out["extrapolated_4000_s"] = out["resamples_s"] * -(-4000 // chunk) / chunks
        out["intervals_alpha"] = list(res.intervals(0.9)["alpha"])
    if method == "bayes":
        out["timing"] = res.info.get("timing")
        out["diagnostics_ok"] = bool(res.diagnostics.ok)
        out["diagnostics"] = res.diagnostics.to_dict()
        out["subsample"] = res.info.get("subsample")  # HMCECS from 50,000 rows on ("auto")
        out["leapfrog_per_draw"] = res.info.get("leapfrog_per_draw")
        out["intervals_alpha"] = list(res.intervals(0.9)["alpha"])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--out", default=None,
                    help="default results/rows.json (huber), rows_bootstrap.json, rows_bayes.json")
    ap.add_argument("--method", default="huber", choices=("huber", "bootstrap", "bayes"),
                    help="the fit timed: huber (first and steady calls, against the "
                         "exhaustive grid up to 10,000 rows), bootstrap (--resamples) or "
                         "bayes (NUTS, 4 x (1000 + 1000)); one call each for the last two")
    ap.add_argument("--resamples", type=int, default=4000,
                    help="bootstrap resamples (default 4000, the package's). Fewer at many "
                         "rows: the resamples are solved in chunks of RESAMPLE_ROWS // rows, "
                         "so a run of at least one full chunk times a chunk, and 4000 "
                         "resamples take ceil(4000 / chunk) of them (extrapolated_4000_s)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1] == "1", args.child[2],
                               int(args.child[3]))))
        return
    from bayescale.io import atomic_write, dumps_json

    if args.out is None:
        name = "rows.json" if args.method == "huber" else f"rows_{args.method}.json"
        args.out = str(HERE / "results" / name)

    rows = []
    for n in map(int, args.sizes.split(",")):
        both = n <= EXHAUSTIVE_UP_TO and args.method == "huber"
        for exhaustive in ((False, True) if both else (False,)):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child", str(n),
                                   "1" if exhaustive else "0", args.method,
                                   str(args.resamples)],
                                  capture_output=True, text=True,
                                  env={**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"})
            if proc.returncode:
                rows.append({"rows": n, "exhaustive": exhaustive, "returncode": proc.returncode,
                             "seconds": time.perf_counter() - t0, "error": proc.stderr[-2000:]})
                print(n, exhaustive, "failed", proc.stderr[-300:], flush=True)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            label = ("exhaustive" if exhaustive else "screened") if args.method == "huber" \
                else args.method
            steady = "" if r["steady_s"] is None else f"steady {r['steady_s']:7.1f} s, "
            print(f"{n:>9} {label:>10}: first {r['first_s']:7.1f} s, {steady}"
                  f"peak {r['peak_MiB']:7.0f} MiB, alpha {r['params']['alpha']:.4f}", flush=True)
    out = {"load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "rows": rows}
    atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(dumps_json(out, indent=1) + "\n"))


if __name__ == "__main__":
    main()
