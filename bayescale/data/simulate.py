"""Synthetic :class:`~bayescale.data.runs.Runs` from a known law, validated like user data.

The design and the noise model are those of :mod:`bayescale.data.synthetic`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayescale.data.runs import Runs, load_runs
from bayescale.data.synthetic import DEFAULT_BUDGETS, DEFAULT_NOISE, simulate_frame
from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import HOFFMANN_2022, LawParams

__all__ = ["simulate_runs"]


def simulate_runs(
    params: LawParams = HOFFMANN_2022,
    *,
    budgets: np.ndarray = DEFAULT_BUDGETS,
    models_per_budget: int = 10,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    offset: float = 0.0,
) -> Runs:
    """Draw training runs from a known law along isoFLOP profiles.

    Parameters
    ----------
    params : the true law (default Hoffmann et al. 2022, eq. 10).
    budgets : training budgets C in FLOPs (default 9 log-spaced from 6e18 to 3e21).
    models_per_budget : model sizes per budget, log-spaced over
        ``[N_opt / 4, 4 N_opt]`` around the budget's compute-optimal size.
    noise : standard deviation of the normal noise added to ``log L`` (see module
        docstring for where the default comes from); 0 for noiseless runs.
    seed : seed of ``numpy.random.default_rng``.
    offset : decades by which each budget's grid is centred away from its compute-optimal
        N (default 0: centred on it), e.g. to study Approach 2's bias on off-centre grids.

    Returns
    -------
    Runs
        Validated through :func:`bayescale.data.runs.load_runs`, ``source="synthetic"``,
        ``len(budgets) * models_per_budget`` runs.

    Examples
    --------
    >>> from bayescale.data.simulate import simulate_runs
    >>> runs = simulate_runs(seed=1)
    >>> len(runs), runs.source
    (90, 'synthetic')
    """
    params = LawParams(*(float(v) for v in params))
    if not (params.E > 0 and params.A > 0 and params.B > 0 and params.alpha > 0
            and params.beta > 0):
        raise BayescaleError(f"params must all be positive, got {params}.")
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    if budgets.ndim != 1 or budgets.size < 1 or not np.all(np.isfinite(budgets) & (budgets > 0)):
        raise BayescaleError("budgets must be a non-empty 1-d array of positive FLOP counts.")
    if isinstance(models_per_budget, bool) or int(models_per_budget) != models_per_budget \
            or models_per_budget < 1:
        raise BayescaleError(f"models_per_budget must be a positive integer, got "
                             f"{models_per_budget!r}.")
    noise = float(noise)
    if not (np.isfinite(noise) and noise >= 0):
        raise BayescaleError(f"noise must be a non-negative number, got {noise}.")
    offset = float(offset)
    if not np.isfinite(offset):
        raise BayescaleError(f"offset must be a finite number of decades, got {offset}.")
    frame = simulate_frame(params, budgets=budgets, models_per_budget=models_per_budget,
                           noise=noise, seed=seed, offset=offset)
    runs = load_runs(frame)
    note = f"simulated from {params} with log-normal noise sd {noise:g}, seed {seed}"
    return dataclasses.replace(runs, source="synthetic", notes=runs.notes + (note,))
