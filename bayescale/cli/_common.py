"""Pieces shared by the subcommands: data and fit-source arguments, loading the fit a
command works from, and the JAX compilation cache."""

from __future__ import annotations

import argparse
import math
import os
import sys


# Estimators the commands offer (the names of bayescale.fit's method=).
METHODS = ("bayes", "huber", "huber_mle", "bootstrap", "isoflop", "envelope")
# isoflop and envelope (Hoffmann et al.'s Approaches 2 and 1) fit the allocation
# N_opt = G_N C^a, D_opt = G_D C^b, not a loss law: they give an AllocationFit.
#: The shipped laws, for --law's help (the registry itself imports JAX: not at parse time;
#: tests/test_cli_options.py checks this list against it).
LAWS_HELP = ("chinchilla (default), kaplan, data_constrained, farseer, or a registered "
             "user law (see `bayescale laws`)")
ALLOCATION_METHODS = ("isoflop", "envelope")
# --unique-tokens of frontier and decide (add_fit_source_arguments(unique_tokens_help=...)).
UNIQUE_TOKENS_HELP = ("unique-token budget for laws with repeated data (data_constrained), "
                      "e.g. 25e9")

# Precision: every command runs in JAX's default precision, exactly as the library does
# for a Python user (float32 unless JAX_ENABLE_X64=1): the NUTS posterior is the float32
# program the test suite checks, the Huber fits switch to float64 internally, and the
# frontier agrees with its float64 solution to about 1e-6 relative, far below the three
# significant digits printed. One choice for all commands, so that `fit --out` followed by
# `frontier` gives what `report` gives, and what the same calls give in Python.


class _Likelihoods:
    """``bayescale.estimators.model.LIKELIHOODS``, imported when argparse first needs it.

    Building the parser must not import JAX (``bayescale datasets`` and ``--help`` stay
    instant), yet the names have one definition, next to the model that implements them.
    """

    def _names(self) -> tuple[str, ...]:
        from bayescale.estimators.model import LIKELIHOODS

        return tuple(LIKELIHOODS)

    def __contains__(self, item) -> bool:
        return item in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


LIKELIHOODS = _Likelihoods()


def add_data_arguments(p: argparse.ArgumentParser, *, dest: str = "data", metavar: str = "DATA",
                       help: str | None = None) -> None:
    """DATA plus the filters, column names and checks of :func:`bayescale.load_runs`."""
    p.add_argument(dest, metavar=metavar,
                   help=help or "registered dataset name (e.g. chinchilla), a file (CSV, TSV, "
                                "JSON lines, JSON or Parquet, by extension; .gz too), or - "
                                "for standard input (CSV, JSON or JSON lines)")
    g = p.add_argument_group("data")
    g.add_argument("--exclude-top", type=int, default=0, metavar="K",
                   help="drop the K highest-loss runs (Besiroglu et al. 2024 drop 5)")
    g.add_argument("--query", default=None,
                   help="keep rows matching a pandas query over N, D, C, loss (e.g. 'C > 1e18')")
    for key in ("N", "D", "C", "loss"):
        g.add_argument(f"--{key}-column", default=None, metavar="NAME",
                       help=f"name of the {key} column, if not one of the usual names")
    g.add_argument("--select", default=None, metavar="group=VALUE",
                   help="one group of a multi-group dataset (e.g. --select group=C4; see "
                        "`bayescale datasets` for the groups)")
    g.add_argument("--split", default=None, metavar="SPLIT",
                   help="a registered dataset's split: train (default) or test (the "
                        "held-out larger runs of data_constrained and farseer)")
    g.add_argument("--n-convention", default=None, choices=("total", "non_embedding"),
                   help="what N counts: total or non_embedding parameters (a dataset that "
                        "publishes both, e.g. gadre2024 or misfitting, gives that column; "
                        "the fit and report say which N the answer is in)")
    g.add_argument("--run-column", default=None, metavar="NAME",
                   help="column naming the training run of each row, when rows are "
                        "checkpoints of the same runs (kept as the runs' run labels)")
    g.add_argument("--sep", default=None, metavar="SEP",
                   help="the CSV's separator, e.g. ';' (default: detected)")
    g.add_argument("--drop-duplicates", action="store_true",
                   help="keep the first of rows that repeat an earlier row, instead of refusing")
    g.add_argument("--no-plausibility-checks", dest="check_plausible", action="store_false",
                   help="no warnings for implausible values (N < 1e5, D < 1e6, losses > 15, "
                        "...), for unusual but real data")


