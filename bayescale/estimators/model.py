"""NumPyro models of any scaling law (:class:`~bayescale.laws.base.Law`), with a robust
likelihood on log loss (the likelihoods themselves are in
:mod:`bayescale.estimators.likelihoods`).

A model is a plain function of ``(log_N, log_D, log_loss=None)`` (and ``log_U=`` for laws
that take unique tokens): with observed log losses it is the posterior model that NUTS
samples; with ``log_loss=None`` :class:`numpyro.infer.Predictive` draws predictive log
losses from it. The law enters only through its kernel, its declarative priors
(:class:`~bayescale.laws.base.Prior`, turned into NumPyro distributions here) and its
centred sampling coordinates (``shears``). The text below is for the default, Chinchilla,
law.

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

Slope coordinates (``slope_coords=True``, what NUTS samples for Chinchilla under the default
priors on E, alpha and log A): when the data pin the model-size term's value and slope at the
centre but not its curvature (a law that does not fit, e.g. Muennighoff et al.'s repeated-data
runs), E, alpha and a_c slide along a curved ridge, ``E + e^a_c = V`` and ``alpha e^a_c = g``
fixed, that turns sharply where E approaches 0 (where NUTS diverged). NUTS then samples
``log V``, the slope ``g`` as a fraction of its largest value and alpha's position in the
interval the other two leave it (:func:`slope_to_natural`); the priors on E, alpha and log A
enter as a density with the map's Jacobian, so the posterior is the same.

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
from jax.typing import ArrayLike
from numpyro.distributions.transforms import AffineTransform

from bayescale.errors import BayescaleError
from bayescale.laws.base import Law, log_loss_theta
from bayescale.laws.chinchilla import LAW as CHINCHILLA
from bayescale.laws.chinchilla import LawParams
from bayescale.laws.registry import get_law
from bayescale.estimators.run_offsets import RUN_TAU, sample_run_offsets  # noqa: F401
from bayescale.estimators.slope_coords import sample_slope_coords
from bayescale.estimators.likelihoods import (  # noqa: F401  (re-exported)
    LIKELIHOODS,
    Huber,
    check_likelihood,
    likelihood_distribution,
    row_precision,
)
from bayescale.estimators.priors import (  # noqa: F401  (re-exported)
    DEFAULT_NU,
    HUBER_DELTA,
    PRIOR_KEYS,
    default_priors,
    describe_priors,
    prior_keys,
    resolve_priors,
)

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
    "centred_log_prior",
    "shear_of",
    "RUN_TAU",
    "SLOPE_SITES",
    "slope_to_natural",
    "prior_keys",
    "sample_sites",
    "law_model",
    "stack_inputs",
    "scaling_law_model",
    "PriorPredictive",
    "prior_predictive",
]

PRIOR_KEYS = ("E", "log_A", "log_B", "alpha", "beta", "sigma", "nu")
EXPONENT_MAX = 1.5


def data_centre(*log_inputs: ArrayLike) -> tuple[float, ...]:
    """The default centre ``(log N0, log D0[, log U0])``: the means of the log inputs."""
    return tuple(float(np.mean(np.asarray(v))) for v in log_inputs)


def centred_log_prior(prior: dist.Distribution, shift: Array) -> dist.Distribution:
    """The prior of a sheared coordinate ``x_c = x - shift`` given the prior of ``x``."""
    # p(x_c | exponent) = p_prior(x_c + shift): the shear x -> x - shift has unit Jacobian.
    return dist.TransformedDistribution(prior, AffineTransform(-shift, 1.0, domain=prior.support))


def shear_of(law: Law) -> dict[str, tuple[str | None, int]]:
    """``{sheared coordinate: (its exponent or None, index of its input)}``."""
    return {coord: (exponent, law.inputs.index(inp)) for coord, exponent, inp in law.shears}


def _sample_slope_coords(priors, centre, E_max, alpha_max: float) -> tuple[Array, Array, Array]:
    def log_prior(E, alpha, a_c):
        prior_a = centred_log_prior(priors["log_A"], alpha * centre[0])
        return priors["E"].log_prob(E) + priors["alpha"].log_prob(alpha) + prior_a.log_prob(a_c)

    return sample_slope_coords(log_prior, E_max, alpha_max)


def sample_sites(law: Law | str, theta: Mapping[str, float] | ArrayLike,
                 centre: tuple[float, ...]) -> dict[str, float]:
    """The model's sampled-site values for one parameter vector ``theta`` (in the law's
    coordinates) at data centre ``centre``: the inverse of what the model does, used to
    initialise NUTS at a point estimate."""
    law = get_law(law)
    if not isinstance(theta, Mapping):
        theta = dict(zip(law.coords, (float(v) for v in np.asarray(theta))))
    shear = shear_of(law)
    out = {}
    for coord in law.coords:
        prior = law.priors[coord]
        if coord in shear:
            exponent, i = shear[coord]
            k = 1.0 if exponent is None else theta[exponent]
            out[f"{coord}_c"] = theta[coord] - k * centre[i]
        elif prior.kind == "log_uniform_below_loss":
            out[law.prior_key(coord)] = math.exp(theta[coord])
        else:
            out[coord] = theta[coord]
    return out


def law_model(log_X, log_loss=None, *, law: Law, priors, likelihood: str, centre, E_max,
           record_log_likelihood: bool = False, mask=None, run=None,
           num_runs: int = 0, run_reference=None, slope_coords: bool = False,
           subsample_size: int | None = None) -> None:
    """The model on stacked log inputs ``log_X`` (``(n, len(law.inputs))``): what NUTS
    samples (see :func:`scaling_law_model` for the arguments). ``mask`` (``(n,)`` bool,
    optional) leaves the rows where it is False out of the likelihood: the padding of
    :mod:`bayescale.estimators.padding`.

    ``run`` (``(n,)`` integers below ``num_runs``), checkpoints of training runs: every run
    gets an offset in log loss (:mod:`bayescale.estimators.run_offsets`), sampled around
    its mean residual from the law, or from ``run_reference`` (the observed log losses,
    for a posterior predictive with ``log_loss=None``).

    ``slope_coords`` (Chinchilla only; see the module docstring): sample E, alpha and a_c
    through :func:`slope_to_natural` (sites :data:`SLOPE_SITES`; E, alpha and a_c become
    deterministic sites).

    ``subsample_size`` (no ``run`` or recorded log-likelihood): the plate ``runs`` draws
    that many rows per step (``numpyro.subsample``), for HMCECS
    (:mod:`bayescale.estimators.subsample`); ``mask`` then masks the distribution itself
    (``dist.mask``), so a padded row's log-likelihood, and HMCECS's Taylor proxy of it, is
    0 and the subsample estimate stays unbiased for the real rows' sum."""
    if E_max is None and log_loss is not None:
        E_max = jnp.exp(jnp.median(jnp.asarray(log_loss)))
    priors = resolve_priors(priors, E_max=E_max, likelihood=likelihood, law=law)
    shear = shear_of(law)
    theta = {}
    done = ()
    if slope_coords:
        if law is not CHINCHILLA:
            raise BayescaleError("slope coordinates are for the Chinchilla law only.")
        E, alpha, a_c = _sample_slope_coords(priors, centre, E_max, float(law.priors["alpha"].b))
        theta.update(e=jnp.log(E), alpha=alpha, a=a_c + alpha * centre[0])
        done = ("a", "e", "alpha")
    # unsheared coordinates first (the shears need the exponents), in the law's order
    for coord in law.coords:
        if coord in shear or coord in done:
            continue
        prior = law.priors[coord]
        key = law.prior_key(coord)
        if prior.kind == "log_uniform_below_loss":
            theta[coord] = jnp.log(numpyro.sample(key, priors[key]))
        else:
            theta[coord] = numpyro.sample(coord, priors[key])
    for coord in law.coords:
        if coord not in shear or coord in done:
            continue
        exponent, i = shear[coord]
        k = 1.0 if exponent is None else theta[exponent]
        shift = k * centre[i]
        theta[coord] = numpyro.sample(
            f"{coord}_c", centred_log_prior(priors[law.prior_key(coord)], shift)) + shift
    sigma = numpyro.sample("sigma", priors["sigma"])
    nu = priors["nu"]
    if likelihood == "student_t" and isinstance(nu, dist.Distribution):
        nu = numpyro.sample("nu", nu)

    vec = jnp.stack([theta[c] for c in law.coords])
    params = law.from_theta(vec)
    sampled = {law.prior_key(c) if law.priors[c].kind == "log_uniform_below_loss" else c
               for c in law.coords if c not in shear}
    for name, value in zip(law.param_names, params):
        if name not in sampled:
            numpyro.deterministic(name, value)
    if law is CHINCHILLA:
        numpyro.deterministic("a_opt", theta["beta"] / (theta["alpha"] + theta["beta"]))
        numpyro.deterministic("b_opt", theta["alpha"] / (theta["alpha"] + theta["beta"]))

    if subsample_size:  # HMCECS: the likelihood on the plate's current subsample of rows
        with numpyro.plate("runs", log_X.shape[0], subsample_size=subsample_size):
            X = numpyro.subsample(log_X, event_dim=1)
            obs = None if log_loss is None else numpyro.subsample(log_loss, event_dim=0)
            mu = log_loss_theta(law, vec, X)
            noise = likelihood_distribution(likelihood, mu, sigma, nu)
            if mask is not None:  # HMCECS reads fn.log_prob: the mask must be the fn's own
                noise = noise.mask(numpyro.subsample(mask, event_dim=0))
            numpyro.sample("log_loss", noise, obs=obs)
        return
    mu = log_loss_theta(law, vec, log_X)
    if num_runs:
        reference = log_loss if run_reference is None else run_reference
        resid = None if reference is None else jnp.asarray(reference) - mu
        mu = mu + sample_run_offsets(run, num_runs, resid,
                                     row_precision(likelihood, sigma, nu), mask)
    noise = likelihood_distribution(likelihood, mu, sigma, nu)
    with numpyro.plate("runs", log_X.shape[0]), numpyro.handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("log_loss", noise, obs=log_loss)
    if record_log_likelihood and log_loss is not None:
        numpyro.deterministic("log_lik", noise.log_prob(jnp.asarray(log_loss)))


