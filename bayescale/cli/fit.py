"""``bayescale fit``: fit the law to a dataset or CSV and print or save the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bayescale.cli._common import (
    LAWS_HELP,
    ALLOCATION_METHODS,
    METHODS,
    add_data_arguments,
    add_nuts_arguments,
    budget_column_labels,
    enable_compilation_cache,
    load_runs_from_args,
    resolve_group_option,
    subsample_arg,
)

EXAMPLES = """\
examples:
  bayescale fit chinchilla --method huber --exclude-top 5 --json
  bayescale fit chinchilla --method bootstrap --exclude-top 5 --resamples 4000 --seed 0
  bayescale fit chinchilla --chains 4 --warmup 1000 --draws 1000 --out fits/chinchilla
  bayescale fit my_runs.csv --N-column params --loss-column eval_loss --method huber
  bayescale fit farseer --law farseer --method huber --shrink 0.026 --json
  bayescale fit marin_isoflop --select group=dclm --method isoflop --json
  bayescale fit marin_isoflop --group all --method huber
  bayescale fit sweep.csv --group corpus --method bootstrap --json
  bayescale fit sweep.csv --group corpus --pool
  bayescale fit sweep.csv --method isoflop --budget-column budget --uncertainty bayes
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
                        "grid fit), huber_mle (Besiroglu et al. 2024 point estimate), bootstrap; "
                        "isoflop (Hoffmann et al.'s Approach 2: parabolas through isoFLOP "
                        "profiles) and envelope (Approach 1) fit N_opt = G_N C^a directly")
    p.add_argument("--group", default=None, metavar="COLUMN|all",
                   help="fit each group on its own and show them side by side: a column of "
                        "a CSV DATA, or 'all' for every group of a registered multi-group "
                        "dataset (gadre2024, marin_isoflop); --select group=VALUE picks one")
    p.add_argument("--pool", action="store_true",
                   help="with --group and --method bayes: one hierarchical model, the law's "
                        "exponents partially pooled across groups (each group keeps its own "
                        "E and coefficients); shows each group with and without pooling and "
                        "PSIS-LOO of pooled against separate")
    p.add_argument("--pool-coefficients", action="store_true",
                   help="with --pool: pool the law's coefficients (at the data's centre) too")
    p.add_argument("--level", type=float, default=None,
                   help="interval level (default 0.9; the bootstrap defaults to 0.95 as Epoch)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--law", default="chinchilla", metavar="LAW",
                   help=f"law to fit: {LAWS_HELP}; data_constrained needs a U column")
    g = p.add_argument_group("huber and bootstrap")
    g.add_argument("--resamples", type=int, default=None,
                   help="bootstrap resamples (4000; isoflop 2000)")
    g.add_argument("--shrink", type=float, default=None, metavar="B",
                   help="pull the Huber fit (and every resample) toward the law's Normal "
                        "priors, weighed as if residuals were B in log loss (MAP under a "
                        "Laplace likelihood of scale B); 0.026, a decade of extrapolation "
                        "error, steadies laws of many coefficients fitted to few runs "
                        "(default 0: Hoffmann's plain fit)")
    g = p.add_argument_group("isoflop and envelope (Hoffmann et al.'s Approaches 2 and 1)")
    g.add_argument("--budget-column", default=None, metavar="COL",
                   help="column of a CSV DATA labelling each run's compute budget (default: "
                        "budgets detected from C, or Marin-style run names isoflop-<C>-...)")
    g.add_argument("--uncertainty", choices=("bootstrap", "bayes", "none"), default="bootstrap",
                   help="isoflop: bootstrap of runs within budgets (default; --resamples, "
                        "default 2000 here), bayes (joint NUTS model; --chains --warmup "
                        "--draws) or none")
    g.add_argument("--keep-flagged", action="store_true",
                   help="isoflop: keep budgets flagged (no interior minimum, minimum at the "
                        "grid's edge, too few runs) in the regression")
    g.add_argument("--loss-space", choices=("log", "loss"), default="log",
                   help="isoflop: parabola of log loss (default) or of loss")
    g = p.add_argument_group("bayes")
    add_nuts_arguments(g)
    g.add_argument("--subsample", type=subsample_arg, default="auto", metavar="M",
                   help="bayes: NUTS on M rows per step (HMCECS; no LOO): 'auto' (default: "
                        "1000 from 50,000 rows on), a number of rows, or 'none' for all rows")
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
    if args.out and args.method in ALLOCATION_METHODS:
        raise BayescaleError(f"--out does not save {args.method} fits yet (a fit folder holds "
                             f"a loss law); use --json > FILE.")
    if args.budget_column is not None and args.method not in ALLOCATION_METHODS:
        raise BayescaleError("--budget-column goes with --method isoflop or envelope.")
    if args.out:  # refuse a folder in the way before the fit, not after it
        from bayescale.io import check_fit_destination

        check_fit_destination(args.out)
    if (args.pool or args.pool_coefficients) and args.group is None:
        raise BayescaleError("--pool fits the groups in one hierarchical model: give --group "
                             "COLUMN (or --group all for a registered multi-group dataset).")
    if args.group is not None:
        _check_group_args(args)
    enable_compilation_cache()
    t0 = time.perf_counter()
    _shrink_option(args)  # a misplaced --shrink fails before the data are read
    runs = load_runs_from_args(args)
    if args.group is not None:
        return _run_groups(args, level, runs, t0)
    from bayescale.estimators.fit import fit

    if args.method in ALLOCATION_METHODS:
        return _run_allocation(args, level, runs, t0)
    options: dict = _shrink_option(args)
    if args.method == "bootstrap":
        options["resamples"] = 4000 if args.resamples is None else args.resamples
    if args.method == "bayes":
        options.update(chains=args.chains, warmup=args.warmup, draws=args.draws,
                       likelihood=args.likelihood, strict=args.strict,
                       progress=False if (args.quiet or args.json) else None,
                       subsample=args.subsample)
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


