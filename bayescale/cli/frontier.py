"""``bayescale frontier``: compute-optimal plans from a fit.

SOURCE is either a fit folder written by ``bayescale fit DATA --out DIR`` (it holds
``fit.json`` and ``draws.csv``), or a dataset name / CSV path, fitted first with
``--method`` (default ``bootstrap``: Besiroglu et al.'s resampling, which gives
draws; ``huber`` gives a point estimate; ``bayes`` the NUTS posterior).

``--method isoflop`` / ``envelope`` (Hoffmann et al.'s Approaches 2 and 1) fit the
allocation ``N_opt = G_N C^a`` alone: ``frontier`` shows N_opt, D_opt and tokens per
parameter with intervals and no loss (``L_opt`` is ``-``, null in JSON). ``bayescale
decide`` (:mod:`bayescale.cli.decide`) assesses one plan against the same fit.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from bayescale._util import check_level, parse_flops
from bayescale.cli._common import (UNIQUE_TOKENS_HELP, add_cost_arguments,
                                   add_fit_source_arguments, cost_settings_from_args,
                                   load_runs_from_args, load_source, unique_tokens_from_args)
from bayescale.errors import BayescaleError

__all__ = ["register", "run_frontier", "load_source"]

FRONTIER_EXAMPLES = """\
examples:
  bayescale frontier fits/chinchilla --budget 5.76e23 --budget 1e25
  bayescale frontier chinchilla --exclude-top 5 --budget 1e24 --json
  bayescale frontier fits/chinchilla --budget 1e24 --cost inference --inference-tokens 2e12
  bayescale frontier chinchilla --budget 1e24 --cost attention --n-ctx 8192 --aspect-ratio 128
  bayescale frontier besiroglu2024 --budget 5.76e23
  bayescale frontier muennighoff2023 --budget 1e22 --unique-tokens 25e9 --json
  bayescale frontier chinchilla --exclude-top 5 --budget 1e24 --structural chinchilla,kaplan
