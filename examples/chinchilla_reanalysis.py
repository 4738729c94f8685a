"""Re-analysis of Chinchilla's scaling law with the Bayesian model (Besiroglu et al. 2024).

Hoffmann et al. (2022) fitted ``L(N, D) = E + A/N^alpha + B/D^beta`` to their training
runs (Approach 3) and published E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28.
Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt") digitised the
runs from the paper's Figure 4, refitted, and found E 1.817, A 482.0, B 2085.4,
alpha 0.348, beta 0.366: the published coefficients do not fit the runs, and imply a
compute-optimal Gopher-budget model of ~40B parameters at ~59 tokens per parameter
instead of Chinchilla's 70B at ~20.

This example fits the posterior on the 240 runs Epoch kept and prints the numbers the
finding relies on:

* each parameter's posterior median and 95% interval, and whether the published and
  the Epoch values lie inside;
* the joint check: the posterior Mahalanobis distance (in the sampler's log
  coordinates) of each published set, and the share of posterior draws farther out
  (a tail probability: ~0 means outside the credible region);
* N_opt and tokens per parameter at Gopher's budget (5.76e23 FLOPs).

Run: ``python examples/chinchilla_reanalysis.py`` (add ``--num-samples 1000
--num-warmup 1000 --num-chains 4`` for the full fit, the default).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators.fit import fit
from bayescale.laws.chinchilla import BESIROGLU_2024, HOFFMANN_2022, HOFFMANN_2022_UNROUNDED

GOPHER = 5.76e23
PARAMS = ("E", "A", "B", "alpha", "beta")
SHORT = {"Hoffmann 2022 (published)": "Hoffmann pub.", "Hoffmann 2022 (unrounded)": "Hoffmann unr.",
         "Epoch 2024 refit": "Epoch 2024"}
PUBLISHED = {"Hoffmann 2022 (published)": HOFFMANN_2022,
             "Hoffmann 2022 (unrounded)": HOFFMANN_2022_UNROUNDED,
             "Epoch 2024 refit": BESIROGLU_2024}


def _coords(E, A, B, alpha, beta):
    """log E, log A, log B, alpha, beta: the coordinates the posterior is near-Gaussian in."""
    return np.stack([np.log(E), np.log(A), np.log(B), np.asarray(alpha), np.asarray(beta)], -1)


def credible_region_check(draws: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """(Mahalanobis distance of ``point``, share of draws at least as far from the mean)."""
    mean = draws.mean(axis=0)
    prec = np.linalg.inv(np.cov(draws, rowvar=False))
    d2_draws = np.einsum("ij,jk,ik->i", draws - mean, prec, draws - mean)
    d2 = float((point - mean) @ prec @ (point - mean))
    return float(np.sqrt(d2)), float(np.mean(d2_draws >= d2))


def main(args: argparse.Namespace) -> dict:
    runs = load_runs("chinchilla", exclude_top=5)
    result = fit(runs, method="bayes", chains=args.num_chains, warmup=args.num_warmup,
                 draws=args.num_samples, seed=args.seed, progress=False)
    post = result.params
    print(f"posterior from {result.num_draws} draws on {len(runs)} runs; diagnostics ok: "
          f"{result.diagnostics.ok} ({', '.join(result.diagnostics.problems()) or 'passed'})")
    ivals = result.intervals(0.95)
    est = result.point_estimate()
    out: dict = {"inside_95": {}, "joint": {}}
    print(f"{'param':>6} {'median':>10} {'95% interval':>24}   "
          + "   ".join(f"{SHORT[name]:>16}" for name in PUBLISHED))
    for k in PARAMS:
        lo, hi = ivals[k]
        cells = []
        for name, p in PUBLISHED.items():
            v = float(getattr(p, k))
            inside = lo <= v <= hi
            out["inside_95"].setdefault(name, {})[k] = inside
            cells.append(f"{v:>10.4g} {'in ' if inside else 'OUT'}")
        print(f"{k:>6} {est[k]:>10.4g} [{lo:>10.4g}, {hi:>10.4g}]   " + "   ".join(
            f"{c:>16}" for c in cells))
    draws = _coords(*post)
    print("joint credible region (Mahalanobis distance in log E, log A, log B, alpha, beta):")
    for name, p in PUBLISHED.items():
        dist, tail = credible_region_check(draws, _coords(*(float(v) for v in p)))
        out["joint"][name] = {"distance": dist, "tail_probability": tail}
        print(f"  {name:<28} distance {dist:8.1f}  share of draws farther out {tail:.4f} "
              f"-> {'inside' if tail >= 0.05 else 'OUTSIDE'} the 95% region")
    fr = result.frontier([GOPHER])
    N = np.asarray(fr.N_opt)[:, 0]
    tpp = np.asarray(fr.tokens_per_param)[:, 0]
    qN = np.quantile(N, [0.5, 0.025, 0.975]) / 1e9
    qT = np.quantile(tpp, [0.5, 0.025, 0.975])
    print(f"at Gopher's budget 5.76e23 FLOPs: N_opt {qN[0]:.1f}B [{qN[1]:.1f}B, {qN[2]:.1f}B], "
          f"tokens per parameter {qT[0]:.1f} [{qT[1]:.1f}, {qT[2]:.1f}]")
    print("  (Hoffmann's unrounded coefficients: 40.4B at 59 tokens/param; Epoch's refit: "
          "72.2B at 18; Chinchilla: 70B at 20)")
    out["N_opt_gopher"] = qN.tolist()
    out["tokens_per_param_gopher"] = qT.tolist()
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    p.add_argument("--num-warmup", type=int, default=1000, help="warmup per chain")
    p.add_argument("--num-chains", type=int, default=4, help="chains")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
