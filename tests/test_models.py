"""Tests of bayescale.estimators.model: the Huber density, priors, the model's sites and float32."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import integrate, stats

from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import HOFFMANN_2022, log_loss_from_theta, theta_from_params
from bayescale.estimators.model import (
    HUBER_DELTA,
    MODELS,
    PRIOR_KEYS,
    Huber,
    default_priors,
    prior_predictive,
    resolve_priors,
    scaling_law_model,
)
from bayescale.data.simulate import simulate_runs
from bayescale.estimators.likelihoods import PolarStudentT


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("delta", [HUBER_DELTA, 0.5, 1.5])
@pytest.mark.parametrize("loc,scale", [(0.0, 1.0), (1.3, 0.02)])
def test_huber_density_integrates_to_one(delta, loc, scale):
    d = Huber(loc, scale, delta=delta)

    def pdf(x):
        return float(jnp.exp(d.log_prob(x)))

    # the density has kinks at loc +- delta * scale and a Laplace tail of scale scale/delta
    lo, hi = loc - delta * scale, loc + delta * scale
    core = integrate.quad(pdf, lo, hi, epsabs=0, epsrel=1e-10)[0]
    right = integrate.quad(pdf, hi, np.inf, epsabs=0, epsrel=1e-10, limit=200)[0]
    left = integrate.quad(pdf, -np.inf, lo, epsabs=0, epsrel=1e-10, limit=200)[0]
    assert core + left + right == pytest.approx(1.0, rel=1e-7)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_huber_log_prob_is_besiroglu_formula():
    # Besiroglu et al. (2024): log p = -huber_delta(r) - log Z(delta) - log s, with
    # Z = sqrt(2 pi) (1 - 2 Phi_sf(delta)) + 2 exp(-delta^2/2) / delta; optax's
    # huber_loss(r, delta) is the same huber_delta.
    import optax

    delta, s = 1e-3, 4.7e-6
    r = np.array([-3.0, -1e-4, 0.0, 5e-4, 2.0, 40.0])
    y = 1.0 + s * r
    Z = math.sqrt(2 * math.pi) * (1 - 2 * stats.norm.sf(delta)) + 2 * math.exp(-delta**2 / 2) / delta
    expected = -np.asarray(optax.losses.huber_loss(r, delta=delta)) - math.log(Z) - math.log(s)
    np.testing.assert_allclose(np.asarray(Huber(1.0, s).log_prob(y)), expected, rtol=1e-6)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("delta", [HUBER_DELTA, 1.0])
def test_huber_sampling_matches_density(delta):
    d = Huber(0.5, 2.0, delta=delta)
    x = np.asarray(d.sample(jax.random.PRNGKey(0), (200_000,)))
    # compare the CDF at a few points with the quadrature of the density
    pdf = lambda t: float(jnp.exp(d.log_prob(t)))  # noqa: E731
    for q in [-0.1, 0.5 + 1e-3, 1.0, 2000.0 if delta < 0.01 else 3.0]:
        cdf = 0.5 + math.copysign(1, q - 0.5) * integrate.quad(
            pdf, min(0.5, q), max(0.5, q), epsabs=0, epsrel=1e-9, limit=200)[0]
        assert np.mean(x <= q) == pytest.approx(cdf, abs=4e-3)
    assert np.var(x) == pytest.approx(float(d.variance), rel=0.03)


def test_default_priors_and_overrides():
    pri = resolve_priors(None, E_max=2.0)
    assert set(pri) == set(PRIOR_KEYS)
    assert float(pri["E"].high) == 2.0 and pri["nu"] == 4.0
    custom = resolve_priors({"alpha": dist.Uniform(0.1, 0.6), "nu": dist.Gamma(2.0, 0.1)},
                            E_max=2.0)
    assert float(custom["alpha"].high) == 0.6 and isinstance(custom["nu"], dist.Gamma)
    with pytest.raises(BayescaleError, match=r"valid keys are \['E', 'log_A'"):
        resolve_priors({"gamma": dist.Normal()}, E_max=2.0)
    with pytest.raises(BayescaleError, match="log_A"):
        resolve_priors({"A": dist.LogNormal()}, E_max=2.0)
    with pytest.raises(ValueError, match="Distribution"):
        resolve_priors({"alpha": 0.3}, E_max=2.0)
    with pytest.raises(BayescaleError, match="E_max"):
        resolve_priors(None)
    with pytest.raises(BayescaleError, match="nu"):
        resolve_priors({"nu": -1}, E_max=2.0)
    assert MODELS["chinchilla"] is scaling_law_model
    assert default_priors(3.0)["E"].high == 3.0


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_model_sites_and_predictive():
    runs = simulate_runs(models_per_budget=3)
    pred = Predictive(scaling_law_model, num_samples=50)
    out = pred(jax.random.PRNGKey(1), runs.log_N, runs.log_D, None, E_max=float(runs.loss.min()))
    for name in ("E", "A", "B", "alpha", "beta", "a_opt", "b_opt", "sigma", "a_c", "b_c"):
        assert out[name].shape == (50,), name
    assert out["log_loss"].shape == (50, len(runs))
    np.testing.assert_allclose(out["a_opt"] + out["b_opt"], 1.0, rtol=1e-12)
    assert np.all((out["E"] > 0) & (out["E"] < runs.loss.min()))
    assert np.all((out["alpha"] > 0) & (out["alpha"] < 1.5))


def _model_log_density(params, runs, likelihood, dtype):
    log_N0, log_D0 = float(np.mean(runs.log_N)), float(np.mean(runs.log_D))
    values = {"E": params.E, "alpha": params.alpha, "beta": params.beta,
              "a_c": math.log(params.A) - params.alpha * log_N0,
              "b_c": math.log(params.B) - params.beta * log_D0, "sigma": 0.01}
    values = {k: jnp.asarray(v, dtype=dtype) for k, v in values.items()}
    args = tuple(jnp.asarray(v, dtype=dtype) for v in (runs.log_N, runs.log_D, runs.log_loss))
    lp, trace = log_density(scaling_law_model, args, {"likelihood": likelihood}, values)
    return float(lp), trace


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
@pytest.mark.parametrize("likelihood", ["student_t", "normal", "huber"])
def test_centred_law_equals_the_law_and_float32_is_safe(likelihood):
    runs = simulate_runs(seed=2)
    lp64, trace = _model_log_density(HOFFMANN_2022, runs, likelihood, jnp.float64)
    # the centred parameterisation is the same law
    mu = trace["log_loss"]["fn"].loc
    np.testing.assert_allclose(np.asarray(mu), np.asarray(log_loss_from_theta(
        theta_from_params(HOFFMANN_2022), runs.log_N, runs.log_D)), rtol=1e-12)
    np.testing.assert_allclose(float(trace["A"]["value"]), HOFFMANN_2022.A, rtol=1e-12)
    with jax.enable_x64(False):
        lp32, _ = _model_log_density(HOFFMANN_2022, runs, likelihood, jnp.float32)
    assert np.isfinite(lp32)
    # a sum of n = 90 terms each rounded to float32 (eps 1.19e-7): relative error at
    # most about n * eps = 1.1e-5 (measured: 1e-7)
    assert lp32 == pytest.approx(lp64, rel=len(runs) * float(np.finfo(np.float32).eps), abs=0)


@pytest.mark.float64  # an oracle to float64 precision; the default float32 path runs elsewhere
def test_prior_on_log_A_is_kept_under_centring():
    # the shear (log A, alpha) -> (a_c, alpha) has unit Jacobian: prior draws of A
    # are log-normal with the prior's parameters, whatever the centre
    N = np.geomspace(1e8, 1e10, 4)
    pp = prior_predictive(N, np.full(4, 1e11), num_samples=4000, seed=3, E_max=2.5,
                          priors={"log_A": dist.Normal(5.0, 2.0)})
    logA = np.log(pp.params.A)
    assert stats.kstest(logA, stats.norm(5.0, 2.0).cdf).pvalue > 1e-3
    assert pp.loss.shape == (4000, 4) and pp.observed_loss.shape == (4000, 4)
    assert np.all(pp.loss > pp.params.E[:, None])
    # loss decreases with N at fixed D along every prior draw
    assert np.all(np.diff(pp.loss, axis=1) <= 0)


def test_prior_predictive_validates():
    with pytest.raises(BayescaleError, match="likelihood"):
        prior_predictive([1e9], [1e10], likelihood="cauchy", E_max=2.0)
    with pytest.raises(BayescaleError, match="E_max"):
        prior_predictive([1e9], [1e10])


@pytest.mark.parametrize("likelihood, nu", [("student_t", 4.0), ("student_t", 30.0),
                                            ("normal", None), ("huber", None)])
def test_row_precision_is_the_fisher_information_about_the_location(likelihood, nu):
    """Oracle: ``E[(d/dmu log p(y | mu))^2]`` by quadrature (scipy) of the score, from
    finite differences of the distribution's own ``log_prob`` in mu."""
    from bayescale.estimators.likelihoods import likelihood_distribution, row_precision

    sigma, h = 0.3, 1e-7
    with jax.enable_x64(True):
        def log_p(y, mu):
            return float(likelihood_distribution(likelihood, jnp.asarray(mu),
                                                 jnp.asarray(sigma), nu).log_prob(y))

        def integrand(y):
            score = (log_p(y, h) - log_p(y, -h)) / (2 * h)
            return score**2 * math.exp(log_p(y, 0.0))

        kink = sigma * HUBER_DELTA  # the Huber density's quadratic core
        # the Huber density's tails decay as exp(-delta |y| / sigma)
        reach = 60 * sigma / (HUBER_DELTA if likelihood == "huber" else 1.0)
        fisher = integrate.quad(integrand, -reach, reach, limit=2000,
                                points=[-kink, 0.0, kink])[0]
        got = float(row_precision(likelihood, jnp.asarray(sigma), nu))
    assert got == pytest.approx(fisher, rel=1e-4)


