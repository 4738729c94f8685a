"""``bayescale design``: which runs to train next, to narrow the interval that matters.

SOURCE is a fit folder or data to fit first (``--method bootstrap`` by default: the design
needs draws). See :mod:`bayescale.planning.design` for the method.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bayescale._util import parse_flops
from bayescale.cli._common import (LAWS_HELP, add_cost_arguments, add_fit_source_arguments,
                                   cost_settings_from_args, load_source,
                                   unique_tokens_from_args)
from bayescale.errors import BayescaleError

EXAMPLES = """\
examples:
  bayescale design chinchilla --target-budget 1e24 --experiment-budget 1e21
  bayescale design chinchilla --target-budget 1e24 --experiment-budget 1e21 --k 6 --rank per_cost --json
  bayescale design fits/chinchilla --target-budget 1e24 --experiment-budget 3e20 --candidates candidates.csv
  bayescale design data_constrained --law data_constrained -U 25e9 --target-budget 1e22 \\
      --experiment-budget 1e20 --objective loss --out design/
  bayescale design farseer --law farseer --target-budget 1e22 --experiment-budget 1e20 \\
      --objective loss --targets target_region.csv
  bayescale design chinchilla --target-budget 1e24 --experiment-budget 1e21 --cost attention --n-ctx 8192
