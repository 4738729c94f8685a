"""Synthetic training runs (as a DataFrame) drawn from a known law, with an Epoch/Chinchilla-like design.

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
:data:`bayescale.laws.chinchilla.BESIROGLU_2024`, evaluated on ``load_runs("chinchilla",
exclude_top=5)``): mean 0.0003, sd 0.0075, MAD-based sd 0.0049, 99th percentile of
``|residual|`` 0.030. That is less than the ~0.01-0.03 one might guess; the real
residuals are heavier-tailed than normal, which the default Student-t likelihood
allows for.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import HOFFMANN_2022, LAW, LawParams, log_loss

__all__ = ["simulate_frame", "optimal_N", "DEFAULT_BUDGETS", "DEFAULT_NOISE", "SPAN"]

DEFAULT_BUDGETS = np.geomspace(6e18, 3e21, 9)
DEFAULT_NOISE = 0.0075
SPAN = 4.0  # model sizes from N_opt / SPAN to N_opt * SPAN at each budget


def optimal_N(params: LawParams, C: np.ndarray) -> np.ndarray:
    """Compute-optimal model size under ``C = 6 N D`` (Hoffmann et al. 2022, eq. 4),
    from the Chinchilla law's closed form (float64)."""
    with jax.enable_x64(True):
        theta = LAW.to_theta(LawParams(*(np.float64(v) for v in params)))
        log_C = jnp.log(jnp.asarray(C, dtype=jnp.float64))
        x, _ = LAW.closed_form(theta, log_C)
        return np.exp(np.asarray(x, dtype=np.float64))


def _log_law(params: LawParams, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(log_loss(LawParams(*(np.float64(v) for v in params)), N, D),
                          dtype=np.float64)


def simulate_frame(
    params: LawParams = HOFFMANN_2022,
    *,
    budgets: np.ndarray = DEFAULT_BUDGETS,
    models_per_budget: int = 10,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    offset: float = 0.0,
) -> pd.DataFrame:
    """The runs of :func:`simulate_runs` as a DataFrame with columns N, D, C, loss
    (what ``load_runs("synthetic")`` reads;
    :func:`bayescale.data.simulate.simulate_runs` validates them into ``Runs``).

    ``offset``: decades by which every budget's grid of model sizes is centred away from
    its compute-optimal N (0: centred; 0.3: centred on 2 N_opt), for studying the bias of
    Approach 2 on off-centre isoFLOP grids."""
    params = LawParams(*(float(v) for v in params))
    rng = np.random.default_rng(seed)
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    offsets = np.geomspace(1.0 / SPAN, SPAN, int(models_per_budget))
    C = np.repeat(budgets, int(models_per_budget))
    N = (optimal_N(params, budgets)[:, None] * 10.0 ** float(offset) * offsets[None, :]).reshape(-1)
    D = C / (6.0 * N)
    log_loss = _log_law(params, N, D) + float(noise) * rng.standard_normal(N.shape)
    return pd.DataFrame({"N": N, "D": D, "C": C, "loss": np.exp(log_loss)})
