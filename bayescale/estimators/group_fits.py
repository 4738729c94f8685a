"""The result of fitting groups side by side: :class:`GroupFits`.

One fit per group (:func:`bayescale.estimators.groups.fit_groups`), its side-by-side
:meth:`GroupFits.table`, and, for the hierarchical model (``pool=True``), the
fits without pooling beside the pooled ones: :meth:`GroupFits.shrinkage` (each group's
exponents with and without pooling, and how much narrower pooling made them) and
:meth:`GroupFits.loo_comparison` (PSIS-LOO of the pooled against the separate fits, on
the same runs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from bayescale._util import check_level, to_jsonable
from bayescale.errors import BayescaleError

__all__ = ["GroupFits"]


@dataclasses.dataclass(frozen=True, eq=False)
class GroupFits:
    """Fits of one method to each group of a set of runs.

    Attributes
    ----------
    fits : ``{group label (str): ScalingFit or AllocationFit}``, in the order the groups
        first appear in the runs.
    method : the estimator used for every group.
    level : default interval level.
    reference_budget : the compute (FLOPs) at which :meth:`table` gives ``N_opt``
        (default 100 times the largest run over all groups: the same budget for every
        group, so their ``N_opt`` compare).
    info : timings (``seconds`` per group) and settings; for a pooled fit,
        ``info["pooled"]`` (the hierarchical model's settings, population parameters and
        diagnostics).
    separate : for a pooled fit (``pool=True``), the fits of each group on its own, else
        ``None``.
    """

    fits: dict[str, Any]
    method: str
    level: float
    reference_budget: float
    info: dict = dataclasses.field(default_factory=dict)
    separate: dict[str, Any] | None = None

    @property
    def pooled(self) -> bool:
        """Whether :attr:`fits` come from the hierarchical model."""
        return self.separate is not None

    def shrinkage(self, level: float | None = None) -> pd.DataFrame:
        """Each group's pooled exponents beside its separate ones: one row per (group,
        parameter) with the medians and central intervals of both and
        ``width_ratio`` (pooled width / separate width: below 1 where pooling narrowed
        the interval)."""
        if self.separate is None:
            raise BayescaleError("shrinkage needs a pooled fit (fit_groups(..., pool=True)).")
        level = self.level if level is None else check_level(level)
        rows = []
        for g, pooled_fit in self.fits.items():
            sep = self.separate[g]
            for name in self.info["pooled"]["parameters"]:
                p = np.asarray(getattr(pooled_fit.params, name), dtype=float)
                s = np.asarray(getattr(sep.params, name), dtype=float)
                q = [(1 - level) / 2, 0.5, (1 + level) / 2]
                (plo, pmed, phi), (slo, smed, shi) = np.quantile(p, q), np.quantile(s, q)
                rows.append({"group": g, "parameter": name, "separate": smed,
                             "separate_lower": slo, "separate_upper": shi, "pooled": pmed,
                             "pooled_lower": plo, "pooled_upper": phi,
                             "width_ratio": (phi - plo) / (shi - slo)})
        table = pd.DataFrame(rows).set_index(["group", "parameter"])
        table.attrs.update(level=level)
        return table

    def loo_comparison(self) -> dict[str, float]:
        """PSIS-LOO (Vehtari et al. 2017) of the pooled model against the separate fits on
        the same runs: ``elpd_pooled``, ``elpd_separate`` (summed over groups),
        ``difference`` (pooled - separate) and its standard error from the pointwise
        differences, and ``pareto_k_max`` of each (above 0.7, that model's estimate is
        unreliable: Vehtari et al. 2017)."""
        if self.separate is None:
            raise BayescaleError("loo_comparison needs a pooled fit (fit_groups(..., pool=True)).")
        import warnings

        import arviz as az

        thin = [g for g, f in self.separate.items() if "log_likelihood" not in f.idata.groups()]
        if thin:
            raise BayescaleError(
                f"loo_comparison: the separate fit of group(s) {', '.join(map(str, thin))} "
                f"subsampled its rows (HMCECS), so it has no pointwise log-likelihood to pair "
                f"with the pooled fit's; fit the groups with subsample=None (all rows).")
        with warnings.catch_warnings():
            # ArviZ warns for Pareto k > 0.7; the largest k of each is returned instead.
            warnings.simplefilter("ignore", UserWarning)
            pooled = az.loo(self.info["pooled"]["idata"], pointwise=True)
            seps = [az.loo(f.idata, pointwise=True) for f in self.separate.values()]
        p_i = np.asarray(pooled.loo_i, dtype=float)
        s_i = np.concatenate([np.asarray(s.loo_i, dtype=float) for s in seps])
        diff = p_i - s_i
        return {"elpd_pooled": float(p_i.sum()), "elpd_separate": float(s_i.sum()),
                "difference": float(diff.sum()),
                "difference_se": float(np.sqrt(diff.size * np.var(diff))),
                "pareto_k_max_pooled": float(np.max(pooled.pareto_k)),
                "pareto_k_max_separate": float(max(np.max(s.pareto_k) for s in seps)),
                "n_runs": int(diff.size)}

    def table(self, level: float | None = None) -> pd.DataFrame:
        """One row per group: runs, the key parameters, ``a_opt, b_opt`` (or ``a, b`` for an
        allocation fit) and ``N_opt`` at :attr:`reference_budget`; each with ``_lower`` and
        ``_upper`` columns where the fit has draws (bootstrap, posterior)."""
        level = self.level if level is None else check_level(level)
        rows = {}
        for name, result in self.fits.items():
            est, ivals = result.point_estimate(), result.intervals(level)
            keys = [k for k in ("a", "b") if k in est] or \
                [k for k in ("alpha", "beta", "a_opt", "b_opt", "E") if k in est]
            row: dict[str, Any] = {"n_runs": len(result.runs)}
            for k in keys:
                row[k] = est[k]
                if k in ivals:
                    row[f"{k}_lower"], row[f"{k}_upper"] = ivals[k]
            N = self._N_opt(result)
            if N is not None:
                row["N_opt"] = float(np.median(N))
                if N.size > 1:
                    q = (1 - level) / 2
                    row["N_opt_lower"], row["N_opt_upper"] = (float(v) for v in
                                                              np.quantile(N, [q, 1 - q]))
            rows[name] = row
        table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("group")
        table.attrs.update(level=level, reference_budget=self.reference_budget)
        return table

    def _N_opt(self, result) -> np.ndarray | None:
        try:
            N = np.asarray(result.frontier([self.reference_budget]).N_opt, dtype=float)
        except BayescaleError:  # a law without a compute-optimal frontier
            return None
        N = N.reshape(-1)
        return N[np.isfinite(N)]

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """``{"groups": {group: fit.to_dict()}, "method", "level", "reference_budget",
        "table"}``: each group's object is exactly what one fit emits."""
        level = self.level if level is None else check_level(level)
        table = self.table(level)
        out = {
            "groups": {k: f.to_dict(level) for k, f in self.fits.items()},
            "method": self.method,
            "level": level,
            "reference_budget": self.reference_budget,
            "table": {str(k): {c: v for c, v in row.items() if pd.notna(v)}
                      for k, row in table.to_dict(orient="index").items()},
            "info": {k: v for k, v in self.info.items() if k != "pooled"},
        }
        if self.pooled:
            pooled = {k: v for k, v in self.info["pooled"].items() if k != "idata"}
            out["pooled"] = {
                **pooled,
                "separate": {k: f.to_dict(level) for k, f in self.separate.items()},
                "shrinkage": [{"group": g, "parameter": p, **row} for (g, p), row in
                              self.shrinkage(level).to_dict(orient="index").items()],
                "loo": self.loo_comparison()}
        return to_jsonable(out)
