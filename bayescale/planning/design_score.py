"""The scoring kernels of experiment design: expected posterior variance after one more run,
by importance reweighting with fantasised outcomes (:func:`score`) or by a linearised joint
normal update of the draws' covariance (:func:`linear_state`, :func:`linear_gains`,
:func:`linear_condition`; see :mod:`bayescale.planning.design`).

Everything here is pure and law-agnostic: it sees the law only through ``mu``, the log loss
each parameter draw predicts at each candidate run, and ``g``, the decision quantity
(``log N_opt(C*)``, or a log loss) of each draw, or ``g`` (P, T), the log loss at each of
T target points, whose *integrated* variance (the mean of the T variances: V-optimal design,
Chaloner & Verdinelli 1995) is then the quantity to reduce. :mod:`bayescale.planning.design`
builds those from a fit.

The particles are ``(draw j, node m)`` pairs. A node is a value of the **shared**
extrapolation error: a run ``d`` decades beyond the fitted runs misses the law by
``d * shift[m]`` with ``shift[m] = b + tau * z[m]`` (``z`` Gauss-Hermite nodes of a standard
normal, prior weights ``node_weights``). Because the node is a property of the particle,
not of the run, two runs at the same distance see the *same* discrepancy: the second does
not average the first's away, which is how the design stops chasing precision that
misspecification makes meaningless (the extrapolation model's ``b``, ``tau``:
:mod:`bayescale.estimators.extrapolation`).

``F`` fantasy *worlds* carry their own particle weights. To score candidate ``c`` each world
draws one particle from its weights (the same uniforms for every candidate: common random
numbers, so candidates are compared on the same fantasies), simulates the outcome
``y = mu[j, c] + d_c shift[m] + sigma eps``, reweights every particle by the likelihood of
``y`` and takes the weighted variance of ``g``. The mean over worlds is the expected
posterior variance. Choosing a run conditions each world on its own fantasised outcome
(:func:`condition`), so the next choice sees the redundancy with the runs chosen before it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = ["Reach", "score", "condition", "fantasy_particles", "weighted_var", "weighted_quantiles",
           "gauss_hermite", "linear_state", "linear_gains", "linear_condition",
           "Greedy", "RANKS", "pick",
           "linear_greedy", "interval", "reweight_greedy"]

RANKS = ("gain", "per_cost")


def gauss_hermite(num: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of a ``num``-point rule for ``E[f(z)]``, ``z ~ N(0, 1)``."""
    z, w = np.polynomial.hermite_e.hermegauss(int(num))
    return z, w / w.sum()


def weighted_var(log_w: Array, g: Array) -> Array:
    """Variance of ``g`` (P,) under weights ``exp(log_w)`` (P, M), normalised here; for a
    region ``g`` (P, T) the mean over its T columns of each column's variance (the
    integrated variance)."""
    w = jax.nn.softmax(log_w.reshape(-1)).reshape(log_w.shape).sum(axis=-1)
    G = g.reshape(g.shape[0], -1)
    mean = w @ G
    # centred before squaring: E[G^2] - E[G]^2 cancels catastrophically in float32 for
    # the small variances after conditioning (memory: one (P, T) temporary per world and
    # candidate in a batch, e.g. 32 x 32 x 1000 x 7 floats)
    return jnp.mean(w @ (G - mean[None, :]) ** 2)


def _loglik(y, mu_c, d_c, shift, sigma):
    """Log likelihood (P, M) of outcome ``y`` at one candidate, up to a constant."""
    r = (y - mu_c[:, None] - d_c * shift[None, :]) / sigma  # (P, M)
    return -0.5 * r * r


@jax.jit
def fantasy_particles(log_w: ArrayLike, u: ArrayLike) -> tuple[Array, Array]:
    """The particle ``(j, m)`` each world draws its fantasy from: inverse CDF of its
    weights (F, P, M) at the uniforms ``u`` (F,)."""
    log_w = jnp.asarray(log_w)
    F, P, M = log_w.shape
    w = jax.nn.softmax(log_w.reshape(F, -1), axis=-1)
    cdf = jnp.cumsum(w, axis=-1)
    idx = jax.vmap(jnp.searchsorted)(cdf, jnp.asarray(u) * cdf[:, -1])
    idx = jnp.minimum(idx, P * M - 1)
    return idx // M, idx % M


