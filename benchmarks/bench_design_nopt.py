"""Experiment design for N_opt at a held-out budget (issue 12, the chinchilla / marin part).

On ``chinchilla`` (``exclude_top=5``) and ``marin_isoflop`` (``group="dclm"``), runs are
grouped into compute budgets (:func:`bayescale.estimators.extrapolation.budgets`). The
target is the top budget; on chinchilla the top two bins after ``exclude_top=5`` hold one
run each, so the target is the highest budget with at least ``MIN_TARGET_RUNS`` runs and
every run at or above it is held out. ``C*`` is the geometric mean compute of the target
budget's runs, and the *empirical optimum* is the ``N`` of its lowest-loss run.

The seed set is the runs of the two lowest budgets; the pool is every other run below the
target. Each rule adds pool runs until 10%, then 25%, then 50% of the pool's cost is spent
(the seed set does not count; budgets are spent in sequence), refitting every round (Huber
+ ``--resamples`` bootstrap resamples, the batched fits of ``design_loop.Problem``). At
each budget: the width of the 90% bootstrap interval on ``N_opt(C*)`` (decades,
``log10(upper / lower)``), the error of the Huber fit's ``N_opt(C*)`` against the
empirical optimum (decades, ``|log10(N_opt / N_best)|``) and whether the interval holds it.

Rules: ``design`` (:func:`bayescale.planning.design.next_runs`, objective ``n_opt`` at
``C*``, the remaining pool as candidates, ``rank="gain"``, the default, with the optimum
error's reach term), ``design_no_reach`` (the same without it: ``optimum_model="none"``),
``design_per_cost`` (``rank="per_cost"``), ``random``, ``cheapest`` (first). The
extrapolation and optimum-error models are the prior ones (no misses), as in
``bench_design.py``; with ``--prior lodo`` (the default) both priors are learned without the
dataset under test (every group of it: all of marin_isoflop for dclm), by the recipes of the
package's defaults, from ``results/backtest.json`` and ``results/optimum.json``;
``--prior default`` uses the package's defaults, which saw these datasets (a leak). Besides the bootstrap interval, each cell reports the honest one: the
draws moved by the optimum error at ``C*``'s distance from the largest chosen run (width,
coverage) and that distance ``d``.
Repeats differ in the bootstrap resamples and in the random rule's order (the seed set is
fixed by the protocol).

Run:  BAYESCALE_DATA=/work/shared/data nice -n 10 python benchmarks/bench_design_nopt.py
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from bayescale.data.runs import load_runs
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation, optimum_error
from bayescale.estimators.fit import ScalingFit
from bayescale.estimators.huber import check_shrink, law_params
from bayescale.io import atomic_write
from bayescale.laws.registry import get_law
from bayescale.planning.design import next_runs
from design_loop import Problem, rule_cheapest, rule_random, save_and_print

HERE = Path(__file__).resolve().parent
RULES = ("design", "design_no_reach", "design_per_cost", "random", "cheapest")
FRACTIONS = (0.10, 0.25, 0.50)
DATASETS = {"chinchilla": {"exclude_top": 5}, "marin_isoflop": {"group": "dclm"}}
MIN_TARGET_RUNS = 5


class NoptProblem(Problem):
    """``design_loop.Problem``'s batched fits on the runs below the target budget."""

    def __init__(self, name, load_kw, resamples, seed, shrink=0.0, prior=None,  # noqa: D107
                 opt_prior=None):
        # (not Problem's loader: the pool is the runs below the target budget)
        self.name, self.law = name, get_law("chinchilla")
        self.shrink = float(shrink)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = load_runs(name, **load_kw)
        C = 6.0 * runs.N * runs.D
        b = extrapolation.budgets(C)
        counts = np.bincount(b)
        top = int(np.flatnonzero(counts >= MIN_TARGET_RUNS).max())
        held = b >= top
        tgt = b == top
        self.c_star = float(np.exp(np.mean(np.log(C[tgt]))))
        best = np.argmin(np.where(tgt, runs.loss, np.inf))
        self.n_best = float(runs.N[best])
        self.pool = runs.resample(np.flatnonzero(~held))
        self.seed_mask = np.isin(b[~held], (0, 1))
        self.target = {"budget": top, "C_star": self.c_star, "runs": int(tgt.sum()),
                       "held_out": int(held.sum()), "N_best": self.n_best,
                       "D_best": float(runs.D[best]), "loss_best": float(runs.loss[best]),
                       "pool_runs": int((~self.seed_mask).sum()),
                       "seed_runs": int(self.seed_mask.sum())}
        self.X = extrapolation.log_X(self.law, self.pool)
        self.y = np.asarray(self.pool.log_loss, float)
        self.cost = 6.0 * self.pool.N * self.pool.D
        self.starts = extrapolation.coarse_starts(self.law)
        self.B = resamples
        self.rng = np.random.default_rng(seed)
        self.prior = extrapolation.check_prior(prior)
        self.model = extrapolation.posterior(extrapolation.Misses.empty(), self.prior)
        self.tau = self.model.slope_moments()[1]
        self.opt_model = optimum_error.posterior(optimum_error.OptimumMisses.empty(), opt_prior)
        self.skipped = 0

    def scaling_fit(self, mask, draws):
        ok = np.all(np.isfinite(draws), axis=1)
        return ScalingFit(method="bootstrap", params=law_params(self.law, draws[ok]),
                          runs=self.pool.resample(np.flatnonzero(mask)))


