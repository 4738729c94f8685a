"""Subsampled NUTS (HMCECS) on a second dataset of another size in the same bucket.

Issue 9: a dataset of a new size must not compile a new program. Full-data NUTS pads the
runs to a size bucket (``bayescale.estimators.padding``); since 2026-12-02 HMCECS does too
(the padded rows masked out of the distribution itself, so they add 0 to the subsample
estimate). This fits ``bench_rows.synthetic_checkpoints`` of 200,000 and then 210,000 rows
(one bucket: 229,376 rows) with the defaults (``subsample="auto"``: 1,000 rows per step)
in one process and reports per fit the wall time, bayescale's timing (compile, sampling),
the subsample acceptance, the diagnostics, the number of compiled NUTS programs and the
posterior medians (truth: Hoffmann et al.'s 2022 law, E 1.69, A 406.4, B 410.7, alpha
0.34, beta 0.28).

Run:  python benchmarks/bench_rows_bucket.py  (about 5 minutes on 2 cores); writes
``results/rows_bucket.json``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES = ((200_000, 0), (210_000, 1))  # (rows, seed)


def main() -> None:
    from bench_rows import synthetic_checkpoints

    import bayescale
    from bayescale.errors import DataWarning
    from bayescale.estimators import nuts
    from bayescale.io import atomic_write, dumps_json

    out = {}
    for n, seed in SIZES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            runs = bayescale.load_runs(synthetic_checkpoints(n, seed))
        t0 = time.perf_counter()
        f = bayescale.fit(runs, method="bayes", progress=False)
        d = f.diagnostics
        out[str(n)] = {
            "wall": time.perf_counter() - t0, "timing": f.info["timing"],
            "subsample": f.info["subsample"], "rhat_max": d.rhat_max,
            "ess_bulk_min": d.ess_bulk_min, "divergences": d.divergences,
            "programs": len(nuts._PROGRAMS),
            "medians": {k: float(f.idata.posterior[k].median())
                        for k in ("E", "A", "B", "alpha", "beta")}}
        print(n, dumps_json(out[str(n)]), flush=True)
    path = HERE / "results" / "rows_bucket.json"
    atomic_write(path, lambda p: Path(p).write_text(dumps_json(out, indent=1) + "\n"))


if __name__ == "__main__":
    main()
