"""Errors and warnings raised by bayescale.

Every error a user can cause with their input is a :class:`BayescaleError`, which
is a :class:`ValueError`, so ``except ValueError`` keeps working for callers that
do not know about bayescale.
"""

from __future__ import annotations

__all__ = [
    "BayescaleError",
    "DataError",
    "DatasetNotFoundError",
    "ConvergenceError",
    "ConvergenceWarning",
]


class BayescaleError(ValueError):
    """Base class of every error bayescale raises on bad input."""


class DataError(BayescaleError):
    """The training-run data cannot be used as given.

    The message names the column, the offending rows and how to fix it.
    """


class DatasetNotFoundError(DataError):
    """A named dataset is neither on disk nor downloadable."""


class ConvergenceError(BayescaleError, RuntimeError):
    """A fit failed its convergence checks and ``strict=True`` was asked for."""


class ConvergenceWarning(UserWarning):
    """A fit finished but failed one of its convergence checks."""
