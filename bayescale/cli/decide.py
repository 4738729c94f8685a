"""``bayescale decide``: how good is a plan (N params, D tokens) for a budget.

SOURCE is a fit folder, a published law or data to fit first, as for ``bayescale
frontier`` (:func:`bayescale.cli._common.load_source`).

``--method isoflop`` / ``envelope`` (Hoffmann et al.'s Approaches 2 and 1) fit the
allocation ``N_opt = G_N C^a`` alone: ``decide`` says where the plan's N sits among the
N_opt draws at the budget (its percentile, and the probability that N_opt lies within each
``--within`` factor of it); the plan's loss, regret and compute efficiency need a loss law,
and the output says so.

A law with unique tokens as an input (``data_constrained``, e.g. ``muennighoff2023``)
needs ``--unique-tokens U``, as ``frontier`` does (and any other law refuses it): the plan,
the optimum at the budget (the frontier's at U), the regret and the Bayes-optimal and plug-in
plans are all evaluated at U (:func:`bayescale.planning.decisions.assess_plan` with
``unique_tokens=U``). The compute efficiency C_eq/C is closed-form for the Chinchilla law
and the numerical frontier inverted for the others (:mod:`bayescale.planning.efficiency`).

``--structural LAWS`` (laws stacked as for ``frontier``) adds the answer with law-form
uncertainty: every draw of each law's fit is assessed with its own law, and the draws are
pooled by the stacking weights (:func:`bayescale.estimators.stacking.mixture_indices`), beside
the top-weighted law's own answer: the bands ``within`` and ``structural``.
"""

from __future__ import annotations

import argparse
import math
import sys

from bayescale._util import BUDGET_TOLERANCE, check_level, parse_flops
from bayescale.cli._common import (UNIQUE_TOKENS_HELP, add_fit_source_arguments,
                                   load_runs_from_args, load_source, unique_tokens_from_args)
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
    d.add_argument("--structural", default=None, metavar="LAWS",
                   help="also answer with law-form uncertainty: fit these laws "
                        "(comma-separated, e.g. chinchilla,kaplan) to SOURCE data, weigh them "
                        "by leave-future-out stacking and pool each law's per-draw answer")
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


