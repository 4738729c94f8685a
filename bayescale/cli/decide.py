"""``bayescale decide``: how good is a plan (N params, D tokens) for a budget.

SOURCE is a fit folder, a published law or data to fit first, as for ``bayescale
frontier`` (:func:`bayescale.cli._common.load_source`).

``--method isoflop`` / ``envelope`` (Hoffmann et al.'s Approaches 2 and 1) fit the
allocation ``N_opt = G_N C^a`` alone: ``decide`` says where the plan's N sits among the
N_opt draws at the budget (its percentile, and the probability that N_opt lies within each
``--within`` factor of it); the plan's loss, regret and compute efficiency need a loss law,
and the output says so.

A law with unique tokens as an input (``data_constrained``, e.g. ``muennighoff2023``)
needs ``--unique-tokens U``, as ``frontier`` does: the optimum at the budget is the
frontier's (``ScalingFit.frontier(..., unique_tokens=U)``), and the plan is compared with it
in loss; the regret, compute efficiency and Bayes-optimal plan are not computed for such a
law (the output says so).
"""

from __future__ import annotations

import argparse
import math
import sys

from bayescale._util import BUDGET_TOLERANCE, check_level, parse_flops
from bayescale.cli._common import (UNIQUE_TOKENS_HELP, add_fit_source_arguments, load_source,
                                   unique_tokens_from_args)
from bayescale.errors import BayescaleError

DECIDE_EXAMPLES = """\
examples:
  bayescale decide fits/chinchilla --budget 5.76e23 --params 70e9 --tokens 1.4e12
  bayescale decide chinchilla --exclude-top 5 --budget 1e24 --params 7e10 --tokens 2.4e12 --json
  bayescale decide kaplan2020 --budget 1e22 --params 2e10 --tokens 8e10
  bayescale decide muennighoff2023 --budget 1e22 --unique-tokens 25e9 --params 7e9 --tokens 2.3e11
"""


