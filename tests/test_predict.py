"""Predictive draws at new points (``fit.predict``) and the extrapolation-error model.

Oracles: the Chinchilla law's closed form ``E + A/N^alpha + B/D^beta`` (Hoffmann et al.
2022, eq. 2) for the draws; a known normal noise for the observation-noise scale; runs drawn
from Kaplan et al.'s (2020) eq. (1.5), written out here, for a law the fitted Chinchilla form
cannot represent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayescale.data.runs import load_runs
from bayescale.errors import BayescaleError
from bayescale.estimators import extrapolation as ex
from bayescale.estimators.fit import ScalingFit, published
from bayescale.laws.chinchilla import LawParams

TRUE = LawParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. eq. 10


def chinchilla_closed_form(p, N, D):
    return p.E + p.A / N**p.alpha + p.B / D**p.beta


def isoflop_frame(loss_fn, *, log_C=np.arange(17, 21.01, 0.5), per_budget=8, sigma=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for lc in log_C:
        C = 10.0**lc
        n_opt = np.sqrt(C / 6 / 20)
        for N in n_opt * np.geomspace(0.25, 4, per_budget):
            D = C / (6 * N)
            rows.append((N, D, loss_fn(N, D) * np.exp(sigma * rng.standard_normal())))
    return pd.DataFrame(rows, columns=["N", "D", "loss"])


def as_runs(frame):
    return load_runs(frame, check_plausible=False)


def test_point_fit_draws_match_the_law_on_noiseless_data():
    runs = as_runs(isoflop_frame(lambda N, D: chinchilla_closed_form(TRUE, N, D)))
    fit = ScalingFit(method="huber", params=TRUE, runs=runs)
    N = np.array([1e8, 3e9, 7e10])
    D = np.array([2e9, 6e10, 1.4e12])
    pred = fit.predict(N, D, structural="none", num_draws=50)
    expected = chinchilla_closed_form(TRUE, N, D)
    # noiseless runs: the robust residual scale is 0, so every draw is the law
    np.testing.assert_allclose(pred.draws, np.broadcast_to(expected, pred.draws.shape), rtol=1e-6)
    inside = pred.extrapolation_decades
    assert inside[0] == 0 and inside[2] > 1  # 1e8 x 2e9 is inside; 70B x 1.4T beyond


def test_draws_over_parameter_draws_match_the_law_per_draw():
    runs = as_runs(isoflop_frame(lambda N, D: chinchilla_closed_form(TRUE, N, D)))
    rng = np.random.default_rng(1)
    alphas = TRUE.alpha + 0.01 * rng.standard_normal(7)
    params = LawParams(*(np.full(7, v) for v in TRUE[:3]), alphas, np.full(7, TRUE.beta))
    fit = ScalingFit(method="bootstrap", params=params, runs=runs, reference=TRUE)
    pred = fit.predict(3e9, 6e10, structural="none", num_draws=7)
    per_draw = chinchilla_closed_form(params, 3e9, 6e10)
    # 7 draws from 7 parameter draws: each used once (the reference has zero residuals)
    np.testing.assert_allclose(np.sort(pred.draws[:, 0]), np.sort(per_draw), rtol=1e-6)


def test_observation_noise_has_the_data_scale():
    sigma, n = 0.02, 2000
    frame = isoflop_frame(lambda N, D: chinchilla_closed_form(TRUE, N, D), sigma=sigma,
                          log_C=np.linspace(17, 21, 50), per_budget=n // 50)
    fit = ScalingFit(method="huber", params=TRUE, runs=as_runs(frame))
    pred = fit.predict(3e8, 6e9, structural="none", num_draws=20000, seed=3)
    lo, hi = np.log(pred.interval(0.9))
    half = float((hi - lo)[0] / 2)
    # MAD-based scale from n normal residuals: relative sd about 1.17/sqrt(n); plus the
    # quantile's Monte Carlo error with 20000 draws (~1%); allow 4 sd of both
    rel_sd = np.hypot(1.17 / np.sqrt(n), 0.01)
    assert abs(half / (1.6449 * sigma) - 1) < 4 * rel_sd


def test_prediction_summary_and_json_shape():
    runs = as_runs(isoflop_frame(lambda N, D: chinchilla_closed_form(TRUE, N, D), sigma=0.01))
    fit = ScalingFit(method="huber", params=TRUE, runs=runs)
    model = ex.posterior(ex.Misses.empty())  # the default prior alone
    pred = fit.predict([1e8, 1e11], [2e9, 2e12], model=model, num_draws=4000)
    out = pred.to_dict()
    assert [sorted(p) for p in out["points"]] == [sorted(["N", "D", "median", "intervals",
                                                          "extrapolation_decades"])] * 2
    assert sorted(out["points"][0]["intervals"]) == ["0.5", "0.8", "0.9", "0.95"]
    w = {k: np.subtract(*pred.interval(k)[::-1]) for k in (0.5, 0.9)}
    assert np.all(w[0.9] > w[0.5])
    # beyond the data the honest interval is wider than the in-model one; inside, the same
    none = fit.predict([1e8, 1e11], [2e9, 2e12], structural="none", num_draws=4000)
    w_none = np.subtract(*none.interval(0.9)[::-1])
    assert w[0.9][1] > 2 * w_none[1]
    assert abs(w[0.9][0] / w_none[0] - 1) < 0.1
    assert list(pred.summary().columns[:3]) == ["N", "D", "median"]


def test_published_law_says_what_it_lacks():
    pred = published("besiroglu2024").predict(7e10, 1.4e12)
    assert pred.notes and "published" in pred.notes[0]
    assert np.isnan(pred.extrapolation_decades[0])
    assert pred.to_dict()["points"][0]["extrapolation_decades"] is None
    np.testing.assert_allclose(pred.median, chinchilla_closed_form(
        LawParams(E=1.817, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658), 7e10, 1.4e12),
        rtol=1e-3)


def test_bad_input_names_the_argument():
    fit = published("besiroglu2024")
    with pytest.raises(BayescaleError, match="N must be positive"):
        fit.predict(-1.0, 1e12)
    with pytest.raises(BayescaleError, match="structural"):
        fit.predict(1e9, 1e12, structural="maybe")
    with pytest.raises(BayescaleError, match="takes N and D only"):
        fit.predict(1e9, 1e12, U=1e11)


def test_budgets_and_distance():
    C = np.array([1e18, 1.1e18, 1e19, 1.2e19, 1e20, 1e21, 0.9e21])
    np.testing.assert_array_equal(ex.budgets(C), [0, 0, 1, 1, 2, 3, 3])
    d = ex.decades_beyond([1e8, 1e9], [1e10, 2e10], [1e8, 1e10, 1e8], [1e10, 2e10, 2e12])
    np.testing.assert_allclose(d, [0.0, 1.0, 2.0])


def test_posterior_learns_a_known_discrepancy():
    # misses generated from the model itself: r ~ Normal(b d, s^2 + tau^2 d^2)
    rng = np.random.default_rng(0)
    b, tau, s = -0.05, 0.04, 0.005
    d = np.tile(np.linspace(0.2, 1.0, 30), 20)
    r = b * d + np.sqrt(s**2 + (tau * d) ** 2) * rng.standard_normal(d.size)
    cut = np.repeat(np.arange(200), 3)  # 200 refits of 3 misses: full weight
    misses = ex.Misses(r, d, np.full(d.size, s), cut)
    vague = ex.ErrorPrior(tau=0.03, log_sd=3.0, bias=0.0, bias_sd=1.0)
    got = ex.posterior(misses, vague).summary()
    # 600 misses: sd of the bias about tau / sqrt(600 mean(1)) ~ 0.002, of log tau ~ 0.03
    assert abs(got["bias"] - b) < 0.01
    assert abs(np.log(got["tau"] / tau)) < 0.2


def kaplan_loss(N, D, N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095):
    """Kaplan et al. (2020), eq. (1.5)."""
    return ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D


def test_honest_intervals_cover_a_law_the_fit_cannot_represent():
    """Runs from a Kaplan-form law, fitted with the Chinchilla form: beyond the data the
    in-model 90% intervals miss most held-out runs; with the extrapolation error they cover.
    (Noise seeds 1-5 gave in-model 90% coverage 0.19-0.38 and honest 0.94-1.00.)"""
    from bayescale.validation.backtest import backtest

    runs = as_runs(isoflop_frame(kaplan_loss, sigma=0.005))
    b = backtest(runs, holdout="top-budgets:2", num_draws=2000)
    none, auto = b.summaries["none"], b.summaries["auto"]
    assert none["n_heldout"] == auto["n_heldout"] == 16
    assert none["coverage"]["0.9"] <= 0.5 and none["bias"] > 0.05  # over-predicts
    assert auto["coverage"]["0.9"] >= 0.8
    assert auto["crps"] < none["crps"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")  # 1 short chain
def test_bayes_predictive_noise_is_the_posterior_student_t():
    """A Bayesian fit's in-model predictive at an in-range point: parameters plus Student-t
    (nu = 4) noise of the posterior's sigma, so its 90% half-width on log loss is at least
    t_4's 0.95 quantile (2.1318) times sigma, and the parameters add little inside the data."""
    from bayescale.data.runs import load_runs as load
    from bayescale.estimators.fit import fit

    f = fit(load("synthetic"), method="bayes", chains=1, warmup=300, draws=300, seed=0)
    assert f.info["likelihood"] == "student_t"
    q = f.predict(3e8, 6e9, structural="none", num_draws=20000, seed=1)
    lo, hi = np.log(q.interval(0.9))
    half = float((hi - lo)[0] / 2)
    sigma = float(np.median(np.asarray(f.idata.posterior["sigma"])))
    assert 0.95 * 2.1318 * sigma < half < 1.25 * 2.1318 * sigma


