"""Besiroglu et al.'s (2024) bootstrap of the Huber fit, with degenerate resamples left out.

Each resample draws the runs with replacement and is refitted by L-BFGS; a resample
is a vector of integer weights over the runs, so all resamples share one shape and
are solved in one batched program (:func:`bayescale.estimators.huber.huber_solve`).

On few runs (9 noisy runs, say) some resamples leave the law unidentified: the
fit runs off to ``E = 0``, ``alpha = 4285`` or an infinite ``A``. Those resamples
are not estimates of anything, and every consumer of the draws (intervals, the
frontier, decisions, the report) would have to guard against them. They are
therefore detected here, counted by reason in ``info["dropped"]`` and left out of
``params`` (see :func:`degenerate_resamples` for the rule); :func:`bayescale.fit`
warns with the count.

References
----------
T. Besiroglu, E. Erdil, M. Barnett, J. You, arXiv:2404.10102 (2024).
A. C. Davison, D. V. Hinkley, "Bootstrap Methods and their Application", Cambridge
University Press (1997), sec. 3.8 (resampling clustered data).
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.errors import BayescaleError, ConvergenceError
from bayescale.estimators.huber import (
    DELTA,
    BaselineResult,
    as_f64,
    check_shrink,
    default_num_slots,
    fit_huber,
    huber_solve,
    law_params,
    log_inputs,
    status_counts,
)
from bayescale.estimators.padding import bucket_size, pad_rows
from bayescale.laws.base import Law
from bayescale.laws.chinchilla import HOFFMANN_2022_UNROUNDED, LAW as CHINCHILLA

__all__ = ["BOOTSTRAP_FTOL", "MAX_EXPONENT", "MIN_E_FRACTION", "RESAMPLE_ROWS",
           "weight_chunks", "bootstrap_weights", "resample_start", "start_for",
           "degenerate_resamples", "describe_dropped", "fit_bootstrap"]

# From Hoffmann's published parameters the objective is so flat that scipy's
# L-BFGS-B rule stops most resamples within ~10 iterations, near the start
# (Besiroglu et al. used BFGS, which runs on to the minimum); resamples are
# therefore solved to a tight objective change.
BOOTSTRAP_FTOL = 1e-13

#: Largest plausible exponent. Published fits have exponents of 0.07-0.8 (Kaplan
#: et al. 2020; Hoffmann et al. 2022; Muennighoff et al. 2023); an exponent above 5
#: means a power law that drops by 2**5 = 32x per doubling, i.e. a term that is
#: absent from the data and was fitted to nothing.
MAX_EXPONENT = 5.0
#: An irreducible loss below this fraction of the smallest observed loss is a fit
#: that has dropped the term (``E -> 0``), not an estimate of it.
MIN_E_FRACTION = 1e-6


#: The bootstrap holds at most this many (resample x row) weights at once: with many rows
#: the resamples are solved in chunks (one compiled program for all chunks), so memory
#: stays linear in the rows instead of growing as resamples x rows (4000 x 200,000
#: float64 weights would be 6.4 GB).
RESAMPLE_ROWS = 2**23


def bootstrap_weights(num_runs: int, resamples: int, seed: int,
                      clusters: np.ndarray | None = None) -> np.ndarray:
    """Multiplicities ``(resamples, num_runs)`` of rows drawn with replacement.

    With ``clusters`` (a label per row, e.g. the training run each checkpoint comes
    from), whole clusters are drawn with replacement (as many as there are clusters) and
    each row weighs its cluster's multiplicity: the cluster bootstrap, which keeps the
    dependence between the checkpoints of one run (Davison & Hinkley 1997, sec. 3.8).
    Without, each row is its own cluster (the same draws as before clusters existed).
    """
    return np.concatenate(list(weight_chunks(num_runs, resamples, seed, clusters,
                                             chunk=max(int(resamples), 1))))


def weight_chunks(num_runs: int, resamples: int, seed: int, clusters=None, *, chunk: int):
    """:func:`bootstrap_weights` in consecutive blocks of ``chunk`` resamples (the last
    may be shorter): the same draws, from one random stream, never all in memory."""
    rng = np.random.default_rng(seed)
    code = None
    if clusters is not None:
        labels, code = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
        if code.shape[0] != num_runs:
            raise BayescaleError(f"clusters must label each of the {num_runs} rows, got "
                                 f"{code.shape[0]} labels.")
    k = num_runs if code is None else labels.shape[0]
    for start in range(0, int(resamples), int(chunk)):
        r = min(int(chunk), int(resamples) - start)
        idx = rng.integers(0, k, size=(r, k))
        counts = np.zeros((r, k))
        np.add.at(counts, (np.arange(r)[:, None], idx), 1.0)
        yield counts if code is None else counts[:, code]


def resample_start(law: Law, reference: Any, *, shrink: float = 0.0,
                   init: Any = None, min_loss: float = 0.0,
                   reference_converged: bool = True) -> tuple[Any, str]:
    """The point every resample's L-BFGS starts from, and what it is: ``(params, label)``.

    ``init`` ``None`` or ``"published"``: Hoffmann et al.'s (2022) unrounded published
    parameters for the Chinchilla law without shrinkage (label ``"published"``), as
    Besiroglu et al. (2024) refitted Hoffmann's data (kept so that their replication
    holds: on that flat objective a few resamples end in another local minimum from
    another start, e.g. the 95th percentile of B 70,300 from Hoffmann's start and 68,200
    from the full fit); else ``reference``, the full data's fit (``"reference"``).

    ``"reference"``: the full data's fit, the usual start of a bootstrap refit and near
    each resample's minimum; :func:`bayescale.fit` uses it on every dataset but
    Hoffmann et al.'s own (:func:`start_for`; on ``misfitting_checkpoints``, 4000
    resamples of 240 runs took 27 s instead of 38-47 s from Hoffmann's start, with the
    same percentiles to 3 digits). Unless that fit did not converge
    (``reference_converged``) or is itself degenerate (:func:`degenerate_resamples`, with
    ``min_loss`` the smallest observed loss; e.g. ``E ~ 0`` on 9 noisy runs, where every
    resample started there stays degenerate): then the default above applies, labelled
    ``"published (the full fit is degenerate)"`` (for laws other than Chinchilla's that
    default is the same fit: nothing better is known). Anything else is a parameter
    tuple of ``law`` (``"given"``).
    """
    note = ""
    if isinstance(init, str):
        if init not in ("published", "reference"):
            raise BayescaleError(f"init must be 'published', 'reference' or parameters of the "
                                 f"{law.name} law, got {init!r}.")
        if init == "reference":
            point = type(reference)(*(np.atleast_1d(np.asarray(v, dtype=float))
                                      for v in reference))
            bad, _ = degenerate_resamples(law, point, np.array([bool(reference_converged)]),
                                          float(min_loss))
            if not bad[0]:
                return reference, "reference"
            note = " (the full fit is degenerate)"
        init = None
    if init is None:
        if law is CHINCHILLA and not shrink:
            return HOFFMANN_2022_UNROUNDED, "published" + note
        return reference, "reference" + note
    return init, "given"


def start_for(source: Any) -> str:
    """The ``init`` :func:`bayescale.fit` gives the bootstrap for runs from ``source``:
    ``"published"`` for Hoffmann et al.'s own data (the registered ``chinchilla``, where
    Besiroglu et al.'s start is replicated), ``"reference"`` (the full data's fit) for
    every other dataset, file or DataFrame (:func:`resample_start`)."""
    return "published" if str(source) == "chinchilla" else "reference"


def _exponent_fields(law: Law) -> tuple[str, ...]:
    """The law's exponents: its fields named ``alpha...`` or ``beta...``."""
    return tuple(n for n in law.param_names if n.startswith(("alpha", "beta")))


