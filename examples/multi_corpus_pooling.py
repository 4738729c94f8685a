"""Re-analysing a multi-corpus sweep: each corpus on its own, then pooled.

Gadre et al. (2024) trained the same model family on three corpora (C4, RedPajama,
RefinedWeb; ``gadre2024`` in ``bayescale datasets``). Fitting the three together as one
law would be wrong (they are different data); fitting each alone ignores that the
scaling exponents of one architecture on three web corpora are probably similar. The
hierarchical model sits between: each corpus keeps its own law, the exponents are
partially pooled, and the data decide how far (the spread ``tau``).

This example fits the corpora separately and pooled, prints each corpus's exponents with
and without pooling (the shrinkage), the population the corpora are drawn from, PSIS-LOO
of pooled against separate, and N_opt per corpus at 100x the sweep's largest run. The
same from the command line::

    bayescale fit gadre2024 --group all --pool

Run: ``python examples/multi_corpus_pooling.py`` (about a minute on 2 cores; the data are
found through ``BAYESCALE_DATA``, e.g. ``export BAYESCALE_DATA=../shared/data``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators.groups import fit_groups


def main(args: argparse.Namespace) -> dict:
    runs = load_runs("gadre2024", group="all")
    result = fit_groups(runs, method="bayes", pool=True, seed=args.seed,
                        chains=args.num_chains, warmup=args.num_warmup, draws=args.num_samples)
    shrink = result.shrinkage()
    loo = result.loo_comparison()
    table = result.table()
    print(f"{len(runs)} runs of Gadre et al. (2024) on {len(result.fits)} corpora: "
          f"{', '.join(result.fits)}")
    print("\nexponents with and without pooling (median, 90% interval):")
    print(shrink.round(3).to_string())
    pop = result.info["pooled"]["population"]
    print("\npopulation: " + ", ".join(f"{k} {v['median']:.3f} [{v['lower']:.3f}, "
                                       f"{v['upper']:.3f}]" for k, v in pop.items()))
    print(f"PSIS-LOO, pooled minus separate: {loo['difference']:+.1f} nats "
          f"(se {loo['difference_se']:.1f})")
    budget = result.reference_budget
    print(f"\nN_opt at {budget:.3g} FLOPs (pooled, median and 90% interval):")
    for corpus, row in table.iterrows():
        print(f"  {corpus:>10}: {row['N_opt'] / 1e9:.0f}B [{row['N_opt_lower'] / 1e9:.0f}B, "
              f"{row['N_opt_upper'] / 1e9:.0f}B]")
    return {"shrinkage": shrink, "loo": loo, "table": table,
            "mean_width_ratio": float(np.mean(shrink["width_ratio"])),
            "retry": result.info["pooled"]["settings"].get("retry") is not None}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