def add_fit_source_arguments(
        p: argparse.ArgumentParser, *,
        source_help: str = ("fit folder (from `bayescale fit ... --out DIR`), a published law "
                            "(see `bayescale laws`, e.g. besiroglu2024), or a dataset name, "
                            "file or - (standard input) to fit first"),
        title: str = "fitting (when SOURCE is data, not a fit folder)",
        methods: tuple[str, ...] = METHODS, method: str = "bootstrap",
        method_help: str = ("estimator for SOURCE data (default bootstrap: resampled Huber fits "
                            "as in Besiroglu et al. 2024, giving draws)"),
        resamples_help: str = "bootstrap resamples (default: the fitter's, 4000)",
        seed_help: str = "random seed of the fit (0)",
        law_help: str = f"law to fit to SOURCE data: {LAWS_HELP}",
        unique_tokens_help: str | None = None) -> None:
    """SOURCE (a fit folder, a published law or data) and how data are fitted.

    The arguments :func:`load_source` reads: SOURCE with the data options of
    :func:`add_data_arguments` (they apply when SOURCE is data), then a group with
    ``--method``, ``--resamples``, ``--seed`` and ``--law``.

    Parameters
    ----------
    p : the subcommand's parser.
    source_help, title, method_help, resamples_help, seed_help, law_help : the help of
        SOURCE, the group's title and the help of each option, as the command words them.
    methods, method : ``--method``'s choices and default.
    unique_tokens_help : when given, also ``--unique-tokens/-U U`` (after the group), with
        this help.
    """
    add_data_arguments(p, dest="source", metavar="SOURCE", help=source_help)
    g = p.add_argument_group(title)
    g.add_argument("--method", choices=methods, default=method, help=method_help)
    g.add_argument("--resamples", type=int, default=None, metavar="R", help=resamples_help)
    g.add_argument("--seed", type=int, default=0, help=seed_help)
    g.add_argument("--law", default="chinchilla", metavar="LAW", help=law_help)
    if unique_tokens_help is not None:
        p.add_argument("--unique-tokens", "-U", type=str, default=None, metavar="U",
                       help=unique_tokens_help)


# The cost models the command line offers, and the settings of each that it exposes (flag ->
# field of the model in bayescale.planning.costs).
COSTS = ("train", "inference", "attention", "non-embedding")
COST_SETTINGS = {"attention": ("n_ctx", "aspect_ratio"),
                 "non-embedding": ("vocab_size", "aspect_ratio")}


def add_cost_arguments(p: argparse.ArgumentParser, *, costs=COSTS, cost_help: str) -> None:
    """``--cost`` (one of ``costs``) and the settings of the cost models among them."""
    p.add_argument("--cost", choices=costs, default="train", help=cost_help)
    if "inference" in costs:
        p.add_argument("--inference-tokens", type=str, default=None, metavar="T",
                       help="lifetime inference tokens D_inf for --cost inference, e.g. 2e12")
    p.add_argument("--n-ctx", type=float, default=None, metavar="T",
                   help="context length for --cost attention (default 2048, Chinchilla's)")
    p.add_argument("--aspect-ratio", type=float, default=None, metavar="R",
                   help="d_model / n_layer for --cost attention and non-embedding (default 128; "
                        "Chinchilla 70B: 102.4)")
    p.add_argument("--vocab-size", type=float, default=None, metavar="V",
                   help="vocabulary size for --cost non-embedding (default 32000, Chinchilla's)")


