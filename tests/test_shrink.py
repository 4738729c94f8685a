"""The Huber fit shrunk toward the law's Normal priors (``shrink=b``, issue 12).

Oracles: the penalty against scipy's normal log density; the shrunk fit against
scipy.optimize.minimize of the same objective written out in NumPy (the Chinchilla law in
closed form, the Huber loss by hand); the limits b -> 0 (the plain fit) and b -> large
(the prior means).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import bayescale
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation
from bayescale.estimators.bootstrap import fit_bootstrap
from bayescale.estimators.huber import DELTA, fit_huber, hoffmann_grid, prior_penalty
from bayescale.laws.registry import get_law

CHIN = get_law("chinchilla")
FARSEER = get_law("farseer")
STARTS = hoffmann_grid(a=[5, 10], b=[5, 10], e=[0.0, 0.5], alpha=[0.3, 0.6], beta=[0.3, 0.6])


def _runs(n=40, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e9), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e11), n))
    loss = 1.7 + 4000 / N**0.45 + 410 / D**0.28  # log A = 8.3, 2.3 above the prior mean
    return np.log(N), np.log(D), np.log(loss) + noise * rng.standard_normal(n)


def _numpy_objective(theta, log_N, log_D, log_loss, b):
    """Huber loss of log-loss residuals under L = E + A/N^alpha + B/D^beta, plus
    delta * b * 0.5 * ((a - 6)/10)^2 + ((b - 6)/10)^2 (Chinchilla's Normal(6, 10) priors
    on log A and log B; e, alpha, beta have flat priors), all by hand."""
    a, bb, e, alpha, beta = theta
    pred = np.log(np.exp(e) + np.exp(a - alpha * log_N) + np.exp(bb - beta * log_D))
    r = np.abs(log_loss - pred)
    huber = np.where(r <= DELTA, 0.5 * r**2, DELTA * (r - 0.5 * DELTA))
    return huber.sum() + DELTA * b * 0.5 * (((a - 6) / 10) ** 2 + ((bb - 6) / 10) ** 2)


def test_prior_penalty_is_minus_the_normal_log_density_up_to_a_constant():
    rng = np.random.default_rng(1)
    normal = [c for c in FARSEER.coords if FARSEER.priors[c].kind == "normal"]
    assert normal == list(FARSEER.coords)  # every Farseer coordinate has a Normal prior
    mu = np.array([FARSEER.priors[c].a for c in normal])
    sd = np.array([FARSEER.priors[c].b for c in normal])
    theta = mu + sd * rng.standard_normal((5, len(mu)))
    logpdf = scipy.stats.norm.logpdf(theta, mu, sd).sum(axis=1)
    const = -np.sum(np.log(sd * np.sqrt(2 * np.pi)))
    np.testing.assert_allclose(np.asarray(prior_penalty(FARSEER, theta)), const - logpdf,
                               rtol=1e-6)
    # Chinchilla: only log A and log B have Normal priors; e, alpha, beta add nothing.
    t = np.array([16.0, -4.0, 0.5, 0.3, 0.2])
    np.testing.assert_allclose(float(prior_penalty(CHIN, t)), 0.5 * (1.0 + 1.0), rtol=1e-6)
    t2 = t.copy()
    t2[2:] = [-0.9, 1.2, 0.01]
    np.testing.assert_allclose(float(prior_penalty(CHIN, t2)), 1.0, rtol=1e-6)


def test_shrunk_fit_is_the_minimum_of_the_penalised_objective():
    log_N, log_D, log_loss = _runs()
    b = 200.0  # strong enough to move the fit well away from the plain one
    res = fit_huber(log_N, log_D, log_loss, starts=STARTS, shrink=b)
    theta = np.array([res.info["theta"][c] for c in CHIN.coords])
    ours = _numpy_objective(theta, log_N, log_D, log_loss, b)
    np.testing.assert_allclose(res.info["objective"], ours, rtol=1e-9)
    assert res.info["shrink"] == b
    best = min((scipy.optimize.minimize(_numpy_objective, x0, args=(log_N, log_D, log_loss, b),
                                        method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-14,
                                                 "maxiter": 40000, "maxfev": 40000})
                for x0 in (theta + 0.05, STARTS[0], STARTS[-1])), key=lambda r: r.fun)
    assert ours <= best.fun * (1 + 1e-7)
    np.testing.assert_allclose(theta, best.x, atol=2e-3)
    plain = fit_huber(log_N, log_D, log_loss, starts=STARTS)
    plain_theta = np.array([plain.info["theta"][c] for c in CHIN.coords])
    # The pull moved (a, b) toward the prior mean 6 and cost Huber loss to do it.
    assert abs(theta[0] - 6) < abs(plain_theta[0] - 6) - 0.5
    assert _numpy_objective(plain_theta, log_N, log_D, log_loss, 0.0) < \
        _numpy_objective(theta, log_N, log_D, log_loss, 0.0)


def test_shrink_zero_is_the_plain_fit_and_a_large_shrink_gives_the_prior_means(monkeypatch):
    pool = bayescale.load_runs("farseer", split="train")
    X, y = extrapolation.log_X(FARSEER, pool), np.asarray(pool.log_loss, float)
    rng = np.random.default_rng(3)
    m = np.zeros(len(y), bool)
    m[rng.choice(len(y), 20, replace=False)] = True
    starts = extrapolation.coarse_starts(FARSEER)[::8]
    plain = extrapolation.masked_fits(FARSEER, X, y, m, starts=starts)
    # a fresh store of refits: the b = 0 mask below is solved again (in the program with
    # a strength per problem), not served from the plain fit just made
    monkeypatch.setattr(extrapolation, "_REFITS", {})
    thetas = extrapolation.masked_fits(FARSEER, X, y, np.stack([m] * 4), starts=starts,
                                       shrink=[0.0, 0.005, 0.05, 1e6])
    np.testing.assert_array_equal(thetas[0], plain[0])
    mu = np.array([FARSEER.priors[c].a for c in FARSEER.coords])
    sd = np.array([FARSEER.priors[c].b for c in FARSEER.coords])
    dist = [np.sum(((t - mu) / sd) ** 2) for t in thetas]
    assert dist[0] > dist[1] > dist[2] > dist[3]  # stronger pull, closer to the prior
    np.testing.assert_allclose(thetas[3], mu, atol=0.02 * sd.max())


def test_shrunk_bootstrap_and_fit_options(monkeypatch):
    log_N, log_D, log_loss = _runs(seed=2)
    res = fit_bootstrap(log_N, log_D, log_loss, resamples=16, seed=0, shrink=200.0,
                        starts=STARTS)
    assert res.info["shrink"] == 200.0 and res.info["num_kept"] >= 8
    ref = fit_huber(log_N, log_D, log_loss, shrink=200.0, starts=STARTS)
    np.testing.assert_allclose(np.asarray(res.reference.alpha), np.asarray(ref.params.alpha),
                               rtol=1e-6)
    # every resample is pulled too: log A (truth 8.3, prior mean 6) sits nearer 6 in each
    # shrunk resample than in the plain resample of the same rows (same seed)
    plain = fit_bootstrap(log_N, log_D, log_loss, resamples=16, seed=0, starts=STARTS)
    assert plain.info["num_kept"] == res.info["num_kept"] == 16
    a_shrunk, a_plain = np.log(res.params.A), np.log(plain.params.A)
    assert np.all(np.abs(a_shrunk - 6) < np.abs(a_plain - 6))
    with pytest.raises(BayescaleError, match="shrink must be a finite number >= 0"):
        fit_huber(log_N, log_D, log_loss, starts=STARTS, shrink=-1.0)
    runs = bayescale.Runs(N=np.exp(log_N), D=np.exp(log_D), loss=np.exp(log_loss),
                          row=np.arange(log_N.size))
    f = bayescale.fit(runs, method="huber", shrink=200.0, starts=STARTS)
    assert f.info["shrink"] == 200.0
    with pytest.raises(BayescaleError, match="shrink"):
        bayescale.fit(runs, method="huber", shrink="lots")
    # the prediction's extrapolation error is learned from refits with the fit's own pull
    seen = []
    real_fits = extrapolation.masked_fits

    def spy(*args, **kwargs):
        seen.append(kwargs.get("shrink"))
        return real_fits(*args, **kwargs)

    monkeypatch.setattr(extrapolation, "masked_fits", spy)
    f.predict([1e10], [1e12])
    assert seen and set(seen) == {200.0}


def test_shrink_on_the_command_line():
    from cli_examples import run_main, shrunk

    argv = shrunk("bayescale fit farseer --law farseer --method huber --shrink 0.026 --json")
    code, out, _ = run_main(argv)
    assert code == 0
    import json

    payload = json.loads(out)
    assert payload["shrink"] == 0.026 and payload["law"] == "farseer"
    theta = np.array([payload["theta"][c] for c in FARSEER.coords])
    mu = np.array([FARSEER.priors[c].a for c in FARSEER.coords])
    sd = np.array([FARSEER.priors[c].b for c in FARSEER.coords])
    plain = bayescale.fit(bayescale.load_runs("farseer"), method="huber", law="farseer")
    plain_theta = np.array([plain.info["theta"][c] for c in FARSEER.coords])
    assert np.sum(((theta - mu) / sd) ** 2) < np.sum(((plain_theta - mu) / sd) ** 2)
    code, _, err = run_main(["fit", "farseer", "--method", "bayes", "--shrink", "0.1"])
    assert code == 2 and "--shrink goes with --method huber or bootstrap" in err


def test_backtest_and_stacking_refit_with_the_fits_shrink(monkeypatch):
    """The leave-future-out refits behind a shrunk fit's error models (the backtest's
    extrapolation model, the stacking weights) use the fit's own pull."""
    from bayescale.estimators.stacking import stack_laws
    from bayescale.validation.backtest import backtest

    log_N, log_D, log_loss = _runs(n=60, seed=4)
    runs = bayescale.Runs(N=np.exp(log_N), D=np.exp(log_D), loss=np.exp(log_loss),
                          row=np.arange(log_N.size))
    seen = []
    real_fits = extrapolation.masked_fits

    def spy(*args, **kwargs):
        seen.append(float(np.max(kwargs.get("shrink", 0.0))))
        return real_fits(*args, **kwargs)

    monkeypatch.setattr(extrapolation, "masked_fits", spy)
    backtest(runs, holdout="top-budgets:1", method="huber", starts=STARTS, shrink=200.0)
    assert seen and set(seen) == {200.0}
    seen.clear()
    stack_laws(runs, ("chinchilla", "kaplan"), method="huber", optimum=False, shrink=200.0)
    assert seen and set(seen) == {200.0}