def _honest_n_opt(fit, C: float, level: float, U: float | None, seed: int) -> dict | None:
    """N_opt at ``C`` moved by the law's optimum error beyond the data
    (:mod:`bayescale.estimators.optimum_error`, learned from leave-future-out isoFLOP
    optima in the fitted runs); ``None`` for a published law."""
    import numpy as np

    from bayescale.estimators import optimum_error
    from bayescale.planning.frontier import compute_optimal

    if fit.runs is None:
        return None
    model = optimum_error.estimate(fit.runs, fit.law,  # refitted as the fit (its shrink)
                                   shrink=float((fit.info or {}).get("shrink") or 0.0))
    N_opt = np.asarray(compute_optimal(fit.params, C, U).N_opt, dtype=float).reshape(-1)
    N_opt = N_opt[np.isfinite(N_opt)]
    if not N_opt.size:
        return None
    if N_opt.size < optimum_error.MIN_DRAWS:  # a point fit: the band is the error's
        N_opt = np.resize(N_opt, optimum_error.MIN_DRAWS)
    C_max = float(fit.runs.C.max())
    moved = model.move(N_opt, C, C_max, np.random.default_rng(seed))
    lo, med, hi = np.quantile(moved, [(1 - level) / 2, 0.5, (1 + level) / 2])
    return {"median": float(med), "lower": float(lo), "upper": float(hi), "level": level,
            "decades": max(float(np.log10(C / C_max)), 0.0),
            "optimum_error": model.summary()}


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
    if args.structural is not None:
        _check_structural_source(args)
    fit = load_source(args)
    U = unique_tokens_from_args(args)
    if getattr(fit, "law", None) is None:
        return _decide_allocation(args, fit, N, D, budget, within, level, U)
    out = assess_plan(fit.params, N, D, budget=budget, within=within, level=level,
                      unique_tokens=U)
    if args.structural is not None:
        out["structural"] = _structural(args, N, D, out["plan"]["C"], within, level, U)
    from bayescale.planning.frontier import extrapolation

    data_range = None if fit.runs is None else (float(fit.runs.C.min()), float(fit.runs.C.max()))
    out["extrapolation"] = float(extrapolation([out["plan"]["C"]], data_range)[0])
    out["predicted_loss"] = _honest_loss(fit, N, D, level, U)
    out["n_opt_honest"] = _honest_n_opt(fit, out["plan"]["C"], level, U, args.seed)
    out = {"source": str(args.source), "method": fit.method, "law": fit.law.name, **out}
    if args.json:
        return _write_json(out)
    pct = f"{100 * level:g}%"
    p, loss = out["plan"], out["loss"]
    print(_plan_line(N, D, p["C"]) + ("" if U is None else f"; unique tokens U = {U:.3g}")
          + ("  [OVER BUDGET]" if p["over_budget"] else ""))
    if budget is not None and 6 * N * D > budget:
        print(f"note: the plan's 6ND is {_over(N, D, budget)} over the budget, within the "
              f"{100 * BUDGET_TOLERANCE:g}% tolerance; it is compared with the optimum at the "
              "budget, so its excess loss may be slightly negative")
    where = ("of unknown distance from the data (a published law)"
             if not math.isfinite(out["extrapolation"]) else
             "within the data's compute range" if out["extrapolation"] == 0 else
             f"{out['extrapolation']:.2f} orders of magnitude outside the data's compute range")
    print(f"fit: {args.source} ({fit.method}, {out['num_draws']} draws, {fit.law.name} law); "
          f"the budget is {where}")
    print(f"loss of the plan, if the law is exact: median {loss['median']:.4f} "
          f"[{pct}: {loss['lower']:.4f}, {loss['upper']:.4f}], mean {loss['mean']:.4f}")
    hp = out["predicted_loss"]
    if hp is not None:
        print(f"predicted loss of this run, with observation noise and the extrapolation error "
              f"({hp['extrapolation_decades']:.2f} decades beyond the runs): median "
              f"{hp['median']:.4f} [{pct}: {hp['lower']:.4f}, {hp['upper']:.4f}]; plan with "
              "this line: the one above ignores that the law may be wrong this far out")
    for key, fmt in (("N_opt", ".3g"), ("D_opt", ".3g"), ("L_opt", ".4f")):
        v = out["optimum"][key]
        print(f"{key} at C, if the law is exact: median {v['median']:{fmt}} "
              f"[{v['lower']:{fmt}}, {v['upper']:{fmt}}]")
    hn = out["n_opt_honest"]
    if hn is not None and hn["decades"] > 0:
        e = hn["optimum_error"]
        print(f"N_opt at C with the optimum error ({hn['decades']:.2f} decades beyond the runs; "
              f"spread {e['w']:.3f}, drift {e['drift']:+.2f} decades of N per decade, from "
              f"{e['num_misses']} held-out isoFLOP optima and the default prior): median "
              f"{hn['median']:.3g} [{pct}: {hn['lower']:.3g}, {hn['upper']:.3g}]; plan with "
              "this line: the N_opt above ignores that the optimum may drift this far out")
    ex = out["excess_loss"]
    print(f"excess loss over each draw's optimum: median {ex['median']:.4g} "
          f"[{ex['lower']:.3g}, {ex['upper']:.3g}]")
    ce = out["compute_efficiency"]
    print(f"compute efficiency C_eq/C: median {ce['median']:.3f} "
          f"[{ce['lower']:.3f}, {ce['upper']:.3f}]")
    for k in out["p_within_loss"]:
        print(f"P(loss within {k} of optimum) = {out['p_within_loss'][k]:.3f};  "
              f"P(compute within {k}) = {out['p_within_compute'][k]:.3f}")
    print(f"regret (expected loss minus Bayes-optimal plan's): {out['regret']:.3g}")
    for name in ("bayes_optimal", "plug_in"):
        b = out[name]
        print(f"{name.replace('_', '-')} plan: N = {b['N']:.3g}, D = {b['D']:.3g} "
              f"({b['tokens_per_param']:.3g} tokens/param), expected loss {b['expected_loss']:.4f}, "
              f"regret {b['regret']:.3g}")
    if "structural" in out:
        _print_structural(out["structural"], pct)
    return 0


def _check_structural_source(args) -> None:
    """Before any fit: ``--structural`` needs SOURCE data (as for ``frontier``), a loss law."""
    from pathlib import Path

    from bayescale.laws.published import PUBLISHED

    path = Path(args.source)
    if path.is_dir() or path.name == "fit.json" or (args.source in PUBLISHED
                                                    and not path.exists()):
        raise BayescaleError("--structural fits several laws and needs SOURCE data (a dataset "
                             "name or CSV path), not a fit folder or a published law.")
    if args.method in ("isoflop", "envelope"):
        raise BayescaleError(f"--structural pools loss laws; --method {args.method} fits the "
                             "allocation alone. Use --method bootstrap, huber or bayes.")


def _law_draws(fit, N: float, D: float, C: float, U: float | None) -> dict:
    """Per draw of one law's fit, with its own law (at U where it takes U): the plan's loss
    ``L``, ``L_opt`` and ``N_opt`` at ``C``, the compute efficiency ``eff`` (C_eq / C)."""
    import numpy as np

    from bayescale.planning.decisions import Plan, assess
    from bayescale.planning.frontier import compute_optimal

    U = U if "U" in fit.law.inputs else None  # the stack's other laws take no U
    # the computations of assess_plan; the regret (against `bayes`) is not used here
    a = assess(fit.params, [N], [D], [C], within=(), bayes=Plan(np.array([N]), np.array([D])),
               unique_tokens=U)
    N_opt = compute_optimal(fit.params, C, U).N_opt
    return {"L": a["loss_draws"][:, 0], "L_opt": a["L_opt_draws"][:, 0],
            "N_opt": np.asarray(N_opt, dtype=float).reshape(-1),
            "eff": a["compute_efficiency_draws"][:, 0]}


