"""Are the design benchmark's predictive intervals on the target region calibrated?

Run ``python benchmarks/bench_calibration.py [RESULT.json ...]`` (default
``results/design_calibration.json`` and ``results/design_worlds.json``) after
``python benchmarks/bench_design.py --law farseer=farseer --law data_constrained=data_constrained
--shrink 0.026 --learned-error --net-error --stem design_calibration`` and ``python
benchmarks/bench_design.py --datasets chinchilla@top2 misfitting@top2
marin_isoflop/comma@top2 marin_isoflop/dclm@top2 marin_isoflop/nemotron@top2
gadre2024/C4@top2 gadre2024/RedPajama@top2 gadre2024/RefinedWeb@top2 --rules design random
cheapest --learned-error --shrink 0.026 --stem design_worlds``; writes
``benchmarks/results/calibration.json`` and ``calibration.png`` (seconds). With Marin's top
budget alone held out (``marin_isoflop/GROUP@top1``, ``--stem design_worlds_marin_top1``),
add that file and ``--drop`` the three ``@top2`` Marin sweeps (``--stem
calibration_marin_top1``): then runs are chosen on every sweep. The runs with the design's
noise as the draws imply it (RESULTS.md, "The design with the noise the draws imply"):
``results/design_noise.json results/design_worlds_noise.json --stem calibration_noise``.

Every state of that run (rule x repeat x budget) scored the predictive on the target split
four ways: with the extrapolation error's prior alone (``prior``), in-model (``none``: the
bootstrap's spread and the noise), with the error model learned from the state's own runs
(``learned``: what ``fit.predict`` does by default) and with that model learned from misses
net of each leave-future-out refit's own bootstrap spread (``net``). The target runs'
misses within a state share the law's error, so coverage of single runs is near binary
per state; the event scored here is instead one per state: the PIT of the target region's
mean loss under the predictive's joint draws. If the predictive is calibrated, those PITs
are uniform, so 90% (50%) central intervals of the region mean hold it in 90% (50%) of
states. The states of one repeat share their seed set and the target, so the standard
errors are a bootstrap over repeats (10 clusters), not over states.

Every state of one sweep is scored against one realised target, though: a predictive that
is calibrated across sweeps, and whose shared extrapolation error dominates its width,
puts all of a sweep's PITs near one value, uniform only across sweeps. So the summary
that can show calibration is across sweeps ("worlds"): each sweep's share of states whose
interval holds the region mean and its median PIT, then the mean of those shares over the
sweeps (each weighted equally), over the sources (the three Marin corpora are one source,
the three Gadre datasets another) and over the sweeps where a rule chose any run (on
Marin's top-two hold-out the seed set already spends every budget).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bayescale.io import atomic_write, dumps_json

HERE = Path(__file__).resolve().parent
VARIANTS = {"prior": "", "none": "_none", "learned": "_learned", "net": "_net"}
BOOTSTRAPS = 2000


def stats(pit):
    """Calibration summaries of PITs ``pit`` (any shape; pooled)."""
    pit = np.asarray(pit, float)
    return {"cover90": float(np.mean((pit >= 0.05) & (pit <= 0.95))),
            "cover50": float(np.mean((pit >= 0.25) & (pit <= 0.75))),
            "mean_pit": float(np.mean(pit)),
            "below_half": float(np.mean(pit < 0.5))}


def cluster_se(pit_by_repeat, rng):
    """Bootstrap standard errors of :func:`stats` resampling repeats (rows)."""
    R = pit_by_repeat.shape[0]
    boots = [stats(pit_by_repeat[rng.integers(0, R, R)]) for _ in range(BOOTSTRAPS)]
    return {k: float(np.std([b[k] for b in boots])) for k in boots[0]}


def summarise(result, rng):
    out = {}
    for name, ds in result["datasets"].items():
        rules = list(ds["states"])
        budgets = sorted(ds["rules"][rules[0]], key=float)
        # a sweep where the seed set already spends every budget: no rule adds a run
        designed = any(sc["n_runs"] > ds["seed_runs"] for reps in ds["states"].values()
                       for rep in reps for sc in rep)
        out[name] = {"_designed": designed}
        for variant, key in VARIANTS.items():
            if f"pit_mean{key}" not in ds["states"][rules[0]][0][0]:
                continue
            rows = {}
            for b, budget in enumerate(budgets):
                # repeats x rules: one region-mean PIT per state
                pit = np.array([[ds["states"][r][i][b][f"pit_mean{key}"] for r in rules]
                                for i in range(len(ds["states"][rules[0]]))])
                points = np.concatenate([ds["states"][r][i][b][f"pits{key}"] for r in rules
                                         for i in range(pit.shape[0])])
                width = np.median([ds["states"][r][i][b][f"width90{key}"] for r in rules
                                   for i in range(pit.shape[0])])
                rows[budget] = {"region_mean": stats(pit), "se": cluster_se(pit, rng),
                                "default_rule": (stats(pit[:, rules.index("design")]) if "design" in rules else None),
                                "points": stats(points), "median_width90": float(width),
                                "states": int(pit.size), "repeats": int(pit.shape[0]),
                                "pits": pit.ravel().round(4).tolist()}
            out[name][variant] = rows
    return out


def source_of(name):
    """The publication a sweep comes from: ``marin_isoflop/dclm@top2`` -> ``marin_isoflop``."""
    return name.partition("@")[0].partition("/")[0]


def _mean_se(x):
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")


def across_worlds(summary):
    """Per variant and budget: each world's coverage, median PIT and median width, and their
    means three ways: every sweep weighted equally (``sweeps``), every source (publication)
    weighted equally, its sweeps averaged first (``sources``), and the sweeps where a rule
    chose runs only (``designed``). +- is the s.e. over the units averaged."""
    out = {}
    variants = {v for rows in summary.values() for v in rows if not v.startswith("_")}
    for variant in VARIANTS:
        if variant not in variants:
            continue
        worlds = {n: rows[variant] for n, rows in summary.items() if variant in rows}
        budgets = sorted({b for rows in worlds.values() for b in rows}, key=float)
        out[variant] = {}
        for b in budgets:
            per = {n: {"cover90": rows[b]["region_mean"]["cover90"],
                       "cover50": rows[b]["region_mean"]["cover50"],
                       "median_pit": float(np.median(rows[b]["pits"])),
                       "median_width90": rows[b]["median_width90"],
                       "designed": summary[n]["_designed"]}
                   for n, rows in worlds.items() if b in rows}
            sources = {}
            for n, v in per.items():
                sources.setdefault(source_of(n), []).append(v)
            cell = {"worlds": len(per), "sources": len(sources), "per_world": per}
            for k in ("cover90", "cover50"):
                groups = {"sweeps": [v[k] for v in per.values()],
                          "sources": [np.mean([v[k] for v in vs]) for vs in sources.values()],
                          "designed": [v[k] for v in per.values() if v["designed"]]}
                for g, x in groups.items():
                    cell[f"{k}_{g}"], cell[f"{k}_{g}_se"] = _mean_se(x)
            out[variant][b] = cell
    return out


def plot(summary, path):
    import matplotlib.pyplot as plt

    names = list(summary)
    variants = list(VARIANTS)
    fig, axes = plt.subplots(len(names), len(variants), figsize=(3.0 * len(variants),
                             2.6 * len(names)), squeeze=False, sharex=True)
    for i, name in enumerate(names):
        for j, variant in enumerate(variants):
            ax = axes[i, j]
            rows = summary[name].get(variant)
            if not rows:
                ax.set_axis_off()
                continue
            pits = [np.array(r["pits"]) for r in rows.values()]
            ax.hist(pits, bins=np.linspace(0, 1, 11), stacked=True,
                    label=[f"{float(b):.0%}" for b in rows])
            ax.axhline(sum(len(p) for p in pits) / 10, color="k", lw=0.8, ls="--")
            c90 = np.mean([r["region_mean"]["cover90"] for r in rows.values()])
            ax.set_title(f"{name}: {variant}\n90% holds the mean in {c90:.2f}", fontsize=8)
            if i == len(names) - 1:
                ax.set_xlabel("PIT of the target region's mean loss")
    axes[0, 0].legend(title="budget", fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="*",
                    default=[str(HERE / "results" / f"{stem}.json")
                             for stem in ("design_calibration", "design_worlds")])
    ap.add_argument("--drop", nargs="+", default=[], metavar="SWEEP",
                    help="leave these sweeps out (e.g. marin_isoflop/dclm@top2 when the "
                         "same sweep is read again with another hold-out)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stem", default="calibration")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    summary, rng = {}, np.random.default_rng(args.seed)
    for path in args.results:
        with open(path) as fh:
            summary.update(summarise(json.load(fh), rng))
    unknown = sorted(set(args.drop) - set(summary))
    if unknown:
        ap.error(f"--drop {' '.join(unknown)}: no such sweep in the results; they hold "
                 f"{', '.join(summary)}")
    for name in args.drop:
        del summary[name]
    worlds = across_worlds(summary)
    for name, variants in summary.items():
        print(f"{name}: the region mean's PIT, pooled over rules and repeats "
              f"(cover90 / cover50 / mean PIT +- cluster s.e.; median 90% width)")
        for variant, rows in variants.items():
            if variant.startswith("_"):
                continue
            cells = [f"{r['region_mean']['cover90']:.2f}+-{r['se']['cover90']:.2f} / "
                     f"{r['region_mean']['cover50']:.2f}+-{r['se']['cover50']:.2f} / "
                     f"{r['region_mean']['mean_pit']:.2f}+-{r['se']['mean_pit']:.2f} "
                     f"w {r['median_width90']:.3f}" for r in rows.values()]
            print(f"  {variant:>8}: " + "   ".join(cells))
    for g in ("sweeps", "sources", "designed"):
        print(f"across worlds, every one of the {g} weighted equally: cover90 / cover50 +- s.e.")
        for variant, rows in worlds.items():
            cells = [f"{r[f'cover90_{g}']:.2f}+-{r[f'cover90_{g}_se']:.2f} / "
                     f"{r[f'cover50_{g}']:.2f}+-{r[f'cover50_{g}_se']:.2f}" for r in rows.values()]
            print(f"  {variant:>8}: " + "   ".join(cells))
    out = HERE / "results" / f"{args.stem}.json"
    record = {"sources": [Path(p).name for p in args.results], "dropped": args.drop,
              "bootstraps": BOOTSTRAPS,
              "datasets": summary, "across_worlds": worlds, "seconds": time.perf_counter() - t0}
    atomic_write(out, lambda tmp: Path(tmp).write_text(dumps_json(record, indent=1) + "\n"))
    plot(summary, HERE / "results" / f"{args.stem}.png")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
