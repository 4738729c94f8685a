"""The ``bayescale`` command line.

Each subcommand lives in its own module under ``bayescale.cli`` exposing
``register(subparsers)``; heavy imports happen inside the command, so
``bayescale --version`` answers without loading JAX.

Exit status: 0 on success, 2 on bad input (one-paragraph message, no traceback),
1 on an unexpected failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from bayescale import __version__

# module name -> subcommands it registers
_COMMAND_MODULES = ("fit", "frontier", "decide", "report", "datasets", "laws", "predict", "backtest", "design")


def _load_register(module: str):
    try:
        mod = importlib.import_module(f"bayescale.cli.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bayescale.cli.{module}":
            return None
        raise
    return getattr(mod, "register", None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Bayesian fits of neural scaling laws and compute-optimal decisions.",
        epilog="Example: bayescale fit chinchilla --method huber --exclude-top 5 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bayescale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        register = _load_register(module)
        if register is not None:
            register(sub)
    return parser


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _attach_negative_numbers(argv: list[str]) -> list[str]:
    """``--flag -1e21`` -> ``--flag=-1e21``: argparse reads a negative number in scientific
    notation as an option ("expected one argument"), so the value would never reach the
    flag's own check (e.g. "experiment_budget must be positive")."""
    out = []
    for arg in argv:
        if (out and _NEGATIVE_NUMBER.match(arg) and out[-1].startswith("--")
                and "=" not in out[-1]):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("--version", "-V"):
        print(f"bayescale {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(_attach_negative_numbers(argv))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from bayescale.errors import BayescaleError

    try:
        status = int(_run_telling_warnings(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return status
    except BayescaleError as exc:
        # the message's command-line form: fixes as flags (--N-column n), not Python (N="n")
        print(f"bayescale {args.command}: error: {exc.cli_message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # stdout was closed early (e.g. `bayescale fit ... | head`): exit quietly. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        _silence_stdout()
        return 0
    except OSError as exc:
        # A path the user gave cannot be read or written (missing, a file where a
        # folder is needed, no permission, disk full): their input, not our bug.
        print(f"bayescale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayescale: interrupted", file=sys.stderr)
        return 130


def _run_telling_warnings(args):
    """Run the command; bayescale's own warnings (convergence, data) are told on stderr
    in their command-line form (flags, not Python keywords); others pass on unchanged."""
    import warnings

    from bayescale.errors import ConvergenceWarning, DataWarning

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            warnings.simplefilter("always", DataWarning)
            return args.func(args)
    finally:
        # outside the recording context: a warning passed on here is not recorded again
        for w in caught:
            if isinstance(w.message, (ConvergenceWarning, DataWarning)):
                print(f"bayescale: warning: {w.message.cli_message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