def _one_candidate(mu_c, d_c, sigma, log_w, g, shift, j, m, eps):
    """Expected posterior variance of ``g`` after one run at candidate ``c``, and each
    world's fantasised outcome (F,)."""
    y = mu_c[j] + d_c * shift[m] + sigma * eps                              # (F,)
    new = log_w + jax.vmap(lambda yf: _loglik(yf, mu_c, d_c, shift, sigma))(y)  # (F, P, M)
    var = jax.vmap(weighted_var, in_axes=(0, None))(new, g)
    return jnp.mean(var), y


@functools.partial(jax.jit, static_argnames=("batch_size",))
def score(log_w: ArrayLike, mu: ArrayLike, d: ArrayLike, g: ArrayLike, shift: ArrayLike,
          sigma: ArrayLike, j: ArrayLike, m: ArrayLike, eps: ArrayLike, *,
          batch_size: int = 32) -> tuple[Array, Array]:
    """Expected posterior variance of ``g`` after one more run at each candidate.

    Parameters
    ----------
    log_w : (F, P, M) log weights of the particles in each fantasy world.
    mu : (P, K) law log loss of each draw at each candidate.
    d : (K,) decades beyond the fitted runs of each candidate.
    g : (P,) the decision quantity of each draw, or (P, T) the log loss at T target points
        (the integrated variance is scored).
    shift : (M,) discrepancy per decade of each node, ``b + tau * z``.
    sigma : observation-noise sd of log loss, a scalar or (K,) per candidate (a candidate
        below the data adds its own extrapolation error: :func:`.design_noise.candidate_noise`).
    j, m : (F,) the particle each world's fantasy comes from (:func:`fantasy_particles`).
    eps : (F,) standard-normal observation noise of the fantasies.
    batch_size : candidates evaluated together (memory ``F * P * M * batch_size``).

    Returns
    -------
    (post_var, y) : (K,) expected posterior variance; (K, F) fantasised outcomes.
    """
    log_w, mu, d, g = (jnp.asarray(a) for a in (log_w, mu, d, g))
    sigma = jnp.broadcast_to(jnp.asarray(sigma, dtype=mu.dtype), d.shape)
    one = functools.partial(_one_candidate, log_w=log_w, g=g, shift=jnp.asarray(shift),
                            j=jnp.asarray(j), m=jnp.asarray(m), eps=jnp.asarray(eps))
    return jax.lax.map(lambda a: one(a[0], a[1], a[2]), (mu.T, d, sigma), batch_size=batch_size)


@jax.jit
def condition(log_w: ArrayLike, mu_c: ArrayLike, d_c: ArrayLike, y: ArrayLike,
              shift: ArrayLike, sigma: ArrayLike) -> Array:
    """Each world's log weights (F, P, M) after observing its outcome ``y`` (F,) at a
    candidate with law predictions ``mu_c`` (P,) and distance ``d_c``; normalised."""
    new = jnp.asarray(log_w) + jax.vmap(
        lambda yf: _loglik(yf, jnp.asarray(mu_c), d_c, jnp.asarray(shift), sigma))(jnp.asarray(y))
    F = new.shape[0]
    return (new.reshape(F, -1) - jax.nn.logsumexp(new.reshape(F, -1), axis=-1,
                                                  keepdims=True)).reshape(new.shape)


def weighted_quantiles(g, log_w, q) -> np.ndarray:
    """Quantiles ``q`` of ``g`` (P,) under weights ``exp(log_w)`` (P, M) (NumPy)."""
    w = np.exp(np.asarray(log_w, float) - np.max(log_w)).sum(axis=-1)
    order = np.argsort(g)
    cdf = np.cumsum(w[order])
    cdf = (cdf - 0.5 * w[order]) / cdf[-1]
    return np.interp(np.asarray(q, float), cdf, np.asarray(g, float)[order])


# -- the linearised (ensemble-Gaussian) update ------------------------------------------

