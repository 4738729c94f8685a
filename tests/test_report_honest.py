"""The report's honest-extrapolation sections: law-form uncertainty (``structural=``) and the
leave-future-out backtest (``backtest=``), against the functions that compute them.

The report's fits are the session's small ones. The backtest is real (a coarse-grid Huber
fit: seconds) and checked against :func:`backtest` run here with the same settings. Real
stacking refits the Kaplan law by bootstrap, minutes: the fast tests swap
:func:`stack_laws` for a stand-in that records its arguments and returns a
:class:`LawStack` of real fits (the report's bootstrap and Kaplan et al.'s published law)
whose :meth:`LawStack.summary` the report's numbers must equal; one slow test runs the real
stacking twice, in the report and here. The figures and Hoffmann et al.'s approaches, which
these sections do not touch, are left out of these reports (``_light``) to keep them fast.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from _report_fits import small_fits

from bayescale.cli import main
from bayescale.errors import BayescaleError
from bayescale.estimators import stacking
from bayescale.report import build as report
from bayescale.report._format import interval
from bayescale.validation.backtest import backtest

BUDGETS = [1e21, 1e23]


@pytest.fixture(scope="module")
def fits():
    return small_fits()


def _skip_heavy(mp):
    mp.setattr(report, "draw_figures", lambda *args, **kwargs: ({}, []))
    mp.setattr(report, "compare_approaches", lambda *args, **kwargs: (None, None))


@pytest.fixture(autouse=True)
def _light(monkeypatch):
    _skip_heavy(monkeypatch)


def _fake_stack(fits):
    import bayescale

    return stacking.LawStack(
        laws=("chinchilla", "kaplan"), weights=np.array([0.7, 0.3]),
        fits={"chinchilla": fits["bootstrap"], "kaplan": bayescale.published("kaplan2020")},
        log_density=np.zeros((4, 2)),
        info={"cuts": [1, 2, 3], "n_heldout": 4, "method": "bootstrap", "left_out": {},
              "seed": 0, "mean_log_density": {"chinchilla": 3.1, "kaplan": 2.2}})


@pytest.fixture
def fake_stacking(monkeypatch, fits):
    calls = []
    stack = _fake_stack(fits)

    def fake(runs, laws, **kwargs):
        calls.append({"runs": runs, "laws": list(laws), **kwargs})
        return stack

    monkeypatch.setattr(stacking, "stack_laws", fake)
    return stack, calls


@pytest.fixture(scope="module")
def honest_report(fits, tmp_path_factory):
    """One report with both sections (the stand-in stacking), built once."""
    stack = _fake_stack(fits)
    calls = []

    def fake(runs, laws, **kwargs):
        calls.append({"runs": runs, "laws": list(laws), **kwargs})
        return stack

    out = tmp_path_factory.mktemp("honest") / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stacking, "stack_laws", fake)
        _skip_heavy(mp)
        paths = report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                                    budgets=BUDGETS, seed=3, resamples=7,
                                    structural="chinchilla,kaplan", backtest="top-budgets:1")
    return out, paths, stack, calls


def test_structural_numbers_are_the_stack_summary(honest_report, fits):
    out, paths, stack, calls = honest_report
    (call,) = calls
    assert call["runs"] is fits["bayes"].runs and call["laws"] == ["chinchilla", "kaplan"]
    assert call["seed"] == 3 and call["resamples"] == 7 and call["method"] == "bootstrap"
    expected = stack.summary(BUDGETS, 0.9)
    csv = pd.read_csv(out / "structural.csv")
    assert list(csv["band"]) == ["within", "within", "structural", "structural"]
    for q in ("N_opt", "D_opt"):
        for stat in ("median", "lower", "upper"):
            np.testing.assert_allclose(csv[f"{q}_{stat}"], expected[f"{q}_{stat}"], rtol=1e-12)
    # The two bands differ: the mixture pools Kaplan's frontier in.
    assert not np.allclose(csv["N_opt_median"][:2], csv["N_opt_median"][2:])
    md = (out / "report.md").read_text()
    html_text = (out / "report.html").read_text()
    assert "## N_opt and D_opt with law-form uncertainty" in md
    assert "chinchilla 0.70, kaplan 0.30" in md and "leave-future-out" in md
    assert "Within chinchilla: the top-weighted law alone" in md
    for _, r in expected.iterrows():
        for q in ("N_opt", "D_opt"):
            cell = interval(r[f"{q}_median"], r[f"{q}_lower"], r[f"{q}_upper"])
            assert cell in md and cell in html_text
    assert 'id="table-structural"' in html_text and 'href="#structural"' in html_text
    weights = json.loads((out / "fit.json").read_text())["report"]["structural"]["weights"]
    assert sum(weights) == pytest.approx(1.0) and weights == pytest.approx([0.7, 0.3])


def test_backtest_numbers_are_the_backtest(honest_report, fits):
    out, paths, _, _ = honest_report
    expected = backtest(fits["bayes"].runs, holdout="top-budgets:1", law="chinchilla", seed=3)
    got = json.loads((out / "fit.json").read_text())["report"]["backtest"]
    for key, summary in (("auto", got), ("none", got["in_model"])):
        want = expected.summaries[key]
        assert summary["coverage"] == pytest.approx(want["coverage"], abs=1e-12)
        for score in ("mean_width_90", "bias", "crps"):
            assert summary[score] == pytest.approx(want[score], rel=1e-9, abs=1e-12)
    runs = pd.read_csv(out / "backtest.csv")
    table = expected.tables["auto"]
    for col in ("observed", "median", "lower_0.9", "upper_0.9", "pit"):
        np.testing.assert_allclose(runs[col], table[col], rtol=1e-9)
    np.testing.assert_allclose(runs["pit_in_model"], expected.tables["none"]["pit"])
    md = (out / "report.md").read_text()
    assert "## Would this have told the truth?" in md
    for k, v in expected.summaries["none"]["coverage"].items():
        row = f"| {100 * float(k):g}% | {v:.2f} | {expected.summaries['auto']['coverage'][k]:.2f} |"
        assert row in md
    decades = table["extrapolation_decades"].mean()
    assert f"{decades:.2f} decades of compute beyond the largest fitted run" in md
    html_text = (out / "report.html").read_text()
    assert 'id="table-backtest-coverage"' in html_text and 'href="#backtest"' in html_text
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"structural.csv", "backtest.csv"} <= set(manifest["files"])
    assert manifest["settings"]["backtest"] == "top-budgets:1"
    assert paths["structural"].name == "structural.csv"


def test_sections_only_when_asked(fits, tmp_path):
    out = tmp_path / "plain"
    paths = report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                                budgets=[1e21])
    md, html_text = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (md, html_text):
        assert "law-form uncertainty" not in text and "told the truth" not in text
    assert not (out / "structural.csv").exists() and not (out / "backtest.csv").exists()
    assert "structural" not in paths and "backtest" not in paths


def test_unsupported_data_get_one_line(fits, tmp_path, monkeypatch):
    def refuse(runs, laws, **kwargs):
        raise BayescaleError("stacking needs at least 4 budgets.")

    monkeypatch.setattr(stacking, "stack_laws", refuse)
    out = tmp_path / "few"
    paths = report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                                budgets=[1e21], structural=("chinchilla", "kaplan"),
                                backtest="above:1e30")
    md = (out / "report.md").read_text()
    assert "Not computed: stacking needs at least 4 budgets." in md
    assert "Would this have told the truth?" in md and "holds out 0 of" in md
    assert "structural" not in paths and "backtest" not in paths
    for bad, kwargs in (("two or more distinct", {"structural": "chinchilla"}),
                        ("holdout", {"backtest": "top:1"}),
                        ("split", {"backtest": "split"})):
        with pytest.raises(BayescaleError, match=bad):
            report.build_report(fits["bayes"].runs, out_dir=tmp_path / "x", fits=fits,
                                quiet=True, **kwargs)


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def test_cli_flags(fits, fake_stacking, monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    monkeypatch.setattr(report, "fit_methods", lambda runs, **kwargs: fits)
    _, calls = fake_stacking
    out = tmp_path / "rep"
    status, stdout, stderr = _run(["report", "synthetic", "--out", str(out), "--budget", "1e21",
                                   "--chains", "2", "--warmup", "50", "--draws", "50",
                                   "--resamples", "20", "--seed", "1", "--quiet",
                                   "--structural", "chinchilla,kaplan",
                                   "--backtest", "top-budgets:1"])
    assert status == 0, stderr
    assert calls[0]["laws"] == ["chinchilla", "kaplan"] and calls[0]["resamples"] == 20
    assert (out / "structural.csv").is_file() and (out / "backtest.csv").is_file()
    status, _, stderr = _run(["report", "synthetic", "--out", str(tmp_path / "bad"),
                              "--structural", "chinchilla,nope"])
    assert status == 2 and "nope" in stderr
    status, _, stderr = _run(["report", "synthetic", "--out", str(tmp_path / "bad"),
                              "--backtest", "top-budgets:0"])
    assert status == 2 and "holdout" in stderr


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
def test_real_stacking_in_the_report(fits, tmp_path):
    """Unpatched: the report's stacking equals stack_laws run here (Kaplan bootstrap refits:
    minutes)."""
    runs = fits["bayes"].runs
    out = tmp_path / "real"
    report.build_report(runs, out_dir=out, fits=fits, quiet=True, budgets=BUDGETS,
                        resamples=10, structural=("chinchilla", "kaplan"))
    stack = stacking.stack_laws(runs, ["chinchilla", "kaplan"], method="bootstrap", seed=0,
                                resamples=10)
    expected = stack.summary(BUDGETS, 0.9)
    csv = pd.read_csv(out / "structural.csv")
    for q in ("N_opt", "D_opt"):
        for stat in ("median", "lower", "upper"):
            np.testing.assert_allclose(csv[f"{q}_{stat}"], expected[f"{q}_{stat}"], rtol=1e-6)
    got = json.loads((out / "fit.json").read_text())["report"]["structural"]["weights"]
    assert got == pytest.approx(list(stack.weights), abs=1e-9) and sum(got) == pytest.approx(1)
    # the structural band moves each law's optimum by its optimum error, and the page says so
    assert stack.optimum_errors and stack.optimum_note
    assert stack.optimum_note in (out / "report.md").read_text()