"""


def register(subparsers) -> None:
    """Add the ``design`` subcommand."""
    p = subparsers.add_parser(
        "design", help="which runs (N, D) to train next to narrow the interval on N_opt(C*)",
        description=("Propose up to K runs whose total cost stays within the experiment "
                     "budget, chosen for the largest expected reduction (with --rank per_cost: "
                     "reduction per FLOP) of the uncertainty of log N_opt at the target budget "
                     "(or of the loss there), under the honest predictive (with the extrapolation error). Prints the "
                     "runs, their cost and the interval before and (expected) after."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fit_source_arguments(
        p, source_help=("fit folder (from `bayescale fit ... --out DIR`), or a dataset "
                        "name, CSV path or - to fit first"),
        methods=("bootstrap", "bayes"),
        method_help="estimator (default bootstrap; the design needs draws)",
        seed_help="random seed (0)",
        law_help=f"law to fit: {LAWS_HELP}",
        unique_tokens_help="unique-token budget for data_constrained (default: the runs' largest)")
    p.add_argument("--target-budget", required=True, metavar="C*",
                   help="FLOPs of the training run the decision is about, e.g. 1e24")
    p.add_argument("--experiment-budget", required=True, metavar="F",
                   help="FLOPs the proposed runs may use together, e.g. 1e21")
    p.add_argument("--k", type=int, default=4, help="most runs to propose (4)")
    p.add_argument("--objective", choices=("n_opt", "loss"), default="n_opt",
                   help="n_opt: N_opt(C*) (default); loss: the loss at C*")
    p.add_argument("--targets", default=None, metavar="FILE",
                   help="with --objective loss: CSV of the target region's points (N, D, "
                        "and U); the runs are chosen for the integrated variance of log "
                        "loss over them, and the intervals are of their mean loss")
    p.add_argument("--candidates", default=None, metavar="FILE",
                   help="CSV of the runs that can be trained (columns N, D, and U for "
                        "data_constrained); default: a log-spaced grid around the data")
    p.add_argument("--approximation", choices=("linear", "reweight"), default="linear",
                   help="linear: joint-normal update of the draws (default); reweight: "
                        "importance reweighting under fantasised outcomes (not with "
                        "--objective loss)")
    p.add_argument("--rank", choices=("gain", "per_cost"), default="gain",
                   help="gain: the largest expected gain that fits the budget (default; it "
                        "did better in benchmarks/bench_design.py); per_cost: gain per FLOP")
    add_cost_arguments(
        p, costs=("train", "attention", "non-embedding"),
        cost_help=("cost model of the proposed runs, of the budgets and of C*'s frontier: "
                   "train = 6ND (default); attention = 6ND + attention FLOPs; non-embedding "
                   "= 6(N - N_emb)D. (Not inference: one model prices the small runs and "
                   "C*, and the small runs are not served.) The optimum error beyond the "
                   "runs is learned for 6ND; under another cost the N_opt interval is the "
                   "law's own and runs are not credited for reaching toward C*, and the "
                   "output says so"))
    p.add_argument("--level", type=float, default=0.9, help="interval level (0.9)")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write design.json, candidates.csv and design.png here")
    p.set_defaults(func=run)


def _figure(result, fit, path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure

    from bayescale.io import atomic_write

    cand, props = result.candidates, result.proposals
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    from matplotlib.colors import LogNorm

    gain = cand.gain_per_cost.to_numpy() * 1e18
    top = max(float(np.max(gain)), 1e-300)
    sc = ax.scatter(cand.N, cand.D, c=np.clip(gain, top * 1e-4, None), s=14, cmap="viridis",
                    marker="s", norm=LogNorm(vmin=top * 1e-4, vmax=top))
    fig.colorbar(sc, ax=ax, label="expected variance reduction per 1e18 FLOPs")
    ax.scatter(fit.runs.N, fit.runs.D, s=18, facecolor="none", edgecolor="k", label="existing runs")
    ax.scatter(props.N, props.D, s=90, marker="*", color="tab:red", label="proposed")
    for i, (n, d) in enumerate(zip(props.N, props.D)):
        ax.annotate(str(i + 1), (n, d), textcoords="offset points", xytext=(5, 5), color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = np.geomspace(*ax.get_xlim(), 50)
    ylim = ax.get_ylim()
    c_lo, c_hi = np.log10(6 * cand.N.min() * cand.D.min()), np.log10(6 * cand.N.max() * cand.D.max())
    for c in 10.0 ** np.arange(np.ceil(c_lo), np.floor(c_hi) + 1):
        ax.plot(xs, c / (6 * xs), color="0.6", lw=0.6, ls="--")
        ax.annotate(f"{c:.0e}", (xs[-1], c / (6 * xs[-1])), fontsize=6, color="0.5")
    ax.set_ylim(ylim)
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel("D (tokens)")
    ax.set_title(f"design for {result.objective} at C* = {result.info['target_budget']:.2g} "
                 f"(dashed: 6ND iso-FLOP)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def run(args) -> int:
    from bayescale.planning.design import next_runs

    target = parse_flops(args.target_budget, "--target-budget")
    budget = parse_flops(args.experiment_budget, "--experiment-budget")
    U = unique_tokens_from_args(args)
    if args.k < 1:
        raise BayescaleError(f"--k must be a positive count, got {args.k}.")
    if args.approximation == "reweight" and args.objective == "loss":
        raise BayescaleError("--approximation reweight cannot carry the extrapolation error "
                             "into --objective loss yet (its discrete error nodes collapse "
                             "after one far run); use the default --approximation linear.")
    if args.targets is not None and args.objective != "loss":
        raise BayescaleError("--targets goes with --objective loss (the loss over a target "
                             "region); add --objective loss or drop --targets.")
    settings = cost_settings_from_args(args)
    fit = load_source(args)
    if fit.runs is None:
        raise BayescaleError("design needs data or a fit folder, not a published law: it "
                             "proposes runs to add to the runs that were fitted.")
    from bayescale.planning.costs import get_cost

    result = next_runs(fit, target_budget=target, experiment_budget=budget, k=args.k,
                       cost=get_cost(args.cost, **settings),
                       objective=args.objective, candidates=args.candidates,
                       targets=args.targets,
                       unique_tokens=U, level=args.level, seed=args.seed,
                       approximation=args.approximation, rank=args.rank)
    out = {"source": str(args.source), "method": fit.method, "law": fit.law.name,
           "cost_settings": settings, **result.to_dict()}
    if args.out is not None:
        from bayescale.io import atomic_write, dumps_json, write_text

        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "design.json", dumps_json(out, indent=2) + "\n")
        atomic_write(folder / "candidates.csv",
                     lambda tmp: result.candidates.to_csv(tmp, index=False))
        _figure(result, fit, folder / "design.png")
    if args.json:
        json.dump(out, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    what = ("N_opt" if args.objective == "n_opt" else
            "loss" if args.targets is None else "mean loss over the targets")
    priced = "" if args.cost == "train" else (
        f", cost {args.cost}" + "".join(f", {k} {v:g}" for k, v in settings.items()))
    print(f"Next runs for {what} at C* = {target:.3g} FLOPs, within {budget:.3g} FLOPs "
          f"({fit.method} fit of the {fit.law.name} law, {len(fit.runs)} runs{priced}):")
    print(f"{'#':>2} {'N':>10} {'D':>10} {'cost':>10} {'gain':>10} {'decades':>8}")
    for i, row in enumerate(result.proposals.itertuples(), 1):
        print(f"{i:>2} {row.N:>10.3g} {row.D:>10.3g} {row.cost:>10.3g} "
              f"{row.expected_gain:>10.3g} {row.decades:>8.2f}")
    if result.proposals.empty:
        print("   (no affordable candidate is expected to narrow the interval)")
    lv = f"{100 * args.level:g}%"
    for key in ("before", "after"):
        iv = result.before if key == "before" else result.after
        print(f"{key:>6}: {what} {iv['median']:.4g}, {lv} interval [{iv['lower']:.4g}, {iv['upper']:.4g}]"
              + (" (expected)" if key == "after" else ""))
    oe = result.info.get("optimum_error")
    if oe is not None:
        w = oe["within"]
        print(f"  with the optimum error beyond the runs ({oe['decades_before']:.2f} decades now, "
              f"{oe['decades_after']:.2f} after; bayescale.estimators.optimum_error); within "
              f"the law alone: [{w['before']['lower']:.4g}, {w['before']['upper']:.4g}] -> "
              f"[{w['after']['lower']:.4g}, {w['after']['upper']:.4g}] (the gains are the law's "
              "own variance)")
    if "optimum_error_note" in result.info:
        print(f"  optimum error {result.info['optimum_error_note']}")
    gain_of = (f"the variance of log {what}" if args.targets is None else
               "the mean over the targets of the variance of their log loss")
    print(f"spent {result.info['spent']:.3g} of {budget:.3g} FLOPs; gain = expected reduction of "
          f"{gain_of}")
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'design.json'}, candidates.csv, design.png")
    return 0