def cost_settings_from_args(args: argparse.Namespace) -> dict[str, float]:
    """The cost-model settings given on the command line, checked against ``--cost``."""
    from bayescale.errors import BayescaleError

    given = {k: getattr(args, k) for k in ("n_ctx", "aspect_ratio", "vocab_size")
             if getattr(args, k) is not None}
    allowed = COST_SETTINGS.get(args.cost, ())
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        if key not in allowed:
            users = [c for c, keys in COST_SETTINGS.items() if key in keys]
            raise BayescaleError(f"{flag} goes with --cost {' or '.join(users)}, not --cost "
                                 f"{args.cost}.")
        if not (math.isfinite(value) and value > 0):
            raise BayescaleError(f"{flag} must be a positive number, got {value:g}.")
    return given


def unique_tokens_from_args(args: argparse.Namespace) -> float | None:
    """``--unique-tokens U`` as a number of tokens, or ``None`` where it was not given.

    The value goes to the planning layer as ``unique_tokens=`` (e.g.
    ``ScalingFit.frontier(budgets, unique_tokens=U)``), which needs it for a law with
    unique tokens as an input (``data_constrained``) and refuses it for a law without.
    """
    from bayescale._util import parse_flops

    value = getattr(args, "unique_tokens", None)
    return None if value is None else parse_flops(value, "--unique-tokens")


def load_source(args: argparse.Namespace):
    """The fit named by ``args.source`` (the arguments of :func:`add_fit_source_arguments`).

    Returns
    -------
    ScalingFit or AllocationFit
        The fit saved in a fit folder (or its ``fit.json``), a published law, or
        SOURCE data (a dataset name, a file or ``-``) fitted with ``--method``.
    """
    from pathlib import Path

    from bayescale.errors import BayescaleError

    path = Path(args.source)
    if path.is_file() and path.name == "fit.json":
        path = path.parent
    if path.is_dir():
        from bayescale.io import load_fit

        return load_fit(path)
    from bayescale.laws.published import PUBLISHED

    if args.source in PUBLISHED and not path.exists():
        from bayescale.estimators.fit import published

        return published(args.source)
    from bayescale.estimators.fit import fit

    if args.exclude_top < 0:
        raise BayescaleError(f"--exclude-top must be >= 0, got {args.exclude_top}.")
    options = {}
    if args.resamples is not None:
        if args.method not in ("bootstrap", "isoflop", "envelope") or args.resamples < 1:
            raise BayescaleError("--resamples takes a positive count and goes with --method "
                                 "bootstrap, isoflop or envelope.")
        options["resamples"] = int(args.resamples)
    runs = load_runs_from_args(args, source=args.source)
    return fit(runs, method=args.method, seed=args.seed, law=args.law, **options)


def add_nuts_arguments(g) -> None:
    """The NUTS settings shared by ``fit``, ``report`` and ``compare``."""
    g.add_argument("--chains", type=int, default=4, help="NUTS chains (4)")
    g.add_argument("--warmup", type=int, default=1000, help="warmup iterations per chain (1000)")
    g.add_argument("--draws", type=int, default=1000, help="draws per chain (1000)")
    # metavar: argparse would otherwise list the choices (importing JAX) when building the parser
    g.add_argument("--likelihood", choices=LIKELIHOODS, default="student_t", metavar="NAME",
                   help="likelihood of log loss: %(choices)s (default student_t, robust)")
    g.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance probability (default 0.8; 0.9 when most "
                        "runs of --run-column have 3+ rows)")


def subsample_arg(text: str):
    """``--subsample``: ``"auto"``, ``None`` (none, off, 0) or a number of rows."""
    t = text.strip().lower()
    if t in ("none", "off", "0"):
        return None
    if t == "auto":
        return t
    try:
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--subsample takes 'auto', 'none' or a number of rows, not {text!r}") from None


