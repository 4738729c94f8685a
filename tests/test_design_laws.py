"""``next_runs`` on every shipped law, fitted to the published data it was made for, from
bootstrap resamples and from a NUTS posterior (issue 12: "design works from Python and the
command line on any fit and law"; the command line's examples, which run in
tests/test_cli_options.py, cover the data-constrained and Farseer laws there).

Oracles: the frontier solver (``fit.frontier``, an independent path to each draw's N_opt)
for the variance before; the greedy's own bookkeeping (the gains of the chosen runs add up
to the drop in variance); the budget and the training cost 6ND; the unique-token budget
carried onto the candidates of the data-constrained law.
"""

from __future__ import annotations

import numpy as np
import pytest

import bayescale
from bayescale.design import next_runs

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
    log_n = log_n[np.isfinite(log_n)]
    assert info["var_before"] == pytest.approx(np.var(log_n, ddof=1), rel=1e-5)
    # each gain is the drop the run adds given the runs before it: they add up
    assert info["var_before"] - info["var_after"] == pytest.approx(props.expected_gain.sum(),
                                                                    rel=1e-6)
    assert plan.after["upper"] / plan.after["lower"] < plan.before["upper"] / plan.before["lower"]
    if law == "data_constrained":
        assert U == float(np.max(runs.U))      # the default: the runs' largest U
        np.testing.assert_allclose(plan.candidates.U, U)
