"""Tests of bayescale.diagnostics on hand-made chains (no NUTS needed)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayescale.diagnostics import DIAGNOSED_PARAMS, Diagnostics, check, compute_diagnostics
from bayescale.errors import ConvergenceError, ConvergenceWarning


def _idata(rng, *, chains=4, draws=1000, shift=0.0, diverging=0):
    post = {name: rng.normal(size=(chains, draws)) for name in DIAGNOSED_PARAMS}
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
    assert set(d) == {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "ebfmi_min", "ok"}
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
