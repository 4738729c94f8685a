"""``bayescale.report.build``: the report folder, its files, and atomic replacement."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _report_fits import small_fits

from bayescale.report import build as report
from bayescale.errors import BayescaleError
from bayescale.io import load_fit

EXPECTED = {"report.html", "report.md", "summary.csv", "frontier.csv", "decisions.csv",
            "methods.csv", "fit.json", "posterior.nc", "draws.csv", "runs.csv",
            "manifest.json"} | {f"figures/{n}.png" for n in report.FIGURES}


@pytest.fixture(scope="module")
def fits():
    return small_fits()


@pytest.fixture(scope="module")
def built(fits, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    paths = report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True)
    return out, paths


def _files(folder):
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_files_present(built):
    out, paths = built
    assert _files(out) == EXPECTED
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == EXPECTED - {"manifest.json"}  # written last, about the rest
    assert manifest["diagnostics_ok"] is False  # tiny settings


def test_html_is_self_contained_with_banner(built):
    out, _ = built
    text = (out / "report.html").read_text()
    assert text.count('src="data:image/png;base64,') == len(report.FIGURES)
    assert "http://" not in text and "https://" not in text.split("<body>")[0]
    assert 'class="banner warning"' in text and "diagnostics failed" in text
    for table in ("diagnostics", "priors", "methods", "frontier", "decisions"):
        assert f'id="table-{table}"' in text
    md = (out / "report.md").read_text()
    assert "WARNING" in md and "![" in md and "| quantity |" in md
    assert "student_t" in md and "HalfNormal" in md  # likelihood and priors stated
    assert "synthetic" in md  # provenance


def test_tables(built, fits):
    out, _ = built
    frontier = pd.read_csv(out / "frontier.csv", index_col=0)
    runs = fits["bayes"].runs
    assert frontier.index.min() <= runs.C.min() and frontier.index.max() >= 100 * runs.C.max()
    assert (frontier["extrapolation"].iloc[-1]) >= 2.0
    decisions = pd.read_csv(out / "decisions.csv")
    assert set(decisions["plan"]) == {"bayes_optimal", "plug_in", "tokens_20", "kaplan_2020"}
    assert len(decisions) == 4 * len(frontier)


def test_report_folder_is_a_fit_folder(built, fits):
    out, _ = built
    loaded = load_fit(out)
    np.testing.assert_allclose(loaded.params.E, fits["bayes"].params.E)
    assert loaded.idata is not None


def test_default_budgets_span_data_and_two_decades(fits):
    runs = fits["bayes"].runs
    C = report.default_budgets(runs)
    assert C[0] <= runs.C.min() and C[-1] >= 100 * runs.C.max()
    np.testing.assert_allclose(np.diff(np.log10(C)), 0.5)


def test_compare_methods(fits):
    table = report.compare_methods(fits=fits, reference_budget=5.76e23)
    assert list(table.index) == ["E", "A", "B", "alpha", "beta", "a_opt", "b_opt", "N_opt",
                                 "D_opt", "tokens_per_param"]
    for m in ("bayes", "bootstrap"):
        assert (table[f"{m}_lower"] <= table[m]).all() and (table[m] <= table[f"{m}_upper"]).all()
    assert table["huber_lower"].isna().all()
    # published columns: Hoffmann's unrounded coefficients give 40.4B at Gopher's budget
    assert table.at["N_opt", "hoffmann_2022_unrounded"] == pytest.approx(40.4e9, rel=2e-3)
    assert table.at["N_opt", "besiroglu_2024"] == pytest.approx(72.2e9, rel=2e-3)
    payload = report.compare_methods_json(table)
    json.dumps(payload)
    assert set(payload["methods"]) == {"bayes", "bootstrap", "huber"}
    assert payload["methods"]["huber"]["E"]["lower"] is None


def test_interrupted_run_keeps_previous_report(built, fits, monkeypatch):
    out, _ = built
    before = {p: (out / p).read_bytes() for p in ("report.html", "manifest.json", "fit.json")}

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted while writing")

    monkeypatch.setattr(report, "_render_html", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                            budgets=[1e20, 1e22])
    assert {p: (out / p).read_bytes() for p in before} == before
    assert _files(out) == EXPECTED
    # no half-written folder left beside it, hidden or not
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_rerun_replaces_whole_folder(fits, tmp_path):
    out = tmp_path / "rep"
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                        budgets=[1e20, 1e22])
    (out / "stale.txt").write_text("from an old run")
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                        budgets=[1e21])
    assert not (out / "stale.txt").exists()
    assert len(pd.read_csv(out / "frontier.csv")) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_refuses_to_replace_foreign_folder(fits, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BayescaleError, match="not a bayescale report"):
        report.build_report(fits["bayes"].runs, out_dir=tmp_path, fits=fits, quiet=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