def rule_design(prob, mask, theta, draws, remaining, batch, rank="gain", seed=0, reach=True):
    """Up to ``batch`` pool runs from ``next_runs`` (the library), objective n_opt at C*."""
    free = np.flatnonzero(~mask & (prob.cost <= remaining))
    if free.size == 0:
        return []
    cand = pd.DataFrame({"N": prob.pool.N[free], "D": prob.pool.D[free]})
    try:
        res = next_runs(prob.scaling_fit(mask, draws), target_budget=prob.c_star,
                        experiment_budget=remaining, k=batch, candidates=cand,
                        model=prob.model, rank=rank, seed=seed,
                        optimum_model=prob.opt_model if reach else "none")
    except BayescaleError as exc:     # too few finite draws: this budget ends here, counted
        print(f"  design skipped a round: {exc}", flush=True)
        prob.skipped += 1
        return []
    picks, used = [], set()
    for n, d in zip(res.proposals.N, res.proposals.D):
        hit = [i for i in free[(cand.N == n).to_numpy() & (cand.D == d).to_numpy()] if i not in used]
        used.add(hit[0])
        picks.append(int(hit[0]))
    return picks


def score(prob, mask, theta, draws):
    """Width (decades) of the 90% bootstrap interval on N_opt(C*), the Huber fit's error
    (decades) against the empirical optimum, and whether the interval holds it."""
    n_opt = np.asarray(prob.scaling_fit(mask, draws).frontier([prob.c_star]).N_opt, float)[:, 0]
    n_opt = n_opt[np.isfinite(n_opt)]
    lo, hi = np.quantile(n_opt, [0.05, 0.95])
    # the honest band: each draw moved by the optimum error (prior model) at C*'s distance
    rng = np.random.default_rng(int(mask.sum()))
    moved = prob.opt_model.move(np.resize(n_opt, 1000), prob.c_star,
                                float(prob.pool.C[mask].max()), rng)
    h_lo, h_hi = np.quantile(moved, [0.05, 0.95])
    point = ScalingFit(method="huber", params=law_params(prob.law, theta),
                       runs=prob.pool.resample(np.flatnonzero(mask)))
    n_hat = float(np.asarray(point.frontier([prob.c_star]).N_opt, float).ravel()[0])
    return {"width_dec": float(np.log10(hi / lo)),
            "error_dec": float(abs(np.log10(n_hat / prob.n_best))),
            "error_median_dec": float(abs(np.log10(np.median(n_opt) / prob.n_best))),
            "covers": float(lo <= prob.n_best <= hi), "N_opt": n_hat,
            "width_honest_dec": float(np.log10(h_hi / h_lo)),
            "covers_honest": float(h_lo <= prob.n_best <= h_hi),
            "decades_to_target": float(np.log10(prob.c_star / prob.pool.C[mask].max())),
            "lower": float(lo), "upper": float(hi), "n_runs": int(mask.sum()),
            "spent": float(prob.cost[mask & ~prob.seed_mask].sum() / prob.cost[~prob.seed_mask].sum())}


