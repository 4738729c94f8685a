"""The report on every registered dataset, as a user runs it: gate and time per dataset.

Run ``python benchmarks/bench_reports.py [--only NAME,...]``; writes
``benchmarks/results/reports.json``.

Issue 9's bar: ``bayescale report NAME`` passes the diagnostics gate with default
settings on every registered dataset and group, each report in under a minute on 2 cores
once its programs are compiled. For every dataset (each group of the grouped ones, with
``--select group=G``) this runs the command exactly as a user types it, twice, each in a
fresh process sharing one fresh persistent compilation cache (the command line's
default, ``~/.cache/bayescale/jax``, moved to a temporary folder so earlier runs do not
count): the first run compiles (programs of a shape an earlier dataset compiled come
from the cache, as they would for a user), the second is the "once compiled" time. It
records both wall times, the gate (``diagnostics_ok``, printed by ``--json``), whether the
NUTS fit retried, and NUTS's compile and sampling seconds from ``fit.json``.

The baseline a user would otherwise have is the fit alone (``bayescale fit NAME --method
bayes``), timed in the same way: the ratio says what the report adds (Huber fit, 4000
bootstrap refits, frontier over every draw, figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))
from bench_datasets import DATASETS as FITS  # noqa: E402 - the benchmarks' one dataset list

#: (label, command-line data arguments): every registered dataset and group (the fit
#: benchmark's list, plus misfitting_checkpoints, which it leaves out for time).
DATASETS = [(label, [name] + [a for key, value in query.items()
                              for a in ("--select", f"{key}={value}")])
            for label, name, query in FITS]
DATASETS.insert(next(i for i, (label, _) in enumerate(DATASETS) if label == "misfitting") + 1,
                ("misfitting_checkpoints", ["misfitting_checkpoints"]))


def _run(cmd: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def one_dataset(label: str, data: list[str], cache: str, work: Path) -> dict:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
    row: dict = {"dataset": label, "command": "bayescale report " + " ".join(data)}
    for attempt in ("first", "second"):
        out = work / f"{label.replace('/', '_')}_{attempt}"
        seconds, proc = _run([sys.executable, "-m", "bayescale", "report", *data,
                              "--out", str(out), "--json", "--quiet"], env)
        row[f"report_{attempt}_s"] = seconds
        if proc.returncode != 0:
            row["error"] = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return row
        row["gate_ok"] = json.loads(proc.stdout)["diagnostics_ok"]
        fit = json.loads((out / "fit.json").read_text(encoding="utf-8"))
        info = fit.get("info", fit)
        timing = info.get("timing", {})
        row[f"nuts_compile_{attempt}_s"] = timing.get("compile")
        row[f"nuts_sampling_{attempt}_s"] = timing.get("sampling")
        row["retried"] = "retry" in info
        row["run_effects"] = info.get("run_effects")
    for attempt in ("first", "second"):
        seconds, proc = _run([sys.executable, "-m", "bayescale", "fit", *data, "--method",
                              "bayes", "--json", "--quiet"], env)
        if proc.returncode != 0:
            row["error"] = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return row
        row[f"fit_{attempt}_s"] = seconds
    row["report_over_fit"] = row["report_second_s"] / row["fit_second_s"]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated labels (default: all)")
    ap.add_argument("--out", default=str(HERE / "results" / "reports.json"))
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    rows = []
    out = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        for label, data in DATASETS:
            if only and label not in only:
                continue
            row = one_dataset(label, data, str(Path(tmp) / "jax"), Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    out["load_average_end"] = os.getloadavg()
    from bayescale.io import atomic_write, dumps_json

    atomic_write(Path(args.out), lambda p: Path(p).write_text(dumps_json(out, indent=1) + "\n"))


if __name__ == "__main__":
    main()