def _shrink_option(args) -> dict:
    if args.shrink is None:
        return {}
    if args.method not in ("huber", "bootstrap"):
        from bayescale.errors import BayescaleError

        raise BayescaleError(f"--shrink goes with --method huber or bootstrap (the Bayesian "
                             f"fit has its priors already), not --method {args.method}.")
    return {"shrink": args.shrink}


def _options(args) -> dict:
    """The estimator settings of the command line, as ``bayescale.fit`` options."""
    options: dict = _shrink_option(args)
    if args.method in ("bootstrap", "isoflop", "envelope") and args.resamples is not None:
        options["resamples"] = args.resamples
    elif args.method == "bootstrap":
        options["resamples"] = 4000
    if args.method == "bayes" or (args.method == "isoflop" and args.uncertainty == "bayes"):
        options.update(chains=args.chains, warmup=args.warmup, draws=args.draws,
                       strict=args.strict)
    if args.method == "bayes":
        options.update(likelihood=args.likelihood, progress=False)
        if args.target_accept is not None:
            options["target_accept"] = args.target_accept
    if args.method == "isoflop":
        options.update(uncertainty=args.uncertainty, keep_flagged=args.keep_flagged,
                       loss_space=args.loss_space)
    return options


def _check_group_args(args) -> None:
    """``--group COLUMN`` (a CSV's column) or ``--group all`` (a registered dataset's groups),
    turned into the options of load_runs; refuse what does not go with it."""
    from bayescale.errors import BayescaleError

    if args.select is not None:
        raise BayescaleError("--group fits every group and --select group=VALUE picks one: "
                             "give one of them.")
    if args.out:
        raise BayescaleError("--out saves one fit; with --group use --json > FILE.")
    if args.budget_column is not None:
        raise BayescaleError("--budget-column does not go with --group yet; fit one group "
                             "with --select group=VALUE.")
    resolve_group_option(args, "fit")


