"""``bayescale report`` and ``bayescale compare``: the decision report and the method table."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bayescale.cli._common import (
    LAWS_HELP,
    add_data_arguments,
    add_nuts_arguments,
    enable_compilation_cache,
    load_runs_from_args,
)
from bayescale.cli._report_groups import (add_group_arguments, check_group_arguments,
                                          group_report, reference_budget)


REPORT_EXAMPLES = """\
examples:
  bayescale report chinchilla --exclude-top 5 --out reports/chinchilla
  bayescale report synthetic --chains 2 --warmup 300 --draws 300 --resamples 500 --quiet
  bayescale report my_runs.csv --budget 1e22 --budget 1e23 --out reports/mine
  bayescale report synthetic --law kaplan --out reports/kaplan
  bayescale report data_constrained --law data_constrained --unique-tokens 25e9
  bayescale report chinchilla --exclude-top 5 --structural chinchilla,kaplan
  bayescale report chinchilla --exclude-top 5 --backtest top-budgets:1
  bayescale report gadre2024 --group all --pool --out reports/gadre2024

The folder gets report.html (self-contained: open it in a browser), report.md, the
figures as PNG under figures/, summary.csv, frontier.csv, decisions.csv, methods.csv,
fit.json, draws.csv, runs.csv, posterior.nc and manifest.json. --law fits another law
(see `bayescale laws`) with all three methods; the tables use its parameters, and what
only the Chinchilla law has (published fits, a_opt, Approach 3) is left out with a line
saying why. The data_constrained law needs --unique-tokens U, the unique-token budget
of its frontier and decision table (and data with a U column).
--structural LAWS adds N_opt and D_opt per budget within the top law and with law-form
uncertainty (the laws weighed by leave-future-out stacking; structural.csv);
--backtest HOLDOUT adds a leave-future-out backtest of the fit (coverage, width, bias,
CRPS; backtest.csv). Both are off by default (they refit). Re-running into the same
folder replaces what the previous report wrote, atomically, and keeps any other file
you put there. Ctrl-C stops the run (exit 130) and leaves the previous report as it was.
--group COLUMN|all: the groups side by side on one page, a NUTS fit per group (groups.csv).
"""

COMPARE_EXAMPLES = """\
examples:
  bayescale compare chinchilla --exclude-top 5
  bayescale compare synthetic --chains 2 --warmup 300 --draws 300 --resamples 500 --json
  bayescale compare my_runs.csv --reference-budget 1e22
  bayescale compare synthetic --laws chinchilla,kaplan --chains 2 --warmup 300 --draws 300
  bayescale compare synthetic --law kaplan --chains 2 --warmup 300 --draws 300
  bayescale compare data_constrained --laws chinchilla,data_constrained --unique-tokens 25e9
