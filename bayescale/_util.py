"""Small helpers shared across the package (one implementation each).

* :func:`check_level` — a credible/confidence level in (0, 1);
* :func:`as_budgets` — compute budgets (FLOPs) as a 1-D float array;
* :func:`parse_flops` — a FLOP count written by a person (``"5.76e23"``, ``"1_000"``);
* :func:`to_jsonable` — NumPy scalars/arrays to JSON types, non-finite floats to ``None``;
* :func:`median_interval` — median and central interval over draws (axis 0);
* :func:`column_intervals` — central interval of each column of a frame of draws;
* :func:`estimate_table` — a fit's summary table (estimate, interval, sd per parameter);
* :func:`intervals_json` — intervals as ``{name: {"lower", "upper"}}``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from bayescale.errors import BayescaleError

__all__ = ["check_level", "as_budgets", "parse_flops", "to_jsonable", "median_interval",
           "BUDGET_TOLERANCE"]

# A plan whose 6 N D exceeds the budget by at most this fraction is still assessed at that
# budget (Chinchilla's 70B x 1.4T is 5.88e23 FLOPs, 2% over Gopher's 5.76e23, and is the
# plan everyone compares at that budget); beyond it, the plan is over budget.
BUDGET_TOLERANCE = 0.05


def check_level(level: float, *, name: str = "level") -> float:
    """Return ``level`` as a float if ``0 < level < 1``, else raise ``BayescaleError``."""
    try:
        level = float(level)
    except (TypeError, ValueError):
        level = float("nan")
    if not 0.0 < level < 1.0:
        raise BayescaleError(f"{name} must be between 0 and 1 (e.g. 0.9), got {level}.")
    return level


def as_budgets(budgets) -> np.ndarray:
    """Compute budgets as a non-empty 1-D array of finite positive FLOPs."""
    try:
        C = np.atleast_1d(np.asarray(budgets, dtype=float))
    except (TypeError, ValueError):
        raise BayescaleError(f"budgets must be numbers of FLOPs (e.g. 1e23), got {budgets!r}.") from None
    if C.ndim != 1 or C.size == 0:
        raise BayescaleError(f"budgets must be a number or a 1-D sequence of numbers, got shape {C.shape}.")
    if not np.all(np.isfinite(C) & (C > 0)):
        raise BayescaleError(f"budgets must be finite and positive FLOPs, got {C.tolist()}.")
    return C


def parse_flops(text: str, what: str = "budget") -> float:
    """Parse ``"1e23"``, ``"5.76e23"``, ``"1_000"`` or ``"2.5E+24"`` into a positive float."""
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        raise BayescaleError(
            f"{what} {text!r} is not a number; write it like 1e23 or 5.76e23.") from None
    if not (math.isfinite(value) and value > 0):
        raise BayescaleError(f"{what} must be a finite positive number, got {text!r}.")
    return value


def to_jsonable(obj):
    """NumPy values to plain JSON types, recursively; NaN and infinities become ``None``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    return obj


def median_interval(arr, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and central ``level`` interval of ``arr`` over ``axis``, ignoring NaN.

    Slices that are NaN throughout stay NaN, without NumPy's all-NaN warning.
    """
    level = check_level(level)
    arr = np.asarray(arr, dtype=float)
    q = [0.5, (1 - level) / 2, (1 + level) / 2]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if not np.isfinite(arr).any():
            shape = np.delete(np.array(arr.shape), axis) if arr.ndim else ()
            nan = np.full(tuple(shape), np.nan)
            return nan, nan.copy(), nan.copy()
        med, lo, hi = np.nanquantile(arr, q, axis=axis)
    return med, lo, hi


def column_intervals(frame, level: float) -> dict[str, tuple[float, float]]:
    """Central (equal-tailed) ``level`` interval of each column of a DataFrame of draws,
    ignoring NaN."""
    level = check_level(level)
    q = [(1 - level) / 2, (1 + level) / 2]
    return {k: tuple(float(x) for x in np.nanquantile(frame[k], q)) for k in frame.columns}


def estimate_table(estimates: dict, draws=None, intervals: dict | None = None,
                   level: float | None = None):
    """One row per parameter: ``estimate``, and where there are draws the ``level``
    interval (``lower``, ``upper``, from ``intervals``) and the draws' ``sd``; the
    level is kept in ``table.attrs["level"]``. Every fit type's ``summary`` is this."""
    import pandas as pd

    table = pd.DataFrame({"estimate": estimates}).rename_axis("parameter")
    if draws is not None:
        table["lower"] = [intervals[k][0] for k in table.index]
        table["upper"] = [intervals[k][1] for k in table.index]
        table["sd"] = draws.std(ddof=1)
        table.attrs["level"] = level
    return table


def intervals_json(intervals: dict) -> dict:
    """``{name: (lower, upper)}`` as ``{name: {"lower": ..., "upper": ...}}``."""
    return {k: {"lower": lo, "upper": hi} for k, (lo, hi) in intervals.items()}
