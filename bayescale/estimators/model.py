"""NumPyro models of the Chinchilla law ``L(N, D) = E + A / N**alpha + B / D**beta``.

A model is a plain function of ``(log_N, log_D, log_loss=None)``: with observed log
losses it is the posterior model that NUTS samples; with ``log_loss=None``
:class:`numpyro.infer.Predictive` draws predictive log losses from it.

Parameterisation
----------------
The law is evaluated in log space, centred on ``(log N0, log D0)`` (by default the
means of the fitted ``log N`` and ``log D``)::

    log L = logsumexp(a_c - alpha (log N - log N0), b_c - beta (log D - log D0), log E)

with ``a_c = log A - alpha log N0`` and ``b_c = log B - beta log D0``: ``exp(a_c)`` is
the model-size term *at the centre of the data*, which the data pin down whatever
alpha is. In the natural coordinates ``(log A, alpha)`` the posterior is a thin ridge
(``corr(log A, alpha) ~ 0.999`` on Chinchilla, because ``log N ~ 21`` is far from 0)
and NUTS needs hundreds of leapfrog steps per draw; the shear ``(log A, alpha) ->
(a_c, alpha)`` has unit Jacobian, so the priors below are still the priors on
``log A`` and ``log B``, only the sampled coordinates change. With a dense mass
matrix for the correlation that is left (E against the two terms), NUTS needs about
ten to thirty leapfrog steps per draw instead of hundreds.

References
----------
J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022).
T. Besiroglu, E. Erdil, M. Barnett, J. You, "Chinchilla Scaling: A replication
attempt", arXiv:2404.10102 (2024).
K. L. Lange, R. J. A. Little, J. M. G. Taylor, "Robust Statistical Modeling Using
the t Distribution", JASA 84 (1989) 881-896.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.transforms import AffineTransform
from scipy.special import logsumexp as _np_logsumexp

from bayescale.estimators.huber import huber_log_normaliser
from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import LawParams

__all__ = [
    "Huber",
    "LIKELIHOODS",
    "PRIOR_KEYS",
    "MODELS",
    "DEFAULT_NU",
    "HUBER_DELTA",
    "default_priors",
    "resolve_priors",
    "describe_priors",
    "data_centre",
    "scaling_law_model",
    "PriorPredictive",
    "prior_predictive",
]

LIKELIHOODS = ("student_t", "normal", "huber")
PRIOR_KEYS = ("E", "log_A", "log_B", "alpha", "beta", "sigma", "nu")
DEFAULT_NU = 4.0
HUBER_DELTA = 1e-3
EXPONENT_MAX = 1.5


class Huber(dist.Distribution):
    """The Huber density with location and scale (Besiroglu et al. 2024, eq. 3 ff.).

    ``log p(y) = -huber_delta((y - loc) / scale) - log Z(delta) - log scale`` with
    ``huber_delta(r) = r**2 / 2`` for ``|r| <= delta`` and ``delta (|r| - delta / 2)``
    otherwise, and ``Z(delta) = sqrt(2 pi) (1 - 2 Phi_sf(delta)) + 2 exp(-delta**2 / 2)
    / delta``, so that it integrates to one. For the default ``delta = 1e-3`` it is
    a Laplace density of scale ``scale / delta`` with a tiny Gaussian cap.

    Sampling is exact: a normal truncated to ``(-delta, delta)`` with probability
    ``sqrt(2 pi) erf(delta / sqrt 2) / Z``, else ``+-(delta + Exponential(rate=delta))``.

    Parameters
    ----------
    loc : location, any shape (broadcast with ``scale``).
    scale : positive scale ``s``.
    delta : positive float, the Huber threshold (static, not traced).
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale"]

    def __init__(self, loc: ArrayLike = 0.0, scale: ArrayLike = 1.0, *,
                 delta: float = HUBER_DELTA, validate_args: bool | None = None):
        delta = float(delta)
        if not delta > 0:
            raise BayescaleError(f"Huber delta must be positive, got {delta}.")
        self.loc, self.scale = jnp.broadcast_arrays(jnp.asarray(loc), jnp.asarray(scale))
        self.delta = delta
        self._log_z = huber_log_normaliser(delta)
        super().__init__(batch_shape=jnp.shape(self.loc), validate_args=validate_args)

    def log_prob(self, value: ArrayLike) -> Array:
        r = jnp.abs((value - self.loc) / self.scale)
        d = self.delta
        h = jnp.where(r <= d, 0.5 * r**2, d * (r - 0.5 * d))
        return -h - self._log_z - jnp.log(self.scale)

    def sample(self, key: Array, sample_shape: tuple = ()) -> Array:
        shape = sample_shape + self.batch_shape
        d = self.delta
        k_mix, k_core, k_tail, k_sign = jax.random.split(key, 4)
        p_core = math.exp(math.log(math.sqrt(2 * math.pi) * math.erf(d / math.sqrt(2)))
                          - self._log_z)
        dtype = jnp.result_type(float)
        core = jax.random.truncated_normal(k_core, -d, d, shape, dtype=dtype)
        tail = d + jax.random.exponential(k_tail, shape, dtype=dtype) / d
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), 1.0, -1.0)
        r = jnp.where(jax.random.uniform(k_mix, shape, dtype=dtype) < p_core, core, sign * tail)
        return self.loc + self.scale * r

    @property
    def mean(self) -> Array:
        return self.loc

    @property
    def variance(self) -> Array:
        d = self.delta
        # E[r^2] = (int_core r^2 + 2 int_d^inf r^2 e^{-d r + d^2/2} dr) / Z
        core = math.sqrt(2 * math.pi) * math.erf(d / math.sqrt(2)) - 2 * d * math.exp(-d * d / 2)
        tail = 2 * math.exp(-d * d / 2) * (d * d + 2 * d / d + 2 / (d * d)) / d
        return (core + tail) / math.exp(self._log_z) * self.scale**2


