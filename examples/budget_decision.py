"""A team with 1e23 FLOPs decides how big a model to train, and on how many tokens.

Fits the posterior of the Chinchilla law (to the digitised Chinchilla runs when they
are available, else to bayescale's synthetic runs) and, at a training budget of
1e23 FLOPs, prints:

* the compute-optimal model size, tokens and loss with 90% credible intervals;
* the Bayes-optimal plan (minimises the expected loss over the posterior) beside the
  plug-in plan (closed form at the median parameters);
* the 20-tokens-per-parameter rule and Kaplan et al. (2020)'s allocation evaluated
  under the posterior: their expected loss, regret against the Bayes-optimal plan,
  and the probability each is within 1% of the optimal loss;
* an inference-aware variant (Sardana et al. 2023): with ``--inference-tokens`` tokens
  to be served over the model's life (inference costs 2 N per token), the
  loss-minimising split of the same total budget, 6 N D + 2 N D_inf = 1e23: a smaller
  model trained on more tokens.

Run: ``python examples/budget_decision.py --budget 1e23 --inference-tokens 1e12``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators.fit import fit
from bayescale.planning.decisions import bayes_optimal, compare_plans
from bayescale.errors import DatasetNotFoundError


def _runs():
    try:
        return load_runs("chinchilla", exclude_top=5)
    except DatasetNotFoundError:
        return load_runs("synthetic")


def _q(x, level=0.9):
    x = np.asarray(x, dtype=float).reshape(-1)
    return np.quantile(x, [0.5, (1 - level) / 2, (1 + level) / 2])


def main(args: argparse.Namespace) -> dict:
    runs = _runs()
    C = float(args.budget)
    result = fit(runs, method="bayes", chains=args.num_chains, warmup=args.num_warmup,
                 draws=args.num_samples, seed=args.seed, progress=False)
    print(f"data: {runs.source}, {len(runs)} runs; {result.num_draws} posterior draws; "
          f"diagnostics ok: {result.diagnostics.ok}")
    fr = result.frontier([C])
    ext = float(fr.extrapolation[0])
    N, D, L = (_q(getattr(fr, k)) for k in ("N_opt", "D_opt", "L_opt"))
    print(f"budget C = {C:.3g} FLOPs ({ext:.1f} decades beyond the data)")
    print(f"  compute-optimal N = {N[0] / 1e9:.1f}B [{N[1] / 1e9:.1f}B, {N[2] / 1e9:.1f}B] params, "
          f"D = {D[0] / 1e12:.2f}T [{D[1] / 1e12:.2f}T, {D[2] / 1e12:.2f}T] tokens, "
          f"loss {L[0]:.4f} [{L[1]:.4f}, {L[2]:.4f}]")
    table = compare_plans(result.params, [C], within=0.01)
    print("  plans under the posterior (regret = expected loss - Bayes-optimal's):")
    out = {"N_opt": N.tolist(), "D_opt": D.tolist(), "L_opt": L.tolist(), "plans": {}}
    for (_, plan), row in table.iterrows():
        print(f"    {plan:<14} N {row['N'] / 1e9:7.1f}B  D {row['D'] / 1e12:6.2f}T  "
              f"{row['tokens_per_param']:6.1f} tok/param  E[loss] {row['expected_loss']:.5f}  "
              f"regret {row['regret']:.2e}  P(within 1%) {row['p_within_loss']:.2f}")
        out["plans"][plan] = {k: float(row[k]) for k in
                              ("N", "D", "tokens_per_param", "expected_loss", "regret",
                               "p_within_loss")}
    T = float(args.inference_tokens)
    inf = result.frontier([C], cost="inference", inference_tokens=T)
    Ni, Di = _q(inf.N_opt), _q(inf.D_opt)
    print(f"  inference-aware (serving {T:.3g} tokens; 6ND + 2N D_inf = C): "
          f"N = {Ni[0] / 1e9:.1f}B [{Ni[1] / 1e9:.1f}B, {Ni[2] / 1e9:.1f}B], "
          f"D = {Di[0] / 1e12:.2f}T [{Di[1] / 1e12:.2f}T, {Di[2] / 1e12:.2f}T] "
          f"({Di[0] / Ni[0]:.0f} tokens per parameter)")
    out["inference_aware"] = {"N_opt": Ni.tolist(), "D_opt": Di.tolist()}
    bo = bayes_optimal(result.params, [C])
    out["bayes_optimal"] = {"N": float(bo.N[0]), "D": float(bo.D[0])}
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=1e23, help="training budget in FLOPs")
    p.add_argument("--inference-tokens", type=float, default=1e12,
                   help="tokens to be served over the model's life")
    p.add_argument("--num-samples", type=int, default=1000, help="draws per chain")
    p.add_argument("--num-warmup", type=int, default=1000, help="warmup per chain")
    p.add_argument("--num-chains", type=int, default=4, help="chains")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