def _run_groups(args, level: float, runs, t0: float) -> int:
    """``--group``: each group fitted on its own, printed side by side or as JSON."""
    from bayescale.report.group_text import human_table, pooled_lines
    from bayescale.estimators.groups import fit_groups
    from bayescale.io import dumps_json
    from bayescale.report._format import human

    result = fit_groups(runs, method=args.method, law=args.law, level=level, seed=args.seed,
                        pool=args.pool, pool_coefficients=args.pool_coefficients,
                        **_options(args))
    payload = result.to_dict(level)
    payload["timing"] = {"wall": time.perf_counter() - t0}
    if args.json:
        print(dumps_json(payload, indent=2))
        return 0
    table = human_table(result.table(level))
    lines = [f"bayescale fit: law={args.law if args.method not in ALLOCATION_METHODS else '-'}"
             f"  method={args.method}  groups={len(result.fits)}  runs={len(runs)}  "
             f"source={runs.source}",
             ("one hierarchical model, the law's exponents partially pooled across groups"
              if result.pooled else "each group fitted on its own (not pooled)")
             + f"; N_opt at the reference budget C = {human(result.reference_budget)} FLOPs "
               "(100x the largest run)"]
    if table.attrs.get("intervals"):
        lines.append(f"estimate [lower, upper]: median and {100 * level:g}% central interval "
                     "of the draws")
    lines.append(table.to_string())
    if result.pooled:
        lines += pooled_lines(payload["pooled"], level)
    lines.append(f"wall time {payload['timing']['wall']:.2f} s")
    print(os.linesep.join(lines))
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
    if result.info.get("shrink"):
        lines.append(f"shrunk toward the {result.law.name} law's Normal priors at residual "
                     f"scale {result.info['shrink']:g}"
                     + (" (objective includes the penalty)" if "objective" in payload else ""))
    if "diagnostics" in payload:
        d = payload["diagnostics"]
        lines.append("diagnostics: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    lines.append(f"wall time {payload['timing']['wall']:.2f} s")
    return os.linesep.join(lines)


def _run_allocation(args, level: float, runs, t0: float) -> int:
    """``--method isoflop`` / ``envelope``: an AllocationFit, printed or as JSON."""
    from bayescale.estimators.fit import fit
    from bayescale.io import dumps_json

    options: dict = {}
    if args.method == "isoflop":
        options.update(uncertainty=args.uncertainty, keep_flagged=args.keep_flagged,
                       loss_space=args.loss_space)
        if args.uncertainty == "bayes":
            options.update(chains=args.chains, warmup=args.warmup, draws=args.draws,
                           strict=args.strict)
    if args.resamples is not None:
        options["resamples"] = args.resamples
    if args.budget_column is not None:
        options["budgets"] = budget_column_labels(args, runs)
    result = fit(runs, method=args.method, level=level, seed=args.seed, **options)
    payload = result.to_dict(level)
    if result.diagnostics is not None and hasattr(result.diagnostics, "to_dict"):
        payload["diagnostics"] = result.diagnostics.to_dict()
    payload.setdefault("timing", {})
    payload["timing"]["wall"] = time.perf_counter() - t0
    if args.json:
        print(dumps_json(payload, indent=2))
    else:
        print(_format_allocation(result, payload, level))
    return 0


def _format_allocation(result, payload: dict, level: float) -> str:
    approach = {"isoflop": 2, "envelope": 1}.get(payload["method"], "?")
    lines = [f"bayescale fit: method={payload['method']} (Hoffmann et al. 2022 Approach "
             f"{approach})  runs={payload['n_runs']}  source={payload['data']['source']}",
             "N_opt = G_N C^a, D_opt = G_D C^b (natural logs of G, C in FLOPs)"]
    table = result.summary(level)
    if "lower" in table.columns:
        lines.append(f"lower, upper: {100 * level:g}% central interval of the "
                     f"{'posterior' if result.idata is not None else 'bootstrap resamples'}")
    lines.append(table.to_string(float_format=lambda v: f"{v:.4g}"))
    rows = payload.get("budgets") or []
    if rows:
        lines.append("")
        lines.append(f"{'C (FLOPs)':>10} {'runs':>5} {'N*':>10} {'N* interval':>23} "
                     f"{'D*':>10} {'centring':>9}  flag")
        for r in rows:
            ival = r.get("N_star_interval") or [None, None]
            iv = ("-" if ival[0] is None else f"[{ival[0]:.3g}, {ival[1]:.3g}]")
            flag = r.get("flag") or ("" if r.get("used", True) else "not used")
            lines.append(f"{r['C']:>10.3g} {r['n_runs']:>5d} {_g(r.get('N_star'))} {iv:>23} "
                         f"{_g(r.get('D_star'))} {_c(r.get('centring'))}  {flag}")
        lines.append("centring: decades from the middle of the budget's sampled model sizes "
                     "to its fitted minimum")
    if payload.get("flagged"):
        lines.append(f"flagged and {'kept' if payload.get('keep_flagged') else 'left out'}: "
                     + "; ".join(f"C = {f['C']:.3g}" for f in payload["flagged"]))
    if "diagnostics" in payload:
        d = payload["diagnostics"]
        lines.append("diagnostics: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    lines.append(f"wall time {payload['timing']['wall']:.2f} s")
    return os.linesep.join(lines)


def _g(x) -> str:
    return f"{'-':>10}" if x is None else f"{x:>10.3g}"


def _c(x) -> str:
    return f"{'-':>9}" if x is None else f"{x:>+9.2f}"
