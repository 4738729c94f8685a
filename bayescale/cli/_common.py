"""Pieces shared by the subcommands: data arguments and the JAX compilation cache."""

from __future__ import annotations

import argparse
import os


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """DATA plus the filters and column names of :func:`bayescale.load_runs`."""
    p.add_argument("data", metavar="DATA",
                   help="registered dataset name (e.g. chinchilla), CSV path, or - for a CSV "
                        "on standard input")
    p.add_argument("--exclude-top", type=int, default=0, metavar="K",
                   help="drop the K highest-loss runs (Besiroglu et al. 2024 drop 5)")
    p.add_argument("--query", default=None,
                   help="keep rows matching a pandas query over N, D, C, loss (e.g. 'C > 1e18')")
    for key in ("N", "D", "C", "loss"):
        p.add_argument(f"--{key}-column", default=None, metavar="NAME",
                       help=f"name of the {key} column, if not one of the usual names")


LIKELIHOODS = ("student_t", "normal", "huber")


def add_nuts_arguments(g) -> None:
    """The NUTS settings shared by ``fit``, ``report`` and ``compare``."""
    g.add_argument("--chains", type=int, default=4, help="NUTS chains (4)")
    g.add_argument("--warmup", type=int, default=1000, help="warmup iterations per chain (1000)")
    g.add_argument("--draws", type=int, default=1000, help="draws per chain (1000)")
    g.add_argument("--likelihood", choices=LIKELIHOODS, default="student_t",
                   help="likelihood of log loss (student_t, robust; default)")
    g.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance probability (0.8)")


def load_runs_from_args(args: argparse.Namespace):
    from bayescale.data.runs import load_runs

    return load_runs(args.data, N=args.N_column, D=args.D_column, C=args.C_column,
                     loss=args.loss_column, exclude_top=args.exclude_top, query=args.query)


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
