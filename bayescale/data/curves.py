"""Synthetic training curves from a known law: the data of Hoffmann et al.'s Approach 1.

Approach 1 (Hoffmann et al. 2022, Section 3.1) trains each of several model sizes for
several lengths (one learning-rate schedule per length) and reads the compute-optimal
model off the lower envelope of the loss-versus-compute curves.
:func:`simulate_curves` draws such runs from a Chinchilla law: every model size ``N``
in ``sizes`` is trained to ``D = m N`` tokens for every tokens-per-parameter ratio ``m``
in ``lengths``; the final loss is the law's, times log-normal noise. With
``checkpoints=k`` each run also reports ``k`` intermediate checkpoints.

The truth Approach 1 should recover: for a law ``L(N, D)`` the lower envelope of
``min_N L(N, C / (6 N))`` over every run at compute ``C`` is attained at the
compute-optimal allocation, so ``N_opt = G_N C**a`` with ``a = beta / (alpha + beta)``,
``b = alpha / (alpha + beta)`` and ``G`` from Hoffmann's eq. 4
(:func:`optimal_allocation`; :func:`bayescale.planning.frontier.compute_optimal` gives
the same ``N_opt`` at any ``C``). With finitely many sizes the envelope can only pick
one of them, so an estimate from synthetic curves carries a discretisation error set by
the spacing of ``sizes`` (see ``tests/test_envelope.py``).

The module also turns runs into the curves Approach 1 reads
(:func:`envelope_points`, :func:`pad_curves`; used by
:func:`bayescale.estimators.envelope.fit_envelope`).

Intermediate checkpoints
------------------------
A run whose learning-rate schedule (cosine, or any decay) is tuned to its full length
is, part-way through, at a higher loss than a run tuned to end there (Hoffmann et al.
2022, Section 3.1 and Figure A1). ``schedule_gap`` models this as an excess
``schedule_gap * (1 - f)`` in log loss at fraction ``f`` of the run (0 at the end), a
toy model chosen only to make that bias visible, not a fit to any data.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Section 3.1 (Approach 1) and eq. 4.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from bayescale.data.runs import Runs
from bayescale.data.synthetic import DEFAULT_NOISE
from bayescale.errors import BayescaleError, DataWarning
from bayescale.laws.chinchilla import HOFFMANN_2022, LawParams

__all__ = ["simulate_curves", "optimal_allocation", "DEFAULT_SIZES", "DEFAULT_LENGTHS"]

DEFAULT_SIZES = np.geomspace(5e7, 5e9, 21)  # 21 sizes, a factor 100**(1/20) = 1.26 apart
DEFAULT_LENGTHS = np.geomspace(5.0, 500.0, 11)  # tokens per parameter, D = m N


def optimal_allocation(params: LawParams = HOFFMANN_2022) -> dict[str, float]:
    """The true allocation of a Chinchilla law: ``a, b, log_G_N, log_G_D`` with
    ``log N_opt = log_G_N + a log C`` and ``log D_opt = log_G_D + b log C``.

    Hoffmann et al. (2022), eq. 4: ``N_opt = G (C / 6)**a``, ``D_opt = (C / 6)**b / G``,
    ``G = (alpha A / (beta B))**(1 / (alpha + beta))``, ``a = beta / (alpha + beta)``,
    ``b = alpha / (alpha + beta)``.

    Examples
    --------
    >>> from bayescale.data.curves import optimal_allocation
    >>> {k: round(v, 4) for k, v in optimal_allocation().items() if k in "ab"}
    {'a': 0.4516, 'b': 0.5484}
    """
    E, A, B, alpha, beta = (float(v) for v in params)
    a, b = beta / (alpha + beta), alpha / (alpha + beta)
    log_G = (np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)
    return {"a": a, "b": b, "log_G_N": float(log_G - a * np.log(6.0)),
            "log_G_D": float(-log_G - b * np.log(6.0))}


def _positive_1d(values, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size < 1 or not np.all(np.isfinite(arr) & (arr > 0)):
        raise BayescaleError(f"{name} must be a non-empty 1-d array of positive numbers, "
                             f"got {values!r}.")
    if np.unique(arr).size != arr.size:
        raise BayescaleError(f"{name} has repeated values: {values!r}. Fix: give each once.")
    return np.sort(arr)


def simulate_curves(
    params: LawParams = HOFFMANN_2022,
    *,
    sizes=DEFAULT_SIZES,
    lengths=DEFAULT_LENGTHS,
    noise: float = DEFAULT_NOISE,
    checkpoints: int = 0,
    schedule_gap: float = 0.0,
    seed: int = 0,
) -> Runs:
    """Runs of several model sizes, each trained to several lengths, from a known law.

    Parameters
    ----------
    params : the true Chinchilla law (default Hoffmann et al. 2022, eq. 10).
    sizes : model sizes ``N`` (default 21 from 5e7 to 5e9, log-spaced).
    lengths : training lengths as tokens per parameter ``m = D / N`` (default 11 from 5
        to 500, log-spaced); every size is trained to ``D = m N`` for every ``m``.
    noise : sd of the normal noise added to ``log L`` (default 0.0075, see
        :mod:`bayescale.data.synthetic`); 0 for noiseless curves.
    checkpoints : intermediate checkpoints per run, at fractions ``j / (k + 1)`` of its
        length (``j = 1..k``), besides the final one (default 0: final losses only).
    schedule_gap : excess log loss of a checkpoint at fraction ``f`` of its run is
        ``schedule_gap * (1 - f)`` (default 0: checkpoints lie on the law).
    seed : seed of ``numpy.random.default_rng``.

    Returns
    -------
    Runs
        ``len(sizes) * len(lengths) * (checkpoints + 1)`` rows, ``run`` the id of the
        (size, length) run of each row, ``group`` None, ``source="synthetic_curves"``.

    Raises
    ------
    BayescaleError
        For non-positive or repeated sizes or lengths, a negative noise, gap or count.

    Examples
    --------
    >>> from bayescale.data.curves import simulate_curves
    >>> runs = simulate_curves(sizes=[1e8, 4e8, 1.6e9], lengths=[10, 20, 40], seed=0)
    >>> len(runs), len(set(runs.run))
    (9, 9)
    """
    params = LawParams(*(float(v) for v in params))
    if not all(v > 0 and np.isfinite(v) for v in params):
        raise BayescaleError(f"params must all be positive, got {params}.")
    sizes = _positive_1d(sizes, "sizes")
    lengths = _positive_1d(lengths, "lengths")
    noise, schedule_gap = float(noise), float(schedule_gap)
    if not (np.isfinite(noise) and noise >= 0):
        raise BayescaleError(f"noise must be a non-negative number, got {noise}.")
    if not (np.isfinite(schedule_gap) and schedule_gap >= 0):
        raise BayescaleError(f"schedule_gap must be a non-negative number, got {schedule_gap}.")
    if isinstance(checkpoints, bool) or int(checkpoints) != checkpoints or checkpoints < 0:
        raise BayescaleError(f"checkpoints must be a non-negative integer, got {checkpoints!r}.")
    k = int(checkpoints)
    rng = np.random.default_rng(seed)
    N_run = np.repeat(sizes, lengths.size)
    D_run = N_run * np.tile(lengths, sizes.size)
    frac = np.arange(1, k + 2) / (k + 1)  # the last is the final checkpoint
    N = np.repeat(N_run, k + 1)
    D = (D_run[:, None] * frac[None, :]).reshape(-1)
    f = np.tile(frac, N_run.size)
    run = np.repeat(np.arange(N_run.size), k + 1)
    # the law in float64 NumPy (no compile per design shape); every term is positive
    law = np.log(params.E + params.A / N ** params.alpha + params.B / D ** params.beta)
    log_loss = (law + schedule_gap * (1.0 - f)
                + noise * rng.standard_normal(N.shape))
    # valid by construction (positive, finite, distinct); built directly so that
    # designs with one or two sizes (which load_runs refuses for a law fit) are possible
    runs = Runs(N=N, D=D, loss=np.exp(log_loss), row=np.arange(N.size), run=run)
    note = (f"training curves simulated from {params}: {sizes.size} sizes x {lengths.size} "
            f"lengths, {k} intermediate checkpoints per run, schedule gap {schedule_gap:g}, "
            f"log-normal noise sd {noise:g}, seed {seed}")
    return dataclasses.replace(runs, source="synthetic_curves", notes=(note,))


# ------------------------------------------- runs -> curves, for Approach 1 (estimators.envelope)


def check_runs(runs) -> None:
    """Runs with positive, finite N, D and loss, or a BayescaleError naming the rows."""
    if not isinstance(runs, Runs):
        raise BayescaleError(f"fit_envelope takes Runs (from bayescale.load_runs), got a "
                             f"{type(runs).__name__}. Fix: runs = bayescale.load_runs(data).")
    for name in ("N", "D", "loss"):
        v = np.asarray(getattr(runs, name), dtype=float)
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise BayescaleError(
                f"{name} must be positive and finite for Approach 1; rows "
                f"{list(np.asarray(runs.row)[bad[:5]])} are not. Fix: drop or correct them "
                f"(load_runs validates data read from a file or DataFrame).")


def envelope_points(runs: Runs, use_checkpoints: bool, best_per_cell: bool
                    ) -> tuple[pd.DataFrame, dict]:
    """The rows the envelope uses, with a run id each, and what was done to get them."""
    frame = pd.DataFrame({"N": runs.N, "D": runs.D, "loss": runs.loss,
                          "pos": np.arange(len(runs))})
    frame["run"] = (pd.factorize(pd.Series(runs.run).astype(str))[0] if runs.run is not None
                    else np.arange(len(runs)))
    per_run = frame.groupby("run").size()
    notes = {}
    has_checkpoints = runs.run is not None and bool((per_run > 1).any())
    if use_checkpoints:
        if not has_checkpoints:
            raise BayescaleError(
                "use_checkpoints=True needs several checkpoints per training run, marked by a "
                "run column (load_runs(..., run_column='run'), or a dataset with checkpoints "
                "such as 'misfitting_checkpoints'); these data have one row per run. Fix: "
                "drop use_checkpoints.")
        warnings.warn(
            "use_checkpoints=True reads intermediate checkpoints as points of the envelope. "
            "Check the learning-rate schedule: with a cosine or other decay tuned to each run's "
            "full length, a checkpoint part-way through is at a higher loss than a run tuned to "
            "end there, so the envelope is biased towards the runs that end at each compute "
            "(Hoffmann et al. trained a separate schedule per length). Sound with a constant or "
            "warmup-stable-decay schedule read at decayed checkpoints.", DataWarning, stacklevel=3)
    elif has_checkpoints:
        last = frame.loc[frame.groupby("run")["D"].idxmax()]
        notes["checkpoints"] = (f"used the final checkpoint (largest D) of each of {len(last)} "
                                f"runs; {len(frame) - len(last)} intermediate checkpoints left "
                                f"out (use_checkpoints=True uses them)")
        frame = last
    if frame.groupby("run")["N"].nunique().max() > 1:
        raise BayescaleError("a training run (run id) has rows of different model sizes N. "
                             "Fix: give each run its own id.")
    final = frame.loc[frame.groupby("run")["D"].idxmax()].set_index("run")
    cells = final.groupby(["N", "D"])["loss"]
    if best_per_cell:
        best = final.loc[cells.idxmin()].index
        if len(best) < len(final):
            notes["best_per_cell"] = (f"kept the lowest-loss run of each (N, D) cell: "
                                      f"{len(best)} of {len(final)} runs (e.g. the best learning "
                                      f"rate); best_per_cell=False keeps them all")
        frame = frame[frame["run"].isin(best)]
    elif not use_checkpoints and bool((cells.size() > 1).any()):
        raise BayescaleError(
            "several runs share an (N, D) cell (different learning rates?) and "
            "best_per_cell=False: a model size's loss-versus-compute curve needs one loss per "
            "D. Fix: keep best_per_cell=True (the lowest loss per cell), or filter the runs.")
    return frame.reset_index(drop=True), notes


def pad_curves(frame: pd.DataFrame, by: str):
    """Padded ``(curves, points)`` arrays ``x = log C``, ``y = log L``, ``owner`` (run
    index, -1 padding), each curve's ``log N`` and owning run (read for run curves only),
    and the model size of each real curve."""
    frame = frame.assign(x=np.log(6.0 * frame["N"] * frame["D"]),
                         y=np.log(frame["loss"])).sort_values([by, "x"])
    groups = [g for _, g in frame.groupby(by, sort=True)]
    # padded to size buckets, so that similar data sets share one compiled program
    S, K = bucket(len(groups), 8), bucket(max(len(g) for g in groups), 4)
    x, y = np.zeros((S, K)), np.zeros((S, K))
    owner = np.full((S, K), -1, dtype=np.int32)
    for i, g in enumerate(groups):
        x[i, :len(g)], y[i, :len(g)], owner[i, :len(g)] = g["x"], g["y"], g["run_index"]
    N = np.array([g["N"].iloc[0] for g in groups])
    log_N = np.concatenate([np.log(N), np.full(S - N.size, np.log(N[0]))])
    curve_owner = np.zeros(S, dtype=np.int32)
    curve_owner[:N.size] = [g["run_index"].iloc[0] for g in groups]
    return x, y, owner, log_N, curve_owner, N


def bucket(n: int, step: int) -> int:
    """``n`` rounded up to a multiple of ``step``."""
    return -(-int(n) // step) * step
