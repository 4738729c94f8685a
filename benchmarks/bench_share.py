"""How much of a law's miss beyond the data do two held-out runs share? The evidence behind
``bayescale.planning.design.SHARE``.

Run ``python benchmarks/bench_share.py``; writes ``benchmarks/results/share.json``.

For the ten registered sweeps of ``bench_backtest.py`` (the same coarse-grid Huber refits;
the Chinchilla law, or with ``--own-law`` each sweep's own law where it has one:
data_constrained's repeated-data law and the Farseer law), :func:`bayescale.estimators.extrapolation.lfo_misses` refits the
law without the top 1, 2 and 3 compute budgets and records each held-out run's miss ``r``
(log loss) at ``d`` decades beyond the refit's runs. The design's error model says a run's
miss is ``d (b + tau z)``; its miss per decade is ``u = r / d``. Within each refit this
takes the held-out runs at least 0.1 decades out and pairs the nearest with the farthest
(at least 0.05 decades apart), and reports the correlation of their ``u`` over all such
pairs, raw and after removing each sweep's mean ``u`` (its drift ``b``): under full sharing
(one ``z`` for every run) both would be near 1, up to the noise ``s / d`` of the near run.
The within-sweep correlation is also reported with each sweep left out in turn.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from bayescale import load_runs
from bayescale.estimators import extrapolation as ex
from bayescale.io import atomic_write, dumps_json
from bayescale.laws.registry import get_law

HERE = Path(__file__).resolve().parent
CASES = [("chinchilla", None), ("data_constrained", None), ("farseer", None), ("misfitting", None),
         ("marin_isoflop", "comma"), ("marin_isoflop", "dclm"), ("marin_isoflop", "nemotron"),
         ("gadre2024", "C4"), ("gadre2024", "RedPajama"), ("gadre2024", "RefinedWeb")]
OWN_LAW = {"data_constrained": "data_constrained", "farseer": "farseer"}


def pairs_of(misses, min_d=0.1, min_gap=0.05):
    r, d, cut, s = (np.asarray(getattr(misses, k)) for k in ("r", "d", "cut", "s"))
    keep = d >= min_d
    r, d, cut, s = r[keep], d[keep], cut[keep], s[keep]
    out = []
    for c in np.unique(cut):
        k = cut == c
        if k.sum() < 2:
            continue
        near, far = np.argmin(d[k]), np.argmax(d[k])
        if d[k][far] - d[k][near] >= min_gap:
            out.append({"cut": int(c), "u_near": float(r[k][near] / d[k][near]),
                        "u_far": float(r[k][far] / d[k][far]),
                        "d_near": float(d[k][near]), "d_far": float(d[k][far]),
                        "noise_near": float(s[k][near] / d[k][near])})
    return out


def within_sweep_corr(P, names):
    """Correlation of the two columns of ``P`` after removing each sweep's mean."""
    Q = P.copy()
    for name in set(names):
        k = np.asarray(names) == name
        Q[k] -= Q[k].mean(axis=0)
    return float(np.corrcoef(Q.T)[0, 1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--own-law", action="store_true",
                    help="fit data_constrained and farseer with their own laws")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    rows = []
    for name, group in CASES:
        law = get_law(OWN_LAW.get(name, "chinchilla") if args.own_law else "chinchilla")
        runs = load_runs(name, group=group) if group else load_runs(name)
        for p in pairs_of(ex.lfo_misses(runs, law)):
            rows.append({"dataset": name if group is None else f"{name}/{group}",
                         "law": law.name, **p})
    P = np.array([[r["u_near"], r["u_far"]] for r in rows])
    names = [r["dataset"] for r in rows]
    drop = {n: within_sweep_corr(P[np.asarray(names) != n],
                                 [m for m in names if m != n]) for n in sorted(set(names))}
    out = {"own_law": args.own_law, "pairs": rows, "num_pairs": len(rows),
           "corr_raw": float(np.corrcoef(P.T)[0, 1]),
           "corr_within_sweep": within_sweep_corr(P, names),
           "corr_within_sweep_drop_one": drop,
           # how much of the near run's spread the noise alone explains (per decade)
           "noise_near_rms": float(np.sqrt(np.mean([r["noise_near"] ** 2 for r in rows]))),
           "sd_u_near_within": float(np.std(P[:, 0] - [P[np.asarray(names) == n, 0].mean()
                                                        for n in names])),
           "seconds": time.perf_counter() - t0}
    stem = "share_own_law" if args.own_law else "share"
    atomic_write(HERE / "results" / f"{stem}.json",
                 lambda tmp: Path(tmp).write_text(dumps_json(out, indent=1) + "\n"))
    print(f"{len(rows)} refits: corr(u_near, u_far) {out['corr_raw']:+.2f} raw, "
          f"{out['corr_within_sweep']:+.2f} within sweeps; leaving one sweep out "
          f"{min(drop.values()):+.2f} to {max(drop.values()):+.2f}; the near run's miss per "
          f"decade: sd {out['sd_u_near_within']:.3f} within sweeps, of which noise "
          f"{out['noise_near_rms']:.3f} rms "
          f"({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
