"""Tests of bayescale.estimators.diagnostics on hand-made chains (no NUTS needed)."""

from __future__ import annotations

import json
import math
import warnings

import arviz as az
import numpy as np
import pytest

from bayescale.estimators.diagnostics import (DIAGNOSED_PARAMS, RHAT_NOTE, Diagnostics, check,
                                   compute_diagnostics)
from bayescale.errors import ConvergenceError, ConvergenceWarning


def _idata(rng, *, chains=4, draws=1000, shift=0.0, diverging=0, names=DIAGNOSED_PARAMS):
    post = {name: rng.normal(size=(chains, draws)) for name in names}
    post["E"] = post["E"] + shift * np.arange(chains)[:, None]  # chains disagree
    div = np.zeros((chains, draws), dtype=bool)
    div.flat[:diverging] = True
    stats = {"diverging": div, "energy": rng.normal(size=(chains, draws))}
    return az.from_dict(posterior=post, sample_stats=stats)


def test_good_chains_pass(rng):
    diag = compute_diagnostics(_idata(rng))
    assert diag.ok and diag.divergences == 0
    assert diag.rhat_max < 1.01 and diag.ess_bulk_min > 2000 and diag.ess_tail_min > 1000
    assert list(diag.per_param.index) == list(DIAGNOSED_PARAMS)
    assert list(diag.per_param.columns) == ["r_hat", "ess_bulk", "ess_tail"]
    assert diag.ebfmi_min > 0.3
    d = diag.to_dict()
    assert set(d) == {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "ebfmi_min",
                      "ok", "chains", "notes"}
    assert d["chains"] == 4 and d["notes"] == []
    assert isinstance(d["divergences"], int) and isinstance(d["ok"], bool)
    assert all(isinstance(d[k], float) for k in ("rhat_max", "ess_bulk_min", "ebfmi_min"))
    assert check(diag) is diag  # no warning


def test_numbers_are_arviz_numbers(rng):
    idata = _idata(rng, shift=0.5)
    diag = compute_diagnostics(idata)
    assert diag.rhat_max == pytest.approx(float(az.rhat(idata.posterior)["E"]))
    assert diag.per_param.loc["alpha", "ess_bulk"] == pytest.approx(
        float(az.ess(idata.posterior, method="bulk")["alpha"]))


@pytest.mark.parametrize("kind", ["rhat", "divergence", "ess"])
def test_failures_warn_then_raise_when_strict(rng, kind):
    if kind == "rhat":
        idata = _idata(rng, shift=1.0)
    elif kind == "divergence":
        idata = _idata(rng, diverging=3)
    else:
        idata = _idata(rng, chains=2, draws=100)
    diag = compute_diagnostics(idata)
    assert not diag.ok
    with pytest.warns(ConvergenceWarning, match="Try:") as record:
        check(diag)
    assert record[0].filename == __file__  # stacklevel points at the caller
    with pytest.raises(ConvergenceError, match="did not converge"):
        check(diag, strict=True)
    if kind == "divergence":
        assert diag.divergences == 3
        with pytest.warns(ConvergenceWarning, match="target_accept"):
            check(diag)


def test_nan_fails(rng):
    diag = Diagnostics(rhat_max=float("nan"), ess_bulk_min=1000.0, ess_tail_min=1000.0,
                       divergences=0, ebfmi_min=1.0, ok=False, per_param=None)
    assert diag.problems()
    with pytest.raises(ConvergenceError):
        check(diag, strict=True)


def test_sigma_and_sampled_nu_are_diagnosed(rng):
    without_nu = tuple(n for n in DIAGNOSED_PARAMS if n != "nu")
    diag = compute_diagnostics(_idata(rng, names=without_nu))
    assert "sigma" in diag.per_param.index and "nu" not in diag.per_param.index
    # a stuck sigma fails the fit although the law's parameters mixed
    idata = _idata(rng, names=DIAGNOSED_PARAMS)
    idata.posterior["sigma"] = idata.posterior["sigma"] + 2.0 * np.arange(4)[:, None]
    diag = compute_diagnostics(idata)
    assert "nu" in diag.per_param.index
    assert diag.per_param["r_hat"].idxmax() == "sigma" and not diag.ok


def test_one_chain_skips_rhat(rng):
    diag = compute_diagnostics(_idata(rng, chains=1, draws=2000))
    assert diag.chains == 1 and math.isnan(diag.rhat_max)
    assert diag.per_param["r_hat"].isna().all()
    assert diag.ok and diag.problems() == [] and diag.notes == (RHAT_NOTE,)
    assert "2 chains" in RHAT_NOTE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(diag, strict=True) is diag
    d = diag.to_dict()
    assert d["rhat_max"] is None and d["ok"] is True and d["notes"] == [RHAT_NOTE]
    json.dumps(d, allow_nan=False)
    # the other checks still apply to one chain
    bad = compute_diagnostics(_idata(rng, chains=1, draws=2000, diverging=2))
    assert bad.problems() == ["2 divergent transition(s)"]
    with pytest.warns(ConvergenceWarning) as record:
        check(bad)
    assert "R-hat" not in str(record[0].message)


def test_to_dict_has_no_nan_or_inf():
    diag = Diagnostics(rhat_max=float("inf"), ess_bulk_min=float("nan"), ess_tail_min=0.0,
                       divergences=0, ebfmi_min=float("nan"), ok=False, per_param=None)
    d = diag.to_dict()
    assert d["rhat_max"] is None and d["ess_bulk_min"] is None and d["ebfmi_min"] is None
    assert d["ess_tail_min"] == 0.0 and d["chains"] is None
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("likelihood", ["student_t", "normal", "huber", None])
def test_advice_depends_on_likelihood(rng, likelihood):
    diag = compute_diagnostics(_idata(rng, diverging=1))
    with pytest.warns(ConvergenceWarning) as record:
        check(diag, likelihood=likelihood)
    message = str(record[0].message)
    if likelihood == "student_t":
        assert "try likelihood='student_t'" not in message
        assert "Student-t likelihood already" in message
    else:
        assert "try likelihood='student_t'" in message