def linear_state(mu, d, g, tau, sigma, d_g=None, share=1.0):
    """The joint covariance of the objective and the candidates' outcomes, estimated from
    the draws: ``(var_g, c, S)`` with ``var_g`` the variance of ``g`` (P,), ``c`` (K,) its
    covariance with each candidate's law prediction ``mu`` (P, K), and ``S`` (K, K) the
    covariance of the outcomes: the draws' covariance of ``mu`` plus the shared
    extrapolation error ``tau**2 d d^T`` (one discrepancy per decade for all runs, so runs
    at the same distance share it) plus observation noise ``sigma**2 I`` (``sigma`` a scalar
    or (K,) per candidate).

    For a region, ``g`` (P, T) holds the log loss at T target points: ``var_g`` is the
    mean of their variances (the integrated variance of V-optimal design) and ``c`` (T, K)
    the covariance of each target with each candidate.

    ``d_g`` (a scalar, or (T,) for a region): the objective's own distance beyond the
    fitted runs, when the objective is an observable loss there rather than the law's
    prediction of it. The objective then carries a discrepancy of the same size: its
    variance gains ``tau**2 d_g**2`` and its covariance with candidate ``k`` gains
    ``share * tau**2 d_g d_k``, ``share`` the correlation between the objective's miss per
    decade and the candidates' (shared among themselves), so a run that reaches toward the
    target is credited with measuring part of the miss the target will have; with
    ``share < 1`` no run removes more than ``share**2`` of that miss's variance (by default,
    ``d_g=None``, the objective is the law's own quantity)."""
    mu, d, g = jnp.asarray(mu), jnp.asarray(d), jnp.asarray(g)
    P = g.shape[0]
    G = g - g.mean(axis=0, keepdims=True)
    Mu = mu - mu.mean(axis=0, keepdims=True)
    c = (G.T @ Mu if g.ndim == 2 else Mu.T @ G) / (P - 1)
    S = Mu.T @ Mu / (P - 1) + tau ** 2 * jnp.outer(d, d) + jnp.diag(
        jnp.broadcast_to(jnp.asarray(sigma, dtype=Mu.dtype) ** 2, d.shape))
    var_g = jnp.sum(G * G) / (P - 1) / (G.size // P)
    if d_g is not None:
        want = (g.shape[1],) if g.ndim == 2 else ()
        if np.shape(d_g) != want:
            raise ValueError(f"d_g must have shape {want} for g of shape {g.shape}, got "
                             f"{np.shape(d_g)}")
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"share must be a correlation in [0, 1], got {share!r}")
        d_g = jnp.asarray(d_g, dtype=c.dtype)
        cross = share * tau ** 2 * (jnp.outer(d_g, d) if g.ndim == 2 else d_g * d)
        c = c + cross
        var_g = var_g + tau ** 2 * jnp.mean(d_g ** 2)
    return var_g, c, S


@jax.jit
def linear_gains(c: ArrayLike, S: ArrayLike) -> Array:
    """Reduction in the objective's variance from one more run at each candidate, under a
    joint normal approximation: ``c_k**2 / S_kk`` (for a region, ``c`` (T, K), the mean
    over the targets of ``c_tk**2 / S_kk``)."""
    c, S = jnp.atleast_2d(jnp.asarray(c)), jnp.asarray(S)
    return jnp.mean(c * c, axis=0) / jnp.diagonal(S)


@jax.jit
def linear_condition(var_g: ArrayLike, c: ArrayLike, S: ArrayLike, k: ArrayLike):
    """``(var_g, c, S)`` after observing candidate ``k`` (a rank-one Gaussian update; the
    outcome itself does not change the variances). ``c`` is (K,) or, for a region, (T, K)."""
    c0, S = jnp.asarray(c), jnp.asarray(S)
    c = jnp.atleast_2d(c0)
    col = S[:, k]
    ck = c[:, k]
    return (var_g - jnp.mean(ck ** 2) / S[k, k],
            (c - jnp.outer(ck, col) / S[k, k]).reshape(c0.shape),
            S - jnp.outer(col, col) / S[k, k])


