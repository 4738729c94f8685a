"""Synthetic training runs drawn from a known law, with an Epoch/Chinchilla-like design.

Used for parameter recovery and simulation-based calibration: nine isoFLOP budgets
from 6e18 to 3e21 FLOPs (the range of Chinchilla's isoFLOP profiles in Hoffmann et
al. 2022, Fig. 3), at each budget ``models_per_budget`` model sizes log-spaced over
a factor of 4 either side of the budget's compute-optimal N (Chinchilla's profiles
span roughly a decade and a half of N per budget), ``D = C / (6 N)``, and
multiplicative log-normal noise on the loss.

Noise
-----
The default ``noise = 0.0075`` is the standard deviation of the log-loss residuals
of Besiroglu et al.'s (2024) fit on their 240 Chinchilla runs (their parameters,
:data:`bayescale.law.BESIROGLU_2024`, evaluated on ``load_runs("chinchilla",
exclude_top=5)``): mean 0.0003, sd 0.0075, MAD-based sd 0.0049, 99th percentile of
``|residual|`` 0.030. That is less than the ~0.01-0.03 one might guess; the real
residuals are heavier-tailed than normal, which the default Student-t likelihood
allows for.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayescale.data import Runs, load_runs
from bayescale.errors import BayescaleError
from bayescale.law import HOFFMANN_2022, LawParams

__all__ = ["simulate_runs", "optimal_N", "DEFAULT_BUDGETS", "DEFAULT_NOISE", "SPAN"]

DEFAULT_BUDGETS = np.geomspace(6e18, 3e21, 9)
DEFAULT_NOISE = 0.0075
SPAN = 4.0  # model sizes from N_opt / SPAN to N_opt * SPAN at each budget


def optimal_N(params: LawParams, C: np.ndarray) -> np.ndarray:
    """Compute-optimal model size under ``C = 6 N D`` (Hoffmann et al. 2022, eq. 4).

    ``N_opt = G (C / 6)**(beta / (alpha + beta))`` with
    ``G = (alpha A / (beta B))**(1 / (alpha + beta))``.
    """
    E, A, B, alpha, beta = (float(v) for v in params)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    return G * (np.asarray(C, dtype=float) / 6.0) ** (beta / (alpha + beta))


def _log_law(params: LawParams, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    E, A, B, alpha, beta = (float(v) for v in params)
    terms = np.stack([np.full_like(N, np.log(E)), np.log(A) - alpha * np.log(N),
                      np.log(B) - beta * np.log(D)])
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).sum(axis=0))


def simulate_runs(
    params: LawParams = HOFFMANN_2022,
    *,
    budgets: np.ndarray = DEFAULT_BUDGETS,
    models_per_budget: int = 10,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
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

    Returns
    -------
    Runs
        Validated through :func:`bayescale.data.load_runs`, ``source="synthetic"``,
        ``len(budgets) * models_per_budget`` runs.

    Examples
    --------
    >>> from bayescale.synthetic import simulate_runs
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
    frame = simulate_frame(params, budgets=budgets, models_per_budget=models_per_budget,
                           noise=noise, seed=seed)
    runs = load_runs(frame)
    note = f"simulated from {params} with log-normal noise sd {noise:g}, seed {seed}"
    return dataclasses.replace(runs, source="synthetic", notes=runs.notes + (note,))


def simulate_frame(
    params: LawParams = HOFFMANN_2022,
    *,
    budgets: np.ndarray = DEFAULT_BUDGETS,
    models_per_budget: int = 10,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
) -> pd.DataFrame:
    """The runs of :func:`simulate_runs` as a DataFrame with columns N, D, C, loss
    (what ``load_runs("synthetic")`` reads)."""
    params = LawParams(*(float(v) for v in params))
    rng = np.random.default_rng(seed)
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    offsets = np.geomspace(1.0 / SPAN, SPAN, int(models_per_budget))
    C = np.repeat(budgets, int(models_per_budget))
    N = (optimal_N(params, budgets)[:, None] * offsets[None, :]).reshape(-1)
    D = C / (6.0 * N)
    log_loss = _log_law(params, N, D) + float(noise) * rng.standard_normal(N.shape)
    return pd.DataFrame({"N": N, "D": D, "C": C, "loss": np.exp(log_loss)})
