"""Point-estimate baselines: Hoffmann et al. (2022) Approach 3 and Besiroglu et al. (2024).

* :func:`fit_huber` — minimise the summed Huber loss (delta = 1e-3) of log-loss
  residuals over the law's coordinates (Chinchilla: ``theta = (a, b, e, alpha, beta)``)
  by L-BFGS from a grid of starts (Hoffmann's 4500-point grid by default), all
  starts in one compiled program.
* :func:`fit_huber_mle` — the estimate Besiroglu et al. report: maximum likelihood
  under the Huber log-density with a free scale.

Their bootstrap is :func:`bayescale.estimators.bootstrap.fit_bootstrap`, built on
the batched solve here (:func:`huber_solve`).

These fits run in float64 (inside a ``jax.enable_x64`` context, which does not
touch the global configuration): reproducing the published optimum to 1e-10 in the
objective needs it. The Bayesian path does not.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022), Approach 3 and Appendix D.2.
T. Besiroglu, E. Erdil, M. Barnett, J. You, arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from bayescale.errors import BayescaleError
from bayescale.laws.base import Law, log_loss_theta
from bayescale.laws.chinchilla import LAW as CHINCHILLA, LawParams
from bayescale._solvers.lbfgs import STATUS, BatchResult, minimize_batch
from bayescale.estimators.padding import bucket_size, pad_rows

__all__ = [
    "HOFFMANN_GRID",
    "hoffmann_grid",
    "huber_objective",
    "huber_log_normaliser",
    "BaselineResult",
    "fit_huber",
    "law_objective",
    "prior_penalty",
    "huber_solve",
    "log_inputs",
    "law_params",
    "status_counts",
    "as_f64",
    "default_num_slots",
    "check_shrink",
    "objective_at",
]

DELTA = 1e-3

# Hoffmann et al. (2022), Appendix D.2, as run by Besiroglu et al. (2024):
# alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.
HOFFMANN_GRID = {
    "alpha": tuple(np.arange(0, 2.5, 0.5)),
    "beta": tuple(np.arange(0, 2.5, 0.5)),
    "e": tuple(np.arange(-1, 1.5, 0.5)),
    "a": tuple(np.arange(0, 30, 5)),
    "b": tuple(np.arange(0, 30, 5)),
}


def hoffmann_grid(**overrides) -> np.ndarray:
    """Starting points ``(k, 5)`` in ``(a, b, e, alpha, beta)`` order.

    Keyword arguments replace the values of one coordinate (``a=[0, 10]``...);
    by default the 4500-point grid of Hoffmann et al. (2022).
    """
    unknown = set(overrides) - set(HOFFMANN_GRID)
    if unknown:
        raise BayescaleError(f"unknown grid coordinates {sorted(unknown)}; use {list(HOFFMANN_GRID)}.")
    axes = {**HOFFMANN_GRID, **{k: tuple(np.atleast_1d(v)) for k, v in overrides.items()}}
    return np.array(list(itertools.product(axes["a"], axes["b"], axes["e"],
                                           axes["alpha"], axes["beta"])), dtype=float)


def huber_objective(theta: Array, weights: Array, log_N: Array, log_D: Array,
                    log_loss: Array, delta: float = DELTA) -> Array:
    """Summed (weighted) Huber loss of ``log L_obs - log L(theta)`` for one parameter set
    of the Chinchilla law; see :func:`law_objective` for any law.

    ``weights`` are per-run multiplicities (ones for the plain fit, bootstrap counts
    for a resample). Uses ``optax.losses.huber_loss``.
    """
    log_X = jnp.stack([log_N, log_D], axis=-1)
    return law_objective(theta, weights, log_X, log_loss, delta=delta, law=CHINCHILLA)


def law_objective(theta: Array, weights: Array, log_X: Array, log_loss: Array, *,
                  delta: float = DELTA, law: Law = CHINCHILLA) -> Array:
    """Summed (weighted) Huber loss of log-loss residuals under ``law`` at runs ``log_X``
    (``(n, len(law.inputs))``), for one parameter vector ``theta``."""
    pred = log_loss_theta(law, theta, log_X)
    return jnp.sum(weights * optax.losses.huber_loss(pred, log_loss, delta=delta))


def prior_penalty(law: Law, theta: Array) -> Array:
    """``0.5 * sum(((theta_j - mu_j) / sd_j)**2)`` over the law's coordinates whose
    default prior (``law.priors``) is Normal(mu, sd): minus the log prior density up to a
    constant. Uniform and log-uniform priors are flat inside their bounds and add nothing.

    ``shrink=b`` in :func:`huber_solve` / :func:`fit_huber` adds ``delta * b`` times this
    to the summed Huber loss: the maximum a posteriori estimate under those priors and a
    Laplace likelihood of scale ``b`` on log loss (``huber_delta(r) ~ delta |r|`` for
    ``|r| >> delta``), i.e. the priors weighed as if each run's residual were about ``b``.
    """
    normal = [i for i, c in enumerate(law.coords) if law.priors[c].kind == "normal"]
    if not normal:
        return jnp.zeros((), dtype=jnp.result_type(theta))
    mu = np.array([law.priors[law.coords[i]].a for i in normal])
    sd = np.array([law.priors[law.coords[i]].b for i in normal])
    z = (theta[..., np.array(normal)] - mu) / sd
    return 0.5 * jnp.sum(z**2, axis=-1)


def _shrunk_objective(theta, shrink, weights, log_X, log_loss, *, delta, law):
    return (law_objective(theta, weights, log_X, log_loss, delta=delta, law=law)
            + delta * shrink * prior_penalty(law, theta))


def log_inputs(law: Law, log_N, log_D, log_U=None) -> np.ndarray:
    cols = [np.asarray(log_N, dtype=float), np.asarray(log_D, dtype=float)]
    if "U" in law.inputs:
        if log_U is None:
            raise BayescaleError(f"the {law.name} law needs the unique tokens U of every run "
                                 f"(a 'U' or 'unique_tokens' column).")
        cols.append(np.asarray(log_U, dtype=float))
    return np.stack(cols, axis=-1)


def huber_log_normaliser(delta: float = DELTA) -> float:
    """``log Z`` of the unit-scale Huber density ``exp(-huber_delta(x)) / Z``.

    ``Z = sqrt(2 pi) (1 - 2 Phi(-delta)) + 2 exp(-delta^2 / 2) / delta``
    (Besiroglu et al. 2024, notebook ``huber_normalizing_factor``).
    """
    # 1 - 2 Phi(-delta) = erf(delta / sqrt 2): no cancellation for small delta.
    z = (math.sqrt(2 * math.pi) * math.erf(delta / math.sqrt(2.0))
         + 2 * math.exp(-0.5 * delta**2) / delta)
    return math.log(z)


class BaselineResult(NamedTuple):
    """What a baseline fit returns to :func:`bayescale.fit`."""

    params: LawParams
    info: dict
    reference: LawParams | None = None


def as_f64(*arrays):
    return tuple(jnp.asarray(np.asarray(a, dtype=np.float64)) for a in arrays)


# scipy's L-BFGS-B default stopping rule on the objective (factr=1e7 * machine eps):
# the grid's starts are solved to the same tolerance as the scipy baseline.
SCIPY_FTOL = 2.220446049250313e-09
_POLISH = 32  # best starts re-solved to a tight tolerance


def default_num_slots(batch: int) -> int:
    """Problems in flight in :func:`~bayescale._solvers.lbfgs.minimize_batch`: 512 on a CPU,
    the whole batch on an accelerator (where width is free)."""
    return min(batch, 512) if jax.default_backend() == "cpu" else batch


@functools.partial(jax.jit, static_argnames=("delta", "max_iter", "num_slots", "ftol", "gtol",
                                             "law"))
def huber_solve(x0, weights, log_X, log_loss, *, delta, max_iter, num_slots, ftol,
                 gtol=1e-10, law=CHINCHILLA, typical_f=None, shrink=None):
    """Minimise the Huber objective from every row of ``x0``; ``weights`` is (n,)
    (shared) or (batch, n) (one weight vector per problem, e.g. a bootstrap).
    ``typical_f`` as in :func:`~bayescale._solvers.lbfgs.minimize_batch`.

    ``shrink``: ``None`` (the plain objective) or the scale ``b >= 0`` of
    :func:`prior_penalty`, a scalar or one per problem ``(batch,)`` (traced: several
    strengths share one compiled program)."""
    if shrink is not None:
        fun = functools.partial(_shrunk_objective, delta=delta, law=law)
        shrink = jnp.broadcast_to(jnp.asarray(shrink, x0.dtype), x0.shape[:1])
        if weights.ndim == 2:
            mapped, shared = (shrink, weights), (log_X, log_loss)
        else:
            mapped, shared = (shrink,), (weights, log_X, log_loss)
        return minimize_batch(fun, x0, mapped, shared, max_iter=max_iter, num_slots=num_slots,
                              ftol=ftol, gtol=gtol, typical_f=typical_f)
    fun = functools.partial(law_objective, delta=delta, law=law)
    if weights.ndim == 2:
        return minimize_batch(fun, x0, (weights,), (log_X, log_loss),
                              max_iter=max_iter, num_slots=num_slots, ftol=ftol, gtol=gtol,
                              typical_f=typical_f)
    shared_fun = functools.partial(_with_weights, fun)
    return minimize_batch(shared_fun, x0, (), (weights, log_X, log_loss),
                          max_iter=max_iter, num_slots=num_slots, ftol=ftol, gtol=gtol,
                          typical_f=typical_f)


def objective_at(law: Law, theta: Array, weights: Array, log_X: Array, log_loss: Array,
                 delta: float, shrink: float = 0.0) -> Array:
    """The Huber objective (:func:`law_objective`, plus the ``shrink`` penalty of
    :func:`prior_penalty`) at each row of ``theta``."""
    return jax.vmap(lambda t: _shrunk_objective(t, shrink, weights, log_X, log_loss,
                                                delta=delta, law=law))(theta)


def _with_weights(fun, x, weights, log_X, log_loss):
    return fun(x, weights, log_X, log_loss)


def status_counts(status: np.ndarray) -> dict[str, int]:
    codes, counts = np.unique(np.asarray(status), return_counts=True)
    return {STATUS[int(c)]: int(n) for c, n in zip(codes, counts)}


#: Above this many runs the grid's starts are screened on a subsample of this size.
SCREEN_ROWS = 1024
#: The polish keeps at most this many (row x problem) residuals in flight: with many rows
#: its problems go through fewer slots (the work queue of
#: :func:`bayescale._solvers.lbfgs.minimize_batch`), so memory stays linear in the rows
#: with a fixed constant instead of growing as rows x polish.
POLISH_ROW_SLOTS = 2**21


def design_subsample(log_X: np.ndarray, size: int) -> np.ndarray:
    """Indices of ``size`` rows spread over the design: the rows sorted by their inputs
    (log N, then log D, ...) and taken at evenly spaced ranks, so the model sizes are
    covered in proportion to their rows and, within each, the range of tokens (the
    first and last rows of the order, the extreme designs, are always kept)."""
    n = log_X.shape[0]
    order = np.lexsort(np.asarray(log_X).T[::-1])
    return np.sort(order[np.round(np.linspace(0, n - 1, size)).astype(int)])


def fit_huber(log_N, log_D, log_loss, *, delta: float = DELTA, starts=None,
              max_iter: int = 1000, polish: int = _POLISH, num_slots: int | None = None,
              law: Law = CHINCHILLA, log_U=None,
              screen_rows: int | None = SCREEN_ROWS, shrink: float = 0.0) -> BaselineResult:
    """Hoffmann et al. (2022) Approach 3: Huber loss on log loss, L-BFGS from a grid.

    Every start is solved by L-BFGS (:func:`bayescale._solvers.lbfgs.minimize_batch`) in
    float32 to scipy's default L-BFGS-B tolerance; the ``polish`` best are then
    re-solved in float64 to a tight tolerance (objective change below 1e-14) and the
    best kept. The reported objective is the float64 one.

    Parameters
    ----------
    log_N, log_D, log_loss : arrays (n,)
        Natural logs of model size, tokens and final loss.
    delta : Huber threshold (1e-3, as Hoffmann et al.).
    starts : array (k, 5) of ``(a, b, e, alpha, beta)``, optional
        Default :func:`hoffmann_grid` (4500 starts).
    max_iter : L-BFGS iterations per start.
    polish : how many of the best starts to re-solve tightly.
    num_slots : problems in flight at once (see :func:`default_num_slots`).
    law : the :class:`~bayescale.laws.base.Law` to fit (default Chinchilla); its
        ``start_grid`` replaces Hoffmann's grid and ``starts`` has its coordinates.
    log_U : log unique tokens per run, for laws that take them.
    screen_rows : with more runs than this, the starts are screened on this many runs
        spread over the design (:func:`design_subsample`) and the ``polish`` best are
        solved on all runs: the cost of the 4500 screens no longer grows with the
        rows (loss curves and checkpoint dumps have 1e5-1e6). ``None``: screen on all.
    shrink : ``b >= 0``; above 0 the fit is shrunk toward the law's Normal priors
        (:func:`prior_penalty`: the MAP under those priors and a Laplace likelihood of
        scale ``b`` on log loss). 0 (default): Hoffmann's plain objective. With few runs
        and a law of many coordinates the plain fit can extrapolate wildly. A suggested
        ``b``: the extrapolation error one decade ahead, 0.026 (the default
        extrapolation-error prior's growth per decade,
        :data:`bayescale.estimators.extrapolation.DEFAULT_PRIOR`); on farseer subsets of
        1% of the pool's compute it takes the target R^2 from -2.1 to 0.51 with random
        runs and from 0.06 to 0.73 with D-optimal ones (benchmarks/RESULTS.md, "The design
        benchmark with shrunk refits"; b = 0.015-0.05 did as well in "Refits shrunk toward
        the law's priors"). The reported objective
        includes the penalty.

    Returns
    -------
    BaselineResult
        ``params`` of the best start; ``info`` holds the objective, the status of
        every start, how many reached the best objective (within 1e-8, as screened in
        float32; None when screened on a subsample), the rows screened on, and timings.
    """
    k_coords = law.num_coords
    shrink = check_shrink(shrink)
    solve_shrink = shrink if shrink > 0 else None  # 0: the plain objective's own program
    starts = law.starts() if starts is None else np.asarray(starts, dtype=float)
    if starts.ndim != 2 or starts.shape[1] != k_coords or starts.shape[0] < 1:
        raise BayescaleError(
            f"starts must have shape (k, {k_coords}) of ({', '.join(law.coords)}); "
            f"got {starts.shape}.")
    log_X = log_inputs(law, log_N, log_D, log_U)
    if int(polish) < 1:
        raise BayescaleError(f"polish must be at least 1 (the best start is always polished), "
                             f"got {polish!r}.")
    slots = default_num_slots(starts.shape[0]) if num_slots is None else int(num_slots)
    log_loss = np.asarray(log_loss, dtype=float)
    n = log_X.shape[0]
    sub = (np.arange(n) if screen_rows is None or n <= int(screen_rows)
           else design_subsample(log_X, int(screen_rows)))
    # Padded to a size bucket with weight-0 rows: data of a similar size reuse the program.
    screen_X, screen_loss, screen_mask = pad_rows(bucket_size(sub.size), log_X[sub], log_loss[sub])
    log_X, log_loss, mask = pad_rows(bucket_size(n), log_X, log_loss)
    t0 = time.perf_counter()
    # Screen every start in float32 (twice the throughput) to scipy's tolerance ...
    with jax.enable_x64(False):
        x0, lX, lL, w = (jnp.asarray(np.asarray(v), jnp.float32)
                         for v in (starts, screen_X, screen_loss, screen_mask))
        res: BatchResult = huber_solve(x0, w, lX, lL, delta=float(delta),
                                        max_iter=int(max_iter), num_slots=slots,
                                        ftol=SCIPY_FTOL, law=law,
                                        # the screen's sum has sub.size of the n rows
                                        shrink=(None if solve_shrink is None
                                                else solve_shrink * sub.size / n))
        fun = np.asarray(res.fun, dtype=np.float64)
        fun = np.where(np.isfinite(fun), fun, np.inf)
        k = min(int(polish), fun.shape[0])
        top = np.argsort(fun, kind="stable")[:k]
        screened = np.asarray(res.x, dtype=np.float64)[top]
    # ... then re-solve the best in float64 to a tight tolerance. The polish starts
    # near the minimum, so the relative-gradient test takes the objective's size at
    # the grid start each came from as its scale (not the minimum's own size).
    with jax.enable_x64(True):
        x0, lX, lL, w = as_f64(screened, log_X, log_loss, mask)
        typical = objective_at(law, jnp.asarray(starts[top]), w, lX, lL, float(delta), shrink)
        polish_slots = max(1, min(k, POLISH_ROW_SLOTS // lX.shape[0]))
        fine = huber_solve(x0, w, lX, lL, delta=float(delta), max_iter=int(max_iter),
                            num_slots=polish_slots, ftol=1e-14, gtol=1e-12,
                            law=law, typical_f=typical, shrink=solve_shrink)
        jax.block_until_ready(fine)
        seconds = time.perf_counter() - t0
        fine_fun = np.where(np.isfinite(np.asarray(fine.fun)), np.asarray(fine.fun), np.inf)
        j = int(np.argmin(fine_fun))
        best = int(top[j])
        theta = np.asarray(fine.x[j])
        fine_converged = np.asarray(fine.converged)
    objective = float(fine_fun[j])
    info = {
        "objective": objective,
        "law": law.name,
        "theta": dict(zip(law.coords, map(float, theta))),
        "delta": float(delta),
        "shrink": shrink,
        "num_starts": int(starts.shape[0]),
        "best_start": dict(zip(law.coords, map(float, starts[best]))),
        # The objective at the best fit's grid start: its typical size, the scale of
        # the relative-gradient test for solves that start near a minimum.
        "typical_objective": float(np.asarray(typical)[j]),
        "converged": bool(fine_converged[j]),
        "status": STATUS[int(np.asarray(fine.status)[j])],
        "starts_status": status_counts(res.status),
        "starts_near_best": (int(np.sum(fun <= objective + 1e-8)) if sub.size == n else None),
        "screened_on_rows": int(sub.size),
        "polish_slots": int(polish_slots),
        "evaluations": int(np.sum(np.asarray(res.num_evals)) + np.sum(np.asarray(fine.num_evals))),
        "timing": {"total": seconds},
    }
    return BaselineResult(params=law_params(law, theta), info=info)


def check_shrink(shrink) -> float:
    """``shrink`` as a float, or a clear error (it must be finite and >= 0)."""
    try:
        value = float(shrink)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise BayescaleError(
            f"shrink must be a finite number >= 0 (the residual scale, in log loss, at which "
            f"the law's priors are weighed; 0 = no shrinkage), got {shrink!r}.")
    return value


def law_params(law: Law, theta: np.ndarray):
    """The law's parameters (float64 NumPy) from ``theta[..., :]`` in its coordinates."""
    with jax.enable_x64(True):
        params = law.from_theta(jnp.asarray(np.asarray(theta, dtype=np.float64)))
        return type(params)(*(np.asarray(v, dtype=np.float64) for v in params))