def stack_inputs(law: Law, log_N, log_D, log_U=None):
    """``(n, len(law.inputs))`` array of the log inputs a law takes."""
    cols = [jnp.asarray(log_N), jnp.asarray(log_D)]
    if "U" in law.inputs:
        if log_U is None:
            raise BayescaleError(f"the {law.name} law needs log_U (the unique tokens of every run).")
        cols.append(jnp.asarray(log_U))
    return jnp.stack(jnp.broadcast_arrays(*cols), axis=-1)


def scaling_law_model(
    log_N: ArrayLike,
    log_D: ArrayLike,
    log_loss: ArrayLike | None = None,
    *,
    priors: Mapping[str, Any] | None = None,
    likelihood: str = "student_t",
    centre: tuple[float, ...] | None = None,
    E_max: float | None = None,
    record_log_likelihood: bool = False,
    law: Law | str = CHINCHILLA,
    log_U: ArrayLike | None = None,
) -> None:
    """NumPyro model of ``log L`` under a scaling law, with a robust likelihood on log loss.

    Parameters
    ----------
    log_N, log_D : arrays of shape (n,)
        Natural logs of model sizes and training tokens.
    log_loss : array of shape (n,), optional
        Observed log final losses; ``None`` to draw predictive ones.
    priors : mapping, optional
        Overrides of :func:`default_priors` keyed by :func:`prior_keys` (for
        Chinchilla ``E, log_A, log_B, alpha, beta, sigma, nu``), NumPyro distributions.
    likelihood : ``"student_t"`` (default, ``nu`` fixed at 4 unless given a prior),
        ``"normal"`` or ``"huber"`` (Besiroglu et al. 2024, delta = 1e-3).
    centre : the data centre ``(log N0, log D0[, log U0])``; default the means of the
        inputs. Posterior-predictive calls at new points must pass the fit's centre.
    E_max : upper bound of the default prior on E; default the median observed loss.
    record_log_likelihood : also record the pointwise log-likelihood of the observed
        log losses as a deterministic site ``log_lik`` (shape (n,)).
    law : the law (default Chinchilla).
    log_U : log unique tokens per run, for laws that take them.

    Notes
    -----
    Chinchilla's sample sites: ``E``, ``alpha``, ``beta``, ``sigma`` (and ``nu`` when it
    has a prior), ``a_c = log A - alpha log N0`` and ``b_c = log B - beta log D0``.
    Deterministic sites: the law's other parameters (``A``, ``B``) and, for Chinchilla,
    ``a_opt = beta / (alpha + beta)``, ``b_opt = alpha / (alpha + beta)``. Observed
    site: ``log_loss`` (plate ``runs``).
    """
    check_likelihood(likelihood)
    law = get_law(law)
    log_X = stack_inputs(law, log_N, log_D, log_U)
    if centre is None:
        centre = tuple(jnp.mean(log_X, axis=0))
    law_model(log_X, log_loss, law=law, priors=priors, likelihood=likelihood, centre=centre,
           E_max=E_max, record_log_likelihood=record_log_likelihood)


