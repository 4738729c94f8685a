"""``bayescale predict``: the loss of new runs, with intervals that widen beyond the data.

SOURCE is a fit folder, a published law (``bayescale laws``) or data to fit first. Data
are fitted with ``--method huber`` by default: the prediction's width comes mostly from the
observation noise and the extrapolation error, not from the parameters, and the Huber fit
takes seconds (``--method bootstrap`` or ``bayes`` add the parameters' uncertainty).
"""

from __future__ import annotations

import argparse
import json
import sys

from bayescale._util import parse_flops
from bayescale.cli._common import LAWS_HELP, add_fit_source_arguments, load_source
from bayescale.errors import BayescaleError

EXAMPLES = """\
examples:
  bayescale predict chinchilla --params 70e9 --tokens 1.4e12
  bayescale predict farseer --params 3e9 --tokens 6e10 --json
  bayescale predict fits/chinchilla --params 1e11 --tokens 2e12 --structural none
  bayescale predict data_constrained --law data_constrained -N 8.7e9 -D 178e9 -U 25e9
"""


def register(subparsers) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict", help="predicted loss of new runs (N params, D tokens), with intervals",
        description=("Predictive median and central 50/80/90/95% intervals of the final loss "
                     "of runs with N parameters trained on D tokens: the fit's parameter "
                     "uncertainty, the observation noise and (by default) an extrapolation "
                     "error that grows with the decades beyond the fitted runs, learned from "
                     "leave-future-out refits of the data."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fit_source_arguments(
        p, source_help=("fit folder, published law (see `bayescale laws`), or a dataset "
                        "name, CSV path or - to fit first"),
        title="fitting (when SOURCE is data)", method="huber",
        method_help=("estimator (default huber: fast; the interval is mostly noise and "
                     "extrapolation error)"),
        resamples_help="bootstrap resamples (with --method bootstrap)",
        seed_help="random seed (0)",
        law_help=f"law to fit: {LAWS_HELP}")
    q = p.add_argument_group("points")
    q.add_argument("--params", "-N", type=str, default=None, metavar="N",
                   help="model parameters, e.g. 70e9")
    q.add_argument("--tokens", "-D", type=str, default=None, metavar="D",
                   help="training tokens, e.g. 1.4e12")
    q.add_argument("--unique-tokens", "-U", type=str, default=None, metavar="U",
                   help="unique tokens (laws with repeated data)")
    q.add_argument("--points", default=None, metavar="FILE",
                   help="CSV of points with columns N and D (and U), one per row")
    p.add_argument("--structural", choices=("auto", "none"), default="auto",
                   help="auto: with the extrapolation error (default); none: in-model only")
    p.add_argument("--num-draws", type=int, default=4000, help="predictive draws (4000)")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    p.set_defaults(func=run)


def _points(args):
    if args.points is not None:
        if args.params is not None or args.tokens is not None:
            raise BayescaleError("give either --points FILE or --params/--tokens, not both.")
        import pandas as pd

        try:
            frame = pd.read_csv(args.points)
        except (OSError, ValueError) as exc:
            raise BayescaleError(f"--points {args.points!r} could not be read as a CSV: {exc}") from None
        cols = {c.lower(): c for c in frame.columns}
        pick = {}
        for key, aliases in (("N", ("n", "params", "parameters")), ("D", ("d", "tokens")),
                             ("U", ("u", "unique_tokens"))):
            found = [cols[a] for a in aliases if a in cols]
            if found:
                pick[key] = frame[found[0]].to_numpy(dtype=float)
        if "N" not in pick or "D" not in pick:
            raise BayescaleError(f"--points {args.points!r} needs columns N and D (or params "
                                 f"and tokens); found {list(frame.columns)}.")
        return pick["N"], pick["D"], pick.get("U")
    if args.params is None or args.tokens is None:
        raise BayescaleError("say which runs to predict: --params N --tokens D, or --points FILE.")
    U = None if args.unique_tokens is None else [parse_flops(args.unique_tokens, "--unique-tokens")]
    return ([parse_flops(args.params, "--params")], [parse_flops(args.tokens, "--tokens")], U)


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _decades(x) -> str:
    return "unknown" if x is None else f"{x:.2f}"


def run(args) -> int:
    N, D, U = _points(args)
    fit = load_source(args)
    pred = fit.predict(N, D, U, structural=args.structural, num_draws=args.num_draws,
                       seed=args.seed)
    out = {"source": str(args.source), "method": fit.method, "law": fit.law.name,
           **pred.to_dict()}
    if args.json:
        json.dump(out, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    what = ("with the extrapolation error" if args.structural == "auto"
            else "in-model (no extrapolation error)")
    print(f"Predicted loss ({fit.method} fit of the {fit.law.name} law, {what}):")
    print(f"{'N':>10} {'D':>10} {'median':>8} {'50%':>17} {'90%':>17} {'95%':>17} {'decades':>8}")
    for pt in out["points"]:
        iv = pt["intervals"]
        cells = [f"[{_fmt(iv[k][0])}, {_fmt(iv[k][1])}]" for k in ("0.5", "0.9", "0.95")]
        print(f"{pt['N']:>10.3g} {pt['D']:>10.3g} {_fmt(pt['median']):>8} "
              f"{cells[0]:>17} {cells[1]:>17} {cells[2]:>17} {_decades(pt['extrapolation_decades']):>8}")
    ext = out.get("extrapolation")
    if ext:
        print(f"extrapolation error: sd {ext['tau']:.3f} and drift {ext['bias']:+.3f} in log "
              f"loss per decade beyond the data (from {ext['num_refits']} leave-future-out "
              f"refits, {ext['num_misses']} misses, and the published-data prior)")
    for note in out["notes"]:
        print(f"note: {note}")
    return 0
