"""``bayescale fit``: fit the law to a dataset or CSV and print or save the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bayescale.cli._common import (
    METHODS,
    add_data_arguments,
    add_nuts_arguments,
    enable_compilation_cache,
    load_runs_from_args,
)

EXAMPLES = """\
examples:
  bayescale fit chinchilla --method huber --exclude-top 5 --json
  bayescale fit chinchilla --method bootstrap --exclude-top 5 --resamples 4000 --seed 0
  bayescale fit chinchilla --chains 4 --warmup 1000 --draws 1000 --out fits/chinchilla
  bayescale fit my_runs.csv --N-column params --loss-column eval_loss --method huber
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit L(N, D) = E + A/N^alpha + B/D^beta to training runs",
        description=(
            "Fit the Chinchilla scaling law to training runs. DATA is a registered dataset "
            "name (see `bayescale datasets`) or a CSV path with columns for model size, "
            "tokens (or FLOPs) and final loss."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument("--method", choices=METHODS, default="bayes",
                   help="estimator: bayes (NUTS posterior, default), huber (Hoffmann et al. 2022 "
                        "grid fit), huber_mle (Besiroglu et al. 2024 point estimate), bootstrap")
    p.add_argument("--level", type=float, default=None,
                   help="interval level (default 0.9; the bootstrap defaults to 0.95 as Epoch)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--law", default="chinchilla", metavar="LAW",
                   help="law to fit: chinchilla (default), kaplan, data_constrained (needs a U "
                        "column), or a registered user law (see `bayescale laws`)")
    g = p.add_argument_group("bootstrap")
    g.add_argument("--resamples", type=int, default=4000, help="bootstrap resamples (4000)")
    g = p.add_argument_group("bayes")
    add_nuts_arguments(g)
    g.add_argument("--strict", action="store_true",
                   help="fail (exit 2) instead of warning when diagnostics fail")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--out", metavar="DIR",
                   help="write summary.csv, fit.json, draws.csv, runs.csv (and posterior.nc) to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.io import dumps_json

    from bayescale.errors import BayescaleError

    level = args.level if args.level is not None else (0.95 if args.method == "bootstrap" else 0.9)
    if not 0 < level < 1:
        raise BayescaleError(f"--level must be between 0 and 1, got {level}.")
    if args.out:  # refuse a folder in the way before the fit, not after it
        from bayescale.io import check_fit_destination

        check_fit_destination(args.out)
    enable_compilation_cache()
    t0 = time.perf_counter()
    runs = load_runs_from_args(args)
    from bayescale.estimators.fit import fit

    options: dict = {}
    if args.method == "bootstrap":
        options["resamples"] = args.resamples
    if args.method == "bayes":
        options.update(chains=args.chains, warmup=args.warmup, draws=args.draws,
                       likelihood=args.likelihood, strict=args.strict,
                       progress=False if (args.quiet or args.json) else None)
        if args.target_accept is not None:
            options["target_accept"] = args.target_accept
    result = fit(runs, method=args.method, level=level, seed=args.seed, law=args.law,
                 **options)
    payload = result.to_dict(level)
    payload.setdefault("timing", {})
    payload["timing"]["wall"] = time.perf_counter() - t0
    if args.out:
        from bayescale.io import save_fit

        written = save_fit(result, args.out, level=level, payload=payload)
        if not args.quiet:
            print(f"wrote {', '.join(str(p) for p in written.values())}", file=sys.stderr)
    if args.json:
        print(dumps_json(payload, indent=2))
    else:
        print(_format(result, payload, level))
    return 0


def _format(result, payload: dict, level: float) -> str:
    table = result.summary(level)
    lines = [
        f"bayescale fit: law={payload.get('law', 'chinchilla')}  method={payload['method']}  "
        f"runs={payload['n_runs']}  "
        f"source={payload['data']['source']}",
    ]
    dropped = payload["data"].get("dropped_rows") or []
    if dropped:
        lines.append(f"dropped {len(dropped)} rows ({', '.join(payload['data']['dropped_by'])})")
    if "lower" in table.columns:  # the level is not in the table's column names: say it
        kind = {"bayes": "central credible interval of the posterior",
                "bootstrap": "bootstrap percentile interval"}.get(payload["method"],
                                                                  "central interval of the draws")
        lines.append(f"lower, upper: {100 * level:g}% {kind}; estimate: median of the draws")
    with_pd_options = table.to_string(float_format=lambda v: f"{v:.6g}")
    lines.append(with_pd_options)
    if "objective" in payload:
        lines.append(f"objective = {payload['objective']:.11g}")
    if "diagnostics" in payload:
        d = payload["diagnostics"]
        lines.append("diagnostics: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    lines.append(f"wall time {payload['timing']['wall']:.2f} s")
    return os.linesep.join(lines)