def default_priors(E_max: float) -> dict[str, Any]:
    """The default, weakly informative priors.

    * ``E ~ Uniform(0, E_max)``: the irreducible loss is positive and below every
      observed loss (``E_max`` is the smallest observed loss), flat in between.
    * ``alpha, beta ~ Uniform(0, 1.5)``: the law must decrease in N and D; published
      exponents are 0.05-0.8 (Kaplan et al. 2020: ~0.08; Hoffmann et al. 2022: 0.34,
      0.28; Besiroglu et al. 2024: 0.35, 0.37), so 1.5 is generous.
    * ``log_A, log_B ~ Normal(6, 10)``: centred on Hoffmann's ``log A ~ log B ~ 6`` but
      so broad (A, B from 1e-6 to 1e11 within 2 sd) that the data decide; Epoch's
      start grid spans ``a, b`` in 0-25.
    * ``sigma ~ HalfNormal(0.1)``: noise scale of log loss. Digitised Chinchilla runs
      scatter by ~0.005-0.01 in log loss about the law; 0.1 (10 % in loss) is a loose
      ceiling. For the Huber likelihood ``sigma`` is Epoch's scale ``s`` (typical
      residual ``s / delta``), which the half-normal leaves free near zero.
    * ``nu = 4`` (Student-t degrees of freedom, fixed): t_4 is the robust default
      of Lange, Little & Taylor (1989); heavy enough tails that the 5 outlying runs
      Epoch drop by hand get little weight, yet a finite variance. Sampling ``nu``
      adds a weakly identified dimension (nu against sigma) for no change in the law's
      parameters; pass ``priors={"nu": dist.Gamma(2, 0.1)}`` to sample it.
    """
    if not isinstance(E_max, jax.core.Tracer):
        E_max = float(E_max)
        if not (np.isfinite(E_max) and E_max > 0):
            raise BayescaleError(
                f"E_max (the smallest observed loss) must be positive, got {E_max}.")
    return {
        "E": dist.Uniform(0.0, E_max),
        "log_A": dist.Normal(6.0, 10.0),
        "log_B": dist.Normal(6.0, 10.0),
        "alpha": dist.Uniform(0.0, EXPONENT_MAX),
        "beta": dist.Uniform(0.0, EXPONENT_MAX),
        "sigma": dist.HalfNormal(0.1),
        "nu": DEFAULT_NU,
    }


