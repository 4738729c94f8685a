"""Fitting your own training runs from a CSV, and the validation errors you may meet.

Writes a small CSV of synthetic runs with the column names a training pipeline might
use (``params``, ``tokens``, ``eval_loss``), shows how bayescale reads it, then breaks
it in the ways real logs are broken and prints each error bayescale gives, with what
it means:

1. a column under an unexpected name (tell ``load_runs`` which column is the loss);
2. a run that crashed and logged NaN;
3. the same run logged twice;
4. too few distinct model sizes to separate the N term from the irreducible loss.

Then fits the law to the clean file and prints the compute-optimal plan at a budget
ten times the largest run's, with its interval. The same from the command line::

    bayescale fit runs.csv --loss-column eval_loss
    bayescale report runs.csv --loss-column eval_loss --out my_report

Run: ``python examples/your_own_runs.py --out /tmp/runs.csv``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.data.runs import load_runs
from bayescale.estimators.fit import fit
from bayescale.errors import DataError
from bayescale.laws.chinchilla import BESIROGLU_2024
from bayescale.data.simulate import simulate_runs


def write_csv(path: Path, seed: int = 0) -> pd.DataFrame:
    """A user's log: 9 budgets x 6 model sizes from a known law, pipeline column names."""
    runs = simulate_runs(BESIROGLU_2024, budgets=np.geomspace(6e18, 3e21, 9),
                         models_per_budget=6, seed=seed)
    frame = pd.DataFrame({"run_id": [f"run{i:03d}" for i in range(len(runs))],
                          "params": runs.N.round(), "tokens": runs.D.round(),
                          "eval_loss": runs.loss.round(5)})
    frame.to_csv(path, index=False)
    return frame


def show_error(title: str, explanation: str, fn) -> str:
    try:
        fn()
    except DataError as exc:
        print(f"- {title}\n    bayescale says: {exc}\n    meaning: {explanation}")
        return str(exc)
    raise AssertionError(f"{title}: expected a DataError")


def main(args: argparse.Namespace) -> dict:
    folder = Path(args.out).parent if args.out else Path(tempfile.mkdtemp(prefix="bayescale-"))
    path = Path(args.out) if args.out else folder / "runs.csv"
    frame = write_csv(path, seed=args.seed)
    print(f"wrote {len(frame)} runs to {path}; columns {list(frame.columns)}")
    errors = {}
    bad = folder / "bad.csv"

    frame.rename(columns={"eval_loss": "val_ppl_loss"}).to_csv(bad, index=False)
    errors["column"] = show_error(
        "loss column under another name",
        "bayescale recognises N/params, D/tokens, C/FLOPs and loss/final_loss; name yours "
        "with load_runs(path, loss='val_ppl_loss') or --loss-column val_ppl_loss.",
        lambda: load_runs(bad))
    broken = frame.copy()
    broken.loc[3, "eval_loss"] = np.nan
    broken.to_csv(bad, index=False)
    errors["nan"] = show_error(
        "a crashed run logged NaN",
        "every run needs a finite positive loss; drop the row (or filter it with --query).",
        lambda: load_runs(bad))
    pd.concat([frame, frame.iloc[[5]]]).to_csv(bad, index=False)
    errors["duplicate"] = show_error(
        "a run logged twice",
        "duplicates would count one run twice in the likelihood; drop_duplicates() first.",
        lambda: load_runs(bad))
    frame[frame["params"].isin(frame["params"].unique()[:2])].to_csv(bad, index=False)
    errors["distinct"] = show_error(
        "only two model sizes",
        "with fewer than 3 distinct N the N term cannot be told from E; add model sizes.",
        lambda: load_runs(bad))

    runs = load_runs(path)
    result = fit(runs, method="bayes", chains=args.num_chains, warmup=args.num_warmup,
                 draws=args.num_samples, seed=args.seed, progress=False)
    est, ivals = result.point_estimate(), result.intervals(0.9)
    print(f"fit on {len(runs)} runs ({result.num_draws} draws; diagnostics ok: "
          f"{result.diagnostics.ok}); truth: E 1.817, A 482, B 2085, alpha 0.348, beta 0.366")
    for k in ("E", "A", "B", "alpha", "beta", "a_opt"):
        print(f"  {k:>6} {est[k]:9.4g}  90% [{ivals[k][0]:.4g}, {ivals[k][1]:.4g}]")
    print("  (one simulated dataset: E, A and alpha move together, so on an unlucky draw of the "
          "noise several\n   intervals miss the truth at once, as the Huber fit would too; across "
          "many datasets the 90%\n   intervals cover the truth about 90% of the time, which "
          "tests/test_inference.py checks)")
    C = 10 * float(runs.C.max())
    summary = result.frontier([C]).summary(0.9).iloc[0]
    print(f"at C = {C:.3g} FLOPs: N_opt {summary['N_opt_median']:.3g} "
          f"[{summary['N_opt_lower']:.3g}, {summary['N_opt_upper']:.3g}], "
          f"tokens per parameter {summary['tokens_per_param_median']:.1f}")
    return {"csv": str(path), "errors": errors, "estimates": est, "intervals": ivals,
            "N_opt": float(summary["N_opt_median"])}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="where to write the CSV (default a temp folder)")
    p.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    p.add_argument("--num-warmup", type=int, default=1000, help="warmup per chain")
    p.add_argument("--num-chains", type=int, default=4, help="chains")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
