"""The loop the design benchmarks share (``bench_design.py``, ``bench_design_nopt.py``): a
dataset's pool and target, the batched Huber refits and bootstrap resamples of every state
(``Problem``), the error model each state would learn from its own runs, the baseline
rules (random, cheapest-first) and the writer of results.

Not a benchmark itself: imported by the two scripts, which put ``benchmarks/`` on the path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.data.runs import load_runs
from bayescale.estimators import extrapolation
from bayescale.estimators.huber import DELTA, huber_solve
from bayescale.io import atomic_write, dumps_json
from bayescale.laws.base import log_loss_theta
from bayescale.laws.registry import get_law
from bayescale.planning.design import SHARE
from bayescale.planning.design_noise import effective_noise


def parse_case(case):
    """``NAME[/GROUP][@topK]`` -> (name, group, K): ``@topK`` holds out the top K compute
    budgets (``extrapolation.budgets`` of 6ND, as ``backtest(holdout="top-budgets:K")``) as
    the target and makes the rest the pool; without it the published train/test split."""
    case, _, top = case.partition("@")
    name, _, group = case.partition("/")
    if top and not (top.startswith("top") and top[3:].isdigit() and int(top[3:]) >= 1):
        raise SystemExit(f"--datasets: {case}@{top}: the hold-out is '@topK' with K >= 1")
    return name, group or None, int(top[3:]) if top else None


def load_case(case):
    """The pool and the target runs of ``case`` (:func:`parse_case`)."""
    name, group, top = parse_case(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if top is None:
            return load_runs(name, split="train", group=group), load_runs(name, split="test",
                                                                          group=group)
        runs = load_runs(name, group=group) if group else load_runs(name)
    labels = extrapolation.budgets(6.0 * np.asarray(runs.N, float) * np.asarray(runs.D, float))
    held = labels > labels.max() - top
    if held.all() or (~held).sum() < 5:
        raise SystemExit(f"--datasets {case}: holding out the top {top} of {labels.max() + 1} "
                         f"compute budgets leaves {(~held).sum()} runs to choose from; "
                         f"at least 5 are needed")
    return runs.resample(np.flatnonzero(~held)), runs.resample(np.flatnonzero(held))


class Problem:
    """Pool, target and the batched fitting programs of one dataset."""

    def __init__(self, name, law_name, resamples, seed, shrink=0.0, prior=None):
        self.name, self.law = name, get_law(law_name)
        self.shrink = float(shrink)
        self.pool, self.test = load_case(name)
        self.X = extrapolation.log_X(self.law, self.pool)
        self.y = np.asarray(self.pool.log_loss, float)
        self.Xt = extrapolation.log_X(self.law, self.test)
        self.cost = 6.0 * self.pool.N * self.pool.D
        self.starts = extrapolation.coarse_starts(self.law)
        self.B = resamples
        self.rng = np.random.default_rng(seed)
        self.prior = extrapolation.check_prior(prior)
        self.share = SHARE
        self.model = extrapolation.posterior(extrapolation.Misses.empty(), self.prior)
        self.tau = self.model.slope_moments()[1]  # as next_runs: sd of the miss per decade

    def _solve(self, x0, w, max_iter):
        with jax.enable_x64(True):
            res = huber_solve(jnp.asarray(x0), jnp.asarray(w), jnp.asarray(self.X),
                              jnp.asarray(self.y), delta=DELTA, max_iter=max_iter,
                              num_slots=min(512, x0.shape[0]), ftol=1e-12, law=self.law,
                              shrink=self.shrink if self.shrink > 0 else None)
            fun = np.asarray(res.fun)
            return np.asarray(res.x), np.where(np.isfinite(fun), fun, np.inf)

    def fit(self, masks, prev=None):
        """Huber fit per mask (m, n) and ``B`` bootstrap resamples of each: ``(theta (m, k),
        draws (m, B, k))``. Starts: every 6th of the coarse grid, or, once there is a
        previous fit, it plus 8 of them (warm starts: the sets grow by a few runs a round)."""
        m, n = masks.shape
        starts = self.starts[::6] if prev is None else self.starts[::max(1, len(self.starts) // 8)][:8]
        x0 = np.concatenate([np.broadcast_to(starts, (m,) + starts.shape),
                             *([] if prev is None else [prev[:, None, :]])], axis=1)
        k = x0.shape[1]
        x, fun = self._solve(x0.reshape(m * k, -1), np.repeat(masks.astype(float), k, axis=0), 200)
        x, fun = x.reshape(m, k, -1), fun.reshape(m, k)
        theta = x[np.arange(m), np.argmin(fun, axis=1)]
        return theta, self.resample(masks, theta)

    def resample(self, masks, theta):
        """``B`` bootstrap refits of each mask's rows, warm-started at ``theta``: (m, B, k)."""
        m, n = masks.shape
        w = np.zeros((m, self.B, n))
        for i in range(m):
            idx = np.flatnonzero(masks[i])
            pick = self.rng.choice(idx, (self.B, idx.size))
            for b in range(self.B):
                np.add.at(w[i, b], pick[b], 1.0)
        draws, _ = self._solve(np.repeat(theta, self.B, axis=0), w.reshape(m * self.B, n), 100)
        return draws.reshape(m, self.B, -1)

    def lfo_models(self, events, net=False):
        """The extrapolation-error model each scored state would get from its own runs, as
        ``ScalingFit.predict`` builds it by default (``extrapolation.estimate``: refits
        without the top 1-3 compute budgets of the selected runs, their misses, the grid
        posterior under ``self.prior``), with every state's refits in one batched solve
        warm-started at the state's fit. ``events``: ``(mask, theta)`` pairs."""
        ex = extrapolation
        masks, owner, cut_of = [], [], []
        for i, (mask, _) in enumerate(events):
            idx = np.flatnonzero(mask)
            labels = ex.budgets(self.cost[idx])
            top = int(labels.max())
            for k in range(1, ex.MAX_CUTS + 1):  # lfo_misses' rule for which cuts to make
                keep = labels <= top - k
                if top + 1 - k >= 3 and keep.sum() >= 10:
                    m = np.zeros(len(self.cost), bool)
                    m[idx[keep]] = True
                    masks.append(m)
                    owner.append(i)
                    cut_of.append(k)
        models = [self.model] * len(events)  # fewer than 4 budgets: the prior, as estimate()
        if not masks:
            return models
        masks = np.stack(masks)
        starts = self.starts[::max(1, len(self.starts) // 8)][:8]
        warm = np.stack([events[i][1] for i in owner])
        x0 = np.concatenate([np.broadcast_to(starts, (len(masks),) + starts.shape),
                             warm[:, None, :]], axis=1)
        k = x0.shape[1]
        x, fun = self._solve(x0.reshape(len(masks) * k, -1), np.repeat(masks.astype(float), k, 0), 200)
        x, fun = x.reshape(len(masks), k, -1), fun.reshape(len(masks), k)
        thetas = x[np.arange(len(masks)), np.argmin(fun, axis=1)]
        resid = self.y[None, :] - self.mu(thetas, self.X)                  # (cuts, n)
        spread = np.zeros_like(resid)
        if net:  # each refit's own parametric spread at every run: B bootstrap refits
            for lo in range(0, len(masks), 64):
                dr = self.resample(masks[lo:lo + 64], thetas[lo:lo + 64])
                for j, drj in enumerate(dr, start=lo):
                    q = np.nanquantile(self.mu(drj[np.all(np.isfinite(drj), 1)], self.X),
                                       [0.05, 0.95], axis=0)
                    spread[j] = (q[1] - q[0]) / (2 * 1.6449)  # sd of a normal, from the 90% band
        parts = {}
        for j, (i, cut) in enumerate(zip(owner, cut_of)):
            held = events[i][0] & ~masks[j]
            d = ex.decades_beyond(self.pool.N[masks[j]], self.pool.D[masks[j]],
                                  self.pool.N[held], self.pool.D[held])
            s_ = np.hypot(ex.robust_scale(resid[j, masks[j]]), spread[j, held])
            parts.setdefault(i, []).append(ex.Misses(resid[j, held], d, s_, np.full(held.sum(), cut)))
        for i, ps in parts.items():
            models[i] = ex.posterior(ex.Misses.concat(ps), self.prior)
        return models

    def mu(self, theta, X):
        with jax.enable_x64(True):
            return np.asarray(log_loss_theta(self.law, jnp.asarray(theta), jnp.asarray(X)))

    def sigma(self, theta, mask, draws):
        """The noise a new run is measured with, as ``next_runs``
        (:func:`bayescale.planning.design_noise.effective_noise`): the residual scale of
        ``theta`` on the selected runs, or the noise the draws' spread implies if larger
        (floor 1e-3 here, 1e-4 in the library)."""
        residual = extrapolation.robust_scale(self.y[mask] - self.mu(theta, self.X[mask]))
        return effective_noise(residual, self.mu(draws, self.X[mask]), draws.shape[1],
                               floor=1e-3)  # the pools hold at most 400 runs: all of them


# -- the baseline rules: each returns the pool indices to add, within ``remaining`` FLOPs

def rule_random(prob, mask, theta, draws, remaining, batch, rng=None):
    order = rng.permutation(len(prob.cost))
    picks = []
    for c in order:
        if not mask[c] and prob.cost[c] <= remaining and len(picks) < batch:
            picks.append(int(c))
            remaining -= prob.cost[c]
    return picks


def rule_cheapest(prob, mask, theta, draws, remaining, batch):
    picks = []
    for c in np.argsort(prob.cost):
        if not mask[c] and prob.cost[c] <= remaining and len(picks) < batch:
            picks.append(int(c))
            remaining -= prob.cost[c]
    return picks


def save_and_print(out, folder, stem, figure_fn, rules, fractions, head, cell, figure_name=None):
    """Write ``STEM.json`` atomically, draw the figure, print one table per dataset (a
    row per rule, a cell per fraction of the pool): shared by the design benchmarks."""
    atomic_write(folder / f"{stem}.json",
                 lambda tmp: Path(tmp).write_text(dumps_json(out, indent=1) + "\n"))
    figure_fn(out["datasets"], folder / (figure_name or f"{stem}.png"))
    for name, res in out["datasets"].items():
        print("\n" + head(name, res))
        for rule in rules:
            cells = [cell(res["rules"][rule][f"{f:g}"]) for f in fractions]
            print(f"  {rule:>15}: " + "   ".join(cells))
    print(f"total {out['seconds']:.0f} s")
