"""``bayescale frontier`` and ``bayescale decide``: compute-optimal plans from a fit.

SOURCE is either a fit folder written by ``bayescale fit DATA --out DIR`` (it holds
``fit.json`` and ``draws.csv``), or a dataset name / CSV path, fitted first with
``--method`` (default ``bootstrap``: Besiroglu et al.'s resampling, which gives
draws; ``huber`` gives a point estimate; ``bayes`` the NUTS posterior).

``--method isoflop`` / ``envelope`` (Hoffmann et al.'s Approaches 2 and 1) fit the
allocation ``N_opt = G_N C^a`` alone: ``frontier`` shows N_opt, D_opt and tokens per
parameter with intervals and no loss (``L_opt`` is ``-``, null in JSON); ``decide``
says where the plan's N sits among the N_opt draws at the budget (its percentile, and the
probability that N_opt lies within each ``--within`` factor of it); the plan's loss, regret
and compute efficiency need a loss law, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from bayescale._util import BUDGET_TOLERANCE, check_level, parse_flops
from bayescale.cli._common import METHODS, add_data_arguments, load_runs_from_args
from bayescale.errors import BayescaleError

_COSTS = ("train", "inference", "attention", "non-embedding")
# The settings of each cost model that the command line exposes (flag -> field).
_COST_SETTINGS = {"attention": ("n_ctx", "aspect_ratio"),
                  "non-embedding": ("vocab_size", "aspect_ratio")}

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

DECIDE_EXAMPLES = """\
examples:
  bayescale decide fits/chinchilla --budget 5.76e23 --params 70e9 --tokens 1.4e12
  bayescale decide chinchilla --exclude-top 5 --budget 1e24 --params 7e10 --tokens 2.4e12 --json
  bayescale decide kaplan2020 --budget 1e22 --params 2e10 --tokens 8e10