def _fit_with_run_effects(tau_run: float, draws: int = 400):
    """A Bayesian-looking fit whose every posterior draw has the law TRUE, a negligible
    sigma and the run-to-run spread ``tau_run``: its predictive log loss at any point is the
    law plus a new run's offset, Normal(0, tau_run), alone."""
    import arviz as az

    runs = as_runs(isoflop_frame(lambda N, D: chinchilla_closed_form(TRUE, N, D)))
    params = LawParams(*(np.full(draws, float(v)) for v in TRUE))
    idata = az.from_dict(posterior={"sigma": np.full((2, draws // 2), 1e-9),
                                    "tau_run": np.full((2, draws // 2), tau_run)})
    return ScalingFit(method="bayes", params=params, runs=runs, idata=idata,
                      info={"likelihood": "normal", "run_effects": {"runs": 20, "rows": 72}})


def test_new_run_offset_is_added_with_the_posterior_spread():
    tau, num = 0.04, 20000
    fit = _fit_with_run_effects(tau)
    N, D = [1e8, 3e8], [2e9, 6e9]
    law = np.log(chinchilla_closed_form(TRUE, np.array(N), np.array(D)))
    new = fit.predict(N, D, structural="none", num_draws=num, seed=1)
    z = (np.log(new.draws) - law) / tau
    # Normal(0, 1) by construction: mean within 4 sd of 1/sqrt(num), sd within 4 sd of
    # 1/sqrt(2 num); the two points are different new runs (independent offsets)
    assert np.all(np.abs(z.mean(axis=0)) < 4 / np.sqrt(num))
    assert np.all(np.abs(z.std(axis=0) - 1) < 4 / np.sqrt(2 * num))
    assert abs(np.corrcoef(z.T)[0, 1]) < 4 / np.sqrt(num)
    assert new.run_effect == {"included": True, "kind": "new", "tau_run_median": tau,
                              "runs": 20}
    assert any("new training run's offset is included" in n for n in new.notes)
    out = new.to_dict()
    assert out["run_effect"]["included"] is True
    assert new.summary().attrs["run_effect"]["kind"] == "new"
    # one new run at both points (its checkpoints): the same offset at both
    shared = fit.predict(N, D, structural="none", num_draws=num, seed=1, run_effect="shared")
    zs = np.log(shared.draws) - law
    np.testing.assert_allclose(zs[:, 0], zs[:, 1], atol=1e-6)
    assert abs(zs[:, 0].std() / tau - 1) < 4 / np.sqrt(2 * num)
    # the population-mean run: no offset, and it says what it leaves out
    mean_run = fit.predict(N, D, structural="none", num_draws=num, seed=1, run_effect="none")
    np.testing.assert_allclose(np.log(mean_run.draws), np.broadcast_to(law, (num, 2)),
                               atol=1e-6)
    assert mean_run.run_effect["included"] is False
    assert any("leaves out the run-to-run spread" in n for n in mean_run.notes)
    with pytest.raises(BayescaleError, match="run_effect"):
        fit.predict(N, D, run_effect="old")


def test_no_run_effect_without_a_run_column():
    fit = published("besiroglu2024")
    pred = fit.predict(7e10, 1.4e12, run_effect="new")
    assert pred.run_effect is None and pred.to_dict()["run_effect"] is None