def degenerate_resamples(law: Law, params: Any, converged: np.ndarray,
                         min_loss: float) -> tuple[np.ndarray, dict[str, int]]:
    """Which resamples are degenerate, and how many for each reason.

    The rule, checked in this order (a resample is counted under its first reason):

    1. ``"non-finite"``: a parameter is NaN or infinite (in float64);
    2. ``"not converged"``: L-BFGS stopped without meeting its convergence test;
    3. ``"non-positive"``: a parameter the law keeps positive (``law.positive``)
       is not (an ``exp`` that underflowed to 0);
    4. ``"exponent > 5"``: an exponent (a field named ``alpha*``/``beta*``) above
       :data:`MAX_EXPONENT`;
    5. ``"E ~ 0"``: the irreducible loss ``E`` (for laws that have one) is below
       :data:`MIN_E_FRACTION` (1e-6) of the smallest observed loss;
    6. ``"beyond float32"``: a parameter whose magnitude float32 cannot hold (above
       3.4e38, or non-zero below 1.2e-38): a direction the resample does not determine
       (e.g. the data-constrained law's ``R_N*`` running off to 1e150), which the float32
       frontier and predictions cannot use.

    Parameters
    ----------
    law : the law fitted.
    params : its parameters, leaves ``(resample,)`` float64.
    converged : bool ``(resample,)``.
    min_loss : the smallest observed loss (nats).

    Returns
    -------
    (bad, counts)
        ``bad`` bool ``(resample,)``; ``counts`` maps each reason that occurred to its
        count.
    """
    fields = {n: np.asarray(v, dtype=np.float64) for n, v in zip(law.param_names, params)}
    converged = np.asarray(converged, dtype=bool)
    checks = [("non-finite", ~np.all([np.isfinite(v) for v in fields.values()], axis=0)),
              ("not converged", ~converged)]
    with np.errstate(invalid="ignore"):
        if law.positive:
            checks.append(("non-positive", np.any([~(fields[n] > 0) for n in law.positive],
                                                  axis=0)))
        exps = _exponent_fields(law)
        if exps:
            checks.append((f"exponent > {MAX_EXPONENT:g}",
                           np.any([fields[n] > MAX_EXPONENT for n in exps], axis=0)))
        if "E" in fields:
            checks.append(("E ~ 0", fields["E"] < MIN_E_FRACTION * float(min_loss)))
        f32 = np.finfo(np.float32)
        checks.append(("beyond float32", np.any(
            [(np.abs(v) > f32.max) | ((v != 0) & (np.abs(v) < f32.tiny))
             for v in fields.values()], axis=0)))
    bad = np.zeros(converged.shape, bool)
    counts: dict[str, int] = {}
    for reason, mask in checks:
        new = np.asarray(mask, bool) & ~bad
        if new.any():
            counts[reason] = int(new.sum())
        bad |= new
    return bad, counts