# -- the greedy choice (one implementation: next_runs and the benchmarks call it) --------

def pick(gain, costs, remaining, unavailable, rank: str = "gain") -> int | None:
    """The next run: the candidate with the largest ``gain`` (``rank="gain"``) or
    ``gain / cost`` (``rank="per_cost"``) among those that cost at most ``remaining`` and
    are not ``unavailable`` (a boolean mask), or ``None`` when none fits or none gains."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, got {rank!r}")
    gain, costs = np.asarray(gain, float), np.asarray(costs, float)
    key = gain / costs if rank == "per_cost" else gain.copy()
    key[~(costs <= remaining) | np.asarray(unavailable, bool) | ~(gain > 0)] = -np.inf  # NaN: out
    c = int(np.argmax(key))
    return c if np.isfinite(key[c]) else None


class Greedy(NamedTuple):
    """The result of :func:`linear_greedy`: the chosen indices in order, each one's gain
    given those before it, every candidate's first-step gain (K,), the objective's variance
    before and (expected) after, and for a region its mean's ``(before, after)`` variance
    (``None`` for one objective)."""

    picks: list
    gains: list
    first: np.ndarray
    var_before: float
    var_after: float
    mean_var: tuple | None


class Reach(NamedTuple):
    """The part of the objective's variance that shrinks as runs reach toward ``C*``:
    ``kappa * d**2``, with ``d`` the decades of compute from the largest run to ``C*``
    (the optimum error of :mod:`bayescale.estimators.optimum_error`; ``kappa`` in squared
    log units per squared decade). ``d_now``: the distance now; ``d_with`` (K,): the
    distance once candidate ``c`` is trained (``min(d_now, log10(C* / C_c))``)."""

    kappa: float
    d_now: float
    d_with: np.ndarray

    def gains(self) -> np.ndarray:
        """Each candidate's reduction of ``kappa * d**2`` (K,)."""
        d_new = np.minimum(np.asarray(self.d_with, float), self.d_now)
        return self.kappa * (self.d_now**2 - d_new**2)

    def after(self, c: int) -> "Reach":
        return self._replace(d_now=float(min(self.d_now, self.d_with[c])))


def linear_greedy(mu, d, g, tau, sigma, costs, budget, k, *, rank="gain", unavailable=None,
                  reach: Reach | None = None, d_g=None, share=1.0):
    """Greedy sequential choice of up to ``k`` candidates within ``budget`` under the
    linearised update: pick (:func:`pick`), condition (:func:`linear_condition`), repeat.
    ``d_g``, ``share``: the objective's distance beyond the runs when it is an observable
    loss there, and how much of its miss the candidates share (:func:`linear_state`).
    With ``reach`` a candidate's gain also counts the optimum error it removes by moving
    the largest run toward ``C*`` (:class:`Reach`).

    Returns a :class:`Greedy`: the variances are the objective's (the law's, plus the
    discrepancy's with ``d_g``), without ``reach``. For a region ``g`` (P, T) the runs are
    chosen for its integrated variance, and ``mean_var`` follows its mean along the same
    updates: the mean's covariance with each candidate is the mean of the targets' (``c``),
    and its discrepancy is ``mean(d_g)`` times the one miss per decade the targets share."""
    costs = np.asarray(costs, float)
    taken = (np.zeros(costs.size, bool) if unavailable is None
             else np.array(unavailable, bool, copy=True))
    var_g, c_vec, S = linear_state(mu, d, g, tau, sigma, d_g, share)
    var0, picks, gains, first, remaining = float(var_g), [], [], None, float(budget)
    var_m = None
    if np.ndim(g) == 2:
        var_m = float(np.var(np.asarray(g, float).mean(axis=1), ddof=1))
        if d_g is not None:
            var_m += tau ** 2 * float(np.mean(d_g)) ** 2
    var_m0 = var_m
    for _ in range(int(k)):
        gain = np.asarray(linear_gains(c_vec, S), float)
        if reach is not None:
            gain = gain + reach.gains()
        first = gain if first is None else first
        c = pick(gain, costs, remaining, taken, rank)
        if c is None:
            break
        if var_m is not None:  # before S is conditioned: the mean's rank-one step
            var_m -= float(jnp.mean(c_vec[:, c])) ** 2 / float(S[c, c])
        var_g, c_vec, S = linear_condition(var_g, c_vec, S, c)
        reach = None if reach is None else reach.after(c)
        taken[c] = True
        picks.append(c)
        gains.append(float(gain[c]))
        remaining -= costs[c]
    if first is None:
        first = np.asarray(linear_gains(c_vec, S), float)
    return Greedy(picks, gains, first, var0, float(var_g),
                  None if var_m is None else (var_m0, var_m))


