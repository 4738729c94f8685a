"""Experiment design by the protocol of Li et al. (2026, arXiv:2604.22753), and its speed.

On ``data_constrained`` (law data_constrained) and ``farseer`` (the Farseer law; ``--law
farseer=chinchilla`` for the Chinchilla form, which cannot follow this sweep): the train
split is the pool of runnable experiments, the test split the held-out target region, and
a run costs 6ND. Starting from a small random seed set, each rule adds runs from the pool
until 1%, then 5%, then 10% of the pool's total cost is spent (the seed set counts; the
budgets are spent in sequence, as a team would), refitting after every round. At each
budget the law is refitted and scored on the target: R^2 of the loss (the Huber fit's
prediction, as Li et al. score it) and coverage of the 90% predictive interval
(``ScalingFit.predict``: bootstrap draws + noise + extrapolation error). Each state also
records the PIT of every target run and of the target region's mean loss under the
predictive's joint draws (``pits``, ``pit_mean``), for ``bench_calibration.py``; with
``--learned-error`` / ``--net-error`` it is scored again with the error model learned from
the state's own runs (gross, or net of each refit's bootstrap spread).

Rules, the design ones through the library's greedy linearised update
(:func:`bayescale.planning.design_score.linear_greedy`, the code ``next_runs`` runs):
``design`` (the default of ``next_runs(objective="loss", targets=...)``: ranked by expected
gain, the budget a cap, for the *observable* loss at each target point: each target carries
the shared extrapolation error at its own distance beyond the selected runs,
``linear_state(d_g=..., share=...)``, so runs toward the target are credited with measuring
part of the miss it will have; the integrated variance over the points, V-optimal); ``design_per_cost`` (the
same ranked by gain per FLOP); ``design_law`` (the law's prediction at the points, without the
shared error); ``design_mean`` (the variance of the law's
*mean* log loss over the points: the criterion before 2026-12-03); ``random``; ``cheapest``
(first); ``dopt`` (greedy D-optimal: largest increase of log det of the Fisher information of the
law's coordinates at the current Huber fit, per FLOP, chosen by :func:`design_score.pick`).

Fast refits: every (rule, repeat) state of a round is refitted in one compiled program:
Huber fits (delta 1e-3, the coarse start grid, ``estimators.extrapolation.masked_fits``)
and ``--resamples`` bootstrap resamples warm-started at each state's fit.

Run:  BAYESCALE_DATA=/work/shared/data nice -n 10 python benchmarks/bench_design.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.estimators import extrapolation
from bayescale.estimators.fit import ScalingFit
from bayescale.estimators.huber import check_shrink, law_params
from bayescale.io import atomic_write
from bayescale.planning import design_score
from bayescale.planning.design import SHARE
from bayescale.planning.design_candidates import decades_below
from bayescale.planning.design_noise import candidate_noise
from design_loop import (Problem, load_case, parse_case, rule_cheapest, rule_random,
                         save_and_print)

HERE = Path(__file__).resolve().parent
RULES = ("design", "design_per_cost", "design_law", "design_mean", "random", "cheapest", "dopt")
FRACTIONS = (0.01, 0.05, 0.10)
LI_2026 = {"data_constrained": {"li2026": [0.73, 0.85, 0.86], "v_optimal": [0.58, 0.83, 0.85],
                                "random": [-0.74, -0.36, 0.12], "all_train": 0.79},
           "farseer": {"li2026": [0.60, 0.88, 0.93], "v_optimal": [0.67, 0.87, 0.92],
                       "random": [-0.77, 0.78, 0.79], "all_train": 0.91}}
DATASETS = {"data_constrained": "data_constrained", "farseer": "farseer"}


def r2(y, pred):
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


# -- the rules: each returns the pool indices to add, within ``remaining`` FLOPs ----------

def rule_design(prob, mask, theta, draws, remaining, batch, rank="gain", region=True,
                observable=True):
    """The library's greedy choice (:func:`design_score.linear_greedy`, as in
    ``next_runs``): the integrated variance of log loss over the target points
    (``region``), or the variance of its mean over them; for the ``observable`` loss (with
    the extrapolation error each target shares with runs toward it) or the law's."""
    ok = np.all(np.isfinite(draws), axis=1)
    mu = prob.mu(draws[ok], prob.X)                       # (B, n): law at every pool run
    g = prob.mu(draws[ok], prob.Xt)                       # (B, T): log loss at each target
    g = g if region else g.mean(axis=1)
    d = extrapolation.decades_beyond(prob.pool.N[mask], prob.pool.D[mask], prob.pool.N, prob.pool.D)
    below = decades_below(prob.pool.N[mask], prob.pool.D[mask], prob.pool.N, prob.pool.D)
    sigma = candidate_noise(prob.sigma(theta, mask, draws[ok]), prob.tau, below)  # as next_runs
    d_g = None
    if observable:  # as next_runs: each target's distance beyond the selected runs
        d_g = extrapolation.decades_beyond(prob.pool.N[mask], prob.pool.D[mask],
                                           prob.test.N, prob.test.D)
        d_g = d_g if region else float(np.mean(d_g))
    picks, *_ = design_score.linear_greedy(mu, d, g, prob.tau, sigma, prob.cost,
                                           remaining, batch, rank=rank, unavailable=mask, d_g=d_g,
                                           share=prob.share)
    return picks


