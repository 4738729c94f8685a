"""Where the optimum misses: N_opt bands against the optima of held-out isoFLOP profiles
(issue 10, "a discrepancy that shifts with N and D").

For every registered dataset with isoFLOP profiles, the Chinchilla law is fitted (Huber
bootstrap, ``--resamples`` resamples) on all but the held-out runs (the top 1 and top 2
compute budgets, and the published test splits of data_constrained and farseer), and its
``N_opt`` band at each held-out profile's compute is compared with the profile's own
optimum (the vertex of a Huber parabola of log loss in log N, Hoffmann et al.'s Approach
2, :func:`bayescale.estimators.optimum_error.observed_optima`; its bootstrap standard error
is added to the predictive, as observation noise is for losses):

* *within the law*: the bootstrap's ``N_opt`` draws;
* *with the optimum error*: those draws moved by the optimum-error model
  (:mod:`bayescale.estimators.optimum_error`) learned from leave-future-out refits inside
  the fitted runs, under a prior learned from the *other* datasets only.

``--learn-prior`` prints each dataset's ``(w, m)`` under a vague prior and the pooled
values behind ``DEFAULT_PRIOR``. Writes ``benchmarks/results/optimum.json`` and prints the
table for RESULTS.md. About 5-10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators import extrapolation as ex
from bayescale.estimators import optimum_error as oe
from bayescale.estimators.fit import fit
from bayescale.estimators.grid_posterior import refit_power
from bayescale.laws.registry import get_law

CASES = [("chinchilla", None), ("data_constrained", None), ("farseer", None),
         ("misfitting", None), ("marin_isoflop", "comma"), ("marin_isoflop", "dclm"),
         ("marin_isoflop", "nemotron")]
SPLITS = ("data_constrained", "farseer")
HOLDOUTS = (1, 2)
LEVELS = (0.5, 0.9)


def _label(name, group):
    return name if group is None else f"{name}/{group}"


def _load(name, group, split="train"):
    kwargs = {"group": group} if group else {}
    if split != "train":
        kwargs["split"] = split
    return load_runs(name, **kwargs)


def learn(law) -> dict:
    out = {}
    for name, group in CASES:
        misses = oe.lfo_optimum_misses(_load(name, group), law)
        if not len(misses.miss):
            print(f"{_label(name, group):26s} no held-out isoFLOP profiles", flush=True)
            continue
        s = oe.posterior(misses, oe.VAGUE_PRIOR).summary()
        out[_label(name, group)] = {"dataset": name, **s,
                                    "misses": [list(map(float, r)) for r in zip(*misses)]}
        print(f"{_label(name, group):26s} w {s['w']:.3f}  m {s['drift']:+.3f}  "
              f"misses {s['num_misses']} refits {s['num_refits']}", flush=True)
    print("pooled:", pooled_prior(out.values())._asdict())
    return out


def pooled_prior(learned) -> oe.OptimumPrior:
    """The recipe behind DEFAULT_PRIOR: ``w`` the geometric mean of the datasets' ``w``
    (log sd 1); the drift centred at 0, its sd the between-dataset spread estimated by
    marginal likelihood (empirical Bayes): each dataset's drift ``m_k ~ Normal(0, s**2)``,
    its misses ``~ Normal(m_k d, se**2 + EDGE_SD**2 + (w d)**2)`` (the power likelihood of
    :func:`optimum_error.posterior`), ``m_k`` integrated out on a grid, ``s`` maximising
    the product over datasets (at least 0.05). The datasets disagree in the sign of the
    drift, so a centre taken from some of them points the wrong way for others (a first
    version centred it on the others' median: on the Marin corpora, held out, that moved
    N_opt the wrong way); and the spread of their noisy point estimates (one profile on
    chinchilla) would overstate the true spread."""
    learned = list(learned)
    w = float(np.exp(np.mean(np.log([v["w"] for v in learned]))))
    m_grid = np.linspace(-2.0, 2.0, 401)
    s_grid = np.geomspace(0.05, 1.5, 80)
    total = np.zeros_like(s_grid)
    for v in learned:
        miss, se, d, _, cut = (np.asarray(x, float) for x in zip(*v["misses"]))
        power = refit_power(cut, oe.POINTS_PER_REFIT)
        var = se**2 + oe.EDGE_SD**2 + (w * d) ** 2
        ll = np.sum(power * -0.5 * ((miss[None, :] - m_grid[:, None] * d[None, :]) ** 2 / var
                                    + np.log(var)), axis=1)
        like = np.exp(ll - ll.max())
        prior = np.exp(-0.5 * (m_grid[None, :] / s_grid[:, None]) ** 2) / s_grid[:, None]
        total += np.log(prior @ like)
    return oe.OptimumPrior(w=w, log_sd=1.0, drift=0.0, drift_sd=float(s_grid[np.argmax(total)]))


def _split(runs, k):
    labels = ex.budgets(6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float))
    held = labels > labels.max() - k
    return runs.resample(np.flatnonzero(~held)), runs.resample(np.flatnonzero(held))


def _profiles(test):
    """The held-out profiles with an optimum: ``[(C, log10 N vertex, se)]``."""
    C = 6.0 * np.asarray(test.N, float) * np.asarray(test.D, float)
    labels = ex.budgets(C) if len(C) > 1 else np.zeros(1, int)
    out = []
    for b in np.unique(labels):
        idx = np.flatnonzero(labels == b)
        if len(np.unique(np.asarray(test.N)[idx])) < oe.MIN_SIZES:
            continue
        found = oe.observed_optima(np.asarray(test.log_N)[idx], np.asarray(test.log_loss)[idx])
        if found is not None:
            out.append((float(np.exp(np.mean(np.log(C[idx])))), *found))
    return out


def evaluate(law, train, test, prior, resamples, seed=0) -> list[dict]:
    profiles = _profiles(test)
    if not profiles:
        return []
    f = fit(train, method="bootstrap", law=law, resamples=resamples, seed=seed)
    U = None if train.U is None else float(np.median(np.asarray(test.U)))
    extra = {"unique_tokens": U} if "U" in law.inputs else {}
    front = f.frontier([p[0] for p in profiles], **extra)
    model = oe.posterior(oe.lfo_optimum_misses(train, law), prior)
    C_max = float(np.max(6.0 * np.asarray(train.N, float) * np.asarray(train.D, float)))
    rng = np.random.default_rng(seed)
    honest = model.apply(front, C_max, rng)
    rows = []
    for j, (C, vertex, se) in enumerate(profiles):
        row = {"C": C, "vertex": vertex, "se": se, "decades": float(np.log10(C / C_max))}
        for band, fr in (("within", front), ("with_error", honest)):
            x = np.log10(np.asarray(fr.N_opt, float)[:, j])
            x = x[np.isfinite(x)]
            x = x + se * rng.standard_normal(x.size)  # the observed vertex's own noise
            row[band] = {"median": float(np.median(x)),
                         **{f"covered_{a:g}": bool(np.quantile(x, (1 - a) / 2) <= vertex
                                                   <= np.quantile(x, (1 + a) / 2))
                            for a in LEVELS},
                         "width_90": float(np.subtract(*np.quantile(x, [0.95, 0.05])))}
        rows.append(row)
    return rows


def main(args) -> dict:
    warnings.simplefilter("ignore")
    law = get_law("chinchilla")
    learned = learn(law)
    results = []
    jobs = [(n, g, k) for n, g in CASES for k in HOLDOUTS] + [(n, None, "split") for n in SPLITS]
    for name, group, k in jobs:
        others = [v for key, v in learned.items() if v["dataset"] != name]
        prior = pooled_prior(others)
        t0 = time.perf_counter()
        runs = _load(name, group)
        train, test = (runs, _load(name, group, "test")) if k == "split" else _split(runs, k)
        rows = evaluate(law, train, test, prior, args.resamples)
        for r in rows:
            r.update(case=_label(name, group), holdout=str(k))
        results += rows
        print(f"{_label(name, group):26s} {str(k):6s} profiles {len(rows)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {}
    for band in ("within", "with_error"):
        summary[band] = {f"coverage_{a:g}": float(np.mean([r[band][f"covered_{a:g}"]
                                                           for r in results]))
                         for a in LEVELS}
        summary[band]["median_width_90"] = float(np.median([r[band]["width_90"] for r in results]))
        summary[band]["mean_abs_error"] = float(np.mean([abs(r[band]["median"] - r["vertex"])
                                                         for r in results]))
    summary["n_profiles"] = len(results)
    out = {"learned": learned, "default_prior": pooled_prior(learned.values())._asdict(),
           "rows": results, "summary": summary}
    path = Path(__file__).parent / "results" / "optimum.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    print(table(results, summary))
    return out


def table(rows, summary) -> str:
    lines = ["| dataset | hold-out | C | decades | observed N* | within: median, 90% hit | "
             "with error: 90% width, hit |", "|---|---|---|---:|---|---|---|"]
    for r in rows:
        w, h = r["within"], r["with_error"]
        lines.append(f"| {r['case']} | {r['holdout']} | {r['C']:.2g} | {r['decades']:.2f} | "
                     f"{10**r['vertex']:.3g} (se {r['se']:.3f} dec) | {10**w['median']:.3g}, "
                     f"{w['width_90']:.2f} dec, {'yes' if w['covered_0.9'] else 'no'} | "
                     f"{h['width_90']:.2f} dec, {'yes' if h['covered_0.9'] else 'no'} |")
    lines.append("")
    lines.append("| pooled | profiles | cov50 | cov90 | median 90% width (decades of N) | "
                 "mean abs error of the median |")
    lines.append("|---|---:|---|---|---|---|")
    for band in ("within", "with_error"):
        s = summary[band]
        lines.append(f"| {band} | {summary['n_profiles']} | {s['coverage_0.5']:.2f} | "
                     f"{s['coverage_0.9']:.2f} | {s['median_width_90']:.3f} | "
                     f"{s['mean_abs_error']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=400)
    parser.add_argument("--learn-prior", action="store_true",
                        help="only learn and print the per-dataset priors")
    a = parser.parse_args()
    if a.learn_prior:
        warnings.simplefilter("ignore")
        learn(get_law("chinchilla"))
    else:
        main(a)