"""


def register(subparsers) -> None:
    """Add the ``frontier`` subcommand."""
    p = subparsers.add_parser(
        "frontier",
        help="compute-optimal model size, tokens and loss per budget, with intervals",
        description=("For each compute budget C, the model size N_opt, tokens D_opt, loss "
                     "L_opt and tokens per parameter that minimise the fitted loss, with "
                     "median and central interval over the fit's draws, and how far C "
                     "extrapolates beyond the compute the data cover."),
        epilog=FRONTIER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fit_source_arguments(p, unique_tokens_help=UNIQUE_TOKENS_HELP)
    p.add_argument("--budget", "-C", action="append", required=True, metavar="C",
                   help="compute budget in FLOPs, e.g. 5.76e23 (repeat for several)")
    add_cost_arguments(
        p, cost_help=("cost model: train = 6ND (default); inference = 6ND + 2N D_inf, the "
                      "loss-minimising split of a total budget (Sardana et al. 2023); "
                      "attention = 6ND + attention FLOPs; non-embedding = 6(N - N_emb)D"))
    p.add_argument("--level", type=float, default=0.9, help="central interval level (0.9)")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    p.add_argument("--structural", default=None, metavar="LAWS",
                   help="also show the band with law-form uncertainty: fit these laws "
                        "(comma-separated, e.g. chinchilla,kaplan) to SOURCE data, weigh them "
                        "by leave-future-out stacking and pool their frontiers")
    p.set_defaults(func=run_frontier)


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}"


# The command runs in JAX's default precision, as every command does (see cli/_common.py).


def run_frontier(args) -> int:
    budgets = [parse_flops(b) for b in args.budget]
    level = check_level(args.level, name="--level")
    D_inf = None
    if args.inference_tokens is not None:
        if args.cost != "inference":
            raise BayescaleError("--inference-tokens goes with --cost inference.")
        D_inf = parse_flops(args.inference_tokens, "--inference-tokens")
    elif args.cost == "inference":
        raise BayescaleError("--cost inference needs --inference-tokens T (lifetime inference "
                             "tokens, e.g. 2e12).")
    settings = cost_settings_from_args(args)
    fit = load_source(args)
    U = unique_tokens_from_args(args)
    result = fit.frontier(budgets, cost=args.cost, inference_tokens=D_inf, unique_tokens=U,
                          **settings)
    out = result.to_dict(level)
    out = {"source": str(args.source), "method": fit.method,
           "law": getattr(fit.law, "name", None),
           "unique_tokens": U, "cost": args.cost,
           "inference_tokens": D_inf, "cost_settings": settings, **out}
    if args.structural is not None:
        out["structural"] = _structural(args, budgets, level, cost=args.cost,
                                        inference_tokens=D_inf, unique_tokens=U, **settings)
    if args.json:
        from bayescale.io import dumps_json

        sys.stdout.write(dumps_json(out, indent=2))
        sys.stdout.write("\n")
        return 0
    pct = f"{100 * level:g}%"
    print(f"compute-optimal frontier: {args.source} ({fit.method}, {result.num_draws} draws), "
          f"cost {args.cost}" + (f", D_inf {D_inf:.3g}" if D_inf else "")
          + "".join(f", {k} {v:g}" for k, v in settings.items()))
    print(f"median [{pct} interval]")
    header = f"{'C (FLOPs)':>10}  {'N_opt':>26}  {'D_opt':>26}  {'L_opt':>22}  {'D/N':>20}  extrap."
    print(header)
    for row in out["budgets"]:
        cells = []
        for q, w in (("N_opt", 26), ("D_opt", 26), ("L_opt", 22), ("tokens_per_param", 20)):
            v = row[q]
            cells.append(f"{_fmt(v['median'])} [{_fmt(v['lower'])}, {_fmt(v['upper'])}]".rjust(w))
        ext = row["extrapolation"]
        ext_s = "-" if ext is None else ("0" if ext == 0 else f"{ext:.2f} OOM")
        flag = "" if row["converged"] == 1 else f"  ({100 * (1 - row['converged']):.1f}% not converged)"
        print(f"{row['C']:>10.3g}  " + "  ".join(cells) + f"  {ext_s}{flag}")
    if args.structural is not None:
        _print_structural(out["structural"], pct)
    return 0


def _structural(args, budgets, level: float, **frontier_options) -> dict:
    """``--structural``: the laws' stacking weights and, per budget, N_opt and D_opt within
    the top-weighted law and with structural uncertainty (the weighted mixture)."""
    from bayescale.estimators.stacking import stack_laws

    from bayescale.laws.published import PUBLISHED

    path = Path(args.source)
    if path.is_dir() or path.name == "fit.json" or (args.source in PUBLISHED
                                                    and not path.exists()):
        raise BayescaleError("--structural fits several laws and needs SOURCE data (a dataset "
                             "name or CSV path), not a fit folder or a published law.")
    laws = [name.strip() for name in str(args.structural).split(",") if name.strip()]
    options = {} if args.resamples is None else {"resamples": int(args.resamples)}
    runs = load_runs_from_args(args, source=args.source)
    stack = stack_laws(runs, laws, method=args.method, seed=args.seed, **options)
    d = stack.to_dict(budgets, level, **frontier_options)
    rows = [{"C": r["C"], "N_opt": r["N_opt"], "D_opt": r["D_opt"]} for r in d["budgets"]]
    return {"laws": d["laws"], "weights": d["weights"], "top": d["top"],
            "method": args.method, "cuts": stack.info["cuts"],
            "scored_by": stack.scored_by,
            "left_out": stack.info["left_out"], "budgets": rows,
            "optimum_error": stack.info["optimum_error"], "optimum_note": stack.optimum_note}


def _print_structural(st: dict, pct: str) -> None:
    weights = ", ".join(f"{k} {w:.2f}" for k, w in zip(st["laws"], st["weights"]))
    print(f"structural uncertainty: stacking weights {weights} ("
          f"{st['scored_by']}); within = {st['top']} alone, structural = the weighted mixture")
    if st["optimum_note"]:
        print(st["optimum_note"])
    print(f"{'C (FLOPs)':>10}  {'band':>10}  {'N_opt':>26}  {'D_opt':>26}")
    for row in st["budgets"]:
        for band in ("within", "structural"):
            cells = [f"{_fmt(v['median'])} [{_fmt(v['lower'])}, {_fmt(v['upper'])}]".rjust(26)
                     for v in (row["N_opt"][band], row["D_opt"][band])]
            print(f"{row['C']:>10.3g}  {band:>10}  " + "  ".join(cells))
