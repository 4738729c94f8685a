"""Errors and warnings raised by bayescale.

Every error a user can cause with their input is a :class:`BayescaleError`, which
is a :class:`ValueError`, so ``except ValueError`` keeps working for callers that
do not know about bayescale.

A message whose fix differs between Python and the command line carries both: ``str(exc)``
gives the Python form (``load_runs(..., N="n_params")``) and ``exc.cli_message`` the
command-line form (``--N-column n_params``), which ``bayescale`` prints instead.
"""

from __future__ import annotations

__all__ = [
    "BayescaleError",
    "DataError",
    "DatasetNotFoundError",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataWarning",
]


class BayescaleError(ValueError):
    """Base class of every error bayescale raises on bad input.

    ``cli`` is the message as the command line should print it (fixes given as flags);
    ``cli_message`` falls back to the message itself.
    """

    def __init__(self, *args, cli: str | None = None):
        super().__init__(*args)
        self.cli_message = cli if cli is not None else (str(args[0]) if args else "")


class DataError(BayescaleError):
    """The training-run data cannot be used as given.

    The message names the column, the offending rows and how to fix it.
    """


class DatasetNotFoundError(DataError):
    """A named dataset is neither on disk nor downloadable."""


class ConvergenceError(BayescaleError, RuntimeError):
    """A fit failed its convergence checks and ``strict=True`` was asked for."""


class ConvergenceWarning(UserWarning):
    """A fit finished but failed one of its convergence checks.

    ``cli_message`` is the command-line form of the advice (``--target-accept 0.95``
    where the message says ``target_accept=0.95``).
    """

    def __init__(self, *args, cli: str | None = None):
        super().__init__(*args)
        self.cli_message = cli if cli is not None else (str(args[0]) if args else "")


class DataWarning(UserWarning):
    """The data load but look implausible (e.g. tokens given in billions, losses as
    perplexities); the message names the column, the rows and the likely fix.

    Silence the checks for unusual but real data with ``load_runs(...,
    check_plausible=False)`` (``--no-plausibility-checks`` on the command line).
    ``cli_message`` is the command-line form of the message.
    """

    def __init__(self, *args, cli: str | None = None):
        super().__init__(*args)
        self.cli_message = cli if cli is not None else (str(args[0]) if args else "")
