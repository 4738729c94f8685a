"""Cost models ``C(N, D)``: how many FLOPs a run with ``N`` parameters on ``D`` tokens costs.

The compute-optimal frontier minimises the loss on the surface ``cost(N, D) = C``
(:mod:`bayescale.planning.frontier`). A cost model is a :class:`Cost`: a frozen, hashable
object (so it can be a static argument of ``jax.jit``) whose methods are pure,
traceable functions *of one point* in log space,

* ``log_cost(log_N, log_D) -> log C`` (required),
* ``log_D(log_N, log_C) -> log D``, the tokens that exhaust the budget at model
  size ``N`` (analytic where the model allows it, else a Newton solve in ``log D``
  with implicit differentiation, :func:`bayescale.planning._cost_solve.solve_log_D`),
* ``log_N_bounds(log_C) -> (lo, hi)``, where the model is defined.

Working in logs keeps float32 safe: ``log C`` of 1e24 FLOPs is 55, whereas ``N * D``
would be 1e23.

Shipped models
--------------
``TrainCost()``  (``"train"``)
    ``C = 6 N D``: 6 FLOPs per parameter per token for the forward and backward
    pass (Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022, eq. 1). The frontier
    uses the closed form for it.
``AttentionCost(n_ctx, aspect_ratio)``  (``"attention"``)
    ``C = D (6 N + 6 n_layer n_ctx d_model)``: Kaplan et al. (2020), Table 1, count
    ``2 N + 2 n_layer n_ctx d_attn`` forward FLOPs per token (the second term is the
    attention scores and the weighted sum over the context); training is three
    times the forward pass. With ``d_attn = d_model``, ``N = 12 n_layer d_model**2``
    (Kaplan eq. 2.1) and a fixed aspect ratio ``r = d_model / n_layer``,
    ``n_layer d_model = r**(-1/3) (N / 12)**(2/3)``, so the extra term grows as
    ``N**(2/3)``. Hoffmann et al. (2022), Appendix F, count the same attention
    FLOPs (with embeddings and logits) and find ``6 N D`` within a few per cent for
    their models; this model lets you see what that few per cent does to the
    frontier.
``NonEmbeddingCost(vocab_size, aspect_ratio)``  (``"non-embedding"``)
    ``C = 6 (N - n_vocab d_model) D``: the law's ``N`` counts all parameters
    (Hoffmann et al. 2022) but the input embedding is a table look-up that costs no
    multiply-adds (Kaplan et al. 2020, Sec. 2.1, count compute with non-embedding
    parameters only). The width ``d_model = (r N / 12)**(1/3)`` follows from the
    aspect ratio ``r`` as above (using the total ``N`` for the width, a
    first-order approximation that is exact as the embedding share goes to 0).
    Defined for models whose embedding share is below one half.
``InferenceCost(D_inf)``  (``"inference"``)
    ``C = 6 N D + 2 N D_inf``: training plus serving ``D_inf`` tokens at 2 FLOPs
    per parameter per token (Sardana et al. 2023, "Beyond Chinchilla-Optimal",
    eq. 2). Minimising the loss on this surface gives the loss-minimising split of
    a fixed total (training plus inference) budget.
``CostFn(fn)``
    Any JAX-traceable ``fn(N, D) -> C``, increasing in ``D``. ``D`` given ``N`` is
    found by Newton's method in ``log D`` (started at ``C / (6 N)``).

References
----------
J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361 (2020).
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
N. Sardana, J. Portes, S. Doubov, J. Frankle, "Beyond Chinchilla-Optimal: Accounting
for Inference in Language Model Scaling Laws", arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayescale.errors import BayescaleError
from bayescale.planning._cost_solve import solve_log_D

__all__ = [
    "Cost",
    "TrainCost",
    "AttentionCost",
    "NonEmbeddingCost",
    "InferenceCost",
    "CostFn",
    "COSTS",
    "get_cost",
]

LOG6 = math.log(6.0)
LOG2 = math.log(2.0)
LOG12 = math.log(12.0)


class Cost:
    """Base class of cost models; see the module docstring.

    Subclasses are frozen dataclasses, hashable by value, so two equal cost
    models share one compiled solver.
    """

    name: str = "custom"
    #: True only for ``C = 6 N D``, where the frontier has a closed form.
    closed_form: bool = False
    #: True where :meth:`log_D` is an explicit formula (the shipped models), so that
    #: its derivative is cheap to take through it; False where it is a solve.
    analytic_log_D: bool = False

    def log_cost(self, log_N: ArrayLike, log_D: ArrayLike) -> Array:
        """``log C(N, D)`` at one point."""
        raise NotImplementedError

    def log_D(self, log_N: ArrayLike, log_C: ArrayLike) -> Array:
        """``log D`` such that ``cost(N, D) = C``, by Newton's method in ``log D``.

        Differentiable (implicit function theorem, in
        :func:`~bayescale.planning._cost_solve.solve_log_D`). Subclasses override it with the
        analytic inverse where there is one.
        """
        return solve_log_D(self.log_cost, log_N, log_C, 8)

    def log_D_slope(self, log_N: ArrayLike, log_C: ArrayLike) -> tuple[Array, Array]:
        """``(log D, d log D / d log N)`` on the surface ``cost(N, D) = C``.

        For an analytic :meth:`log_D`, by forward-mode autodiff through it. Otherwise
        the slope is ``-(d log C / d log N) / (d log C / d log D)`` at the solved point
        (implicit function theorem): differentiating through the inner solve instead
        would nest its implicit derivative inside the frontier's Newton iteration and
        its own implicit derivative (a jvp of a jvp of a solve per step), which made
        user costs ~100x slower than the shipped ones.
        """
        log_N = jnp.asarray(log_N)
        if self.analytic_log_D:
            return jax.jvp(lambda x: self.log_D(x, log_C), (log_N,), (jnp.ones_like(log_N),))
        y = self.log_D(log_N, log_C)
        c_N, c_D = jax.grad(self.log_cost, argnums=(0, 1))(log_N, y)
        return y, -c_N / c_D

    def log_N_bounds(self, log_C: ArrayLike) -> tuple[Array, Array]:
        """Open interval of ``log N`` on which the model is defined at budget ``C``."""
        log_C = jnp.asarray(log_C)
        return jnp.full_like(log_C, -jnp.inf), jnp.full_like(log_C, jnp.inf)

    def __call__(self, N: ArrayLike, D: ArrayLike) -> Array:
        """FLOPs of a run: ``exp(log_cost(log N, log D))`` (broadcasts)."""
        return jnp.exp(self.log_cost(jnp.log(jnp.asarray(N)), jnp.log(jnp.asarray(D))))

    def describe(self) -> dict:
        """JSON-ready name and settings."""
        out = {"name": self.name}
        if dataclasses.is_dataclass(self):
            out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                        if not callable(getattr(self, f.name))})
        return out


@dataclasses.dataclass(frozen=True)
class TrainCost(Cost):
    """``C = 6 N D`` (Kaplan et al. 2020, Sec. 2.1; Hoffmann et al. 2022, eq. 1).

    Examples
    --------
    >>> round(float(TrainCost()(70e9, 1.4e12)) / 1e23, 3)  # Chinchilla, in 1e23 FLOPs
    5.88
    """

    name = "train"
    closed_form = True
    analytic_log_D = True

    def log_cost(self, log_N, log_D):
        return LOG6 + log_N + log_D

    def log_D(self, log_N, log_C):
        return log_C - LOG6 - log_N


def _log_n_layer_d_model(log_N, aspect_ratio):
    # n_layer * d_model = r**(-1/3) (N / 12)**(2/3) for N = 12 n_layer d_model**2, d_model = r n_layer
    return (2.0 / 3.0) * (log_N - LOG12) - math.log(aspect_ratio) / 3.0


@dataclasses.dataclass(frozen=True)
class AttentionCost(Cost):
    """``C = D (6 N + 6 n_layer n_ctx d_model)`` (Kaplan et al. 2020, Table 1).

    Parameters
    ----------
    n_ctx : context length in tokens (2048 for Chinchilla and Gopher).
    aspect_ratio : ``d_model / n_layer`` (Chinchilla 70B: 8192 / 80 = 102.4;
        LLaMA-7B: 4096 / 32 = 128).

    Examples
    --------
    >>> cost = AttentionCost(n_ctx=2048, aspect_ratio=102.4)
    >>> round(float(cost(70e9, 1.4e12)) / (6 * 70e9 * 1.4e12), 2)  # ~2% over 6ND
    1.02
    """

    n_ctx: float = 2048.0
    aspect_ratio: float = 128.0
    name = "attention"
    analytic_log_D = True

    def __post_init__(self):
        if not (self.n_ctx > 0 and self.aspect_ratio > 0):
            raise BayescaleError(
                f"AttentionCost needs n_ctx > 0 and aspect_ratio > 0, got n_ctx={self.n_ctx}, "
                f"aspect_ratio={self.aspect_ratio}.")

    def _log_flops_per_token(self, log_N):
        attn = LOG6 + math.log(self.n_ctx) + _log_n_layer_d_model(log_N, self.aspect_ratio)
        return jnp.logaddexp(LOG6 + log_N, attn)

    def log_cost(self, log_N, log_D):
        return log_D + self._log_flops_per_token(log_N)

    def log_D(self, log_N, log_C):
        return log_C - self._log_flops_per_token(log_N)


@dataclasses.dataclass(frozen=True)
class NonEmbeddingCost(Cost):
    """``C = 6 (N - n_vocab d_model) D`` with ``d_model = (r N / 12)**(1/3)``.

    Parameters
    ----------
    vocab_size : ``n_vocab`` (32000 for Chinchilla's SentencePiece vocabulary).
    aspect_ratio : ``r = d_model / n_layer``.

    Examples
    --------
    >>> cost = NonEmbeddingCost(vocab_size=32000, aspect_ratio=128)
    >>> round(float(cost(1e9, 2e10)) / (6 * 1e9 * 2e10), 2)  # 1B model: ~7% embeddings
    0.93
    """

    vocab_size: float = 32000.0
    aspect_ratio: float = 128.0
    name = "non-embedding"
    analytic_log_D = True

    def __post_init__(self):
        if not (self.vocab_size > 0 and self.aspect_ratio > 0):
            raise BayescaleError(
                f"NonEmbeddingCost needs vocab_size > 0 and aspect_ratio > 0, got "
                f"vocab_size={self.vocab_size}, aspect_ratio={self.aspect_ratio}.")

    def _log_share(self, log_N):
        # log(n_vocab d_model / N), the embedding share of the parameters
        return math.log(self.vocab_size) + (math.log(self.aspect_ratio) - LOG12) / 3.0 \
            - (2.0 / 3.0) * log_N

    def _log_flops_per_token(self, log_N):
        return LOG6 + log_N + jnp.log1p(-jnp.exp(self._log_share(log_N)))

    def log_cost(self, log_N, log_D):
        return log_D + self._log_flops_per_token(log_N)

    def log_D(self, log_N, log_C):
        return log_C - self._log_flops_per_token(log_N)

    def log_N_bounds(self, log_C):
        # share < 1/2  <=>  log N > 1.5 (log V + (log r - log 12) / 3 + log 2)
        lo = 1.5 * (math.log(self.vocab_size) + (math.log(self.aspect_ratio) - LOG12) / 3.0
                    + LOG2)
        log_C = jnp.asarray(log_C)
        return jnp.full_like(log_C, lo), jnp.full_like(log_C, jnp.inf)


@dataclasses.dataclass(frozen=True)
class InferenceCost(Cost):
    """``C = 6 N D + 2 N D_inf``: training plus inference (Sardana et al. 2023, eq. 2).

    Parameters
    ----------
    D_inf : tokens served over the model's lifetime (inference tokens).

    Examples
    --------
    >>> round(float(InferenceCost(D_inf=1e12)(7e9, 1e12)) / 1e22, 3)  # 6ND + 2N D_inf
    5.6
    """

    D_inf: float = 0.0
    name = "inference"
    analytic_log_D = True

    def __post_init__(self):
        if not (math.isfinite(self.D_inf) and self.D_inf >= 0):
            raise BayescaleError(
                f"inference tokens D_inf must be a finite number >= 0, got {self.D_inf!r}.")

    def log_cost(self, log_N, log_D):
        if self.D_inf == 0:
            return LOG6 + log_N + log_D
        return log_N + jnp.logaddexp(LOG6 + log_D, LOG2 + math.log(self.D_inf))

    def log_D(self, log_N, log_C):
        if self.D_inf == 0:
            return log_C - LOG6 - log_N
        # D = (C - 2 N D_inf) / (6 N)
        frac = jnp.exp(LOG2 + math.log(self.D_inf) + log_N - log_C)
        return log_C + jnp.log1p(-frac) - LOG6 - log_N

    def log_N_bounds(self, log_C):
        log_C = jnp.asarray(log_C)
        hi = jnp.inf if self.D_inf == 0 else log_C - LOG2 - math.log(self.D_inf)
        return jnp.full_like(log_C, -jnp.inf), jnp.full_like(log_C, hi)


@dataclasses.dataclass(frozen=True)
class CostFn(Cost):
    """A user cost ``fn(N, D) -> C`` (JAX-traceable, increasing in ``D``).

    Hashed by the identity of ``fn``: reuse one ``CostFn`` (or one function) to
    reuse the compiled solver.

    Examples
    --------
    >>> cost = CostFn(lambda N, D: 6 * N * D + 8.05e9 * D)  # + 6 n_layer n_ctx d_model D
    >>> round(float(cost(70e9, 1.4e12)) / 1e23, 2)
    5.99
    """

    fn: Callable = None
    name = "custom"
    newton_iters: int = 8

    def __post_init__(self):
        if not callable(self.fn):
            raise BayescaleError(f"CostFn needs a callable fn(N, D) -> C, got {self.fn!r}.")

    def log_cost(self, log_N, log_D):
        return jnp.log(self.fn(jnp.exp(log_N), jnp.exp(log_D)))

    def log_D(self, log_N, log_C):
        return solve_log_D(self.log_cost, log_N, log_C, int(self.newton_iters))


COSTS: dict[str, type[Cost]] = {
    "train": TrainCost,
    "attention": AttentionCost,
    "non-embedding": NonEmbeddingCost,
    "inference": InferenceCost,
}


def get_cost(cost: str | Cost | Callable, *, inference_tokens: float | None = None,
             **settings) -> Cost:
    """Turn a name, :class:`Cost` or callable ``fn(N, D) -> C`` into a :class:`Cost`.

    Parameters
    ----------
    cost : ``"train"``, ``"attention"``, ``"non-embedding"``, ``"inference"``, a
        :class:`Cost`, or a JAX-traceable callable ``fn(N, D) -> C``.
    inference_tokens : ``D_inf`` for ``"inference"`` (required there).
    **settings : passed to the named model (e.g. ``n_ctx=4096``).

    Raises
    ------
    BayescaleError
        For an unknown name, or ``"inference"`` without ``inference_tokens``.
    """
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, str):
        key = cost.strip().lower().replace("_", "-")
        if key not in COSTS:
            raise BayescaleError(
                f"unknown cost model {cost!r}; choose one of {', '.join(COSTS)}, pass a "
                "bayescale.planning.costs.Cost, or a JAX-traceable function cost(N, D) -> FLOPs.")
        if key == "inference":
            if inference_tokens is None:
                raise BayescaleError(
                    "the inference cost model needs the number of inference tokens D_inf "
                    "(inference_tokens=..., or --inference-tokens on the command line).")
            return InferenceCost(D_inf=float(inference_tokens), **settings)
        return COSTS[key](**settings)
    if callable(cost):
        return CostFn(fn=cost)
    raise BayescaleError(f"cost must be a name, a Cost or a callable, got {cost!r}.")