"""


def register(subparsers) -> None:
    """Add the ``frontier`` and ``decide`` subcommands."""
    p = subparsers.add_parser(
        "frontier",
        help="compute-optimal model size, tokens and loss per budget, with intervals",
        description=("For each compute budget C, the model size N_opt, tokens D_opt, loss "
                     "L_opt and tokens per parameter that minimise the fitted loss, with "
                     "median and central interval over the fit's draws, and how far C "
                     "extrapolates beyond the compute the data cover."),
        epilog=FRONTIER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_source_args(p)
    p.add_argument("--budget", "-C", action="append", required=True, metavar="C",
                   help="compute budget in FLOPs, e.g. 5.76e23 (repeat for several)")
    p.add_argument("--cost", choices=_COSTS, default="train",
                   help="cost model: train = 6ND (default); inference = 6ND + 2N D_inf, the "
                        "loss-minimising split of a total budget (Sardana et al. 2023); "
                        "attention = 6ND + attention FLOPs; non-embedding = 6(N - N_emb)D")
    p.add_argument("--inference-tokens", type=str, default=None, metavar="T",
                   help="lifetime inference tokens D_inf for --cost inference, e.g. 2e12")
    p.add_argument("--n-ctx", type=float, default=None, metavar="T",
                   help="context length for --cost attention (default 2048, Chinchilla's)")
    p.add_argument("--aspect-ratio", type=float, default=None, metavar="R",
                   help="d_model / n_layer for --cost attention and non-embedding (default 128; "
                        "Chinchilla 70B: 102.4)")
    p.add_argument("--vocab-size", type=float, default=None, metavar="V",
                   help="vocabulary size for --cost non-embedding (default 32000, Chinchilla's)")
    p.add_argument("--level", type=float, default=0.9, help="central interval level (0.9)")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    p.add_argument("--structural", default=None, metavar="LAWS",
                   help="also show the band with law-form uncertainty: fit these laws "
                        "(comma-separated, e.g. chinchilla,kaplan) to SOURCE data, weigh them "
                        "by leave-future-out stacking and pool their frontiers")
    p.set_defaults(func=run_frontier)

    d = subparsers.add_parser(
        "decide",
        help="how good is a plan (N params, D tokens) for a budget, under the fit's uncertainty",
        description=("For a plan of N parameters trained on D tokens: the distribution of its "
                     "loss, the probability it is within 1%/5% of the optimum for the budget "
                     "(in loss and in compute), its expected excess loss (regret) against the "
                     "Bayes-optimal plan, and the Bayes-optimal and plug-in plans."),
        epilog=DECIDE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_source_args(d)
    d.add_argument("--budget", "-C", type=str, default=None, metavar="C",
                   help="training budget in FLOPs (default 6 N D); a plan up to "
                        f"{100 * BUDGET_TOLERANCE:g}%% over it is assessed at it")
    d.add_argument("--params", "-N", type=str, required=True, metavar="N",
                   help="model parameters of the plan, e.g. 70e9")
    d.add_argument("--tokens", "-D", type=str, required=True, metavar="D",
                   help="training tokens of the plan, e.g. 1.4e12")
    d.add_argument("--within", type=str, action="append", default=None, metavar="X",
                   help="tolerance for the probabilities, as a fraction or percent "
                        "(0.01 or 1%%; repeatable; default 1%% and 5%%)")
    d.add_argument("--level", type=float, default=0.9, help="central interval level (0.9)")
    d.add_argument("--json", action="store_true", help="print JSON to stdout")
    d.set_defaults(func=run_decide)


def _add_source_args(p: argparse.ArgumentParser) -> None:
    # The data options are fit's (one definition); they apply when SOURCE is data.
    add_data_arguments(p, dest="source", metavar="SOURCE",
                       help="fit folder (from `bayescale fit ... --out DIR`), a published law "
                            "(see `bayescale laws`, e.g. besiroglu2024), or a dataset name, "
                            "CSV path or - (CSV on standard input) to fit first")
    g = p.add_argument_group("fitting (when SOURCE is data, not a fit folder)")
    g.add_argument("--method", choices=METHODS, default="bootstrap",
                   help="estimator for SOURCE data (default bootstrap: resampled Huber fits "
                        "as in Besiroglu et al. 2024, giving draws)")
    g.add_argument("--resamples", type=int, default=None, metavar="R",
                   help="bootstrap resamples (default: the fitter's, 4000)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the fit (0)")
    g.add_argument("--law", default="chinchilla", metavar="LAW",
                   help="law to fit to SOURCE data: chinchilla (default), kaplan, "
                        "data_constrained (see `bayescale laws`)")
    p.add_argument("--unique-tokens", "-U", type=str, default=None, metavar="U",
                   help="unique-token budget for laws with repeated data (data_constrained), "
                        "e.g. 25e9")


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------



def _parse_fraction(text: str) -> float:
    t = str(text).strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise BayescaleError(f"--within {text!r} is not a fraction or percentage (0.01 or 1%).") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise BayescaleError(f"--within must be a fraction in (0, 1] or a percentage in "
                             f"(0%, 100%], got {text!r}.")
    return value




def load_source(args):
    """The :class:`~bayescale.estimators.fit.ScalingFit` named by ``args.source``."""
    path = Path(args.source)
    if path.is_file() and path.name == "fit.json":
        path = path.parent
    if path.is_dir():
        from bayescale.io import load_fit

        return load_fit(path)
    from bayescale.laws.published import PUBLISHED

    if args.source in PUBLISHED and not path.exists():
        from bayescale.estimators.fit import published

        return published(args.source)
    from bayescale.estimators.fit import fit

    if args.exclude_top < 0:
        raise BayescaleError(f"--exclude-top must be >= 0, got {args.exclude_top}.")
    options = {}
    if args.resamples is not None:
        if args.method not in ("bootstrap", "isoflop", "envelope") or args.resamples < 1:
            raise BayescaleError("--resamples takes a positive count and goes with --method "
                                 "bootstrap, isoflop or envelope.")
        options["resamples"] = int(args.resamples)
    runs = load_runs_from_args(args, source=args.source)
    return fit(runs, method=args.method, seed=args.seed, law=args.law, **options)


def _cost_settings(args) -> dict[str, float]:
    """The cost-model settings given on the command line, checked against --cost."""
    given = {k: getattr(args, k) for k in ("n_ctx", "aspect_ratio", "vocab_size")
             if getattr(args, k) is not None}
    allowed = _COST_SETTINGS.get(args.cost, ())
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        if key not in allowed:
            users = [c for c, keys in _COST_SETTINGS.items() if key in keys]
            raise BayescaleError(f"{flag} goes with --cost {' or '.join(users)}, not --cost "
                                 f"{args.cost}.")
        if not (math.isfinite(value) and value > 0):
            raise BayescaleError(f"{flag} must be a positive number, got {value:g}.")
    return given


def _over(N: float, D: float, budget: float) -> str:
    return f"{100 * (6 * N * D / budget - 1):.1f}%"


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}"


# Both commands run in JAX's default precision, as every command does (see cli/_common.py).


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
    settings = _cost_settings(args)
    fit = load_source(args)
    U = None if args.unique_tokens is None else parse_flops(args.unique_tokens, "--unique-tokens")
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
            "left_out": stack.info["left_out"], "budgets": rows}


def _print_structural(st: dict, pct: str) -> None:
    weights = ", ".join(f"{k} {w:.2f}" for k, w in zip(st["laws"], st["weights"]))
    print(f"structural uncertainty: stacking weights {weights} (leave-future-out, cuts "
          f"{st['cuts']}); within = {st['top']} alone, structural = the weighted mixture")
    print(f"{'C (FLOPs)':>10}  {'band':>10}  {'N_opt':>26}  {'D_opt':>26}")
    for row in st["budgets"]:
        for band in ("within", "structural"):
            cells = [f"{_fmt(v['median'])} [{_fmt(v['lower'])}, {_fmt(v['upper'])}]".rjust(26)
                     for v in (row["N_opt"][band], row["D_opt"][band])]
            print(f"{row['C']:>10.3g}  {band:>10}  " + "  ".join(cells))


def _decide_allocation(args, fit, N: float, D: float, budget, within, level: float) -> int:
    """``decide`` with an allocation fit (Approach 1 or 2): it has no loss law, so it says
    where the plan's N sits in the distribution of N_opt at the budget, and how likely N_opt
    lies within each ``within`` factor of it; the loss-based quantities need a loss law."""
    import numpy as np

    C = 6.0 * N * D if budget is None else budget
    fr = fit.frontier([C])
    N_opt = np.asarray(fr.N_opt, dtype=float)[:, 0]
    D_opt = np.asarray(fr.D_opt, dtype=float)[:, 0]
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    nq, dq = np.quantile(N_opt, q), np.quantile(D_opt, q)
    p_within = {f"{100 * w:g}%": float(np.mean(np.abs(np.log(N_opt / N)) <= np.log1p(w)))
                for w in within}
    out = {"source": str(args.source), "method": fit.method, "level": level,
           "num_draws": fit.num_draws,
           "plan": {"N": N, "D": D, "C_plan": 6.0 * N * D, "C": C,
                    "tokens_per_param": D / N},
           "N_opt": {"median": nq[1], "lower": nq[0], "upper": nq[2]},
           "D_opt": {"median": dq[1], "lower": dq[0], "upper": dq[2]},
           "plan_N_quantile": float(np.mean(N_opt <= N)),
           "p_N_opt_within": p_within,
           "extrapolation": float(np.asarray(fr.extrapolation)[0]),
           "note": (f"a {fit.method} fit (Hoffmann et al.'s Approach "
                    f"{2 if fit.method == 'isoflop' else 1}) estimates the allocation only; the "
                    f"loss of the plan, its regret and compute efficiency need a loss law "
                    f"(--method bootstrap, huber or bayes).")}
    if args.json:
        from bayescale.io import dumps_json

        sys.stdout.write(dumps_json(out, indent=2) + "\n")
        return 0
    pct = f"{100 * level:g}%"
    print(f"plan: N = {N:.3g} parameters, D = {D:.3g} tokens ({D / N:.3g} tokens/param), "
          f"6ND = {6 * N * D:.3g} FLOPs; budget C = {C:.3g}")
    print(f"fit: {args.source} ({fit.method}, {fit.num_draws} draws); "
          f"{out['extrapolation']:.2f} orders of magnitude beyond the runs' compute")
    print(f"N_opt at C: median {nq[1]:.3g} [{pct}: {nq[0]:.3g}, {nq[2]:.3g}]; D_opt: median "
          f"{dq[1]:.3g} [{dq[0]:.3g}, {dq[2]:.3g}]")
    print(f"the plan's N is at the {100 * out['plan_N_quantile']:.0f}th percentile of N_opt")
    for k, v in p_within.items():
        print(f"P(N_opt within {k} of the plan's N) = {v:.3f}")
    print(f"note: {out['note']}")
    return 0


def _honest_loss(fit, N: float, D: float, level: float) -> dict | None:
    """The loss a run of the plan would show, with observation noise and the extrapolation
    error (:func:`bayescale.estimators.predict.predict`); ``None`` for a published law."""
    if fit.runs is None:
        return None
    pred = fit.predict([N], [D])
    lo, hi = pred.interval(level)
    return {"median": float(pred.median[0]), "lower": float(lo[0]), "upper": float(hi[0]),
            "level": level, "extrapolation_decades": float(pred.extrapolation_decades[0]),
            "structural": pred.structural}


def run_decide(args) -> int:
    from bayescale.planning.decisions import assess_plan

    N = parse_flops(args.params, "--params")
    D = parse_flops(args.tokens, "--tokens")
    budget = None if args.budget is None else parse_flops(args.budget)
    if budget is not None and 6 * N * D > budget * (1 + BUDGET_TOLERANCE):
        raise BayescaleError(
            f"the plan needs 6 N D = {6 * N * D:.4g} FLOPs, {_over(N, D, budget)} over the "
            f"budget {budget:.4g}, beyond the {100 * BUDGET_TOLERANCE:g}% tolerance; it cannot be "
            "compared with the optimum for that budget. Fix: raise --budget to at least "
            f"{6 * N * D / (1 + BUDGET_TOLERANCE):.4g}, omit it (the plan's own 6ND is used), "
            "or shrink --params/--tokens.")
    within = (0.01, 0.05) if not args.within else tuple(_parse_fraction(w) for w in args.within)
    level = check_level(args.level, name="--level")
    fit = load_source(args)
    if getattr(fit, "law", None) is None:
        return _decide_allocation(args, fit, N, D, budget, within, level)
    if args.unique_tokens is not None:
        raise BayescaleError("decide does not take --unique-tokens yet; use `bayescale frontier "
                             "... --unique-tokens U` for the data-constrained law.")
    out = assess_plan(fit.params, N, D, budget=budget, within=within, level=level)
    from bayescale.planning.frontier import extrapolation

    data_range = None if fit.runs is None else (float(fit.runs.C.min()), float(fit.runs.C.max()))
    out["extrapolation"] = float(extrapolation([out["plan"]["C"]], data_range)[0])
    out["predicted_loss"] = _honest_loss(fit, N, D, level)
    out = {"source": str(args.source), "method": fit.method, **out}
    if args.json:
        from bayescale.io import dumps_json

        sys.stdout.write(dumps_json(out, indent=2))
        sys.stdout.write("\n")
        return 0
    pct = f"{100 * level:g}%"
    p, loss = out["plan"], out["loss"]
    print(f"plan: N = {p['N']:.3g} parameters, D = {p['D']:.3g} tokens "
          f"({p['tokens_per_param']:.3g} tokens/param), 6ND = {p['C_plan']:.3g} FLOPs; "
          f"budget C = {p['C']:.3g}" + ("  [OVER BUDGET]" if p["over_budget"] else ""))
    if budget is not None and 6 * N * D > budget:
        print(f"note: the plan's 6ND is {_over(N, D, budget)} over the budget, within the "
              f"{100 * BUDGET_TOLERANCE:g}% tolerance; it is compared with the optimum at the "
              "budget, so its excess loss may be slightly negative")
    where = ("of unknown distance from the data (a published law)"
             if not math.isfinite(out["extrapolation"]) else
             "within the data's compute range" if out["extrapolation"] == 0 else
             f"{out['extrapolation']:.2f} orders of magnitude outside the data's compute range")
    print(f"fit: {args.source} ({fit.method}, {out['num_draws']} draws); the budget is "
          f"{where}")
    print(f"loss of the plan: median {loss['median']:.4f} [{pct}: {loss['lower']:.4f}, "
          f"{loss['upper']:.4f}], mean {loss['mean']:.4f}")
    hp = out["predicted_loss"]
    if hp is not None:
        print(f"predicted loss of this run, with observation noise and the extrapolation error "
              f"({hp['extrapolation_decades']:.2f} decades beyond the runs): median "
              f"{hp['median']:.4f} [{pct}: {hp['lower']:.4f}, {hp['upper']:.4f}]; the interval "
              "above assumes the law is exact")
    lo = out["optimum"]["L_opt"]
    print(f"optimal loss at C: median {lo['median']:.4f} [{lo['lower']:.4f}, {lo['upper']:.4f}]")
    ex = out["excess_loss"]
    print(f"excess loss over each draw's optimum: median {ex['median']:.4g} "
          f"[{ex['lower']:.3g}, {ex['upper']:.3g}]")
    ce = out["compute_efficiency"]
    print(f"compute efficiency C_eq/C: median {ce['median']:.3f} [{ce['lower']:.3f}, {ce['upper']:.3f}]")
    for k in out["p_within_loss"]:
        print(f"P(loss within {k} of optimum) = {out['p_within_loss'][k]:.3f};  "
              f"P(compute within {k}) = {out['p_within_compute'][k]:.3f}")
    print(f"regret (expected loss minus Bayes-optimal plan's): {out['regret']:.3g}")
    for name in ("bayes_optimal", "plug_in"):
        b = out[name]
        print(f"{name.replace('_', '-')} plan: N = {b['N']:.3g}, D = {b['D']:.3g} "
              f"({b['tokens_per_param']:.3g} tokens/param), expected loss {b['expected_loss']:.4f}, "
              f"regret {b['regret']:.3g}")
    return 0
