"""Tests of bayescale.estimators.nuts: NUTS on synthetic and Chinchilla runs.

Regular tests use 4 chains x 500 warmup x 500 draws (about 1 s of sampling after a
few seconds of compilation each); ``@pytest.mark.slow`` tests run the full default
(4 x 1000 x 1000) and a longer simulation-based calibration.

Reference intervals: Besiroglu, Erdil, Barnett & You, "Chinchilla Scaling: A
replication attempt", arXiv:2404.10102 (2024), bootstrap 95% intervals of their
fit to the 240 digitised runs (epoch-research/analyzing-chinchilla@9225883,
data_analysis.ipynb, cells 24-26).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import OrderedDict

import arviz as az
import numpy as np
import pytest

import numpyro.distributions as dist

from bayescale.data import synthetic
from bayescale.estimators import model as models
from bayescale.estimators import slope_coords
from bayescale.estimators import nuts as inference
from bayescale.estimators.diagnostics import RHAT_NOTE
from bayescale.errors import BayescaleError, ConvergenceError, ConvergenceWarning
from bayescale.estimators.nuts import Posterior, load_idata, sample_posterior, save_idata
from bayescale.laws.chinchilla import HOFFMANN_2022
from bayescale.data.simulate import simulate_runs

from conftest import requires_chinchilla

EPOCH_95 = {"alpha": (0.317, 0.373), "beta": (0.331, 0.415), "E": (1.769, 1.871),
            "A": (285.2, 743.6), "B": (1042.0, 5810.0)}
SMALL = dict(chains=4, warmup=500, draws=500)
PARAMS = ("E", "A", "B", "alpha", "beta")


def _medians(post: Posterior) -> dict[str, float]:
    return {k: float(np.median(getattr(post.params, k))) for k in PARAMS}


def _covers(post: Posterior, truth, level=0.9) -> dict[str, bool]:
    q = [(1 - level) / 2, (1 + level) / 2]
    out = {}
    for k in PARAMS:
        lo, hi = np.quantile(getattr(post.params, k), q)
        out[k] = bool(lo <= float(getattr(truth, k)) <= hi)
    return out


@pytest.fixture(scope="module")
def chinchilla_fit(chinchilla_240):
    return sample_posterior(chinchilla_240, seed=0, posterior_predictive=True, **SMALL)


@pytest.fixture(scope="module")
def synthetic_fit():
    return sample_posterior(simulate_runs(seed=0), seed=0, **SMALL)


@requires_chinchilla
def test_chinchilla_240_agrees_with_epoch(chinchilla_fit):
    med = _medians(chinchilla_fit)
    for k, (lo, hi) in EPOCH_95.items():
        assert lo < med[k] < hi, (k, med[k], (lo, hi))
    d = chinchilla_fit.diagnostics
    assert d.ok and d.divergences == 0 and d.rhat_max < 1.01 and d.ess_bulk_min > 400


@requires_chinchilla
def test_result_structure(chinchilla_fit, chinchilla_240, tmp_path):
    post = chinchilla_fit
    n_draws = SMALL["chains"] * SMALL["draws"]
    assert all(np.shape(v) == (n_draws,) for v in post.params)
    idata = post.idata
    for group in ("posterior", "sample_stats", "observed_data", "log_likelihood",
                  "posterior_predictive"):
        assert group in idata.groups(), group
    for name in ("E", "A", "B", "alpha", "beta", "a_opt", "b_opt", "sigma"):
        assert idata.posterior[name].shape == (SMALL["chains"], SMALL["draws"]), name
    assert idata.log_likelihood["log_loss"].shape == (4, 500, len(chinchilla_240))
    np.testing.assert_allclose(idata.observed_data["log_loss"], chinchilla_240.log_loss)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    info = post.info
    for key in ("likelihood", "chains", "warmup", "draws", "seed", "timing", "priors"):
        assert key in info
    assert info["likelihood"] == "student_t" and info["priors"]["nu"] == "fixed 4"
    assert info["timing"]["compile"] > 0 and info["timing"]["sampling"] > 0
    # a well-conditioned geometry: few leapfrog steps per draw
    assert info["leapfrog_per_draw"] < 31
    path = save_idata(idata, tmp_path / "sub" / "posterior.nc")
    assert [p.name for p in path.parent.iterdir()] == ["posterior.nc"]  # no temp file left
    back = load_idata(path)
    np.testing.assert_allclose(back.posterior["alpha"], idata.posterior["alpha"])
    with pytest.raises(BayescaleError, match="no such file"):
        load_idata(tmp_path / "missing.nc")


@requires_chinchilla
def test_posterior_predictive_coverage(chinchilla_fit):
    idata = chinchilla_fit.idata
    pred = idata.posterior_predictive["log_loss"].values.reshape(-1, idata.observed_data[
        "log_loss"].shape[0])
    y = idata.observed_data["log_loss"].values
    for level in (0.5, 0.9):
        lo, hi = np.quantile(pred, [(1 - level) / 2, (1 + level) / 2], axis=0)
        rate = np.mean((y >= lo) & (y <= hi))
        assert abs(rate - level) < 0.08, (level, rate)


@requires_chinchilla
def test_robust_fit_of_all_245_runs(chinchilla_245):
    # no run dropped by hand: the Student-t likelihood discounts the 5 outliers
    post = sample_posterior(chinchilla_245, seed=1, **SMALL)
    med = _medians(post)
    for k, (lo, hi) in EPOCH_95.items():
        assert lo < med[k] < hi, (k, med[k], (lo, hi))


def test_parameter_recovery(synthetic_fit):
    covered = _covers(synthetic_fit, HOFFMANN_2022)
    assert all(covered.values()), covered
    assert synthetic_fit.diagnostics.ok


def _calibration(seeds, **settings) -> np.ndarray:
    hits = []
    for seed in seeds:
        runs = simulate_runs(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            post = sample_posterior(runs, seed=seed, **settings)
        assert post.diagnostics.rhat_max < 1.05
        hits.append(list(_covers(post, HOFFMANN_2022).values()))
    return np.asarray(hits)


def _z_scores(post: Posterior, truth) -> tuple[np.ndarray, np.ndarray]:
    """``(mean - truth) / sd`` per parameter (log A, log B for the scale parameters),
    and the Monte Carlo standard error of each mean in the same units."""
    z, mc = [], []
    for k in PARAMS:
        draws = np.asarray(post.idata.posterior[k])  # (chain, draw)
        value = float(getattr(truth, k))
        if k in ("A", "B"):
            draws, value = np.log(draws), np.log(value)
        sd = draws.std()
        z.append((draws.mean() - value) / sd)
        mc.append(float(az.mcse(draws, method="mean")) / sd)
    return np.asarray(z), np.asarray(mc)


def test_short_calibration():
    # Two more datasets from a known law (Hoffmann et al. 2022, eq. 10). A calibrated
    # posterior puts the truth at a standardised distance z = (mean - truth) / sd that
    # is about N(0, 1); |z| > 3.5 has probability 4.7e-4 per parameter, under 1% for
    # the 10 here. The Monte Carlo error of each mean is checked to be a small
    # fraction of sd, so a pass or a fail is the method's and not the sampler's noise.
    # (Coverage over 40 datasets, with a binomial test, is in test_calibration_long.)
    for seed in (101, 102):
        runs = simulate_runs(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            post = sample_posterior(runs, seed=seed, chains=2, warmup=400, draws=400)
        z, mc = _z_scores(post, HOFFMANN_2022)
        assert np.all(mc < 0.15), (seed, mc)
        assert np.all(np.abs(z) < 3.5), (seed, dict(zip(PARAMS, z)))


@pytest.mark.slow
def test_calibration_long():
    from scipy import stats

    seeds = range(200, 240)
    hits = _calibration(seeds, chains=4, warmup=500, draws=500)
    rate = hits.mean()
    n = hits.size
    # the 5 parameters of one dataset are correlated; still, a badly calibrated
    # posterior shows up as a rate far from 0.9
    assert stats.binom(n, 0.9).cdf(hits.sum()) > 1e-4, rate
    assert rate > 0.8
    per_param = hits.mean(axis=0)
    assert np.all(per_param >= 0.75), per_param


@requires_chinchilla
@pytest.mark.slow
@pytest.mark.parametrize("likelihood,which", [("student_t", 240), ("student_t", 245),
                                               ("normal", 240), ("huber", 240)])
def test_full_size_fits(likelihood, which, chinchilla_240, chinchilla_245):
    runs = chinchilla_240 if which == 240 else chinchilla_245
    post = sample_posterior(runs, seed=0, likelihood=likelihood)
    assert post.diagnostics.ok
    med = _medians(post)
    # (The Huber likelihood on all 245 runs is *not* robust enough: the 5 outliers
    # pull beta to ~0.46, outside Epoch's interval, which is why Epoch dropped them.)
    for k, (lo, hi) in EPOCH_95.items():
        assert lo < med[k] < hi, (likelihood, which, k, med[k])


def test_bad_run_warns_and_strict_raises():
    runs = simulate_runs(seed=5, models_per_budget=4)
    with pytest.warns(ConvergenceWarning, match="Try:") as record:
        post = sample_posterior(runs, chains=2, warmup=5, draws=60, dense_mass=False)
    assert record[0].filename == __file__
    assert not post.diagnostics.ok
    with pytest.raises(ConvergenceError):
        sample_posterior(runs, chains=2, warmup=5, draws=60, dense_mass=False, strict=True)


@pytest.mark.parametrize("kwargs,match", [
    ({"chains": 0}, "chains"), ({"warmup": -1}, "warmup"), ({"draws": 1.5}, "draws"),
    ({"likelihood": "cauchy"}, "student_t, normal, huber"),
    ({"target_accept": 1.2}, "target_accept"), ({"chain_method": "threads"}, "chain_method"),
    ({"chain_method": "parallel", "chains": 64}, "devices"),
    ({"priors": {"gamma": None}}, "valid keys"),
])
def test_arguments_are_validated_before_compiling(kwargs, match):
    with pytest.raises(BayescaleError, match=match):
        sample_posterior(simulate_runs(models_per_budget=3), **kwargs)


def test_runs_type_is_checked():
    with pytest.raises(BayescaleError, match="Runs"):
        sample_posterior({"N": [1.0]})


TINY = dict(chains=2, warmup=50, draws=50)


def _quiet_fit(runs, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return sample_posterior(runs, **kwargs)


def test_same_settings_trace_and_compile_once(monkeypatch):
    # the data, their centre, E_max and the initial point are arguments of the
    # compiled program: a second fit on other data of the same size reuses it
    calls = []
    original = models.law_model  # the model NUTS samples

    def counting_model(*args, **kwargs):
        calls.append(1)  # runs only while JAX traces the program
        return original(*args, **kwargs)

    monkeypatch.setattr(models, "law_model", counting_model)
    monkeypatch.setattr(inference, "_PROGRAMS", OrderedDict())
    runs_a = simulate_runs(seed=11, models_per_budget=4)
    runs_b = simulate_runs(seed=12, models_per_budget=4, noise=0.02,
                           budgets=synthetic.DEFAULT_BUDGETS * 3)  # another centre
    assert len(runs_a) == len(runs_b) and not np.allclose(runs_a.loss, runs_b.loss)
    post_a = _quiet_fit(runs_a, seed=0, **TINY)
    traced = len(calls)
    assert traced > 0 and len(inference._PROGRAMS) == 1
    post_b = _quiet_fit(runs_b, seed=1, **TINY)
    assert len(calls) == traced and len(inference._PROGRAMS) == 1  # no new trace
    assert post_a.info["centre"] != post_b.info["centre"]
    assert not np.allclose(post_a.params.E, post_b.params.E)
    # E's default prior is Uniform(0, smallest loss) of *this* data set, not the first
    assert np.all(post_b.params.E < runs_b.loss.min())
    # the same priors given explicitly share a program; other settings get their own
    _quiet_fit(runs_a, seed=0, priors={"sigma": dist.HalfNormal(0.1)}, **TINY)
    _quiet_fit(runs_b, seed=0, priors={"sigma": dist.HalfNormal(0.1)}, **TINY)
    assert len(inference._PROGRAMS) == 2


def test_priors_key():
    key = inference.priors_key
    assert key(None) == key({}) == ()
    assert key({"alpha": dist.Uniform(0.0, 1.0)}) == key({"alpha": dist.Uniform(0.0, 1.0)})
    assert key({"alpha": dist.Uniform(0.0, 1.0)}) != key({"alpha": dist.Uniform(0.0, 2.0)})
    assert key({"alpha": dist.Uniform(0.0, 1.0)}) != key({"beta": dist.Uniform(0.0, 1.0)})
    assert key({"nu": 4.0}) != key({"nu": 5.0})
    hash(key({"nu": dist.Gamma(2.0, 0.1), "E": dist.TruncatedNormal(1.0, 1.0, low=0.0)}))

    class MyHalfNormal(dist.HalfNormal):  # may keep state outside its pytree fields
        pass

    assert key({"sigma": MyHalfNormal(0.1)}) is inference.UNKEYABLE


def test_one_chain_does_not_check_rhat():
    runs = simulate_runs(seed=3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        post = sample_posterior(runs, seed=0, chains=1, warmup=300, draws=400)
    assert not any("R-hat" in str(w.message) for w in record), [str(w.message) for w in record]
    d = post.diagnostics
    assert d.chains == 1 and math.isnan(d.rhat_max) and RHAT_NOTE in d.notes
    assert "R-hat" not in " ".join(d.problems())
    assert d.to_dict()["rhat_max"] is None
    json.dumps(d.to_dict(), allow_nan=False)
    assert post.idata.posterior["alpha"].shape == (1, 400)


@pytest.mark.float64
def test_slope_coordinates_are_the_same_posterior():
    """The slope coordinates (slope_coords.slope_to_natural) change what NUTS samples, not the
    posterior: at any point the model's log density in slope coordinates is the natural
    one plus the log |Jacobian| of the map, here by central differences; the map inverts
    (natural_to_slope) and keeps 0 < E < E_max, 0 < alpha < 1.5, also where E + A-term > E_max."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    from bayescale.estimators.slope_coords import natural_to_slope
    from bayescale.laws.chinchilla import LAW

    rng = np.random.default_rng(0)
    log_X = jnp.asarray(np.column_stack([rng.uniform(18, 23, 30), rng.uniform(20, 25, 30)]))
    y = jnp.asarray(rng.uniform(0.8, 1.3, 30))
    E_max = 3.0
    kw = dict(law=LAW, priors={}, likelihood="student_t", E_max=E_max,
              centre=tuple(float(c) for c in np.asarray(log_X).mean(axis=0)))
    rest = {"beta": 0.4, "b_c": -1.0, "sigma": 0.05}

    def to_natural(z):
        return slope_coords.slope_to_natural(z, E_max, models.EXPONENT_MAX)

    for E, alpha, a_c in [(1.9, 0.25, 0.15), (0.2, 0.1, 1.0), (2.9, 1.2, 0.5), (1.0, 0.3, 1.5)]:
        z = np.array(natural_to_slope(E, alpha, a_c, E_max, models.EXPONENT_MAX))
        np.testing.assert_allclose(np.asarray(to_natural(jnp.asarray(z))), [E, alpha, a_c],
                                   rtol=1e-10)
        natural, _ = log_density(models.law_model, (log_X, y), kw,
                                 {"E": E, "alpha": alpha, "a_c": a_c, **rest})
        slope, _ = log_density(models.law_model, (log_X, y), {**kw, "slope_coords": True},
                               {**dict(zip(slope_coords.SLOPE_SITES, z)), **rest})
        h = 1e-6
        jac = np.column_stack([(np.asarray(to_natural(jnp.asarray(z + h * e)))
                                - np.asarray(to_natural(jnp.asarray(z - h * e)))) / (2 * h)
                               for e in np.eye(3)])
        np.testing.assert_allclose(float(slope - natural), np.linalg.slogdet(jac)[1],
                                   atol=1e-6)
    E, alpha, _ = np.asarray(jax.vmap(to_natural)(
        jnp.asarray(np.random.default_rng(1).normal(0, 3, (200, 3))))).T
    assert np.all((0 < E) & (E < E_max)) and np.all((0 < alpha) & (alpha < 1.5))


def test_slope_coordinates_need_the_default_priors():
    runs = simulate_runs(models_per_budget=3)
    with pytest.raises(BayescaleError, match="slope_coords"):
        sample_posterior(runs, slope_coords=True, priors={"alpha": dist.Uniform(0.1, 0.8)})
    with pytest.raises(BayescaleError, match="slope_coords"):
        sample_posterior(runs, slope_coords=True, law="kaplan")