def register(subparsers) -> None:
    """Add the ``decide`` subcommand."""
    d = subparsers.add_parser(
        "decide",
        help="how good is a plan (N params, D tokens) for a budget, under the fit's uncertainty",
        description=("For a plan of N parameters trained on D tokens: the distribution of its "
                     "loss, the probability it is within 1%/5% of the optimum for the budget "
                     "(in loss and in compute), its expected excess loss (regret) against the "
                     "Bayes-optimal plan, and the Bayes-optimal and plug-in plans."),
        epilog=DECIDE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fit_source_arguments(d, unique_tokens_help=UNIQUE_TOKENS_HELP)
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


def _over(N: float, D: float, budget: float) -> str:
    return f"{100 * (6 * N * D / budget - 1):.1f}%"



def _write_json(out: dict) -> int:
    from bayescale.io import dumps_json

    sys.stdout.write(dumps_json(out, indent=2) + "\n")
    return 0


def _plan_line(N: float, D: float, C: float) -> str:
    return (f"plan: N = {N:.3g} parameters, D = {D:.3g} tokens ({D / N:.3g} tokens/param), "
            f"6ND = {6 * N * D:.3g} FLOPs; budget C = {C:.3g}")


def _decide_allocation(args, fit, N: float, D: float, budget, within, level: float,
                       U: float | None = None) -> int:
    """``decide`` with an allocation fit (Approach 1 or 2): it has no loss law, so it says
    where the plan's N sits in the distribution of N_opt at the budget, and how likely N_opt
    lies within each ``within`` factor of it; the loss-based quantities need a loss law."""
    import numpy as np

    C = 6.0 * N * D if budget is None else budget
    fr = fit.frontier([C], unique_tokens=U)  # as frontier: an allocation fit refuses U
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
        return _write_json(out)
    pct = f"{100 * level:g}%"
    print(_plan_line(N, D, C))
    print(f"fit: {args.source} ({fit.method}, {fit.num_draws} draws); "
          f"{out['extrapolation']:.2f} orders of magnitude beyond the runs' compute")
    print(f"N_opt at C: median {nq[1]:.3g} [{pct}: {nq[0]:.3g}, {nq[2]:.3g}]; D_opt: median "
          f"{dq[1]:.3g} [{dq[0]:.3g}, {dq[2]:.3g}]")
    print(f"the plan's N is at the {100 * out['plan_N_quantile']:.0f}th percentile of N_opt")
    for k, v in p_within.items():
        print(f"P(N_opt within {k} of the plan's N) = {v:.3f}")
    print(f"note: {out['note']}")
    return 0


def _honest_loss(fit, N: float, D: float, level: float, U: float | None = None) -> dict | None:
    """The loss a run of the plan would show, with observation noise and the extrapolation
    error (:func:`bayescale.estimators.predict.predict`); ``None`` for a published law."""
    if fit.runs is None:
        return None
    pred = fit.predict([N], [D], None if U is None else [U])
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
    U = unique_tokens_from_args(args)
    if getattr(fit, "law", None) is None:
        return _decide_allocation(args, fit, N, D, budget, within, level, U)
    if U is not None or "U" in fit.law.inputs:
        return _decide_unique_tokens(args, fit, N, D, budget, within, level, U)
    out = assess_plan(fit.params, N, D, budget=budget, within=within, level=level)
    from bayescale.planning.frontier import extrapolation

    data_range = None if fit.runs is None else (float(fit.runs.C.min()), float(fit.runs.C.max()))
    out["extrapolation"] = float(extrapolation([out["plan"]["C"]], data_range)[0])
    out["predicted_loss"] = _honest_loss(fit, N, D, level)
    out = {"source": str(args.source), "method": fit.method, **out}
    if args.json:
        return _write_json(out)
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


def _decide_unique_tokens(args, fit, N: float, D: float, budget, within, level: float,
                          U: float | None) -> int:
    """``decide`` with ``--unique-tokens``, for a law with unique tokens as an input.

    The optimum at the budget is the frontier's, by the code path of ``bayescale frontier``
    (``fit.frontier([C], unique_tokens=U)``: it asks for U where the law needs it and refuses
    it where the law has none); the plan's loss is the law at ``(N, D, U)`` for every draw.
    The regret, compute efficiency and Bayes-optimal and plug-in plans
    (:func:`bayescale.planning.decisions.assess_plan`) are not computed with U.
    """
    import numpy as np

    from bayescale.laws.base import evaluate

    C = 6.0 * N * D if budget is None else budget
    fr = fit.frontier([C], unique_tokens=U)
    row = fr.to_dict(level)["budgets"][0]
    L_opt = np.asarray(fr.L_opt, dtype=float).reshape(-1)
    L = np.exp(np.asarray(evaluate(fit.law, fit.params, N, D, U), dtype=float)).reshape(-1)
    q = [0.5, (1 - level) / 2, (1 + level) / 2]

    def summary(x) -> dict:
        med, lo, hi = np.quantile(x, q)
        return {"mean": float(np.mean(x)), "median": float(med), "lower": float(lo),
                "upper": float(hi)}

    excess = L - L_opt
    out = {"source": str(args.source), "method": fit.method, "law": fit.law.name,
           "unique_tokens": U, "level": level, "num_draws": int(L.size),
           "plan": {"N": N, "D": D, "C": C, "C_plan": 6.0 * N * D, "tokens_per_param": D / N,
                    "over_budget": bool(6.0 * N * D > C)},
           "loss": summary(L),
           "optimum": {k: row[k] for k in ("L_opt", "N_opt", "D_opt")},
           "excess_loss": summary(excess),
           "p_within_loss": {f"{100 * w:g}%": float(np.mean(L <= (1 + w) * L_opt + 1e-12))
                             for w in within},
           "extrapolation": float(np.asarray(fr.extrapolation, dtype=float)[0]),
           "predicted_loss": _honest_loss(fit, N, D, level, U),
           "note": (f"with unique tokens U ({fit.law.name} law) the plan is compared with the "
                    f"frontier's optimum in loss only; its regret, compute efficiency and the "
                    f"Bayes-optimal and plug-in plans are not computed.")}
    if args.json:
        return _write_json(out)
    pct = f"{100 * level:g}%"
    loss, ex = out["loss"], out["excess_loss"]
    print(_plan_line(N, D, C) + f"; unique tokens U = {U:.3g}")
    ext = out["extrapolation"]
    where = ("" if not math.isfinite(ext) else
             "; the budget is within the data's compute range" if ext == 0 else
             f"; the budget is {ext:.2f} orders of magnitude outside the data's compute range")
    print(f"fit: {args.source} ({fit.method}, {out['num_draws']} draws, {fit.law.name} law)"
          + where)
    print(f"loss of the plan: median {loss['median']:.4f} [{pct}: {loss['lower']:.4f}, "
          f"{loss['upper']:.4f}], mean {loss['mean']:.4f}")
    hp = out["predicted_loss"]
    if hp is not None:
        print(f"predicted loss of this run, with observation noise and the extrapolation error: "
              f"median {hp['median']:.4f} [{pct}: {hp['lower']:.4f}, {hp['upper']:.4f}]")
    opt = out["optimum"]
    for key, fmt in (("N_opt", ".3g"), ("D_opt", ".3g"), ("L_opt", ".4f")):
        v = opt[key]
        print(f"{key} at C: median {v['median']:{fmt}} [{v['lower']:{fmt}}, {v['upper']:{fmt}}]")
    print(f"excess loss over each draw's optimum: median {ex['median']:.4g} "
          f"[{ex['lower']:.3g}, {ex['upper']:.3g}]")
    for k, v in out["p_within_loss"].items():
        print(f"P(loss within {k} of optimum) = {v:.3f}")
    print(f"note: {out['note']}")
    return 0
