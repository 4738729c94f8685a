"""The hierarchical model over groups (bayescale.estimators.pooled, fit_groups(pool=True)).

Oracles: the model's log density equals the one written out by hand with scipy.stats
(priors, population, Student-t likelihood of the law evaluated directly); on synthetic
groups drawn from a known population, the pooled 90% intervals cover the true group
exponents at the nominal rate (within its binomial Monte Carlo error) and are narrower
than the separate fit's for the group with few runs.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import jax
import numpy as np
import pytest
from scipy import stats

from bayescale.data.simulate import simulate_runs
from bayescale.errors import BayescaleError, ConvergenceWarning, DataWarning
from bayescale.estimators import pooled
from bayescale.estimators.groups import fit_groups, split_groups
from bayescale.laws.chinchilla import LAW, LawParams


def _groups(laws: dict[str, LawParams], sizes: dict[str, int], seed: int = 0, noise=0.01):
    parts = {}
    for i, (name, law) in enumerate(laws.items()):
        budgets = np.geomspace(1e19, 1e22, sizes[name])
        with warnings.catch_warnings():  # the isoFLOP grid's edges reach D/N > 1e5
            warnings.simplefilter("ignore", DataWarning)
            parts[name] = simulate_runs(law, seed=seed * 100 + i, budgets=budgets,
                                        models_per_budget=6, noise=noise)
    first = next(iter(parts.values()))
    cat = {k: np.concatenate([getattr(p, k) for p in parts.values()]) for k in ("N", "D", "loss")}
    n = len(cat["N"])
    group = np.concatenate([[name] * len(p) for name, p in parts.items()]).astype(object)
    return dataclasses.replace(first, **cat, row=np.arange(n), group=group)


def test_log_density_matches_the_model_written_out_by_hand():
    from numpyro.infer.util import log_density

    runs = _groups({"p": LawParams(1.8, 400.0, 1500.0, 0.32, 0.30),
                    "q": LawParams(1.9, 500.0, 1200.0, 0.36, 0.33)}, {"p": 3, "q": 2})
    groups = split_groups(runs)
    log_X = np.concatenate([np.column_stack([r.log_N, r.log_D]) for r in groups.values()])
    y = np.concatenate([r.log_loss for r in groups.values()])
    label = np.concatenate([np.full(len(r), i) for i, r in enumerate(groups.values())])
    centre = (float(log_X[:, 0].mean()), float(log_X[:, 1].mean()))
    E_max = np.array([np.median(r.loss) for r in groups.values()])
    point = {"alpha_mu": 0.34, "alpha_tau": 0.03, "beta_mu": 0.31, "beta_tau": 0.02,
             "alpha": np.array([0.33, 0.35]), "beta": np.array([0.30, 0.32]),
             "E": np.array([1.75, 1.85]), "a_c": np.array([-1.0, -0.8]),
             "b_c": np.array([-0.9, -1.1]), "sigma": np.array([0.012, 0.02])}
    with jax.enable_x64(True):
        got, _ = log_density(pooled.pooled_model, (log_X, label, y),
                             dict(law=LAW, num_groups=2, E_max=E_max, centre=centre), point)
    tau_prior = stats.lognorm(s=pooled.TAU_LOG_SCALE, scale=pooled.EXPONENT_TAU)
    want = 2 * stats.uniform(0, 1.5).logpdf(0.34)  # both population means
    want += tau_prior.logpdf(0.03) + tau_prior.logpdf(0.02)
    want += stats.norm(0.34, 0.03).logpdf(point["alpha"]).sum()
    want += stats.norm(0.31, 0.02).logpdf(point["beta"]).sum()
    want += np.sum(-np.log(E_max))  # E_g ~ Uniform(0, median loss of group g)
    # a = a_c + alpha log N0 with the law's Normal(6, 10) prior on a (unit Jacobian)
    want += stats.norm(6, 10).logpdf(point["a_c"] + point["alpha"] * centre[0]).sum()
    want += stats.norm(6, 10).logpdf(point["b_c"] + point["beta"] * centre[1]).sum()
    want += stats.halfnorm(scale=0.1).logpdf(point["sigma"]).sum()
    A = np.exp(point["a_c"] + point["alpha"] * centre[0])[label]
    B = np.exp(point["b_c"] + point["beta"] * centre[1])[label]
    mu = np.log(point["E"][label] + A * np.exp(-point["alpha"][label] * log_X[:, 0])
                + B * np.exp(-point["beta"][label] * log_X[:, 1]))
    want += stats.t(4, loc=mu, scale=point["sigma"][label]).logpdf(y).sum()
    np.testing.assert_allclose(float(got), want, rtol=1e-10)


def test_the_data_constrained_law_is_pooled_with_each_runs_unique_tokens():
    """The pooled model evaluates the data-constrained law at each run's U: changing U
    (and nothing else) changes the log density by exactly the Student-t likelihood's
    change, computed with the law's own evaluation (bayescale.laws.loss, which the tests
    of the law check against Muennighoff et al.'s printed losses)."""
    from numpyro.infer.util import log_density

    from bayescale.laws import loss
    from bayescale.laws.data_constrained import DataConstrainedParams
    from bayescale.laws.registry import get_law

    law = get_law("data_constrained")
    N = np.array([1e8, 3e8, 1e9, 1e8, 5e8])
    D = np.array([2e10, 5e10, 1e11, 3e10, 8e10])
    U1 = np.array([1e9, 2e9, 5e9, 1e9, 4e9])     # repeated data: D / U = 6-25 epochs
    U2 = U1 * 3.0
    label = np.array([0, 0, 0, 1, 1])
    y = np.log(np.array([3.1, 2.9, 2.6, 3.0, 2.7]))
    centre = (float(np.log(N).mean()), float(np.log(D).mean()), float(np.log(U1).mean()))
    point = {"alpha_mu": 0.35, "alpha_tau": 0.03, "beta_mu": 0.35, "beta_tau": 0.02,
             "alpha": np.array([0.34, 0.36]), "beta": np.array([0.35, 0.34]),
             "E": np.array([1.9, 2.0]), "a_c": np.array([-1.0, -0.8]),
             "b_c": np.array([-0.9, -1.1]), "log_R_N": np.array([1.6, 1.8]),
             "log_R_D": np.array([2.7, 2.5]), "sigma": np.array([0.02, 0.03])}

    def density(U):
        log_X = np.column_stack([np.log(N), np.log(D), np.log(U)])
        with jax.enable_x64(True):
            got, _ = log_density(pooled.pooled_model, (log_X, label, y),
                                 dict(law=law, num_groups=2, E_max=np.array([3.0, 3.0]),
                                      centre=centre), point)
        return float(got)

    def likelihood(U):
        A = np.exp(point["a_c"] + point["alpha"] * centre[0])
        B = np.exp(point["b_c"] + point["beta"] * centre[1])
        p = DataConstrainedParams(E=point["E"][label], A=A[label], B=B[label],
                                  alpha=point["alpha"][label], beta=point["beta"][label],
                                  R_N=np.exp(point["log_R_N"])[label],
                                  R_D=np.exp(point["log_R_D"])[label])
        with jax.enable_x64(True):
            mu = np.log(np.asarray(loss(p, N, D, U)))
        return stats.t(4, loc=mu, scale=point["sigma"][label]).logpdf(y).sum()

    want = likelihood(U2) - likelihood(U1)
    assert abs(want) > 1.0                          # U matters at these points
    assert density(U2) - density(U1) == pytest.approx(want, rel=1e-9)


