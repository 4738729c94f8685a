"""Batched L-BFGS: many small, independent minimisations in one compiled program.

The scaling-law fits solve thousands of 5-parameter problems at once (Hoffmann's
4500-point grid of starts, 4000 bootstrap resamples). A plain ``jax.vmap`` of
``optax.lbfgs`` is slow here: under ``vmap`` every data-dependent loop in the zoom
line search runs until the *slowest* member of the batch is done, converged members
keep computing, and the whole batch runs as many iterations as its slowest start.
This solver is designed for the batch instead:

* **One evaluation per problem per step.** The line search is a state machine, not
  an inner loop: each step of the outer ``while_loop`` evaluates value and gradient
  at one trial point per problem. A problem whose trial passes the Armijo test
  accepts it and computes its next L-BFGS direction; one that fails shrinks its
  step (safeguarded quadratic interpolation) and tries again on the next step. No
  problem waits for another's line search.
* **A work queue over a fixed number of slots.** ``num_slots`` problems are in
  flight at a time. When one converges (or stalls) its result is written out and
  its slot is refilled with the next waiting start, so the work done is the *sum*
  of the iterations the problems need, not ``batch x slowest``.
* **optax's L-BFGS.** Memory and two-loop recursion are ``optax.scale_by_lbfgs``.
  Where its update is not a descent direction (possible on a non-convex objective,
  since it does not check curvature) the problem's memory is reset and it takes a
  steepest-descent step.

Everything is written for one problem and ``vmap``-ped over the slots; shapes are
static, so a given (problem count, slot count, dimension) compiles once.

**When a problem has converged.** A small gradient (``gtol``, absolute) is always
convergence. A small objective change (``ftol``, as scipy's L-BFGS-B) or a line search
that can no longer decrease ``f`` is convergence only if the *relative gradient* of
Dennis and Schnabel (1996, *Numerical Methods for Unconstrained Optimization and
Nonlinear Equations*, SIAM, section 7.2) is also small::

    max_i |g_i| max(|x_i|, 1) / max(|f|, |f_0|)  <=  rtol_grad   (default eps ** (1/3))

with ``f_0`` the objective at the problem's start as its typical size. The test does
not change when ``f`` is multiplied by a constant (a Huber objective of order 1e-3 is
judged as one of order 1), and a step that stops making progress far from a
stationary point (a kink, a tiny objective scale) is reported as a stall, not as
convergence. Such a problem stops after 20 small-change steps in a row (it makes no
progress worth the time: Kaplan's 900 starts on the Chinchilla runs took 126 s with 110
of them run to ``max_iter``, and 1.6 s with this patience, to the same optimum).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

__all__ = ["BatchResult", "minimize_batch", "STATUS"]

# Status codes per problem.
STATUS = {0: "running", 1: "converged (gradient)",
          2: "converged (objective change, relative gradient)",
          3: "stalled (no decrease along the search direction)", 4: "max_iter reached",
          5: "non-finite objective"}

_C1 = 1e-4           # Armijo constant
_MAX_BACKTRACKS = 40  # per line search, before a problem counts as stalled
_PATIENCE = 20        # small-change steps in a row, far from stationarity, before a stall


class BatchResult(NamedTuple):
    """Solutions of a batch of minimisations.

    Attributes
    ----------
    x : (batch, dim) minimisers.
    fun : (batch,) objective values.
    grad_norm : (batch,) infinity norm of the gradient at ``x``.
    status : (batch,) int codes, see :data:`STATUS`; see :attr:`converged`.
    num_iter : (batch,) accepted L-BFGS iterations.
    num_evals : (batch,) objective-and-gradient evaluations.
    """

    x: Array
    fun: Array
    grad_norm: Array
    status: Array
    num_iter: Array
    num_evals: Array

    @property
    def converged(self) -> Array:
        """Status 1 or 2: the gradient is small, or the objective stopped changing
        where the relative gradient is small (see the module's docstring). A stall
        (status 3) or ``max_iter`` (4) is not convergence."""
        return (self.status == 1) | (self.status == 2)


class _Slot(NamedTuple):
    x: Array        # accepted point
    f: Array
    g: Array
    f0: Array       # objective at the start: its typical size
    d: Array        # search direction
    slope: Array    # g . d (< 0)
    t: Array        # step to try next
    backtracks: Array
    slow: Array     # consecutive accepted steps with a small objective change
    lbfgs: Any
    status: Array   # 0 running, >0 finished, -1 empty
    it: Array
    evals: Array
    idx: Array      # problem index held, == batch when none


def _relative_gradient(g, x, f, f0):
    """Dennis and Schnabel's relative gradient, with ``|f0|`` as f's typical size."""
    scale = jnp.maximum(jnp.abs(f), f0)
    rel = jnp.max(jnp.abs(g) * jnp.maximum(jnp.abs(x), 1.0)) / scale
    return jnp.where(scale > 0, rel, jnp.inf)


def _where(pred, a, b):
    return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)


@functools.partial(jax.jit, static_argnames=("fun", "max_iter", "memory_size", "num_slots",
                                              "gtol", "ftol", "rtol_grad"))
def minimize_batch(
    fun: Callable[..., Array],
    x0: Array,
    mapped: Any = (),
    shared: Any = (),
    *,
    max_iter: int = 1000,
    memory_size: int = 10,
    num_slots: int | None = None,
    gtol: float = 1e-10,
    ftol: float = 1e-13,
    rtol_grad: float | None = None,
    typical_f: Array | None = None,
) -> BatchResult:
    """Minimise ``fun(x, *mapped_i, *shared)`` from every row of ``x0``.

    Parameters
    ----------
    fun : callable
        Objective of *one* problem, ``fun(x, *mapped_i, *shared) -> scalar``. It is a
        static argument: pass a module-level function or a ``functools.partial`` of
        one so that repeated calls reuse the compiled program.
    x0 : array (batch, dim)
        Starting points, one problem each.
    mapped : tuple of arrays
        Per-problem arguments with a leading ``batch`` axis (e.g. bootstrap weights).
    shared : tuple of arrays
        Arguments common to every problem (e.g. the data).
    max_iter : accepted L-BFGS iterations per problem.
    memory_size : L-BFGS memory (``optax.scale_by_lbfgs``).
    num_slots : problems in flight at once (default ``min(batch, 1024)``).
    gtol : converged when the gradient's infinity norm is at most this.
    ftol : an accepted step that lowers ``f`` by at most ``ftol * max(1, |f|)`` is
        convergence if the relative gradient is at most ``rtol_grad``.
    rtol_grad : the relative-gradient tolerance (module docstring); default
        ``eps ** (1/3)`` of ``x0``'s dtype (6e-6 in float64, 5e-3 in float32), as
        Dennis and Schnabel recommend.
    typical_f : array (batch,) or scalar, optional
        The typical size of each problem's objective in that test; default
        ``|f(x0)|``. Pass it when ``x0`` already sits near the minimum (a polish
        of an earlier solve), where ``|f(x0)|`` is the minimum's size rather than
        the objective's: the original start's ``|f|`` is the scale then.

    Returns
    -------
    BatchResult
        Ordered like ``x0``.
    """
    x0 = jnp.asarray(x0)
    batch, dim = x0.shape
    slots = min(batch, 1024) if num_slots is None else min(int(num_slots), batch)
    dtype = x0.dtype
    rtol_g = float(jnp.finfo(dtype).eps) ** (1 / 3) if rtol_grad is None else float(rtol_grad)
    opt = optax.scale_by_lbfgs(memory_size=memory_size)
    value_and_grad = jax.value_and_grad(fun)

    def problem_args(idx):
        safe = jnp.minimum(idx, batch - 1)
        return jax.tree.map(lambda leaf: leaf[safe], mapped)

    def empty_slot(_):
        z = jnp.zeros((dim,), dtype)
        return _Slot(x=z, f=jnp.zeros((), dtype), g=z, f0=jnp.ones((), dtype), d=z, slope=jnp.zeros((), dtype),
                     t=jnp.ones((), dtype), backtracks=jnp.zeros((), jnp.int32),
                     slow=jnp.zeros((), jnp.int32),
                     lbfgs=opt.init(z), status=-jnp.ones((), jnp.int32),
                     it=jnp.zeros((), jnp.int32), evals=jnp.zeros((), jnp.int32),
                     idx=jnp.asarray(batch, jnp.int32))

    def direction(g, base, x):
        p, new_lbfgs = opt.update(g, base, x)
        d = -p
        slope = jnp.vdot(g, d)
        ok = jnp.isfinite(slope) & (slope < 0)
        # Not a descent direction: restart as optax's first step from a fresh state
        # (steepest descent scaled by the capped inverse gradient norm, empty memory),
        # written out rather than computed by a second ``opt.update``: each update runs
        # two ``lax.scan`` loops over the memory, and on a GPU every loop iteration
        # costs a synchronisation.
        d0 = -jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g)) * g
        fresh = optax.ScaleByLBFGSState(
            count=jnp.ones_like(new_lbfgs.count), params=x, updates=g,
            diff_params_memory=jnp.zeros_like(new_lbfgs.diff_params_memory),
            diff_updates_memory=jnp.zeros_like(new_lbfgs.diff_updates_memory),
            weights_memory=jnp.zeros_like(new_lbfgs.weights_memory))
        d = jnp.where(ok, d, d0)
        return d, jnp.vdot(g, d), _where(ok, new_lbfgs, fresh)

    def step_slot(s: _Slot, refill: Array, new_idx: Array):
        # The trial point: a fresh start for a refilled slot, else x + t d.
        idx = jnp.where(refill, new_idx, s.idx)
        trial = jnp.where(refill, x0[jnp.minimum(idx, batch - 1)], s.x + s.t * s.d)
        f_t, g_t = value_and_grad(trial, *problem_args(idx), *shared)
        finite = jnp.isfinite(f_t) & jnp.all(jnp.isfinite(g_t))

        armijo = finite & (f_t <= s.f + _C1 * s.t * s.slope)
        accept = refill | ((s.status == 0) & armijo)
        base = _where(refill, opt.init(trial), s.lbfgs)
        d, slope, new_lbfgs = direction(g_t, base, trial)

        # Convergence of an accepted (non-refill) step.
        gnorm = jnp.max(jnp.abs(g_t))
        f_start = (jnp.abs(f_t) if typical_f is None else jnp.abs(
            jnp.broadcast_to(jnp.asarray(typical_f, dtype), (batch,))[jnp.minimum(idx, batch - 1)]))
        f0 = jnp.where(refill, f_start, s.f0)
        rel_ok = _relative_gradient(g_t, trial, f_t, f0) <= rtol_g
        # As scipy's L-BFGS-B, but not on the first steps, whose length is set by the
        # gradient's scale rather than by curvature, and only where the relative
        # gradient is small (a first-order condition that does not depend on f's scale).
        # A problem that keeps making such small steps where the relative gradient is
        # still large has stalled (a kink, a flat valley, rounding): after _PATIENCE of
        # them in a row it stops, reported as a stall, not as convergence.
        tiny_df = ((s.f - f_t) <= ftol * jnp.maximum(1.0, jnp.abs(s.f))) & (s.it >= 2)
        small_df = tiny_df & rel_ok
        slow = jnp.where(refill | ~tiny_df, 0, s.slow + 1)
        it = jnp.where(refill, 0, s.it + accept.astype(jnp.int32))
        status_acc = jnp.where(
            refill, jnp.where(finite, jnp.where(gnorm <= gtol, 1, 0), 5),
            jnp.where(gnorm <= gtol, 1,
            jnp.where(small_df, 2,
            jnp.where(slow >= _PATIENCE, 3,
            jnp.where(it >= max_iter, 4, 0)))))
        accepted = s._replace(x=trial, f=f_t, g=g_t, f0=f0, d=d, slope=slope, t=jnp.ones((), dtype),
                              backtracks=jnp.zeros((), jnp.int32), slow=slow, lbfgs=new_lbfgs,
                              status=status_acc.astype(jnp.int32), it=it, idx=idx)

        # Rejected: shrink the step by safeguarded quadratic interpolation.
        curv = f_t - s.f - s.slope * s.t
        t_quad = jnp.where(finite & (curv > 0), -s.slope * s.t**2 / (2 * curv), 0.1 * s.t)
        t_new = jnp.clip(t_quad, 0.1 * s.t, 0.5 * s.t)
        bt = s.backtracks + 1
        # No decrease is possible along the direction: converged if the accepted point
        # satisfies the relative-gradient test, otherwise a stall.
        at_rest = _relative_gradient(s.g, s.x, s.f, s.f0) <= rtol_g
        rejected = s._replace(t=t_new, backtracks=bt,
                              status=jnp.where(bt >= _MAX_BACKTRACKS,
                                               jnp.where(at_rest, 2, 3), s.status))

        new = _where(accept, accepted, rejected)
        new = new._replace(evals=jnp.where(refill, 1, s.evals + 1))
        # Finished or empty slots that are not refilled stay as they are.
        return _where(refill | (s.status == 0), new, s)

    def write(out, s: _Slot, mask):
        idx = jnp.where(mask, s.idx, batch)
        x_out, f_out, g_out, st_out, it_out, ev_out = out
        return (x_out.at[idx].set(s.x, mode="drop"),
                f_out.at[idx].set(s.f, mode="drop"),
                g_out.at[idx].set(jnp.max(jnp.abs(s.g), axis=-1), mode="drop"),
                st_out.at[idx].set(s.status, mode="drop"),
                it_out.at[idx].set(s.it, mode="drop"),
                ev_out.at[idx].set(s.evals, mode="drop"))

    def body(carry):
        slot, ptr, out = carry
        finished = (slot.status != 0) & (slot.idx < batch)
        out = write(out, slot, finished)
        free = slot.status != 0
        rank = jnp.cumsum(free, dtype=jnp.int32) - 1
        new_idx = ptr + rank
        refill = free & (new_idx < batch)
        ptr = jnp.minimum(ptr + jnp.sum(free, dtype=jnp.int32), batch).astype(jnp.int32)
        # Retire slots that finished with nothing left to take.
        slot = slot._replace(idx=jnp.where(free & ~refill, batch, slot.idx))
        slot = jax.vmap(step_slot)(slot, refill, new_idx.astype(jnp.int32))
        return slot, ptr, out

    def compact(slot, size):
        # Move the running problems into a smaller slot array (the queue is empty).
        active = slot.status == 0
        (pos,) = jnp.nonzero(active, size=size, fill_value=0)
        valid = jnp.arange(size) < jnp.sum(active, dtype=jnp.int32)
        moved = jax.tree.map(lambda leaf: leaf[pos], slot)
        empty = jax.vmap(empty_slot)(jnp.arange(size))
        return jax.vmap(_where)(valid, moved, empty)

    out = (jnp.zeros((batch, dim), dtype), jnp.full((batch,), jnp.inf, dtype),
           jnp.full((batch,), jnp.inf, dtype), jnp.full((batch,), 5, jnp.int32),
           jnp.zeros((batch,), jnp.int32), jnp.zeros((batch,), jnp.int32))
    # Stages of shrinking width: once the queue is empty and few problems are left,
    # they move to fewer slots so the tail of slow problems runs cheaply.
    sizes = [slots]
    while sizes[-1] // 8 >= 8:
        sizes.append(sizes[-1] // 8)
    slot = jax.vmap(empty_slot)(jnp.arange(slots))
    ptr = jnp.zeros((), jnp.int32)
    for k, size in enumerate(sizes):
        if k > 0:
            slot = compact(slot, size)
        threshold = sizes[k + 1] if k + 1 < len(sizes) else 0

        def cond(carry, threshold=threshold):
            slot, ptr, _ = carry
            return (ptr < batch) | (jnp.sum(slot.status == 0) > threshold)

        slot, ptr, out = jax.lax.while_loop(cond, body, (slot, ptr, out))
        out = write(out, slot, (slot.status != 0) & (slot.idx < batch))
    x, f, gnorm, status, it, evals = out
    return BatchResult(x=x, fun=f, grad_norm=gnorm, status=status, num_iter=it, num_evals=evals)
