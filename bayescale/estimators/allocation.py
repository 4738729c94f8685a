"""Fits of the allocation itself: ``N_opt = G_N C**a`` and ``D_opt = G_D C**b``.

Hoffmann et al. (2022) estimated the compute-optimal allocation three ways. Approach 3
fits the loss law (:class:`~bayescale.estimators.fit.ScalingFit`); Approaches 1 (the
lower envelope of training curves, :mod:`bayescale.estimators.envelope`) and 2
(parabolas through isoFLOP profiles, :mod:`bayescale.estimators.isoflop`) fit the two
power laws of the allocation directly and never see a loss law. Their result is an
:class:`AllocationFit`: the same interface as ``ScalingFit`` (``draws``,
``point_estimate``, ``intervals``, ``summary``, ``to_dict``, ``frontier``) so that the
frontier, ``decide`` and the comparison of approaches take either.

The parameters are kept in logs with ``C`` in FLOPs: ``log N_opt = log_G_N + a log C``.
An allocation fit predicts no loss: ``frontier`` returns ``L_opt = NaN`` and
``predict`` raises.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Section 3 and Table 2.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayescale._util import (as_budgets, check_level, column_intervals, estimate_table,
                             intervals_json, to_jsonable)
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError

__all__ = ["AllocationParams", "AllocationFit", "allocation_at"]


class AllocationParams(NamedTuple):
    """``log N_opt = log_G_N + a log C`` and ``log D_opt = log_G_D + b log C`` (natural
    logs, ``C`` in FLOPs). Scalars for a point estimate, arrays ``(draw,)`` otherwise."""

    a: Any
    b: Any
    log_G_N: Any
    log_G_D: Any


def allocation_at(params: AllocationParams, budgets) -> tuple[np.ndarray, np.ndarray]:
    """``N_opt, D_opt`` of every draw at every budget: arrays ``[draws x budgets]``."""
    log_C = np.log(as_budgets(budgets))
    cols = [np.atleast_1d(np.asarray(v, dtype=float))[:, None] for v in params]
    a, b, gn, gd = cols
    return np.exp(gn + a * log_C), np.exp(gd + b * log_C)


@dataclasses.dataclass(frozen=True, eq=False)
class AllocationFit:
    """The result of an allocation fit (Approach 1 or 2).

    Attributes
    ----------
    method : ``"isoflop"`` (Approach 2) or ``"envelope"`` (Approach 1).
    params : :class:`AllocationParams` (scalars, or arrays over draws).
    runs : the runs fitted.
    level : default interval level.
    info : estimator details (per-budget minimisers, flagged budgets, settings, timing).
    reference : the point estimate on all the data, shown beside the draws, or ``None``.
    """

    method: str
    params: AllocationParams
    runs: Runs | None
    level: float = 0.9
    info: dict = dataclasses.field(default_factory=dict)
    reference: AllocationParams | None = None
    idata: Any = None
    diagnostics: Any = None

    law = None  # an allocation fit has no loss law

    @property
    def param_names(self) -> tuple[str, ...]:
        return ("a", "b")

    @property
    def is_point(self) -> bool:
        return np.ndim(self.params.a) == 0

    @property
    def num_draws(self) -> int:
        return 1 if self.is_point else int(np.shape(self.params.a)[0])

    def draws(self) -> pd.DataFrame:
        """``a, b, log_G_N, log_G_D`` per draw (one row for a point estimate)."""
        return pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=float))
                             for k, v in self.params._asdict().items()})

    def point_estimate(self) -> dict[str, float]:
        """The point estimate (the reference fit when there is one), else the median."""
        if self.reference is not None:
            return {k: float(v) for k, v in self.reference._asdict().items()}
        d = self.draws()
        return {k: float(np.median(d[k])) for k in d.columns}

    def intervals(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Central intervals at ``level`` over draws (empty for a point estimate)."""
        if self.is_point:
            return {}
        return column_intervals(self.draws(), self.level if level is None else level)

    def summary(self, level: float | None = None) -> pd.DataFrame:
        """One row per parameter: estimate, and for draws the interval and sd."""
        level = self.level if level is None else check_level(level)
        if self.is_point:
            return estimate_table(self.point_estimate())
        return estimate_table(self.point_estimate(), self.draws(), self.intervals(level), level)

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """JSON-ready: method, n_runs, ``params`` (a, b, log_G_N, log_G_D), ``intervals``
        and the estimator's info (per-budget minimisers, flagged budgets)."""
        level = self.level if level is None else check_level(level)
        out: dict[str, Any] = {
            "method": self.method,
            "law": None,
            "n_runs": 0 if self.runs is None else len(self.runs),
            "params": self.point_estimate(),
            "data": {} if self.runs is None else self.runs.describe(),
        }
        if not self.is_point:
            out["level"] = level
            out["num_draws"] = self.num_draws
            out["intervals"] = intervals_json(self.intervals(level))
        out.update({k: v for k, v in self.info.items() if k not in out})
        return to_jsonable(out)

    def frontier(self, budgets, *, cost: Any = "train", **kwargs):
        """``N_opt, D_opt`` at each budget for every draw, as a
        :class:`~bayescale.planning._common.Frontier` with ``L_opt = NaN`` (an
        allocation fit has no loss law). Only the training cost the runs were
        budgeted with (``6 N D``) applies."""
        from bayescale.planning._common import Frontier, extrapolation

        if cost != "train" or kwargs.get("unique_tokens") is not None:
            raise BayescaleError(
                f"a {self.method} fit estimates N_opt(C) and D_opt(C) for the training cost "
                f"of its runs only; a different cost model or unique-token budget needs a "
                f"loss law (method='bayes', 'huber' or 'bootstrap').")
        C = as_budgets(budgets)
        N, D = allocation_at(self.params, C)
        rng = None if self.runs is None else (float(self.runs.C.min()), float(self.runs.C.max()))
        return Frontier(N_opt=N, D_opt=D, L_opt=np.full_like(N, np.nan),
                        tokens_per_param=D / N, budgets=C,
                        converged=np.isfinite(N) & np.isfinite(D),
                        extrapolation=extrapolation(C, rng))

    def predict(self, *args, **kwargs):
        raise BayescaleError(
            f"a {self.method} fit (Hoffmann's Approach {1 if self.method == 'envelope' else 2}) "
            f"estimates the allocation, not the loss; fit a loss law (method='bayes', "
            f"'huber' or 'bootstrap') to predict losses.")