def resolve_priors(priors: Mapping[str, Any] | None = None, *,
                   E_max: float | None = None) -> dict[str, Any]:
    """Merge user priors over :func:`default_priors` and validate them.

    Parameters
    ----------
    priors : mapping from names in :data:`PRIOR_KEYS` to NumPyro distributions
        (``"nu"`` may also be a positive number, which fixes it).
    E_max : upper bound of the default prior on E (the smallest observed loss);
        needed unless ``priors`` gives ``"E"``.

    Raises
    ------
    BayescaleError
        Unknown keys (the message lists the valid ones), values that are not
        distributions, or a scalar prior of the wrong support.
    """
    priors = dict(priors or {})
    unknown = sorted(set(priors) - set(PRIOR_KEYS))
    if unknown:
        hint = ""
        if {"A", "B"} & set(unknown):
            hint = " Priors on A and B are given on their logs: use 'log_A' / 'log_B'."
        raise BayescaleError(
            f"unknown prior key(s) {unknown}; valid keys are {list(PRIOR_KEYS)}.{hint}"
        )
    if E_max is None and "E" not in priors:
        raise BayescaleError("the default prior on E needs E_max (the smallest observed loss); "
                             "pass E_max=... or priors={'E': ...}.")
    base = default_priors(E_max) if E_max is not None else {
        **default_priors(1.0), "E": priors["E"]}
    out = {**base, **priors}
    for key, value in out.items():
        if key == "nu" and not isinstance(value, dist.Distribution):
            try:
                nu = float(value)
            except (TypeError, ValueError):
                nu = float("nan")
            if not (np.isfinite(nu) and nu > 0):
                raise BayescaleError(
                    f"prior 'nu' must be a positive number (fixed degrees of freedom) or a "
                    f"NumPyro distribution, got {value!r}.")
            out[key] = nu
            continue
        if not isinstance(value, dist.Distribution):
            raise BayescaleError(
                f"prior {key!r} must be a numpyro.distributions.Distribution, got "
                f"{type(value).__name__} ({value!r}).")
        if value.batch_shape or value.event_shape:
            raise BayescaleError(
                f"prior {key!r} must be scalar (batch_shape=(), event_shape=()), got "
                f"batch_shape={value.batch_shape}, event_shape={value.event_shape}.")
    return out


def describe_priors(priors: Mapping[str, Any]) -> dict[str, str]:
    """Human-readable priors, e.g. ``{"alpha": "Uniform(low=0.0, high=1.5)"}``."""
    out = {}
    for key, value in priors.items():
        if isinstance(value, dist.Distribution):
            args = []
            for name in value.arg_constraints:
                v = getattr(value, name, None)
                if v is None:
                    continue
                try:
                    args.append(f"{name}={float(v):.6g}")
                except (TypeError, ValueError):
                    continue
            out[key] = f"{type(value).__name__}({', '.join(args)})"
        else:
            out[key] = f"fixed {value:g}"
    return out


def data_centre(log_N: ArrayLike, log_D: ArrayLike) -> tuple[float, float]:
    """The default centre ``(log N0, log D0)``: the means of ``log N`` and ``log D``."""
    return float(np.mean(np.asarray(log_N))), float(np.mean(np.asarray(log_D)))


def _centred_log_prior(prior: dist.Distribution, shift: Array) -> dist.Distribution:
    # p(x_c | exponent) = p_prior(x_c + shift): the shear x -> x - shift has unit Jacobian.
    return dist.TransformedDistribution(prior, AffineTransform(-shift, 1.0, domain=prior.support))