def interval(g, log_w, level) -> dict:
    """The weighted median and central ``level`` interval of ``exp(g)``."""
    q = [0.5, (1 - level) / 2, (1 + level) / 2]
    med, lo, hi = np.exp(weighted_quantiles(g, log_w, q))
    return {"median": float(med), "lower": float(lo), "upper": float(hi)}


def reweight_greedy(mu, d, g, b, tau, sigma, costs, k, budget, rng, level, F, num_nodes, rank,
                    reach: Reach | None = None):
    """Greedy choice by importance reweighting with fantasised outcomes
    (:func:`score`); ``reach`` as in :func:`linear_greedy`. A region ``g`` (P, T) is chosen
    for its integrated variance and reported by its mean (``var_before``/``var_after`` of
    the mean, ``integrated_var_*`` of the region)."""
    z, wz = gauss_hermite(num_nodes)
    shift = b + tau * z
    M, P = len(z), len(g)
    g_int = g if np.ndim(g) == 1 else np.asarray(g).mean(axis=1)  # a region: its mean
    log_w0 = np.broadcast_to(np.log(wz)[None, :] - np.log(P), (P, M))
    log_w = jnp.asarray(np.broadcast_to(log_w0, (F, P, M)).copy())
    var0 = var_now = float(weighted_var(jnp.asarray(log_w0), jnp.asarray(g)))
    rows, chosen, first, remaining, min_ess = [], [], None, budget, []
    for _ in range(int(k)):
        j, m = fantasy_particles(log_w, rng.random(F))
        post, y = score(log_w, mu, d, g, shift, sigma, j, m, rng.standard_normal(F))
        gain = var_now - np.asarray(post, float)
        if reach is not None:
            gain = gain + reach.gains()
        first = gain if first is None else first
        c = pick(gain, costs, remaining, np.isin(np.arange(len(costs)), chosen), rank)
        if c is None:
            break
        reach = None if reach is None else reach.after(c)
        log_w = condition(log_w, mu[:, c], d[c], np.asarray(y)[c], shift,
                          np.broadcast_to(sigma, np.shape(d))[c])
        w = np.exp(np.asarray(log_w)).sum(-1)
        min_ess.append(float(np.min(1.0 / np.sum(w ** 2, axis=1))))
        chosen.append(c)
        remaining -= costs[c]
        rows.append((c, {"expected_gain": float(gain[c]), "gain_per_cost": float(gain[c] / costs[c])}))
        var_now = float(np.mean(np.asarray(jax.vmap(weighted_var,
                                                     in_axes=(0, None))(log_w, g))))
    worlds = [interval(g_int, lw, level) for lw in np.asarray(log_w)]
    if np.ndim(g) == 2:  # the region's integrated variance; the mean's, as the linear path
        var_int = (var0, var_now)
        var0 = float(weighted_var(jnp.asarray(log_w0), jnp.asarray(g_int)))
        var_now = float(np.mean(np.asarray(jax.vmap(weighted_var, in_axes=(0, None))(
            log_w, jnp.asarray(g_int)))))
    after = {key: float(np.exp(np.mean([np.log(w[key]) for w in worlds])))
             for key in ("median", "lower", "upper")}
    extra = {"var_before": var0, "var_after": var_now, "num_fantasies": F, "num_nodes": M,
             "min_ess": min(min_ess) if min_ess else None}
    if np.ndim(g) == 2:
        extra["integrated_var_before"], extra["integrated_var_after"] = var_int
    return rows, first, remaining, extra, interval(g_int, log_w0, level), after
