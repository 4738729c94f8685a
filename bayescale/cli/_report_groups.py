"""``bayescale report DATA --group COLUMN|all [--pool]``: the groups side by side in one report
(:func:`bayescale.report.group_report.build_group_report`)."""

from __future__ import annotations

import argparse

from bayescale.cli._common import resolve_group_option

__all__ = ["add_group_arguments", "check_group_arguments", "reference_budget", "group_report"]

# What --group does not take: the single-fit report's sections and options.
_SINGLE_ONLY = (("budget", "--budget (the groups are compared at one --reference-budget)"),
                ("unique_tokens", "--unique-tokens"), ("structural", "--structural"),
                ("backtest", "--backtest"), ("select", "--select (--group reports every group)"))


def add_group_arguments(p: argparse.ArgumentParser) -> None:
    """``--group``, ``--pool`` and ``--pool-coefficients`` of ``report``; call it after the
    fit arguments: ``--reference-budget`` defaults to None here (Gopher's 5.76e23 for one
    fit, 100 times the largest run for groups), which :func:`reference_budget` resolves."""
    g = p.add_argument_group("groups side by side")
    g.add_argument("--group", default=None, metavar="COLUMN|all",
                   help="report each group side by side (NUTS per group): a column of a file "
                        "DATA, or 'all' for a registered multi-group dataset (gadre2024, "
                        "marin_isoflop); N_opt, D_opt at --reference-budget (default here 100x "
                        "the largest run). One page for all groups, not a full report per group "
                        "(that is --select group=VALUE)")
    g.add_argument("--pool", action="store_true",
                   help="with --group: one hierarchical model, the exponents partially pooled "
                        "across groups; adds each group with and without pooling and PSIS-LOO "
                        "of pooled against separate (the groups are also fitted on their own)")
    g.add_argument("--pool-coefficients", action="store_true",
                   help="with --pool: pool the law's coefficients (at the data's centre) too")
    p.set_defaults(reference_budget=None)


def reference_budget(args, single: float) -> float | None:
    """``--reference-budget``, or its default: ``single`` for one fit, None (100 times the
    largest run, :func:`~bayescale.estimators.groups.fit_groups`'s) for groups."""
    if args.reference_budget is not None:
        return args.reference_budget
    return None if args.group is not None else single


def check_group_arguments(args) -> bool:
    """Whether this is a grouped report; refuse what does not go with ``--group`` (before
    the data are read) and set ``args.group_options`` for :func:`load_runs_from_args`."""
    from bayescale.errors import BayescaleError

    if args.group is None:
        if args.pool or args.pool_coefficients:
            raise BayescaleError("--pool fits the groups in one hierarchical model: give --group "
                                 "COLUMN (or --group all for a registered multi-group dataset).")
        return False
    if args.pool_coefficients and not args.pool:
        raise BayescaleError("--pool-coefficients goes with --pool.")
    for name, flag in _SINGLE_ONLY:
        if getattr(args, name, None) is not None:
            raise BayescaleError(f"{flag} does not go with --group: it is an option of the "
                                 f"report of one fit (one group: --select group=VALUE).")
    resolve_group_option(args, "report")
    return True


def group_report(args, runs, out: str, bayes_options: dict) -> dict:
    """The grouped report of ``runs`` (NUTS per group) written to ``out``: the paths of
    :func:`~bayescale.report.group_report.build_group_report`."""
    from bayescale.report.group_report import build_group_report

    return build_group_report(runs, out_dir=out, law=args.law, pool=args.pool,
                              pool_coefficients=args.pool_coefficients,
                              bayes_options=bayes_options, seed=args.seed, level=args.level,
                              reference_budget=args.reference_budget,
                              quiet=args.quiet or args.json)