"""


def _flops(text: str) -> float:
    """argparse type for FLOPs: the shared parser (:func:`bayescale._util.parse_flops`)."""
    from bayescale._util import parse_flops

    try:
        return parse_flops(text, "FLOPs")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tokens(text: str) -> float:
    """argparse type for a token count (``25e9``, ``1_000``)."""
    from bayescale._util import parse_flops

    try:
        return parse_flops(text, "--unique-tokens")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_law_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--law", default="chinchilla", metavar="LAW",
                   help=f"law every method fits: {LAWS_HELP}")
    p.add_argument("--unique-tokens", "-U", type=_tokens, default=None, metavar="U",
                   help="unique-token budget of the allocation for laws with repeated data "
                        "(data_constrained: required), e.g. 25e9")


def _add_fit_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fits")
    add_nuts_arguments(g)
    g.add_argument("--resamples", type=int, default=4000, help="bootstrap resamples (4000)")
    g.add_argument("--seed", type=int, default=0, help="random seed of NUTS and the bootstrap (0)")
    p.add_argument("--level", type=float, default=0.9,
                   help="central interval level for every method (0.9)")
    p.add_argument("--reference-budget", type=_flops, default=5.76e23, metavar="C",
                   help="budget (FLOPs) for N_opt, D_opt and tokens per parameter in the "
                        "method table (default 5.76e23, Gopher's)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or messages (also off when stderr is not a terminal)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``compare`` subcommands."""
    p = sub.add_parser(
        "report",
        help="fit three ways, compute the frontier and decisions, write an HTML/Markdown report",
        description=(
            "One command from data to a decision report: fits the Bayesian model (NUTS), the "
            "bootstrap and the Huber point estimate, computes the compute-optimal frontier "
            "and the decision table at the budgets, draws the figures and writes the report "
            "folder. DATA is a registered dataset (see `bayescale datasets`) or a CSV path."),
        epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--budget", "-C", type=_flops, action="append", default=None, metavar="C",
                   help="compute budget in FLOPs (repeat for several; default a log grid from "
                        "the data's smallest compute to 100x its largest)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="report folder (default report-<DATA name>)")
    p.add_argument("--json", action="store_true",
                   help="print the written paths and the diagnostics as JSON on stdout")
    _add_law_arguments(p)
    h = p.add_argument_group("honest extrapolation (opt-in)")
    h.add_argument("--structural", default=None, metavar="LAWS",
                   help="add N_opt, D_opt within the top law and with law-form uncertainty: "
                        "these laws (e.g. chinchilla,kaplan) stacked by leave-future-out")
    h.add_argument("--backtest", default=None, metavar="HOLDOUT",
                   help="add a leave-future-out backtest (top-budgets:K or above:C): "
                        "coverage, width, bias, CRPS, in-model and with extrapolation error")
    _add_fit_arguments(p)
    add_group_arguments(p)
    p.set_defaults(func=run_report)

    c = sub.add_parser(
        "compare",
        help="side-by-side table of the Bayesian fit, bootstrap and Huber estimate",
        description=(
            "Fits the Bayesian model, the bootstrap and the Huber point estimate and prints "
            "their estimates and intervals for E, A, B, alpha, beta, the allocation exponents "
            "a_opt and b_opt, and N_opt, D_opt and tokens per parameter at a reference "
            "budget, beside the published fits (Hoffmann et al. 2022, Besiroglu et al. 2024). "
            "With --law, another law's parameters (no published fits or a_opt)."),
        epilog=COMPARE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(c)
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.add_argument("--laws", default=None, metavar="L1,L2[,...]",
                   help="compare laws instead of methods: fit each law with NUTS and show "
                        "PSIS-LOO (as arviz.compare, stacking weights, Pareto-k), the parameters "
                        "and N_opt, D_opt, tokens per parameter at --reference-budget. A law "
                        "with repeated data (data_constrained) among them needs "
                        "--unique-tokens U, the unique-token budget of its N_opt (no default: "
                        "without it the command stops before fitting, exit 2)")
    c.add_argument("--approaches", default=None, metavar="1,2,3",
                   help="compare Hoffmann et al.'s (2022) approaches instead of methods: 1 "
                        "(envelope of training curves), 2 (isoFLOP parabolas), 3 (parametric "
                        "law, bootstrap); a and b with intervals and N_opt, D_opt at "
                        "--reference-budget and 1e24 FLOPs")
    _add_law_arguments(c)
    c.add_argument("--figure", default=None, metavar="PATH",
                   help="with --approaches: write N_opt(C) by approach (as Hoffmann et al.'s "
                        "Figure 1) to PATH (.png, .pdf or .svg)")
    _add_fit_arguments(c)
    c.set_defaults(func=run_compare)


def _bayes_options(args) -> dict:
    options = dict(chains=args.chains, warmup=args.warmup, draws=args.draws,
                   likelihood=args.likelihood)
    if args.target_accept is not None:
        options["target_accept"] = args.target_accept
    if args.quiet or getattr(args, "json", False):
        options["progress"] = False
    return options


def _check(args) -> None:
    from bayescale.errors import BayescaleError

    if not 0 < args.level < 1:
        raise BayescaleError(f"--level must be between 0 and 1, got {args.level}.")
    for name in ("chains", "warmup", "draws"):
        if getattr(args, name) < 1:
            raise BayescaleError(f"--{name} must be a positive integer, got {getattr(args, name)}.")
    if args.resamples < 2:
        raise BayescaleError(f"--resamples must be at least 2, got {args.resamples}.")


def _check_law(args) -> None:
    """``--law`` and ``--unique-tokens`` agree, before the data are read or anything fitted."""
    from bayescale.errors import BayescaleError
    from bayescale.laws.registry import get_law

    law = get_law(args.law)
    if "U" in law.inputs and args.unique_tokens is None:
        raise BayescaleError(f"the {law.name} law's compute-optimal allocation depends on the "
                             f"unique-token budget: pass --unique-tokens U (e.g. "
                             f"--unique-tokens 25e9).")
    if "U" not in law.inputs and args.unique_tokens is not None:
        raise BayescaleError(f"--unique-tokens applies to laws with unique tokens as an input "
                             f"(data_constrained); the {law.name} law has none.")


def _default_out(data: str) -> str:
    stem = Path(data).stem if data not in ("-", "") else "stdin"
    return f"report-{stem or 'data'}"


def run_report(args: argparse.Namespace) -> int:
    from bayescale.io import InterruptGuard, check_destination
    from bayescale.report.honest import check_backtest, check_structural

    _check(args)
    grouped = check_group_arguments(args)  # --group: the groups side by side on one page
    if not grouped:
        _check_law(args)
    structural = check_structural(args.structural)
    backtest = check_backtest(args.backtest)
    out = args.out or _default_out(args.data)
    check_destination(out, marker="manifest.json", what="report")  # before any work
    # Ctrl-C stops the run (exit 130) even where JAX's callbacks would swallow it.
    with InterruptGuard():
        enable_compilation_cache()
        runs = load_runs_from_args(args)
        from bayescale.report.build import build_report

        paths = group_report(args, runs, out, _bayes_options(args)) if grouped else build_report(
            runs, out_dir=out, budgets=args.budget, bayes_options=_bayes_options(args),
            resamples=args.resamples, seed=args.seed, level=args.level,
            reference_budget=reference_budget(args, 5.76e23), quiet=args.quiet or args.json,
            law=args.law, unique_tokens=args.unique_tokens, structural=structural,
            backtest=backtest)
    manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps({"out": str(Path(out).absolute()),
                          "diagnostics_ok": manifest["diagnostics_ok"],
                          "files": {k: str(v) for k, v in paths.items()}}, indent=2))
    else:
        status = "passed" if manifest["diagnostics_ok"] else "FAILED (see the report's banner)"
        print(f"report: {paths['html']}{os.linesep}markdown: {paths['markdown']}"
              f"{os.linesep}diagnostics: {status}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from bayescale.errors import BayescaleError
    from bayescale.io import dumps_json

    _check(args)
    enable_compilation_cache()
    if args.laws and args.approaches:
        raise BayescaleError("--laws and --approaches are two different comparisons; give one.")
    if (args.laws or args.approaches) and args.law != "chinchilla":
        raise BayescaleError("--law chooses the law of the method comparison; --laws and "
                             "--approaches do not take them (--laws names its laws itself).")
    if args.approaches and args.unique_tokens is not None:
        raise BayescaleError("--unique-tokens applies to the method comparison of a law with "
                             "repeated data and to --laws; --approaches does not take it.")
    if args.laws:
        _check_compare_laws(args)
    else:
        _check_law(args)
    runs = load_runs_from_args(args)
    if args.laws:
        return _run_compare_laws(args, runs)
    if args.approaches:
        return _run_compare_approaches(args, runs)
    from bayescale.report.compare import compare_methods, compare_methods_json, fit_methods

    fits = fit_methods(runs, bayes_options=_bayes_options(args), resamples=args.resamples,
                       seed=args.seed, level=args.level, quiet=args.quiet or args.json,
                       law=args.law)
    table = compare_methods(fits=fits, reference_budget=args.reference_budget, level=args.level,
                            unique_tokens=args.unique_tokens)
    if args.json:
        payload = compare_methods_json(table)
        payload["n_runs"] = len(runs)
        payload["data"] = runs.describe()
        diag = fits["bayes"].diagnostics
        if diag is not None:
            payload["diagnostics"] = diag.to_dict()
        print(dumps_json(payload, indent=2))
        return 0
    from bayescale.report.render import methods_display

    print(f"bayescale compare: {runs.source}, {len(runs)} runs; central {100 * args.level:g}% "
          f"intervals; N_opt, D_opt, tokens_per_param at C = {args.reference_budget:.3g} FLOPs")
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(methods_display(table).to_string())
    diag = fits["bayes"].diagnostics
    if diag is not None and not diag.ok:
        print(f"WARNING: NUTS diagnostics failed: {'; '.join(diag.problems())}", file=sys.stderr)
    return 0


def _check_compare_laws(args: argparse.Namespace) -> None:
    """``--laws`` and ``--unique-tokens`` agree, before the data are read or anything fitted
    (a law with repeated data needs U; no law with it refuses one)."""
    from bayescale.errors import BayescaleError
    from bayescale.laws.registry import get_law

    names = [name.strip() for name in args.laws.split(",") if name.strip()]
    with_u = [name for name in names if "U" in get_law(name).inputs]
    if with_u and args.unique_tokens is None:
        raise BayescaleError(f"the compute-optimal allocation of {', '.join(with_u)} depends on "
                             f"the unique-token budget: pass --unique-tokens U (e.g. "
                             f"--unique-tokens 25e9).")
    if not with_u and args.unique_tokens is not None:
        raise BayescaleError("--unique-tokens applies to laws with unique tokens as an input "
                             "(data_constrained); none of the laws in --laws has it.")


def _run_compare_laws(args: argparse.Namespace, runs) -> int:
    from bayescale.io import dumps_json
    from bayescale.report.law_comparison import compare_laws

    laws = [name.strip() for name in args.laws.split(",") if name.strip()]
    res = compare_laws(runs, laws, budget=args.reference_budget,
                       unique_tokens=args.unique_tokens, seed=args.seed, level=args.level,
                       **_bayes_options(args))
    if args.json:
        payload = res.to_dict()
        payload["n_runs"] = len(runs)
        payload["data"] = runs.describe()
        print(dumps_json(payload, indent=2))
        return 0
    import pandas as pd

    print(f"bayescale compare --laws: {runs.source}, {len(runs)} runs; PSIS-LOO (higher elpd "
          f"is better; weight: stacking); N_opt, D_opt, tokens_per_param at C = "
          f"{res.budget:.3g} FLOPs"
          + ("" if res.unique_tokens is None else f" (U = {res.unique_tokens:.3g} unique tokens "
             f"for the laws that take it)") + f", medians [{100 * args.level:g}%]")
    cols = ["elpd_loo", "se", "elpd_diff", "dse", "weight", "pareto_k_bad", "N_opt", "D_opt",
            "tokens_per_param"]
    cols[4:4] = ["subsampling_se"] if "subsampling_se" in res.table else []  # HMCECS fits
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(res.table[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    for law, f in res.fits.items():
        est = ", ".join(f"{k} {v:.4g}" for k, v in f.point_estimate().items())
        print(f"  {law}: {est}")
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _parse_approaches(text: str) -> list[int]:
    from bayescale.errors import BayescaleError

    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out or not set(out) <= {1, 2, 3}:
        raise BayescaleError(f"--approaches takes a comma-separated list of 1, 2 and 3 "
                             f"(e.g. --approaches 1,2,3), got {text!r}.")
    return out


def _run_compare_approaches(args: argparse.Namespace, runs) -> int:
    from bayescale.errors import BayescaleError
    from bayescale.io import atomic_write, dumps_json
    from bayescale.report.approaches import compare_approaches, plot_approaches

    approaches = _parse_approaches(args.approaches)
    fmt = None if not args.figure else Path(args.figure).suffix.lstrip(".").lower()
    if fmt is not None and fmt not in ("png", "pdf", "svg"):
        raise BayescaleError(f"--figure must end in .png, .pdf or .svg, got {args.figure!r}.")
    budgets = sorted({float(args.reference_budget), 1e24})
    options = {3: {"resamples": args.resamples}} if 3 in approaches else {}
    res = compare_approaches(runs, approaches, budgets=budgets, level=args.level,
                             seed=args.seed, options=options)
    if args.figure:
        fig = plot_approaches(res)
        atomic_write(args.figure, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))
    if args.json:
        payload = res.to_dict()
        payload["data"] = runs.describe()
        if args.figure:
            payload["figure"] = str(Path(args.figure).absolute())
        print(dumps_json(payload, indent=2))
        return 0
    print(f"bayescale compare --approaches: {runs.source}, {len(runs)} runs; a, b: exponents "
          f"of N_opt ~ C^a and D_opt ~ C^b, medians [{100 * args.level:g}%]")
    for k, row in res.table.iterrows():
        cells = [f"Approach {k} ({row['name']}, {row['method']}):",
                 f"a {row['a']:.3f} [{row['a_lower']:.3f}, {row['a_upper']:.3f}]",
                 f"b {row['b']:.3f} [{row['b_lower']:.3f}, {row['b_upper']:.3f}]"]
        for C in res.budgets:
            key = f"N_opt@{C:.3g}"
            cells.append(f"N_opt({C:.3g}) {row[key + '_median']:.3g} "
                         f"[{row[key + '_lower']:.3g}, {row[key + '_upper']:.3g}]")
        print("  ".join(cells))
    for k, reason in res.skipped.items():
        print(f"Approach {k} skipped: {reason}", file=sys.stderr)
    print("Hoffmann et al. (2022), Table 2, on their runs: a = 0.50 (0.488, 0.502) [1], "
          "0.49 (0.462, 0.534) [2], 0.46 (0.454, 0.455) [3]")
    if args.figure:
        print(f"figure: {args.figure}")
    return 0