def _likelihood(likelihood: str, mu: Array, sigma: Array, nu: Any) -> dist.Distribution:
    if likelihood == "student_t":
        return dist.StudentT(nu, mu, sigma)
    if likelihood == "normal":
        return dist.Normal(mu, sigma)
    if likelihood == "huber":
        return Huber(mu, sigma, delta=HUBER_DELTA)
    raise BayescaleError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}.")


def check_likelihood(likelihood: str) -> str:
    """Return ``likelihood`` if it names a known likelihood, else raise ``BayescaleError``."""
    if likelihood not in LIKELIHOODS:
        raise BayescaleError(
            f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}.")
    return likelihood


def scaling_law_model(
    log_N: ArrayLike,
    log_D: ArrayLike,
    log_loss: ArrayLike | None = None,
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: str = "student_t",
    centre: tuple[float, float] | None = None,
    E_max: float | None = None,
    record_log_likelihood: bool = False,
) -> None:
    """NumPyro model of ``log L(N, D)`` with a robust likelihood on log loss.

    Parameters
    ----------
    log_N, log_D : arrays of shape (n,)
        Natural logs of model sizes and training tokens.
    log_loss : array of shape (n,), optional
        Observed log final losses; ``None`` to draw predictive ones.
    priors : mapping, optional
        Overrides of :func:`default_priors` keyed by :data:`PRIOR_KEYS`
        (``E, log_A, log_B, alpha, beta, sigma, nu``), NumPyro distributions.
    likelihood : ``"student_t"`` (default, ``nu`` fixed at 4 unless given a prior),
        ``"normal"`` or ``"huber"`` (Besiroglu et al. 2024, delta = 1e-3).
    centre : ``(log N0, log D0)``; default the means of ``log_N`` and ``log_D``.
        Posterior-predictive calls at new points must pass the fit's centre.
    E_max : upper bound of the default prior on E; default ``min(exp(log_loss))``.
    record_log_likelihood : also record the pointwise log-likelihood of the observed
        log losses as a deterministic site ``log_lik`` (shape (n,)), so that NUTS
        collects it with the draws instead of a second pass over them.

    Notes
    -----
    Sample sites: ``E``, ``alpha``, ``beta``, ``sigma`` (and ``nu`` when it has a
    prior), ``a_c = log A - alpha log N0`` and ``b_c = log B - beta log D0``.
    Deterministic sites: ``A``, ``B``, ``a_opt = beta / (alpha + beta)``,
    ``b_opt = alpha / (alpha + beta)``. Observed site: ``log_loss`` (plate ``runs``).
    """
    check_likelihood(likelihood)
    log_N = jnp.asarray(log_N)
    log_D = jnp.asarray(log_D)
    if E_max is None and log_loss is not None and (priors is None or "E" not in priors):
        E_max = jnp.exp(jnp.min(jnp.asarray(log_loss)))
    priors = resolve_priors(priors, E_max=E_max)
    if centre is None:
        centre = (jnp.mean(log_N), jnp.mean(log_D))
    log_N0, log_D0 = centre

    E = numpyro.sample("E", priors["E"])
    alpha = numpyro.sample("alpha", priors["alpha"])
    beta = numpyro.sample("beta", priors["beta"])
    a_c = numpyro.sample("a_c", _centred_log_prior(priors["log_A"], alpha * log_N0))
    b_c = numpyro.sample("b_c", _centred_log_prior(priors["log_B"], beta * log_D0))
    sigma = numpyro.sample("sigma", priors["sigma"])
    nu = priors["nu"]
    if likelihood == "student_t" and isinstance(nu, dist.Distribution):
        nu = numpyro.sample("nu", nu)

    numpyro.deterministic("A", jnp.exp(a_c + alpha * log_N0))
    numpyro.deterministic("B", jnp.exp(b_c + beta * log_D0))
    numpyro.deterministic("a_opt", beta / (alpha + beta))
    numpyro.deterministic("b_opt", alpha / (alpha + beta))

    terms = jnp.stack(jnp.broadcast_arrays(a_c - alpha * (log_N - log_N0),
                                           b_c - beta * (log_D - log_D0),
                                           jnp.log(E)), axis=0)
    mu = logsumexp(terms, axis=0)
    noise = _likelihood(likelihood, mu, sigma, nu)
    with numpyro.plate("runs", log_N.shape[0]):
        numpyro.sample("log_loss", noise, obs=log_loss)
    if record_log_likelihood and log_loss is not None:
        numpyro.deterministic("log_lik", noise.log_prob(jnp.asarray(log_loss)))


