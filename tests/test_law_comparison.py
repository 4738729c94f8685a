"""Comparing laws by PSIS-LOO: on runs drawn from a Chinchilla law (with an irreducible
loss), the Chinchilla law must beat Kaplan's form (which has none) by many standard errors
and take almost all of the stacking weight."""

from __future__ import annotations

import json
import warnings

import numpy as np
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
    assert "subsampling_se" not in t  # every row's log-likelihood was recorded
    # oracle: arviz.compare on the same fits (bayescale computes the table itself, from
    # psis_loo and its own stacking, so as not to depend on arviz.compare's pandas calls)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k and pandas deprecation warnings
        ref = az.compare({k: f.idata for k, f in res.fits.items()}, ic="loo",
                         method="stacking")
    for law in ("chinchilla", "kaplan"):
        for col in ("elpd_loo", "se", "p_loo", "elpd_diff", "dse"):
            assert np.isclose(t.loc[law, col], ref.loc[law, col], rtol=1e-6, atol=1e-6), col
        assert abs(t.loc[law, "weight"] - ref.loc[law, "weight"]) < 0.01


@pytest.mark.slow
def test_subsampled_fits_are_compared_by_subsampled_loo():
    """Fits that subsampled their rows (HMCECS) record no pointwise log-likelihood: the
    comparison takes PSIS-LOO from the draws on 1,000 of the 2,700 rows (the same rows for
    both laws) and still prefers the generating law by many standard errors, with its note.
    Oracle: PSIS-LOO on all 2,700 rows from the same draws; the subsampled estimate is
    within 4 of its subsampling standard errors of it (tests/test_loo.py checks those
    errors' calibration over many seeds)."""
    from bayescale.estimators.loo import psis_loo

    runs = simulate_runs(seed=0, models_per_budget=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: diagnostics may warn
        res = compare_laws(runs, ["kaplan", "chinchilla"], subsample=200, chains=2,
                           warmup=300, draws=300, retry=False)
    t = res.table
    assert list(t.index) == ["chinchilla", "kaplan"]
    assert (t["subsampling_se"] > 0).all()
    assert any("on 1000 of 2700 rows" in note for note in res.notes), res.notes
    assert t.loc["kaplan", "elpd_diff"] > 5 * t.loc["kaplan", "dse"]
    assert t.loc["chinchilla", "weight"] > 0.9
    for law in ("chinchilla", "kaplan"):
        assert "log_likelihood" not in res.fits[law].idata.groups()
        every = psis_loo(res.fits[law], m=len(runs))
        assert not every.subsampled
        assert abs(t.loc[law, "elpd_loo"] - every.elpd) <= 4 * t.loc[law, "subsampling_se"]


# --- laws with a unique-token input (data_constrained) --------------------------------------

def test_data_constrained_needs_a_unique_token_budget_before_fitting(monkeypatch):
    from bayescale import load_runs
    from bayescale.errors import BayescaleError
    from bayescale.report import law_comparison

    def no_fit(*args, **kwargs):
        raise AssertionError("compare_laws fitted before checking unique_tokens")

    monkeypatch.setattr(law_comparison, "fit", no_fit)
    runs = load_runs("data_constrained")
    with pytest.raises(BayescaleError, match="unique_tokens=U") as info:
        compare_laws(runs, ["chinchilla", "data_constrained"])
    assert "data_constrained" in str(info.value)
    assert f"{float(runs.U.max()):.4g}" in str(info.value)  # the runs' largest U, as a hint
    assert "--unique-tokens U" in info.value.cli_message
    with pytest.raises(BayescaleError, match="none of the laws"):
        compare_laws(runs, ["chinchilla", "kaplan"], unique_tokens=25e9)
    for bad in (0, -1.0, float("nan"), "many"):
        with pytest.raises(BayescaleError, match="positive"):
            compare_laws(runs, ["chinchilla", "data_constrained"], unique_tokens=bad)


@pytest.mark.slow
def test_compare_laws_with_data_constrained_gives_n_opt_for_each_law():
    """The data-constrained law's N_opt at the reference budget is the posterior median of
    the same fit's frontier at the given unique-token budget (short chains: the check is
    the bookkeeping, not the posterior)."""
    from bayescale import load_runs

    runs = load_runs("data_constrained")
    C, U = 1e22, 25e9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: diagnostics may warn
        res = compare_laws(runs, ["chinchilla", "data_constrained"], budget=C,
                           unique_tokens=U, chains=1, warmup=100, draws=100)
    t = res.table
    assert set(t.index) == {"chinchilla", "data_constrained"}
    assert res.budget == C and res.unique_tokens == U
    for law in t.index:
        assert np.isfinite(t.loc[law, "N_opt"]) and t.loc[law, "N_opt"] > 0, law
        extra = {"unique_tokens": U} if law == "data_constrained" else {}
        f = res.fits[law].frontier([C], **extra)
        expected = float(np.nanmedian(np.asarray(f.N_opt, dtype=float)[:, 0]))
        np.testing.assert_allclose(t.loc[law, "N_opt"], expected, rtol=1e-6, err_msg=law)
    # U matters for that law: a 4x smaller unique-token budget moves its N_opt
    f_small = res.fits["data_constrained"].frontier([C], unique_tokens=U / 4)
    assert float(np.nanmedian(np.asarray(f_small.N_opt)[:, 0])) != pytest.approx(
        t.loc["data_constrained", "N_opt"], rel=1e-3)
    d = res.to_dict()
    assert d["unique_tokens"] == U
    assert any("U = 2.5e+10" in note for note in d["notes"])


def _run_cli(argv):
    import contextlib
    import io

    from bayescale.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def test_cli_compare_laws_unique_tokens(monkeypatch):
    from bayescale.report import law_comparison

    calls = []

    class Fake:
        budget, unique_tokens, notes = 5.76e23, 25e9, ()

        def to_dict(self):
            return {"budget": self.budget, "unique_tokens": self.unique_tokens, "laws": []}

    def fake_compare_laws(runs, laws, **kwargs):
        calls.append((laws, kwargs))
        return Fake()

    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    monkeypatch.setattr(law_comparison, "compare_laws", fake_compare_laws)
    # no U for a law that needs one: exit 2 before the data are read or anything fitted
    status, out, err = _run_cli(["compare", "data_constrained", "--laws",
                                 "chinchilla,data_constrained"])
    assert status == 2 and "--unique-tokens U" in err and "Traceback" not in err
    assert not calls
    status, out, err = _run_cli(["compare", "data_constrained", "--laws", "chinchilla,kaplan",
                                 "--unique-tokens", "25e9"])
    assert status == 2 and "none of the laws" in err and "Traceback" not in err
    assert not calls
    status, out, err = _run_cli(["compare", "data_constrained", "--laws",
                                 "chinchilla,data_constrained", "--unique-tokens", "25e9",
                                 "--json"])
    assert status == 0, err
    assert calls[0][0] == ["chinchilla", "data_constrained"]
    assert calls[0][1]["unique_tokens"] == 25e9
    assert json.loads(out)["unique_tokens"] == 25e9