RULE_OPTIONS = {"design": {}, "design_per_cost": {"rank": "per_cost"},
                "design_law": {"observable": False},
                "design_mean": {"observable": False, "region": False}}


def rule_dopt(prob, mask, theta, draws, remaining, batch):
    with jax.enable_x64(True):
        J = np.asarray(jax.vmap(jax.grad(prob.law.kernel), in_axes=(None, 0))(
            jnp.asarray(theta), jnp.asarray(prob.X)))      # (n, k)
    J = np.where(np.isfinite(J), J, 0.0)
    M = J[mask].T @ J[mask] + 1e-6 * np.eye(J.shape[1])
    picks, taken = [], mask.copy()
    for _ in range(batch):
        Minv = np.linalg.pinv(M + J[picks].T @ J[picks])
        gain = np.log1p(np.einsum("ni,ij,nj->n", J, Minv, J))
        c = design_score.pick(gain, prob.cost, remaining, taken, "per_cost")
        if c is None:
            break
        picks.append(c)
        taken[c] = True
        remaining -= prob.cost[c]
    return picks


def score(prob, mask, theta, draws, model=None, key="", structural="auto"):
    """R^2 of the Huber fit's prediction and 90% coverage of the predictive on the target
    (with the extrapolation-error ``model``, default the prior's; ``key`` suffixes the
    coverage and width entries)."""
    pred = np.exp(prob.mu(theta, prob.Xt))
    ok = np.all(np.isfinite(draws), axis=1)
    params = law_params(prob.law, draws[ok] if ok.sum() >= 2 else np.repeat(theta[None], 2, 0))
    fit = ScalingFit(method="bootstrap", params=params, runs=prob.pool.resample(np.flatnonzero(mask)))
    U = prob.test.U if "U" in prob.law.inputs else None
    p = fit.predict(prob.test.N, prob.test.D, U, num_draws=2000, structural=structural,
                    model=prob.model if model is None else model)
    lo, hi = p.interval(0.9)
    lo5, hi5 = p.interval(0.5)
    y = prob.test.loss
    # PITs: of each target run, and of the region's mean loss under the predictive's joint
    # draws (one event per state: the target runs' misses within a state are correlated)
    pit_mean = float(np.mean(p.draws.mean(axis=1) <= y.mean()))
    cover = {f"coverage90{key}": float(np.mean((lo <= y) & (y <= hi))),
             f"width90{key}": float(np.mean(hi - lo)),
             f"coverage50{key}": float(np.mean((lo5 <= y) & (y <= hi5))),
             f"pit_mean{key}": pit_mean,
             f"coverage90_mean{key}": float(0.05 <= pit_mean <= 0.95),
             f"pits{key}": np.mean(p.draws <= y[None, :], axis=0).round(4).tolist()}
    if key:
        return cover
    return {"r2": r2(y, pred), "mare": float(np.mean(np.abs(pred / y - 1))), **cover,
            "n_runs": int(mask.sum()), "spent": float(prob.cost[mask].sum() / prob.cost.sum())}


