"""Rules of thumb for a training plan, and the :class:`Plan` they return.

Both rules spend the whole budget, ``D = C / 6N``:

* ``tokens_20``: 20 tokens per parameter, ``D = 20 N``, ``N = sqrt(C / 120)``
  (Hoffmann et al. 2022, Table 3: 20.2 tokens per parameter for their 67B-1T
  models, the rounded rule widely quoted since).
* ``kaplan_2020``: ``N = 1.3e9 (C / PF-day)**0.73`` with 1 PF-day = 8.64e19 FLOPs,
  Kaplan et al. (2020), Table 6 (``N_e = 1.3e9``, ``p_N = 0.73``; also Fig. 14 and
  eq. 1.7: ``N_opt ~ C_min**0.73``). Kaplan's ``N`` excludes embeddings and their
  budget is ``C_min``; we apply the rule to the law's ``N`` and to ``C`` as is, as
  Hoffmann et al. (2022, Fig. 1) do when they draw it beside their own.

:mod:`bayescale.planning.decisions` evaluates them under the posterior beside the
Bayes-optimal and plug-in plans.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from jax.typing import ArrayLike

from bayescale._util import as_budgets

__all__ = ["Plan", "PF_DAY", "KAPLAN_2020", "RULES", "tokens_20", "kaplan_2020"]

#: One petaflop/s-day in FLOPs (Kaplan et al. 2020, Sec. 1.3).
PF_DAY = 1e15 * 24 * 3600
#: Kaplan et al. (2020), Table 6: ``N_opt = N_e (C_min / PF-day)**p_N``.
KAPLAN_2020 = {"N_e": 1.3e9, "p_N": 0.73}


class Plan(NamedTuple):
    """A training plan per budget: ``N`` parameters on ``D`` tokens, shape ``(budget,)``;
    ``draw`` is the index of the draw whose optimum it is (the plug-in plan), else None."""

    N: np.ndarray
    D: np.ndarray
    converged: np.ndarray | None = None
    draw: np.ndarray | None = None


def tokens_20(budgets: ArrayLike) -> Plan:
    """20 tokens per parameter on ``6 N D = C``: ``N = sqrt(C / 120)`` (Hoffmann et al. 2022)."""
    C = as_budgets(budgets)
    N = np.sqrt(C / 120.0)
    return Plan(N, C / (6.0 * N))


def kaplan_2020(budgets: ArrayLike) -> Plan:
    """Kaplan et al. (2020), Table 6: ``N = 1.3e9 (C / 8.64e19)**0.73``, ``D = C / 6N``."""
    C = as_budgets(budgets)
    N = KAPLAN_2020["N_e"] * (C / PF_DAY) ** KAPLAN_2020["p_N"]
    return Plan(N, C / (6.0 * N))


RULES: dict[str, Callable[[ArrayLike], Plan]] = {"tokens_20": tokens_20,
                                                 "kaplan_2020": kaplan_2020}