def lodo_priors(name):
    """The extrapolation-error and optimum-error priors by the recipes of the package's
    defaults, learned without ``name`` (any group of it)."""
    import json

    from bench_backtest import loo_prior
    from bench_optimum import pooled_prior

    backtest = json.loads((HERE / "results" / "backtest.json").read_text())["learned"]
    optimum = json.loads((HERE / "results" / "optimum.json").read_text())["learned"]
    keep = {k: v for k, v in backtest.items() if not v["dataset"].startswith(name)}
    return (loo_prior(keep, name),
            pooled_prior([v for v in optimum.values() if not v["dataset"].startswith(name)]))


def add_spread(table, errors):
    """Add each rule's standard error over repeats and its difference from the design rule
    to ``table[rule][fraction]``; ``errors[rule][i]``: the error (decades) of every repeat at
    ``FRACTIONS[i]``. Every repeat starts from the same seed set (the two lowest budgets) and
    differs only in its bootstrap resamples, fantasies and random stream, so the s.e. is the
    Monte Carlo error of each rule given that seed set and target, and differences are
    unpaired: s.e. sqrt(se_rule^2 + se_design^2)."""
    for i, f in enumerate(FRACTIONS):
        err = {rule: np.asarray(errors[rule][i], float) for rule in errors}
        se = {rule: float(e.std(ddof=1) / np.sqrt(e.size)) for rule, e in err.items()}
        for rule, e in err.items():
            table[rule][f"{f:g}"].update(
                error_se_dec=se[rule], minus_design_dec=float(e.mean() - err["design"].mean()),
                minus_design_se_dec=float(np.hypot(se[rule], se["design"])) if rule != "design"
                else 0.0,
                error_repeats_dec=e.round(4).tolist())