MODELS: dict[str, Callable[..., None]] = {"chinchilla": scaling_law_model}


class PriorPredictive(NamedTuple):
    """Draws from the prior predictive.

    Attributes
    ----------
    params : the law's parameters, leaves of shape (draw,).
    loss : noiseless law ``L(N, D)`` per draw, shape (draw, n).
    observed_loss : ``exp`` of predictive log losses (law plus noise), shape (draw, n).
    """

    params: Any
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
    centre: tuple[float, ...] | None = None,
    law: Law | str = CHINCHILLA,
    U: ArrayLike | None = None,
) -> PriorPredictive:
    """Loss curves implied by the priors, for a prior-predictive check.

    Parameters
    ----------
    N, D : arrays of shape (n,)
        Model sizes and token counts at which to draw losses (e.g. a grid along an
        isoFLOP profile, or the runs to be fitted).
    num_samples : number of prior draws.
    seed : random seed.
    priors, likelihood, centre, law : as for :func:`scaling_law_model`.
    E_max : upper bound of the default prior on E (a loss level you expect to
        observe); required unless ``priors`` gives ``"E"``.
    U : unique tokens, for laws that take them.

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
    law = get_law(law)
    if int(num_samples) < 1:
        raise BayescaleError(f"num_samples must be >= 1, got {num_samples}.")
    log_N = np.log(np.asarray(N, dtype=float))
    log_D = np.log(np.asarray(D, dtype=float))
    if log_N.shape != log_D.shape or log_N.ndim != 1:
        raise BayescaleError(f"N and D must be 1-d arrays of one shape, got {log_N.shape} "
                             f"and {log_D.shape}.")
    log_U = None if U is None else np.log(np.broadcast_to(np.asarray(U, dtype=float), log_N.shape))
    resolve_priors(priors, E_max=E_max, likelihood=likelihood, law=law)  # validate eagerly
    log_X = np.asarray(stack_inputs(law, log_N, log_D, log_U))
    if centre is None:
        centre = data_centre(*log_X.T)
    predictive = Predictive(law_model, num_samples=int(num_samples))
    draws = predictive(jax.random.PRNGKey(seed), jnp.asarray(log_X), None, law=law,
                       priors=priors, likelihood=likelihood, centre=centre, E_max=E_max)
    params = law.params_type(*(np.asarray(draws[k]) for k in law.param_names))
    theta = law.to_theta(params)
    loss = np.exp(np.asarray(log_loss_theta(law, theta, log_X)))
    return PriorPredictive(params=params, loss=loss,
                           observed_loss=np.exp(np.asarray(draws["log_loss"])))
