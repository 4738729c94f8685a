"""Candidate runs for experiment design (:func:`bayescale.planning.design.next_runs`): a
table of ``(N, D[, U])`` read and checked (:func:`candidate_frame`), their cost
(:func:`candidate_costs`) and the default grid around the data and toward ``C*``
(:func:`default_candidates`)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.data.validate import PLAUSIBLE
from bayescale.errors import BayescaleError, DataWarning
from bayescale.planning.costs import get_cost

__all__ = ["candidate_frame", "candidate_costs", "default_candidates", "decades_below"]


def candidate_frame(candidates, law, what: str = "candidates") -> pd.DataFrame:
    """The candidate runs (a table, or a CSV path) as a frame of positive, finite ``N``,
    ``D`` (and ``U`` for a law that takes it), from the columns or their aliases; ``what``
    names the table in errors (``"targets"`` for a target region)."""
    if isinstance(candidates, (str, os.PathLike)):
        try:
            candidates = pd.read_csv(candidates)
        except (OSError, ValueError) as exc:
            raise BayescaleError(f"{what} {str(candidates)!r} could not be read as a CSV: "
                                 f"{exc}") from None
    frame = pd.DataFrame(candidates)
    cols = {c.lower(): c for c in map(str, frame.columns)}
    need = ["N", "D"] + (["U"] if "U" in law.inputs else [])
    aliases = {"N": ("n", "params"), "D": ("d", "tokens"), "U": ("u", "unique_tokens")}
    out = {}
    for key in need:
        found = [cols[a] for a in aliases[key] if a in cols]
        if not found:
            raise BayescaleError(f"{what} need columns {need} for the {law.name} law; "
                                 f"found {list(frame.columns)}.")
        out[key] = pd.to_numeric(frame[found[0]], errors="coerce").to_numpy(float)
    out = pd.DataFrame(out)
    if len(out) == 0:
        raise BayescaleError(f"{what} has no rows: give at least one point ({', '.join(need)}).")
    bad = ~np.all(np.isfinite(out.to_numpy()) & (out.to_numpy() > 0), axis=1)
    if bad.any():
        raise BayescaleError(f"{what} must be a non-empty table of positive, finite "
                             f"{', '.join(need)}; rows {np.flatnonzero(bad)[:5].tolist()} are not.")
    small = (out.N.to_numpy() < PLAUSIBLE["N_min"]) | (out.D.to_numpy() < PLAUSIBLE["D_min"])
    if small.any():
        warnings.warn(DataWarning(
            f"{what} rows {np.flatnonzero(small)[:8].tolist()} have N below "
            f"{PLAUSIBLE['N_min']:.0e} parameters or D below {PLAUSIBLE['D_min']:.0e} tokens "
            f"(smallest N {out.N.min():.4g}, D {out.D.min():.4g}): are they in millions or "
            f"billions? N and D are counts (70B parameters = 7e10)."), stacklevel=3)
    return out


def decades_below(N_fit, D_fit, N, D) -> np.ndarray:
    """Decades of each point ``(N, D)`` below the fitted runs: ``max(0, log10 min N_fit -
    log10 N, log10 min D_fit - log10 D)``. The law is no better checked below the data
    than beyond it; the design gives such a run the extrapolation error's variance at this
    distance as its own, independent error (:func:`.design_noise.candidate_noise`), not the
    shared discrepancy beyond the data (which drifts one way as runs grow)."""
    N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
    below = np.maximum(np.log10(np.min(np.asarray(N_fit, float))) - np.log10(N),
                       np.log10(np.min(np.asarray(D_fit, float))) - np.log10(D))
    return np.maximum(below, 0.0)


def candidate_costs(cost_model, frame) -> np.ndarray:
    """FLOPs of each run, in float64 (the cost models are JAX functions)."""
    with jax.enable_x64(True):
        return np.asarray(cost_model(jnp.asarray(frame.N.to_numpy(float)),
                                     jnp.asarray(frame.D.to_numpy(float))), float)


def checked_costs(cost_model, frame) -> np.ndarray:
    """:func:`candidate_costs`, refusing candidates the cost model cannot price: a cost that
    is not a finite positive number (the non-embedding cost of a model smaller than its
    embedding table is negative or NaN) would pass the budget test and be proposed."""
    costs = candidate_costs(cost_model, frame)
    bad = np.flatnonzero(~(np.isfinite(costs) & (costs > 0)))
    if bad.size:
        rows = ", ".join(f"{i} (N={frame.N.iloc[i]:.3g}, D={frame.D.iloc[i]:.3g})"
                         for i in bad[:5]) + (" ..." if bad.size > 5 else "")
        name = getattr(cost_model, "name", "the cost model")
        raise BayescaleError(
            f"{bad.size} candidate(s) have no finite positive cost under the {name!r} cost "
            f"(rows {rows}); for the non-embedding cost N must exceed the embedding "
            f"parameters. Drop those rows or choose another cost.")
    return costs


def default_candidates(fit, target_budget: float, experiment_budget: float, *,
                       unique_tokens: float | None = None, cost: Any = "train",
                       num: int = 48) -> pd.DataFrame:
    """A ``num x num`` log-spaced grid of ``(N, D)`` from the smallest run's ``N`` and
    ``D`` to twice the larger of the runs' largest and the median compute-optimal
    ``N_opt(C*)``, ``D_opt(C*)``, keeping the points that cost at most ``experiment_budget``
    and whose tokens per parameter ``D / N`` lie within the runs' range widened by 2x each
    way (a 200B-parameter model on 1B tokens is not a run anyone trains, and the law is no
    better checked at shapes unlike the data's than beyond it)."""
    runs = fit.runs
    f = fit.frontier([target_budget], cost=cost, unique_tokens=unique_tokens)
    n_hi = max(runs.N.max(), float(np.median(f.N_opt))) * 2
    d_hi = max(runs.D.max(), float(np.median(f.D_opt))) * 2
    # not below the data: the law is no better checked there than beyond it
    N, D = np.meshgrid(np.geomspace(runs.N.min(), n_hi, num),
                       np.geomspace(runs.D.min(), d_hi, num), indexing="ij")
    grid = pd.DataFrame({"N": N.ravel(), "D": D.ravel()})
    if unique_tokens is not None:
        grid["U"] = float(unique_tokens)
    c = candidate_costs(get_cost(cost), grid)
    ratio, runs_ratio = grid.D / grid.N, np.asarray(runs.D, float) / np.asarray(runs.N, float)
    # the grid's cheapest corner (smallest N, smallest D) always has a shape within the
    # runs' range (between the shapes of the runs holding those minima), so with a cost
    # that grows with N and D the filter never removes every affordable point
    shape = (ratio >= runs_ratio.min() / 2) & (ratio <= runs_ratio.max() * 2)
    return grid[(c <= experiment_budget) & shape].reset_index(drop=True)