MODELS: dict[str, Callable[..., None]] = {"chinchilla": scaling_law_model}


class PriorPredictive(NamedTuple):
    """Draws from the prior predictive.

    Attributes
    ----------
    params : :class:`~bayescale.laws.chinchilla.LawParams`, leaves of shape (draw,).
    loss : noiseless law ``L(N, D)`` per draw, shape (draw, n).
    observed_loss : ``exp`` of predictive log losses (law plus noise), shape (draw, n).
    """

    params: LawParams
    loss: np.ndarray
    observed_loss: np.ndarray


def prior_predictive(
    N: ArrayLike,
    D: ArrayLike,
    *,
    num_samples: int = 500,
    seed: int = 0,
    priors: Mapping[str, Any] | None = None,
    likelihood: str = "student_t",
    E_max: float | None = None,
    centre: tuple[float, float] | None = None,
) -> PriorPredictive:
    """Loss curves implied by the priors, for a prior-predictive check.

    Parameters
    ----------
    N, D : arrays of shape (n,)
        Model sizes and token counts at which to draw losses (e.g. a grid along an
        isoFLOP profile, or the runs to be fitted).
    num_samples : number of prior draws.
    seed : random seed.
    priors, likelihood, centre : as for :func:`scaling_law_model`.
    E_max : upper bound of the default prior on E (the smallest loss you expect to
        observe); required unless ``priors`` gives ``"E"``.

    Returns
    -------
    PriorPredictive

    Examples
    --------
    >>> import numpy as np
    >>> from bayescale.estimators.model import prior_predictive
    >>> pp = prior_predictive(np.geomspace(1e8, 1e10, 5), np.full(5, 2e10),
    ...                       num_samples=100, E_max=2.0)
    >>> pp.loss.shape
    (100, 5)
    """
    from numpyro.infer import Predictive

    check_likelihood(likelihood)
    if int(num_samples) < 1:
        raise BayescaleError(f"num_samples must be >= 1, got {num_samples}.")
    log_N = np.log(np.asarray(N, dtype=float))
    log_D = np.log(np.asarray(D, dtype=float))
    if log_N.shape != log_D.shape or log_N.ndim != 1:
        raise BayescaleError(f"N and D must be 1-d arrays of one shape, got {log_N.shape} "
                             f"and {log_D.shape}.")
    resolve_priors(priors, E_max=E_max)  # validate eagerly
    if centre is None:
        centre = data_centre(log_N, log_D)
    predictive = Predictive(scaling_law_model, num_samples=int(num_samples))
    draws = predictive(jax.random.PRNGKey(seed), log_N, log_D, None, priors=priors,
                       likelihood=likelihood, centre=centre, E_max=E_max)
    params = LawParams(*(np.asarray(draws[k]) for k in ("E", "A", "B", "alpha", "beta")))
    log_N0, log_D0 = centre
    terms = np.stack(np.broadcast_arrays(
        np.asarray(draws["a_c"])[:, None] - params.alpha[:, None] * (log_N - log_N0)[None, :],
        np.asarray(draws["b_c"])[:, None] - params.beta[:, None] * (log_D - log_D0)[None, :],
        np.log(params.E)[:, None] * np.ones_like(log_N)[None, :]))
    loss = np.exp(_np_logsumexp(terms, axis=0))
    return PriorPredictive(params=params, loss=loss, observed_loss=np.exp(np.asarray(draws["log_loss"])))