def run_dataset(name, law_name, repeats, resamples, num_seed, seed, shrink=0.0, prior=None,
                learned=False, share=SHARE, net=False, rules=RULES):
    prob = Problem(name, law_name, resamples, seed, shrink, prior)
    prob.share = float(share)
    events = []  # (state's score dict, mask, theta, draws): for the learned error models
    rng = np.random.default_rng(seed + 1)
    total = prob.cost.sum()
    cheap = np.argsort(prob.cost)[: len(prob.cost) // 2]
    states = []
    for r in range(repeats):
        seed_set = rng.choice(cheap, num_seed, replace=False)
        for rule in rules:
            m = np.zeros(len(prob.cost), bool)
            m[seed_set] = True
            states.append({"rule": rule, "repeat": r, "mask": m, "level": 0, "scores": [],
                           "rng": np.random.default_rng(1000 * seed + r)})
    t0, rounds, prev = time.perf_counter(), 0, None
    while any(s["level"] < len(FRACTIONS) for s in states):
        # every state is refitted each round (finished ones too): fixed shapes, one compile
        theta, draws = prob.fit(np.stack([s["mask"] for s in states]), prev=prev)
        prev = theta
        rounds += 1
        live = [s for s in states if s["level"] < len(FRACTIONS)]
        for s, th, dr in zip(states, theta, draws):
            while s["level"] < len(FRACTIONS):
                remaining = FRACTIONS[s["level"]] * total - prob.cost[s["mask"]].sum()
                batch = max(2, int(s["mask"].sum()) // 4)
                fn = {"random": rule_random, "cheapest": rule_cheapest,
                      "dopt": rule_dopt}.get(s["rule"], rule_design)
                kw = ({"rng": s["rng"]} if s["rule"] == "random" else
                      RULE_OPTIONS.get(s["rule"], {}))
                picks = fn(prob, s["mask"], th, dr, remaining, batch, **kw)
                if picks:
                    s["mask"][picks] = True
                    break
                s["scores"].append(score(prob, s["mask"], th, dr))  # nothing fits: budget done
                events.append((s["scores"][-1], s["mask"].copy(), th, dr))
                s["level"] += 1
        print(f"{name}: round {rounds}, {len(live)} states, {time.perf_counter() - t0:.0f} s",
              flush=True)
    all_theta, all_draws = prob.fit(np.ones((1, len(prob.cost)), bool))
    full = score(prob, np.ones(len(prob.cost), bool), all_theta[0], all_draws[0])
    keys = ["r2", "mare", "coverage90", "width90", "coverage50", "coverage90_mean", "n_runs",
            "spent"]
    everything = np.ones(len(prob.cost), bool)
    for sc, m, th, dr in events + [(full, everything, all_theta[0], all_draws[0])]:
        # the in-model predictive: the bootstrap's spread and the noise, no structural error
        sc.update(score(prob, m, th, dr, key="_none", structural="none"))
    keys += ["coverage90_none", "width90_none", "coverage50_none", "coverage90_mean_none"]
    t_learned = time.perf_counter()
    variants = [("_learned", False)] * learned + [("_net", True)] * net
    for key, is_net in variants:  # the error model each state would learn from its own runs
        models = prob.lfo_models([(m, th) for _, m, th, _ in events], net=is_net)
        for (sc, m, th, dr), model in zip(events, models):
            sc.update(score(prob, m, th, dr, model=model, key=key))
            sc[f"tau{key}"] = float(model.summary()["tau"])
        full.update(score(prob, everything, all_theta[0], all_draws[0], key=key,
                          model=prob.lfo_models([(everything, all_theta[0])], net=is_net)[0]))
        keys += [f"coverage90{key}", f"width90{key}", f"coverage50{key}",
                 f"coverage90_mean{key}", f"tau{key}"]
    t_learned = time.perf_counter() - t_learned
    table = {}
    for rule in rules:
        sc = [s["scores"] for s in states if s["rule"] == rule]
        table[rule] = {f"{f:g}": {key: float(np.mean([x[i][key] for x in sc])) for key in keys}
                       for i, f in enumerate(FRACTIONS)}
        for i, f in enumerate(FRACTIONS):
            vals = [x[i]["r2"] for x in sc]
            table[rule][f"{f:g}"]["r2_median"] = float(np.median(vals))
            table[rule][f"{f:g}"]["r2_se"] = float(np.std(vals) / np.sqrt(len(vals)))
    return {"law": law_name, "shrink": prob.shrink, "share": prob.share,
            "prior": dict(prob.prior._asdict()),
            "learned_error_seconds": t_learned if learned else None, "repeats": repeats,
            "resamples": resamples, "seed_runs": num_seed,
            "rounds": rounds, "seconds": time.perf_counter() - t0, "all_train": full,
            "rules": table, "li2026": LI_2026.get(name),
            "states": {rule: [s["scores"] for s in states if s["rule"] == rule] for rule in rules}}


def speed(num=2000):
    """Seconds to score ``num`` candidates: first call (compile + run) and steady state."""
    rng = np.random.default_rng(0)
    out = {}
    P, K = 1000, num
    mu, g, d = rng.normal(size=(P, K)), rng.normal(size=P), rng.uniform(0, 1, K)
    t = time.perf_counter()
    st = design_score.linear_state(mu, d, g, 0.03, 0.01)
    np.asarray(design_score.linear_gains(st[1], st[2]))
    out["linear_first"] = time.perf_counter() - t
    t = time.perf_counter()
    st = design_score.linear_state(mu, d, g, 0.03, 0.01)
    np.asarray(design_score.linear_gains(st[1], st[2]))
    out["linear_steady"] = time.perf_counter() - t
    F, M = 32, 5
    log_w = jnp.full((F, P, M), -np.log(P * M))
    j, m = design_score.fantasy_particles(log_w, rng.random(F))
    for key in ("reweight_first", "reweight_steady"):
        t = time.perf_counter()
        post, _ = design_score.score(log_w, mu, d, g, np.linspace(-0.1, 0.1, M), 0.01, j, m,
                                     rng.standard_normal(F))
        np.asarray(post)
        out[key] = time.perf_counter() - t
    out.update({"num_candidates": K, "num_draws": P, "num_fantasies": F, "num_nodes": M})
    return out


def figure(results, path):
    """R^2 (top; values below -1 are drawn at -1 and labelled) and mean absolute relative
    error (bottom) on the target against the fraction of the pool's compute."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.4))
    x = [100 * f for f in FRACTIONS]
    for i, (name, res) in enumerate(results.items()):
        for row, key in enumerate(("r2", "mare")):
            ax = fig.add_subplot(2, len(results), row * len(results) + i + 1)
            rules = list(res["rules"])
            for rule in rules:
                vals = np.array([res["rules"][rule][f"{f:g}"][key] for f in FRACTIONS])
                ax.plot(x, np.maximum(vals, -1.0) if key == "r2" else vals, "o-", label=rule)
                if key == "r2" and np.any(vals < -1):
                    ax.annotate(f"{rule}: " + ", ".join(f"{v:.0f}" for v in vals), (x[0], -0.9 + 0.12 * rules.index(rule)),
                                fontsize=6)
            if key == "r2" and res["li2026"]:
                ax.plot(x, res["li2026"]["li2026"], "k--", marker="s", label="Li et al. 2026")
                ax.set_ylim(-1.0, 1.0)
                ax.set_ylabel("target-region R$^2$")
                ax.set_title(f"{name} ({res['law']} law)", fontsize=9)
            else:
                ax.set_ylabel("mean |relative error| on target")
                ax.set_xlabel("fraction of the pool's compute")
            ax.axhline(res["all_train"][key], color="0.5", ls=":", label="all of train (ours)")
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{v:g}%" for v in x])
            if i == 0 and row == 0:
                ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=130))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--resamples", type=int, default=24)
    ap.add_argument("--seed-runs", type=int, default=10)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS),
                    metavar="NAME[/GROUP][@topK]",
                    help="registered datasets; '@topK' holds out the top K compute budgets as "
                         "the target (the pool: the rest) instead of the published test split; "
                         "fitted with the Chinchilla law unless --law says otherwise")
    ap.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    ap.add_argument("--law", action="append", default=[], metavar="DATASET=LAW",
                    help="fit DATASET with LAW instead of its default (repeatable)")
    ap.add_argument("--shrink", type=float, default=0.0, metavar="B",
                    help="refit with the Huber objective shrunk toward the law's Normal "
                         "priors at residual scale B (huber.fit_huber's shrink; default 0)")
    ap.add_argument("--prior", choices=("default", "lodo"), default="lodo",
                    help="the extrapolation-error prior: per dataset, the recipe of the "
                         "package's DEFAULT_PRIOR without that dataset (leave-one-dataset-out, "
                         "from results/backtest.json; the default), or DEFAULT_PRIOR itself "
                         "(learned partly on these datasets: a leak)")
    ap.add_argument("--learned-error", action="store_true",
                    help="also score the 90%% coverage with the error model each state "
                         "learns from its own runs (predict's default), not the prior alone")
    ap.add_argument("--net-error", action="store_true",
                    help="also score it with the error model learned from misses net of each "
                         "leave-future-out refit's own parametric spread (B bootstrap refits "
                         "of each; the predictive's bootstrap draws carry the fit's own)")
    ap.add_argument("--share", type=float, default=SHARE,
                    help="the design rules' correlation between a target's miss per decade and "
                         "the candidates' (next_runs' share; default design.SHARE)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--stem", default=None,
                    help="output names: STEM.json (default design, or design_shrinkB)")
    ap.add_argument("--replot", action="store_true", help="redraw the figure from design.json")
    args = ap.parse_args(argv)
    check_shrink(args.shrink)
    args.stem = args.stem or ("design" if not args.shrink else f"design_shrink{args.shrink:g}")
    if args.replot:
        data = json.loads((Path(args.out) / f"{args.stem}.json").read_text())
        figure(data["datasets"], Path(args.out) / f"{args.stem}_r2.png")
        return
    laws = {**DATASETS, **dict(kv.split("=", 1) for kv in args.law)}
    bases = {parse_case(name)[0] for name in args.datasets}
    unused = [k for k in dict(kv.split("=", 1) for kv in args.law)
              if k not in args.datasets and k not in bases]
    if unused:
        raise SystemExit(f"--law {', '.join(unused)}: not among --datasets {args.datasets}")
    for name in args.datasets:
        load_case(name)  # a bad name or hold-out fails here, not after the first dataset

    def law_of(case):  # the case's own entry, else its dataset's (farseer@top2: farseer's)
        return laws.get(case) or laws.get(parse_case(case)[0]) or "chinchilla"
    t0 = time.perf_counter()
    out = {"speed": speed(), "datasets": {}}
    print("speed", out["speed"], flush=True)
    for name in args.datasets:
        prior = None
        if args.prior == "lodo":
            from bench_backtest import loo_prior

            learned = json.loads((HERE / "results" / "backtest.json").read_text())["learned"]
            prior = loo_prior(learned, parse_case(name)[0])
        out["datasets"][name] = run_dataset(name, law_of(name), args.repeats,
                                            args.resamples,
                                            args.seed_runs, seed=0, shrink=args.shrink,
                                            prior=prior, learned=args.learned_error,
                                            share=args.share, net=args.net_error,
                                            rules=tuple(args.rules))
    out["seconds"] = time.perf_counter() - t0
    save_and_print(out, Path(args.out), args.stem, figure, args.rules, FRACTIONS,
                   lambda name, res: (f"{name}: R2 / coverage90 / MARE at 1%, 5%, 10% (all of "
                                      f"train: R2 {res['all_train']['r2']:.2f}, cov90 "
                                      f"{res['all_train']['coverage90']:.2f}; Li et al. "
                                      f"{(res['li2026'] or {}).get('li2026')})"),
                   lambda c: (f"{c['r2']:6.2f} / {c['coverage90']:.2f} / {c['mare']:.3f}"
                              + (f" / {c['coverage90_learned']:.2f} w {c['width90_learned']:.3f}"
                                 if "coverage90_learned" in c else "")),
                   figure_name=f"{args.stem}_r2.png")


if __name__ == "__main__":
    main()