def load_runs_from_args(args: argparse.Namespace, source=None):
    """:func:`bayescale.load_runs` with the options of :func:`add_data_arguments`.

    Plausibility warnings and dropped duplicates are told on stderr, in command-line terms.
    """
    import warnings

    from bayescale.data.runs import load_runs
    from bayescale.errors import DataWarning

    from bayescale.errors import BayescaleError

    extra = {}
    select = getattr(args, "select", None)
    if select is not None:
        column, _, value = str(select).partition("=")
        if column.strip() != "group" or not value.strip():
            raise BayescaleError(f"--select takes group=VALUE (e.g. --select group=C4), got "
                                 f"{select!r}; for other columns use --query.")
        extra["group"] = value.strip()
    if getattr(args, "split", None) is not None:
        extra["split"] = args.split
    if getattr(args, "n_convention", None) is not None:
        extra["n_convention"] = args.n_convention
    if getattr(args, "run_column", None) is not None:
        extra["run_column"] = args.run_column
    extra.update(getattr(args, "group_options", None) or {})  # fit --group
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        runs = load_runs(args.data if source is None else source, **extra,
                         N=args.N_column, D=args.D_column, C=args.C_column,
                         loss=args.loss_column, exclude_top=args.exclude_top, query=args.query,
                         sep=args.sep, drop_duplicates=args.drop_duplicates,
                         check_plausible=args.check_plausible)
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"bayescale: warning: {w.message.cli_message}", file=sys.stderr)
        else:  # not ours to judge: pass it on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for note in runs.notes:
        if note.startswith("dropped") and "duplicate" in note:
            print(f"bayescale: {note}", file=sys.stderr)
    return runs


def enable_compilation_cache() -> None:
    """Keep compiled programs between runs (``~/.cache/bayescale/jax``).

    The command line is an application, so it may set JAX's configuration; the
    library never does. ``JAX_COMPILATION_CACHE_DIR`` overrides the folder and
    ``BAYESCALE_NO_CACHE=1`` turns the cache off.
    """
    if os.environ.get("BAYESCALE_NO_CACHE", "") in ("1", "true", "yes"):
        return
    import jax

    from bayescale.data.registry import cache_dir

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(cache_dir() / "jax")
    try:
        os.makedirs(folder, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError):  # read-only home, or an older JAX
        pass


def resolve_group_option(args, verb: str) -> None:
    """``--group COLUMN`` (a file's column) or ``--group all`` (a registered dataset's own
    groups) as the options of :func:`load_runs_from_args` (``args.group_options``); ``verb``
    (``"fit"``, ``"report"``) words the errors."""
    from bayescale.data.registry import DATASETS
    from bayescale.errors import BayescaleError

    group, registered = str(args.group), str(args.data) in DATASETS
    if group.lower() == "all":
        if not registered:
            raise BayescaleError(f"--group all {verb}s every group of a registered multi-group "
                                 f"dataset; for the file {args.data!r} name the column that "
                                 f"holds the groups: --group COLUMN.")
        if len(DATASETS[str(args.data)].groups) < 2:
            raise BayescaleError(
                f"dataset {args.data!r} has no groups to {verb} side by side; {verb} it "
                "without --group. The multi-group datasets are "
                + ", ".join(k for k, d in DATASETS.items() if len(d.groups) > 1) + ".")
        args.group_options = {"group": "all"}
    elif registered:
        raise BayescaleError(f"a registered dataset's groups are its own: use --group all (not "
                             f"--group {group}) with {args.data!r}.")
    else:
        args.group_options = {"group": "all", "group_column": group}


def budget_column_labels(args, runs):
    """The per-run labels of ``--budget-column`` (a column of the CSV DATA), aligned by row."""
    import pandas as pd

    from bayescale.errors import BayescaleError

    path = str(args.data)
    if path == "-" or not os.path.isfile(path):
        raise BayescaleError(
            f"--budget-column reads a column of a CSV file; {path!r} is not one. For a "
            f"registered dataset the budgets are detected (or read from run names).")
    frame = pd.read_csv(path, sep=args.sep) if args.sep else pd.read_csv(path, sep=None,
                                                                         engine="python")
    if args.budget_column not in frame.columns:
        raise BayescaleError(f"--budget-column {args.budget_column!r}: no such column in "
                             f"{path}; its columns are {', '.join(map(str, frame.columns))}.")
    return frame[args.budget_column].loc[runs.row].to_numpy()
