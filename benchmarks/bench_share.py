"""How much of a law's miss beyond the data do two held-out runs share? The evidence behind
``bayescale.planning.design.SHARE``.

Run ``python benchmarks/bench_share.py``; writes ``benchmarks/results/share.json``.

For the ten registered sweeps of ``bench_backtest.py`` (the Chinchilla law, the same
coarse-grid Huber refits), :func:`bayescale.estimators.extrapolation.lfo_misses` refits the
law without the top 1, 2 and 3 compute budgets and records each held-out run's miss ``r``
(log loss) at ``d`` decades beyond the refit's runs. The design's error model says a run's
miss is ``d (b + tau z)``; its miss per decade is ``u = r / d``. Within each refit this
takes the held-out runs at least 0.1 decades out and pairs the nearest with the farthest
(at least 0.05 decades apart), and reports the correlation of their ``u`` over all such
pairs, raw and after removing each sweep's mean ``u`` (its drift ``b``): under full sharing
(one ``z`` for every run) both would be near 1, up to the noise ``s / d`` of the near run.
"""

from __future__ import annotations

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


def pairs_of(misses, min_d=0.1, min_gap=0.05):
    r, d, cut = (np.asarray(getattr(misses, k)) for k in ("r", "d", "cut"))
    keep = d >= min_d
    r, d, cut = r[keep], d[keep], cut[keep]
    out = []
    for c in np.unique(cut):
        k = cut == c
        if k.sum() < 2:
            continue
        near, far = np.argmin(d[k]), np.argmax(d[k])
        if d[k][far] - d[k][near] >= min_gap:
            out.append({"cut": int(c), "u_near": float(r[k][near] / d[k][near]),
                        "u_far": float(r[k][far] / d[k][far]),
                        "d_near": float(d[k][near]), "d_far": float(d[k][far])})
    return out


def main():
    warnings.simplefilter("ignore")
    law = get_law("chinchilla")
    t0 = time.perf_counter()
    rows = []
    for name, group in CASES:
        runs = load_runs(name, group=group) if group else load_runs(name)
        for p in pairs_of(ex.lfo_misses(runs, law)):
            rows.append({"dataset": name if group is None else f"{name}/{group}", **p})
    P = np.array([[r["u_near"], r["u_far"]] for r in rows])
    Q = P.copy()
    for name in {r["dataset"] for r in rows}:
        k = np.array([r["dataset"] == name for r in rows])
        Q[k] -= Q[k].mean(axis=0)
    out = {"pairs": rows, "num_pairs": len(rows),
           "corr_raw": float(np.corrcoef(P.T)[0, 1]),
           "corr_within_sweep": float(np.corrcoef(Q.T)[0, 1]),
           "seconds": time.perf_counter() - t0}
    atomic_write(HERE / "results" / "share.json",
                 lambda tmp: Path(tmp).write_text(dumps_json(out, indent=1) + "\n"))
    print(f"{len(rows)} refits: corr(u_near, u_far) {out['corr_raw']:+.2f} raw, "
          f"{out['corr_within_sweep']:+.2f} within sweeps ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
