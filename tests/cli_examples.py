"""The ``bayescale ... --help`` examples as the tests run them (shared by
tests/test_cli_options.py, which runs every example, and the tests that run one
example themselves and check its output, listed in :data:`COVERED`).

An example runs as a user would type it, with only the amount of sampling shrunk
(:data:`SHRINK`: the examples' full sizes take minutes each on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from bayescale.cli import main

# Sampler sizes an example is run with: the example's flags and data are kept, only the
# amount of sampling shrinks.
SHRINK = {"--resamples": "40", "--warmup": "40", "--draws": "40", "--chains": "2"}

# Examples that a test in another file runs (through :func:`shrunk`, in its own
# folder) and checks the output of; tests/test_cli_options.py does not run them a second
# time (each takes about a minute), and checks that the file named here runs the example.
COVERED = {
    "bayescale report data_constrained --law data_constrained --unique-tokens 25e9":
        "test_report_laws.py",
    "bayescale report gadre2024 --group all --pool --out reports/gadre2024":
        "test_report_groups.py",
    "bayescale backtest sweep.csv --holdout top-budgets:2 --budget-column budget":
        "test_backtest.py",
    "bayescale fit farseer --law farseer --method huber --shrink 0.026 --json":
        "test_shrink.py",
}


def run_main(argv):
    """``bayescale argv`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _help(argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


def subcommands() -> list[str]:
    names = re.findall(r"^    (\w+)\s", _help([]), flags=re.M)
    assert {"fit", "frontier", "decide"} <= set(names), names
    return names


def examples() -> list[tuple[str, str]]:
    """(subcommand, example line) for every ``bayescale ...`` line of every --help epilog."""
    found = []
    for name in [""] + subcommands():
        text = _help([name] if name else [])
        text = re.sub(r"\\\n\s*", " ", text)  # a shell line continuation joins its lines
        for line in text.splitlines():
            m = re.match(r"^\s*(?:Example: )?(bayescale \S.*)$", line)
            if m and m.group(1).strip() not in [e for _, e in found]:
                found.append((name or "bayescale", m.group(1).strip()))
    return found


def shrunk(example: str, cwd: Path | None = None) -> list[str]:
    """The example's arguments (after ``bayescale``) with the sampler sizes shrunk."""
    argv = shlex.split(example)[1:]
    for i, arg in enumerate(argv[:-1]):
        if arg in SHRINK:
            argv[i + 1] = SHRINK[arg]
    if argv[0] in ("fit", "report", "compare"):  # flags the example leaves at their defaults
        argv += [x for k, v in SHRINK.items() if k not in argv for x in (k, v)]
    # frontier/decide/design fit data (not a fit folder) with the bootstrap by default
    fits_data = (argv[0] in ("frontier", "decide", "design")
                 and not (cwd is not None and (cwd / argv[1]).is_dir()))
    if fits_data and "--method" not in argv and "--resamples" not in argv:
        argv += ["--resamples", SHRINK["--resamples"]]
    return argv