def test_pooling_refuses_what_it_cannot_do():
    runs = _groups({"p": LawParams(1.8, 400.0, 1500.0, 0.32, 0.30),
                    "q": LawParams(1.9, 500.0, 1200.0, 0.36, 0.33)}, {"p": 2, "q": 2})
    with pytest.raises(BayescaleError, match="method='bayes'"):
        fit_groups(runs, method="huber", pool=True)
    with pytest.raises(BayescaleError, match="goes with pool=True"):
        fit_groups(runs, method="bayes", pool_coefficients=True)
    with pytest.raises(BayescaleError, match="at least two groups"):
        pooled.sample_pooled({"p": split_groups(runs)["p"]}, law=LAW)
    from bayescale.laws.registry import get_law

    with pytest.raises(BayescaleError, match="needs unique tokens U for every run"):
        pooled.sample_pooled(split_groups(runs), law=get_law("data_constrained"))
    with pytest.raises(BayescaleError, match="no exponents"):
        pooled.pooled_coords(dataclasses.replace(LAW, coords=("a", "b", "e", "x", "y"),
                                                 priors={k: v for k, v in zip(
                                                     ("a", "b", "e", "x", "y"),
                                                     LAW.priors.values())},
                                                 start_grid={k: (0.0,) for k in
                                                             ("a", "b", "e", "x", "y")},
                                                 shears=()))


@pytest.mark.slow
def test_pooled_intervals_cover_the_true_group_exponents_and_narrow_the_small_group():
    """8 datasets of 4 groups whose exponents are drawn from Normal(0.34, 0.03) and
    Normal(0.31, 0.03): 64 intervals at 90%. Binomial(64, 0.9) has mean 57.6 and sd 2.4;
    the test accepts 50-64 (about 3 sd below). The small group (3 budgets of 6 runs)
    gets a narrower interval on alpha from the pooled model than from its own fit, on
    average over the datasets. Short chains (4 x 500) keep the test to about two minutes;
    they do not always meet the ESS >= 400 gate, so its warning is not the subject here
    (the gate on published data is checked by the dataset benchmark)."""
    from bayescale.estimators.fit import fit

    rng = np.random.default_rng(7)
    covered, total, ratios = 0, 0, []
    for k in range(8):
        truth = {f"g{i}": LawParams(1.7 + 0.1 * i, 400.0, 1500.0,
                                    float(rng.normal(0.34, 0.03)), float(rng.normal(0.31, 0.03)))
                 for i in range(4)}
        sizes = {"g0": 5, "g1": 5, "g2": 5, "g3": 3}
        runs = _groups(truth, sizes, seed=k)
        groups = split_groups(runs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            post = pooled.sample_pooled(groups, law=LAW, seed=k, chains=4, warmup=500,
                                        draws=500, retry=False)  # short chains, as below
        assert post.diagnostics.rhat_max < 1.05 and post.diagnostics.divergences < 10
        for g, p in post.params.items():
            for name in ("alpha", "beta"):
                lo, hi = np.quantile(getattr(p, name), [0.05, 0.95])
                covered += int(lo <= getattr(truth[g], name) <= hi)
                total += 1
        if k < 3:  # the small group's own fit (3 budgets, 18 runs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                own = fit(groups["g3"], method="bayes", chains=4, warmup=500, draws=500, seed=k,
                          retry=False)  # short chains: no 2000-warmup second attempt
            width = lambda v: float(np.subtract(*np.quantile(v, [0.95, 0.05])))  # noqa: E731
            ratios.append(width(post.params["g3"].alpha) / width(own.params.alpha))
    assert total == 64
    assert 50 <= covered <= 64, f"covered {covered} of 64 (expected ~57.6, sd 2.4)"
    assert np.mean(ratios) < 0.9, ratios
    assert math.isfinite(post.info["timing"]["total"])