def fit_bootstrap(log_N, log_D, log_loss, *, resamples: int = 4000, seed: int = 0,
                  delta: float = DELTA, init=None, max_iter: int = 1000,
                  law: Law = CHINCHILLA, log_U=None, clusters=None,
                  shrink: float = 0.0, starts=None) -> BaselineResult:
    """Besiroglu et al. (2024) bootstrap of the Huber fit.

    Each of ``resamples`` resamples draws the runs with replacement and is refitted
    by L-BFGS from ``init`` (:func:`resample_start`; default: Hoffmann et al.'s
    unrounded published parameters for the Chinchilla law, as Besiroglu et al.; for
    other laws, or ``init="reference"``, the grid fit to the full data);
    all resamples are solved in one batched program. ``clusters`` (a label per run, e.g.
    its training run for checkpoints) resamples whole clusters
    (:func:`bootstrap_weights`). ``shrink`` (as in
    :func:`~bayescale.estimators.huber.fit_huber`) refits every resample with the same
    pull toward the law's Normal priors; the default start is then the shrunk full fit.
    ``starts``: the grid of the full-data fit (default the law's).

    Degenerate resamples (:func:`degenerate_resamples`) are left out of ``params``.

    Returns
    -------
    BaselineResult
        ``params`` are arrays over the kept resamples; ``reference`` is the grid fit to
        the full data; ``info`` holds ``resamples`` (requested), ``num_kept``,
        ``dropped`` (count per reason), ``converged_fraction`` (over all resamples)
        and the L-BFGS status counts. Percentile intervals come from
        :meth:`ScalingFit.intervals`.

    Raises
    ------
    ConvergenceError
        When fewer than two resamples are usable.
    """
    if int(resamples) != resamples or resamples < 2:
        raise BayescaleError(f"resamples must be an integer >= 2, got {resamples!r}.")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise BayescaleError(f"seed must be a non-negative integer, got {seed!r}.")
    log_N, log_D, log_loss = (np.asarray(v, dtype=float) for v in (log_N, log_D, log_loss))
    log_X = log_inputs(law, log_N, log_D, log_U)
    shrink = check_shrink(shrink)
    ref = fit_huber(log_N, log_D, log_loss, delta=delta, law=law, log_U=log_U, shrink=shrink,
                    starts=starts)
    init, start = resample_start(law, ref.params, shrink=shrink, init=init,
                                 min_loss=float(np.exp(log_loss.min())),
                                 reference_converged=bool(ref.info.get("converged", True)))
    with jax.enable_x64(True):
        theta0 = np.asarray(law.to_theta(type(init)(*(np.float64(v) for v in init))))
    # Padded to a size bucket with weight-0 rows (as fit_huber): one program per bucket.
    size = bucket_size(log_N.shape[0])
    log_X, log_loss, _ = pad_rows(size, log_X, log_loss)
    # Equal chunks (the last is padded with copies, solved for nothing): 4000 resamples
    # of 5120 rows are 3 chunks of 1334, not 1638 + 1638 + 724 padded to 1638.
    chunk = max(1, min(int(resamples), RESAMPLE_ROWS // size))
    chunk = -(-int(resamples) // -(-int(resamples) // chunk))
    t0 = time.perf_counter()
    parts = []
    with jax.enable_x64(True):
        x0 = jnp.broadcast_to(jnp.asarray(theta0), (chunk, law.num_coords))
        for weights in weight_chunks(log_N.shape[0], int(resamples), int(seed), clusters,
                                     chunk=chunk):
            r = weights.shape[0]  # the last chunk is padded with copies of its first
            weights = np.pad(weights, ((0, chunk - r), (0, size - weights.shape[1])),
                             mode="constant")
            weights[r:] = weights[0]
            args = as_f64(weights, log_X, log_loss)
            # Every resample starts at one point, possibly near its minimum: the full
            # data's objective at the grid start of the best fit is the scale of the
            # solver's relative-gradient test (see minimize_batch).
            res = huber_solve(x0, *args, delta=float(delta), max_iter=int(max_iter),
                              num_slots=default_num_slots(chunk), ftol=BOOTSTRAP_FTOL,
                              law=law, typical_f=ref.info["typical_objective"],
                              shrink=shrink if shrink > 0 else None)
            parts.append(tuple(np.asarray(v)[:r] for v in (res.x, res.converged, res.status)))
        seconds = time.perf_counter() - t0
    theta, converged, status = (np.concatenate(v) for v in zip(*parts))
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        params = law_params(law, theta)
    bad, dropped = degenerate_resamples(law, params, converged, float(np.exp(log_loss.min())))
    num_kept = int(np.sum(~bad))
    info = {
        "law": law.name,
        "resamples": int(resamples),
        "num_kept": num_kept,
        "dropped": dropped,
        "seed": int(seed),
        "delta": float(delta),
        "shrink": shrink,
        "init": dict(zip(law.coords, map(float, theta0))),
        "start": start,
        "converged_fraction": float(np.mean(converged)),
        "resampled": ("rows" if clusters is None else
                      f"{len(set(np.asarray(clusters).astype(str)))} runs (clusters of "
                      f"{log_N.shape[0]} rows)"),
        "resamples_status": status_counts(status),
        "resample_chunks": len(parts),
        "timing": {"total": seconds},
    }
    if num_kept < 2:
        raise ConvergenceError(
            f"bootstrap: only {num_kept} of {int(resamples)} resamples gave a usable fit "
            f"(dropped: {_describe(dropped)}); the {log_N.shape[0]} runs do not identify the "
            f"{law.name} law. Use more runs, or method='bayes' with its priors.")
    kept = type(params)(*(np.asarray(v)[~bad] for v in params))
    return BaselineResult(params=kept, info=info, reference=ref.params)


def _describe(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in dropped.items()) or "none"


def describe_dropped(info: dict) -> str | None:
    """One sentence on the resamples a bootstrap left out, or None if it kept all."""
    dropped = info.get("dropped") or {}
    if not dropped:
        return None
    total = sum(dropped.values())
    return (f"{total} of {info.get('resamples')} resamples were degenerate and left out "
            f"({_describe(dropped)})")
