"""``build_report(law=...)`` and ``bayescale report --law``: the report of a law other
than Chinchilla's (issue 8).

One Kaplan report is built from small fits (synthetic runs, NUTS 2 chains x 100 warmup x
100 draws, 60 bootstrap resamples, as :mod:`_report_fits` keeps the Chinchilla one
cheap). Its frontier is checked against an oracle written here from the law object
alone: the first-order condition of ``law.kernel`` along ``C = 6 N D``, solved by
bisection for every saved posterior draw and for the saved Huber estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.errors import BayescaleError
from bayescale.laws.registry import get_law
from bayescale.report import build as report
from bayescale.report.compare import compare_methods

KAPLAN_PARAMS = ("N_c", "D_c", "alpha_N", "alpha_D")
BUDGETS = (1e20, 1e22)
# Sentences only the Chinchilla law on the Chinchilla data may carry.
CHINCHILLA_PROSE = ("Hoffmann et al. (2022), rounded published coefficients",
                    "Hoffmann et al. (2022), unrounded coefficients",
                    "Epoch's refit (Besiroglu et al. 2024)",
                    "inconsistent with Chinchilla itself",
                    "The Huber fit is Hoffmann et al.'s Approach 3",
                    "Table 2, on their own runs",
                    "The last columns are the published fits")


@functools.cache
def _kaplan_fits():
    from bayescale.data.simulate import simulate_runs
    from bayescale.errors import ConvergenceWarning

    runs = simulate_runs(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny settings: expected
        return report.fit_methods(runs, bayes_options=dict(chains=2, warmup=100, draws=100),
                                  resamples=60, seed=0, quiet=True, law="kaplan")


@pytest.fixture(scope="module")
def fits():
    return _kaplan_fits()


@pytest.fixture(scope="module")
def built(fits, tmp_path_factory):
    out = tmp_path_factory.mktemp("kaplan") / "report"
    paths = report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                                budgets=BUDGETS, law="kaplan")
    return out, paths


def _oracle_N_opt(params, C: float) -> np.ndarray:
    """N_opt at budget C for each draw of ``params`` (KaplanParams of arrays), from the
    law object only: bisection on d log L / d log N along log D = log C - log 6 - log N."""
    law = get_law("kaplan")
    theta = jnp.asarray(law.to_theta(law.params_type(*(jnp.atleast_1d(jnp.asarray(v))
                                                       for v in params))))
    log_c6 = float(np.log(C / 6.0))

    def slope(th, x):
        return jax.grad(lambda x: law.kernel(th, jnp.stack([x, log_c6 - x])))(x)

    slopes = jax.jit(jax.vmap(slope))
    lo = np.full(theta.shape[0], np.log(1e3))
    hi = np.full(theta.shape[0], log_c6 - np.log(1e3))
    assert np.all(np.asarray(slopes(theta, jnp.asarray(lo))) < 0)  # N too small: grow it
    assert np.all(np.asarray(slopes(theta, jnp.asarray(hi))) > 0)
    for _ in range(60):
        mid = (lo + hi) / 2
        grow = np.asarray(slopes(theta, jnp.asarray(mid, dtype=theta.dtype))) < 0
        lo, hi = np.where(grow, mid, lo), np.where(grow, hi, mid)
    return np.exp((lo + hi) / 2)


def test_every_method_fits_the_law(fits):
    assert {m: f.law.name for m, f in fits.items()} == dict.fromkeys(fits, "kaplan")
    assert fits["huber"].is_point and fits["huber"].param_names == KAPLAN_PARAMS


def test_methods_table_has_the_laws_parameters(built):
    out, _ = built
    methods = pd.read_csv(out / "methods.csv", index_col=0)
    assert list(methods.index) == [*KAPLAN_PARAMS, "N_opt", "D_opt", "tokens_per_param"]
    assert not {"E", "A", "B", "alpha", "beta", "a_opt"} & set(methods.index)
    assert {"bayes", "bootstrap", "huber"} <= set(methods.columns)
    assert not any(c.startswith(("hoffmann", "besiroglu")) for c in methods.columns)
    md = (out / "report.md").read_text()
    header = md.split("## ")[0]
    assert "Law: kaplan" in header and "arXiv:2001.08361" in header
    html = (out / "report.html").read_text()
    assert 'id="law"' in html and "arXiv:2001.08361" in html
    for name in KAPLAN_PARAMS:
        assert f"| {name} |" in md


def test_frontier_is_the_laws_allocation(built):
    """frontier.csv's posterior median N_opt and methods.csv's Huber N_opt agree with the
    oracle computed from the saved draws and the saved Huber estimate."""
    out, _ = built
    frontier = pd.read_csv(out / "frontier.csv", index_col=0)
    draws = pd.read_csv(out / "draws.csv")
    params = tuple(draws[name].to_numpy(float) for name in KAPLAN_PARAMS)
    for C in BUDGETS:
        row = frontier.loc[np.isclose(frontier.index.to_numpy(float), C, rtol=1e-9)].iloc[0]
        expected = np.median(_oracle_N_opt(params, C))
        np.testing.assert_allclose(row["N_opt_median"], expected, rtol=2e-3)
    methods = pd.read_csv(out / "methods.csv", index_col=0)
    huber = tuple(np.array([methods.at[name, "huber"]]) for name in KAPLAN_PARAMS)
    C = json.loads((out / "manifest.json").read_text())["settings"]["reference_budget"]
    np.testing.assert_allclose(methods.at["N_opt", "huber"], _oracle_N_opt(huber, C)[0],
                               rtol=2e-3)


def test_decisions_and_approaches_without_chinchilla_parts(built):
    out, _ = built
    decisions = pd.read_csv(out / "decisions.csv")
    assert set(decisions["plan"]) >= {"bayes_optimal", "plug_in", "tokens_20"}
    approaches = pd.read_csv(out / "approaches.csv", index_col=0)
    assert 3 not in set(approaches.index)
    md = (out / "report.md").read_text()
    assert "Approach 3 not fitted: the kaplan law has no constant allocation exponents" in md
    assert "a_opt and b_opt are left out" in md
    assert "Joint distribution of (N_c, D_c, alpha_N, alpha_D)" in md
    assert (out / "figures" / "pair.png").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["law"] == "kaplan"


def test_no_chinchilla_prose_for_other_data(built):
    out, _ = built
    for text in ((out / "report.md").read_text(), (out / "report.html").read_text()):
        for sentence in CHINCHILLA_PROSE:
            assert sentence not in text.replace("&#x27;", "'")


def test_chinchilla_data_with_another_law_says_why(fits, tmp_path):
    """On the Chinchilla data, another law's report leaves the published fits out, in
    one line, and tells none of their story."""
    runs = dataclasses.replace(fits["bayes"].runs, source="chinchilla")
    relabelled = {m: dataclasses.replace(f, runs=runs) for m, f in fits.items()}
    table = compare_methods(fits=relabelled, published=True)
    assert not any(c.startswith(("hoffmann", "besiroglu")) for c in table.columns)
    report.build_report(runs, out_dir=tmp_path / "r", fits=relabelled, quiet=True,
                        budgets=BUDGETS[:1])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "are of the Chinchilla law's parameters, not the kaplan law's" in md
    for sentence in CHINCHILLA_PROSE[:5]:
        assert sentence not in md


def test_law_errors(fits, tmp_path):
    runs = fits["bayes"].runs
    with pytest.raises(BayescaleError, match="unique-token budget"):
        report.build_report(runs, out_dir=tmp_path / "a", law="data_constrained", quiet=True)
    with pytest.raises(BayescaleError, match="unique tokens of every run"):
        report.build_report(runs, out_dir=tmp_path / "b", law="data_constrained",
                            unique_tokens=1e10, quiet=True)
    with pytest.raises(BayescaleError, match="has none"):
        report.build_report(runs, out_dir=tmp_path / "c", law="kaplan", unique_tokens=1e10,
                            quiet=True)
    with pytest.raises(BayescaleError, match="kaplan law, not of the chinchilla"):
        report.build_report(runs, out_dir=tmp_path / "d", fits=fits, law="chinchilla",
                            quiet=True)
    with pytest.raises(BayescaleError, match="unknown law"):
        report.build_report(runs, out_dir=tmp_path / "e", law="nope", quiet=True)
    assert not any(tmp_path.iterdir())  # refused before any work


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv, message", [
    (["--law", "data_constrained"], "--unique-tokens U"),
    (["--law", "kaplan", "--unique-tokens", "25e9"], "has none"),
    (["--law", "nope"], "unknown law"),
])
def test_cli_law_errors(argv, message, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    status, out, err = _run(["report", "synthetic", "--out", str(tmp_path / "r"), *argv])
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cli_law_reaches_the_report(fits, tmp_path, monkeypatch):
    calls = []

    def fake_fit_methods(runs, **kwargs):
        calls.append(kwargs)
        return fits

    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    monkeypatch.setattr(report, "fit_methods", fake_fit_methods)
    out = tmp_path / "r"
    status, stdout, err = _run(["report", "synthetic", "--law", "kaplan", "--out", str(out),
                                "--budget", "1e21", "--resamples", "60", "--quiet"])
    assert status == 0, err
    assert calls[0]["law"].name == "kaplan"
    assert "Law: kaplan" in (out / "report.md").read_text()


def test_cli_compare_law(fits, monkeypatch):
    from bayescale.report import compare

    calls = []

    def fake_fit_methods(runs, **kwargs):
        calls.append(kwargs)
        return fits

    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    monkeypatch.setattr(compare, "fit_methods", fake_fit_methods)
    status, stdout, err = _run(["compare", "synthetic", "--law", "kaplan", "--json"])
    assert status == 0, err
    assert calls[0]["law"] == "kaplan"
    payload = json.loads(stdout)
    assert set(payload["methods"]["bayes"]) == {*KAPLAN_PARAMS, "N_opt", "D_opt",
                                                "tokens_per_param"}
    assert payload["published"] == {}
    status, _, err = _run(["compare", "synthetic", "--laws", "chinchilla,kaplan",
                           "--law", "kaplan"])
    assert status == 2 and "do not take them" in err and "Traceback" not in err


# ---------------------------------------------------------------------------
# The data-constrained law: a decision table at the unique-token budget U
# ---------------------------------------------------------------------------

@pytest.mark.slow  # a small NUTS fit and bootstrap of the 7-parameter law, and its report
def test_data_constrained_report_has_a_decision_table_at_U(tmp_path):
    """The ``report --help`` example (``shrunk``: run as typed, smaller samples; the
    example's test in test_cli_options.py leaves it to this one): with ``--unique-tokens
    U`` the report has its decision table; every plan's expected loss is the posterior
    mean of the law at (N, D, U) (``bayescale.laws.loss``) over the draws the report
    wrote, the Bayes-optimal plan has the least of them, and the page has no "No decision
    table"."""
    from cli_examples import run_main, shrunk

    from bayescale.laws import loss

    U = 25e9
    out = tmp_path / "report"
    argv = shrunk("bayescale report data_constrained --law data_constrained --unique-tokens 25e9")
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # the tiny samples' diagnostics warning: expected
        code, _, err = run_main([*argv, "--out", str(out), "--quiet"])
    assert code == 0 and "Traceback" not in err, err[-3000:]
    draws = pd.read_csv(out / "draws.csv")
    law = get_law("data_constrained")
    params = law.params_type(*(draws[name].to_numpy() for name in law.param_names))
    # the report's budgets: the checks at the smallest, the largest and the one nearest
    # 1e22 FLOPs
    every = pd.read_csv(out / "decisions.csv")
    budgets = np.sort(every["C"].unique())
    C22 = budgets[np.argmin(np.abs(np.log(budgets / 1e22)))]
    picked = {budgets[0], budgets[-1], C22}
    from bayescale.planning.efficiency import compute_efficiency

    for C in sorted(picked):
        table = every[every["C"] == C].set_index("plan")
        assert list(table.index) == ["bayes_optimal", "plug_in", "tokens_20", "kaplan_2020"]
        for plan, row in table.iterrows():
            assert 6 * row["N"] * row["D"] == pytest.approx(C, rel=1e-5)  # N in float32
            L = np.asarray(loss(params, row["N"], row["D"], U), dtype=float)
            assert row["expected_loss"] == pytest.approx(L.mean(), rel=1e-5), (C, plan)
            # The compute efficiency: the law's numerical L_opt(C) at U inverted
            # (bayescale.planning.efficiency, checked against closed forms and brentq in
            # tests/test_efficiency.py); here, each plan's median against that function on
            # the same draws (1e-4: the report evaluates the loss in float32).
            eff = compute_efficiency(params, L.reshape(-1, 1), [C], U)[:, 0]
            assert row["compute_efficiency_median"] == pytest.approx(np.median(eff),
                                                                     rel=1e-4), (C, plan)
        best = table.loc["bayes_optimal", "expected_loss"]
        assert (table["expected_loss"] >= best - 1e-6).all()
        np.testing.assert_allclose(table["regret"], table["expected_loss"] - best, atol=1e-5)
        assert (table["compute_efficiency_median"] <= 1 + 1e-6).all()
    near = every[every["C"] == C22].set_index("plan")
    assert near.loc["kaplan_2020", "compute_efficiency_median"] < 0.5  # far off the optimum
    for page in ("report.md", "report.html"):
        assert "No decision table" not in (out / page).read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "decisions.csv" in manifest["files"]
    assert manifest["settings"]["unique_tokens"] == U
