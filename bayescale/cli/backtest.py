"""``bayescale backtest``: would the fit have told the truth about the larger runs?

Holds out the top compute budgets (or the runs above a compute, or a published test split),
fits on the rest, predicts the held-out runs and reports coverage, width, bias, CRPS and
log score, in-model and with the extrapolation error
(:mod:`bayescale.validation.backtest`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bayescale.cli._common import METHODS, add_data_arguments, load_runs_from_args
from bayescale.errors import BayescaleError

EXAMPLES = """\
examples:
  bayescale backtest chinchilla
  bayescale backtest marin_isoflop --group dclm --holdout top-budgets:2 --json
  bayescale backtest farseer --holdout split --out backtest-farseer
  bayescale backtest my_runs.csv --holdout above:1e21
  bayescale backtest sweep.csv --holdout top-budgets:2 --budget-column budget
"""


def register(subparsers) -> None:
    """Add the ``backtest`` subcommand."""
    p = subparsers.add_parser(
        "backtest", help="leave-future-out backtest: coverage of held-out larger runs",
        description=("Fit on all but the largest runs, predict those, and score the "
                     "predictions: coverage of the 50/80/90/95%% intervals, mean 90%% width, "
                     "bias, CRPS and log predictive density, in-model and with the "
                     "extrapolation error."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--holdout", default="top-budgets:1",
                   help="top-budgets:K (the top K compute budgets, default K=1), above:C "
                        "(runs with 6ND above C FLOPs), or split (the published test split "
                        "of data_constrained, farseer)")
    p.add_argument("--budget-column", default=None, metavar="COL",
                   help="with --holdout top-budgets:K, the CSV column that names each run's "
                        "compute budget (default: budgets detected as clusters of 6ND)")
    p.add_argument("--group", default=None, metavar="G",
                   help="the group to backtest, for multi-group datasets (e.g. dclm)")
    p.add_argument("--law", default="chinchilla", metavar="LAW", help="law to fit (chinchilla)")
    p.add_argument("--method", choices=METHODS, default="huber",
                   help="estimator (default huber: coarse-grid fit, seconds)")
    p.add_argument("--num-draws", type=int, default=2000, help="predictive draws (2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write backtest.json, runs.csv and calibration.png to DIR")
    p.set_defaults(func=run)


def _runs(args):
    from bayescale.data.runs import load_runs

    if args.group is None:
        return load_runs_from_args(args)
    return load_runs(args.data, group=args.group, N=args.N_column, D=args.D_column,
                     C=args.C_column, loss=args.loss_column, exclude_top=args.exclude_top,
                     query=args.query, sep=args.sep, drop_duplicates=args.drop_duplicates,
                     check_plausible=args.check_plausible)


def run(args) -> int:
    from bayescale.validation.backtest import backtest, parse_holdout

    kind, _ = parse_holdout(args.holdout)
    if args.num_draws < 2:
        raise BayescaleError(f"--num-draws must be at least 2, got {args.num_draws}.")
    runs = _runs(args)
    test = None
    if kind == "split":
        from bayescale.data.runs import load_runs

        test = load_runs(args.data, split="test", group=args.group)
    budgets = None
    if args.budget_column is not None:
        if kind != "top-budgets":
            raise BayescaleError("--budget-column goes with --holdout top-budgets:K.")
        from bayescale.cli._common import budget_column_labels

        budgets = budget_column_labels(args, runs)
    result = backtest(runs, holdout=args.holdout, law=args.law, method=args.method,
                      test=test, seed=args.seed, num_draws=args.num_draws, group=args.group,
                      budgets=budgets)
    out = {"data": str(args.data), **result.to_dict()}
    if args.out is not None:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "backtest.json").write_text(json.dumps(out, indent=1, allow_nan=False))
        result.tables["auto"].to_csv(folder / "runs.csv", index=False)
        from bayescale.report.calibration import plot_calibration

        plot_calibration({k: result.tables[k]["pit"] for k in ("none", "auto")},
                         folder / "calibration.png",
                         title=f"{args.data} {args.group or ''} {args.holdout}")
    if args.json:
        out.pop("runs")
        json.dump(out, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    info = result.info
    print(f"Backtest of {args.data}{' / ' + args.group if args.group else ''}, hold-out "
          f"{args.holdout}: fitted on {info['n_train']} runs, predicted {out['n_heldout']} "
          f"held-out runs, {info['mean_decades']:.2f} decades beyond on average.")
    print(f"{'':28} {'cov50':>6} {'cov80':>6} {'cov90':>6} {'cov95':>6} {'width90':>8} "
          f"{'bias':>8} {'CRPS':>8} {'log score':>9}")
    for key, label in (("none", "in-model"), ("auto", "with extrapolation error")):
        s = result.summaries[key]
        c = s["coverage"]
        print(f"{label:28} {c['0.5']:>6.2f} {c['0.8']:>6.2f} {c['0.9']:>6.2f} {c['0.95']:>6.2f} "
              f"{s['mean_width_90']:>8.4f} {s['bias']:>+8.4f} {s['crps']:>8.4f} "
              f"{s['log_score']:>9.2f}")
    ext = info["extrapolation"]
    print(f"extrapolation error: sd {ext['tau']:.3f}, drift {ext['bias']:+.3f} per decade "
          f"({ext['num_refits']} leave-future-out refits, {ext['num_misses']} misses)")
    for row in info["isoflop"]:
        lo, hi = row["N_opt_interval_90"]
        print(f"budget {row['C']:.3g} FLOPs ({row['num_runs']} runs): best run observed at "
              f"N = {row['N_best_observed']:.3g}, the fit's loss-minimising N = "
              f"{row['N_opt_median']:.3g} [90%: {lo:.3g}, {hi:.3g}] "
              f"({row['decades_off']:+.2f} decades)")
    if args.out is not None:
        print(f"wrote {args.out}/backtest.json, runs.csv, calibration.png")
    return 0
