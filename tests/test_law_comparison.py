"""Comparing laws by PSIS-LOO: on runs drawn from a Chinchilla law (with an irreducible
loss), the Chinchilla law must beat Kaplan's form (which has none) by many standard errors
and take almost all of the stacking weight."""

from __future__ import annotations

import warnings

import pytest

from bayescale.data.simulate import simulate_runs
from bayescale.report.law_comparison import compare_laws


@pytest.mark.slow
def test_loo_prefers_the_generating_law():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: diagnostics may warn
        res = compare_laws(simulate_runs(seed=0), ["kaplan", "chinchilla"], chains=2,
                           warmup=300, draws=300)
    t = res.table
    assert list(t.index) == ["chinchilla", "kaplan"]  # sorted by elpd_loo
    # the difference is measured against its own standard error (arviz's dse)
    assert t.loc["kaplan", "elpd_diff"] > 5 * t.loc["kaplan", "dse"]
    assert t.loc["chinchilla", "weight"] > 0.9
    d = res.to_dict()
    assert {r["law"] for r in d["laws"]} == {"chinchilla", "kaplan"}
    assert set(d["laws"][0]["params"]) >= {"E", "A", "B", "alpha", "beta"}