def _draw_summary(d: dict, N: float, within, level: float) -> dict:
    """decide's answer from per-draw quantities (:func:`_law_draws`, or pooled)."""
    import numpy as np

    L, L_opt, N_opt, eff = d["L"], d["L_opt"], d["N_opt"], d["eff"]
    rel, excess, has_eff = L / L_opt - 1.0, L - L_opt, not np.isnan(eff).any()
    q = {k: dict(zip(("median", "lower", "upper"),
                     map(float, np.quantile(v, [0.5, (1 - level) / 2, (1 + level) / 2]))))
         for k, v in (("L", L), ("L_opt", L_opt), ("N_opt", N_opt), ("ex", excess),
                      *((("eff", eff),) if has_eff else ()))}
    return {"num_draws": int(L.size), "loss": {"mean": float(L.mean()), **q["L"]},
            "L_opt": q["L_opt"], "N_opt": q["N_opt"],
            "excess_loss": {"mean": float(excess.mean()), **q["ex"]},
            "p_within_loss": {f"{100 * w:g}%": float(np.mean(rel <= w + 1e-12)) for w in within},
            "compute_efficiency": q.get("eff"),
            "p_within_compute": ({f"{100 * w:g}%": float(np.mean(1.0 / eff - 1.0 <= w + 1e-12))
                                  for w in within} if has_eff else None),
            "plan_N_quantile": float(np.mean(N_opt <= N)),
            "p_N_opt_within": {f"{100 * w:g}%": float(np.mean(np.abs(np.log(N_opt / N))
                                                              <= np.log1p(w))) for w in within}}


def _structural(args, N: float, D: float, C: float, within, level: float,
                U: float | None) -> dict:
    """``--structural``: stacking weights, the top law's answer and the pooled one."""
    import numpy as np

    from bayescale.estimators.stacking import mixture_indices, stack_laws

    laws = [name.strip() for name in str(args.structural).split(",") if name.strip()]
    options = {} if args.resamples is None else {"resamples": int(args.resamples)}
    runs = load_runs_from_args(args, source=args.source)
    stack = stack_laws(runs, laws, method=args.method, seed=args.seed, **options)
    draws = {name: _law_draws(stack.fits[name], N, D, C, U) for name in stack.laws}
    sizes = [draws[name]["L"].size for name in stack.laws]  # as LawStack.frontier pools:
    picks = mixture_indices(sizes, stack.weights, num_draws=max(sizes), seed=stack.info["seed"])
    # the structural band's N_opt draws are moved by each law's optimum error (as in
    # LawStack.frontier); the within band is the top law's own
    moved = {name: {**draws[name], "N_opt": stack.moved_n_opt(name, draws[name]["N_opt"], C)}
             for name in stack.laws}
    pooled = {k: np.concatenate([moved[name][k][i] for name, i in zip(stack.laws, picks)])
              for k in ("L", "L_opt", "N_opt", "eff")}
    out = {"laws": list(stack.laws), "weights": [float(w) for w in stack.weights],
           "top": stack.top, "method": args.method, "cuts": stack.info["cuts"],
           "scored_by": stack.scored_by,
           "left_out": stack.info["left_out"],
           "within": {"law": stack.top, **_draw_summary(draws[stack.top], N, within, level)},
           "structural": _draw_summary(pooled, N, within, level),
           "optimum_error": stack.info["optimum_error"], "optimum_note": stack.optimum_note}
    return out


def _print_structural(st: dict, pct: str) -> None:
    weights = ", ".join(f"{k} {w:.2f}" for k, w in zip(st["laws"], st["weights"]))
    print(f"structural uncertainty: stacking weights {weights} ("
          f"{st['scored_by']}); within = {st['top']} alone, structural = the weighted mixture"
          + "".join(f"; {k} left out: {v}" for k, v in st["left_out"].items()))
    if st["optimum_note"]:
        print(st["optimum_note"])
    keys, ci = list(st["within"]["p_within_loss"]), f"[{pct}]"
    print(f"{'band':>10}  {'excess loss ' + ci:>28}"
          + "".join(f"{'P(L ' + k + ')':>9}" for k in keys)
          + f"  {'C_eq/C':>6}  {'N_opt ' + ci:>28}  {'N pct':>5}"
          + "".join(f"{'P(N ' + k + ')':>9}" for k in keys))
    for band, b in ((band, st[band]) for band in ("within", "structural")):
        cells = [f"{v['median']:.3g} [{v['lower']:.3g}, {v['upper']:.3g}]".rjust(28)
                 for v in (b["excess_loss"], b["N_opt"])]
        ce = f"{b['compute_efficiency']['median']:.3f}"
        print(f"{band:>10}  {cells[0]}" + "".join(f"{b['p_within_loss'][k]:9.3f}" for k in keys)
              + f"  {ce:>6}  {cells[1]}  {100 * b['plan_N_quantile']:4.0f}%"
              + "".join(f"{b['p_N_opt_within'][k]:9.3f}" for k in keys))
    print("P(L x): loss within x of the optimum; N pct: the plan's N among the N_opt draws; "
          "P(N x): N_opt within a factor 1 + x of the plan's N")