def run_dataset(name, load_kw, repeats, resamples, seed, shrink=0.0, prior="lodo"):
    priors = lodo_priors(name) if prior == "lodo" else (None, None)
    prob = NoptProblem(name, load_kw, resamples, seed, shrink, *priors)
    total = prob.cost[~prob.seed_mask].sum()
    states = [{"rule": rule, "repeat": r, "mask": prob.seed_mask.copy(), "level": 0,
               "scores": [], "rng": np.random.default_rng(1000 * seed + r)}
              for r in range(repeats) for rule in RULES]
    t0, rounds, prev = time.perf_counter(), 0, None
    theta0, draws0 = prob.fit(prob.seed_mask[None], prev=None)
    seed_score = score(prob, prob.seed_mask, theta0[0], draws0[0])
    while any(s["level"] < len(FRACTIONS) for s in states):
        theta, draws = prob.fit(np.stack([s["mask"] for s in states]), prev=prev)
        prev = theta
        rounds += 1
        for s, th, dr in zip(states, theta, draws):
            while s["level"] < len(FRACTIONS):
                spent = prob.cost[s["mask"] & ~prob.seed_mask].sum()
                remaining = FRACTIONS[s["level"]] * total - spent
                batch = max(2, int(s["mask"].sum()) // 4)
                if s["rule"].startswith("design"):
                    rank = "per_cost" if s["rule"] == "design_per_cost" else "gain"
                    picks = rule_design(prob, s["mask"], th, dr, remaining, batch, rank=rank,
                                        seed=s["repeat"], reach=s["rule"] != "design_no_reach")
                elif s["rule"] == "random":
                    picks = rule_random(prob, s["mask"], th, dr, remaining, batch, rng=s["rng"])
                else:
                    picks = rule_cheapest(prob, s["mask"], th, dr, remaining, batch)
                if picks:
                    s["mask"][picks] = True
                    break
                s["scores"].append(score(prob, s["mask"], th, dr))  # nothing fits: budget done
                s["level"] += 1
        print(f"{name}: round {rounds}, {time.perf_counter() - t0:.0f} s", flush=True)
    theta_all, draws_all = prob.fit(np.ones((1, len(prob.cost)), bool))
    full = score(prob, np.ones(len(prob.cost), bool), theta_all[0], draws_all[0])
    keys = ("width_dec", "error_dec", "error_median_dec", "covers", "width_honest_dec",
            "covers_honest", "decades_to_target", "n_runs", "spent")
    table = {rule: {f"{f:g}": {key: float(np.mean([s["scores"][i][key] for s in states
                                                    if s["rule"] == rule])) for key in keys}
                    for i, f in enumerate(FRACTIONS)} for rule in RULES}
    add_spread(table, {rule: [[s["scores"][i]["error_dec"] for s in states if s["rule"] == rule]
                              for i in range(len(FRACTIONS))] for rule in RULES})
    return {"load": load_kw, "target": prob.target, "prior": dict(prob.prior._asdict()),
            "optimum_prior": dict(prob.opt_model.prior._asdict()), "repeats": repeats, "resamples": resamples,
            "rounds": rounds, "design_rounds_skipped": prob.skipped, "seconds": time.perf_counter() - t0, "seed_only": seed_score,
            "all_pool": full, "rules": table}


def figure(results, path):
    """Error (top) and interval width (bottom) on N_opt(C*), decades, against compute."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    x = [100 * f for f in FRACTIONS]
    for i, (name, res) in enumerate(results.items()):
        for row, key in enumerate(("error_dec", "width_dec")):
            ax = fig.add_subplot(2, len(results), row * len(results) + i + 1)
            for rule in RULES:
                ax.plot(x, [res["rules"][rule][f"{f:g}"][key] for f in FRACTIONS], "o-", label=rule)
            ax.axhline(res["all_pool"][key], color="0.5", ls=":", label="whole pool")
            ax.set_xticks(x, [f"{v:g}%" for v in x])
            ax.set_ylabel({"error_dec": "|log10 N_opt / N_best|",
                           "width_dec": "90% interval width (decades)"}[key])
            if row == 0:
                ax.set_title(f"{name}: N_opt at C* = {res['target']['C_star']:.2g}", fontsize=9)
                if i == 0:
                    ax.legend(fontsize=6)
            else:
                ax.set_xlabel("fraction of the pool's compute")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--resamples", type=int, default=32)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--shrink", type=float, default=0.0, metavar="B",
                    help="refit with the Huber objective pulled toward the law's Normal "
                         "priors at residual scale B (as bench_design.py; default 0)")
    ap.add_argument("--prior", choices=("default", "lodo"), default="lodo",
                    help="the extrapolation- and optimum-error priors: learned without the "
                         "dataset under test (the default), or the package's defaults (a leak)")
    ap.add_argument("--stem", default=None, help="output names: STEM.json and STEM.png")
    args = ap.parse_args(argv)
    check_shrink(args.shrink)
    stem = args.stem or ("design_nopt" if not args.shrink else f"design_nopt_shrink{args.shrink:g}")
    t0 = time.perf_counter()
    # float64 throughout: bootstrap refits of the smallest seed sets reach B ~ 1e61, which
    # the frontier refuses in float32 (planning._common.check_representable)
    with jax.enable_x64(True):
        out = {"shrink": args.shrink, "prior": args.prior, "x64": True,
               "datasets": {name: run_dataset(name, DATASETS[name], args.repeats,
                                              args.resamples, seed=0, shrink=args.shrink,
                                              prior=args.prior)
                            for name in args.datasets}}
    out["seconds"] = time.perf_counter() - t0

    def head(name, res):
        t = res["target"]
        return (f"{name}: C* {t['C_star']:.3g}, N_best {t['N_best']:.3g}; error / width "
                f"(decades) / covers at {', '.join(f'{100 * f:g}%' for f in FRACTIONS)}; whole "
                f"pool {res['all_pool']['error_dec']:.3f} / {res['all_pool']['width_dec']:.3f}")

    save_and_print(out, Path(args.out), stem, figure, RULES, FRACTIONS, head,
                   lambda c: (f"{c['error_dec']:.3f}+-{c['error_se_dec']:.3f} (vs design "
                              f"{c['minus_design_dec']:+.3f}+-{c['minus_design_se_dec']:.3f})"
                              f" / {c['width_dec']:.3f} / {c['covers']:.1f}"
                              f" | {c['width_honest_dec']:.2f} / {c['covers_honest']:.1f}"
                              f" / d {c['decades_to_target']:.2f}"))


if __name__ == "__main__":
    main()