def test_polar_student_t_samples_the_t_distribution():
    # Bailey's (1994) polar sampler against scipy's t CDF, one batch of degrees of freedom
    # (as the model's per-draw nu), in the default float32: each column's empirical CDF is
    # within 5 Monte Carlo standard deviations (binomial, at each quantile) of the exact one
    # at every checked quantile, the far tails included.
    df = np.array([0.7, 1.0, 3.0, 5.0, 40.0, 1e4])
    d = PolarStudentT(jnp.asarray(df, jnp.float32), jnp.full(df.size, 0.5), jnp.full(df.size, 2.0))
    n = 200_000
    x = np.asarray(d.sample(jax.random.PRNGKey(1), (n,)))
    assert x.shape == (n, df.size) and x.dtype == np.float32 and np.all(np.isfinite(x))
    quantiles = [1e-3, 0.01, *np.linspace(0.05, 0.95, 11), 0.99, 0.999]
    for j, nu in enumerate(df):
        for q in quantiles:
            y = 0.5 + 2.0 * stats.t.ppf(q, nu)
            tol = 5 * math.sqrt(q * (1 - q) / n)
            assert np.mean(x[:, j] <= y) == pytest.approx(q, abs=tol), (nu, q)
    # no float32 cancellation for a nearly normal t: the variance is nu / (nu - 2) * 4
    assert np.var(x[:, -1]) == pytest.approx(4.0 * 1e4 / (1e4 - 2), rel=0.02)
    # only the sampler differs from NumPyro's StudentT
    ref = dist.StudentT(df, np.full(df.size, 0.5), np.full(df.size, 2.0))
    for v in np.linspace(-5.0, 5.0, 11):
        y = jnp.full(df.size, v)
        np.testing.assert_allclose(np.asarray(d.log_prob(y)), np.asarray(ref.log_prob(y)),
                                   rtol=1e-6)


def test_polar_student_t_scalar_nu_and_extremes():
    # The model's fixed nu (a scalar) with one location per row.
    loc = jnp.linspace(-1.0, 1.0, 7)
    x = np.asarray(PolarStudentT(4.0, loc, jnp.full(7, 0.1)).sample(jax.random.PRNGKey(2),
                                                                      (50_000,)))
    assert x.shape == (50_000, 7)
    np.testing.assert_allclose(np.median(x, axis=0), np.asarray(loc), atol=0.01)
    # nu = 0.3: the largest possible draw (radius uniform 2^-24) is about 7e22, within
    # float32, so no draw may be infinite; computing nu * expm1(x) first would overflow for
    # radius uniforms below 1.4e-6, about 6 of these 4 million draws.
    x = np.asarray(PolarStudentT(0.3, 0.0, 1.0).sample(jax.random.PRNGKey(3), (4_000_000,)))
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) > 1e15
