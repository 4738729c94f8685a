"""``next_runs`` on every shipped law, fitted to the published data it was made for, from
bootstrap resamples and from a NUTS posterior (issue 12: "design works from Python and the
command line on any fit and law"; the command line's examples, which run in
tests/test_cli_options.py, cover the data-constrained and Farseer laws there).

Oracles: the variance before is the draws' variance of log N_opt(C*) from the frontier
solver (the path ``next_runs`` takes), and each draw's N_opt from that solver is its true
optimum by brute force over N (:func:`brute_log_n_opt`, independent of the solver); the
greedy's own bookkeeping (the gains of the chosen runs add up to the drop in variance); the
budget and the training cost 6ND; the unique-token budget carried onto the candidates of
the data-constrained law.
"""

from __future__ import annotations

import numpy as np
import pytest

import bayescale
from bayescale.design import next_runs


def brute_log_n_opt(fit, C, U=None, num=3000):
    """Each draw's log N_opt at compute ``C`` under 6ND by brute force, independent of the
    frontier solver: the law's log loss on a log grid of N (D = C / 6N), 1e-3 to 1e3 times N = D,
    refined by the parabola through the grid minimum and its neighbours (float64)."""
    import jax
    import jax.numpy as jnp

    from bayescale.laws.base import log_loss_theta

    law = fit.law
    with jax.enable_x64(True):
        theta = jnp.atleast_2d(law.to_theta(law.params_type(
            *(jnp.atleast_1d(jnp.asarray(v, jnp.float64)) for v in fit.params))))
        mid = 0.5 * np.log(C / 6)   # N = D: three decades either way brackets every draw's
        log_n = np.linspace(mid - 6.9, mid + 6.9, num)   # interior optimum
        cols = [log_n, np.log(C / 6) - log_n] + ([np.full(num, np.log(U))] if U else [])
        f = np.asarray(log_loss_theta(law, theta, np.column_stack(cols)))  # (draws, num)
    i = np.clip(np.argmin(f, axis=1), 1, num - 2)
    rows = np.arange(len(f))
    fm, f0, fp = f[rows, i - 1], f[rows, i], f[rows, i + 1]
    h = log_n[1] - log_n[0]
    return log_n[i] + 0.5 * h * (fm - fp) / (fm - 2 * f0 + fp)


BOOT = dict(method="bootstrap", resamples=40, seed=0)
NUTS = dict(method="bayes", chains=4, warmup=500, draws=500, seed=0, progress=False)
CASES = [  # (data, load options, law, fit options)
    ("chinchilla", {}, "kaplan", BOOT),
    ("farseer", {"split": "train"}, "farseer", BOOT),
    ("data_constrained", {}, "data_constrained", BOOT),
    ("chinchilla", {"exclude_top": 5}, "chinchilla", NUTS),   # a posterior, not resamples
]


@pytest.mark.slow
@pytest.mark.parametrize("data, load, law, options", CASES,
                         ids=[f"{c[2]}-{c[3]['method']}" for c in CASES])
def test_next_runs_on_every_shipped_law(data, load, law, options):
    runs = bayescale.load_runs(data, **load)
    fit = bayescale.fit(runs, law=law, **options)
    C_star = 100 * float(runs.C.max())          # two decades beyond the largest run
    F = C_star / 1000
    plan = next_runs(fit, target_budget=C_star, experiment_budget=F, k=3,
                     optimum_model="none",      # the law's own variance: the frontier's
                     max_draws=fit.num_draws)   # every draw (by default 1000 at random)
    props = plan.proposals
    assert 1 <= len(props) <= 3
    assert props.cost.sum() <= F * (1 + 1e-12)
    np.testing.assert_allclose(props.cost, 6 * props.N * props.D, rtol=1e-12)
    assert np.all(props.expected_gain > 0)
    info = plan.info
    # the variance before is the draws' (unbiased) variance of log N_opt(C*) from the frontier
    U = info["unique_tokens"]
    front = fit.frontier([C_star], **({"unique_tokens": U} if law == "data_constrained" else {}))
    log_n = np.log(np.asarray(front.N_opt).ravel())
    ok = np.isfinite(log_n)
    assert info["var_before"] == pytest.approx(np.var(log_n[ok], ddof=1), rel=1e-5)
    # ... and that solver's N_opt is each draw's true optimum (brute force over N)
    brute = brute_log_n_opt(fit, C_star, U if law == "data_constrained" else None)
    np.testing.assert_allclose(log_n[ok], brute[ok], atol=2e-3)
    # each gain is the drop the run adds given the runs before it: they add up
    assert info["var_before"] - info["var_after"] == pytest.approx(props.expected_gain.sum(),
                                                                    rel=1e-6)
    assert plan.after["upper"] / plan.after["lower"] < plan.before["upper"] / plan.before["lower"]
    if law == "data_constrained":
        assert U == float(np.max(runs.U))      # the default: the runs' largest U
        np.testing.assert_allclose(plan.candidates.U, U)
