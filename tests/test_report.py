"""``bayescale.report.build``: the report folder, its files, and atomic replacement."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from _report_fits import small_fits

from bayescale.report import build as report
from bayescale.errors import BayescaleError
from bayescale.io import load_fit

EXPECTED = {"report.html", "report.md", "summary.csv", "frontier.csv", "decisions.csv",
            "methods.csv", "approaches.csv", "fit.json", "posterior.nc", "draws.csv", "runs.csv",
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


def test_approaches_table_is_the_fits(built, fits):
    out, _ = built
    table = pd.read_csv(out / "approaches.csv", index_col=0)
    # Approach 3 is the report's bootstrap: its a is the median of a_opt = beta / (alpha +
    # beta) over the resamples
    boot = fits["bootstrap"].params
    a = np.asarray(boot.beta) / (np.asarray(boot.alpha) + np.asarray(boot.beta))
    assert table.loc[3, "a"] == pytest.approx(float(np.median(a)), rel=1e-9)
    assert table.loc[3, "method"] == "bootstrap"
    for k in table.index:
        assert table.loc[k, "a_lower"] <= table.loc[k, "a"] <= table.loc[k, "a_upper"]


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

    monkeypatch.setattr(report, "render_html", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                            budgets=[1e20, 1e22])
    assert {p: (out / p).read_bytes() for p in before} == before
    assert _files(out) == EXPECTED
    # no half-written folder left beside it, hidden or not
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_rerun_replaces_what_bayescale_wrote_and_keeps_user_files(fits, tmp_path):
    out = tmp_path / "rep"
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                        budgets=[1e20, 1e22])
    # a file an older run wrote (listed in its manifest) that this run does not write
    (out / "figures" / "old.png").write_bytes(b"stale")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"].append("figures/old.png")
    (out / "manifest.json").write_text(json.dumps(manifest))
    # the user's files: the old code deleted them with the folder
    (out / "MY_NOTES.md").write_text("my notes")
    (out / "extra").mkdir()
    (out / "extra" / "keep.txt").write_text("keep me")
    (out / "figures" / "mine.png").write_bytes(b"my figure")
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                        budgets=[1e21])
    assert not (out / "figures" / "old.png").exists()
    assert (out / "MY_NOTES.md").read_text() == "my notes"
    assert (out / "extra" / "keep.txt").read_text() == "keep me"
    assert (out / "figures" / "mine.png").read_bytes() == b"my figure"
    assert len(pd.read_csv(out / "frontier.csv")) == 1
    assert _files(out) == EXPECTED | {"MY_NOTES.md", "extra/keep.txt", "figures/mine.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_user_file_in_the_way_is_refused(fits, tmp_path):
    out = tmp_path / "rep"
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                        budgets=[1e21])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"].remove("decisions.csv")  # as if an older report had not written it
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "decisions.csv").write_text("the user's own table")
    before = {p: (out / p).read_bytes() for p in _files(out)}
    with pytest.raises(BayescaleError, match="decisions.csv"):
        report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True,
                            budgets=[1e22])
    assert {p: (out / p).read_bytes() for p in _files(out)} == before


def test_refuses_to_replace_foreign_folder(fits, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BayescaleError, match="not a bayescale report"):
        report.build_report(fits["bayes"].runs, out_dir=tmp_path, fits=fits, quiet=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_html_answer_first_with_contents_and_human_numbers(built):
    out, _ = built
    text = (out / "report.html").read_text()
    body = text.split("<body>")[1]
    # the answer (decisions, frontier) before the fit, the fit before the diagnostics
    order = [body.index(f'id="{k}"') for k in ("table-decisions", "fig-frontier",
                                                "table-methods", "table-diagnostics")]
    assert order == sorted(order)
    toc = body[body.index('<nav class="toc"'):body.index("</nav>")]
    for anchor in ("answer", "frontier", "fit", "diagnostics", "data", "model"):
        assert f'href="#{anchor}"' in toc and f'<h2 id="{anchor}"' in body
    tables = body[body.index('id="table-decisions"'):]
    # Python's float format ('7.09e+10', '5.9e-05': a sign '+' or a zero-padded exponent);
    # the human format writes tiny numbers as '5.9e-10', which is fine
    assert not re.search(r"\d\.\d+e(\+\d\d|-0\d)", tables), "numbers in 7.09e+10 style"
    assert re.search(r"\d(\.\d+)?[MBT] \[\d", body)  # e.g. 71.3B [60.1B, 84.2B]
    md = (out / "report.md").read_text()
    assert md.index("## Answer") < md.index("## The fit") < md.index("## Diagnostics")


def test_chinchilla_prose_only_for_the_chinchilla_data(built, fits, tmp_path):
    import dataclasses

    out, _ = built
    text = (out / "report.html").read_text()  # synthetic data
    # (the Data section cites the synthetic dataset's own source, which may name them,
    # and the header cites the law fitted, Hoffmann et al.'s: citations, not the story)
    text = text[:text.index('<h2 id="data"')] + text[text.index('<h2 id="model"'):]
    assert 'id="law">Law: chinchilla' in text and "arXiv:2203.15556" in text
    text = re.sub(r'<p id="law">.*?</p>', "", text)
    for word in ("Hoffmann", "Epoch", "Chinchilla itself", "hoffmann_2022", "besiroglu_2024"):
        assert word not in text, word
    runs = dataclasses.replace(fits["bayes"].runs, source="chinchilla")
    chin = {m: dataclasses.replace(f, runs=runs) for m, f in fits.items()}
    report.build_report(runs, out_dir=tmp_path / "c", fits=chin, quiet=True, budgets=[1e21])
    text = (tmp_path / "c" / "report.html").read_text()
    assert "Chinchilla itself" in text and "besiroglu_2024" in text
    methods = pd.read_csv(tmp_path / "c" / "methods.csv", index_col=0)
    # the published rows come from the law and the frontier: Hoffmann's unrounded fit
    # gives 40.4B at Gopher's budget, Epoch's 72.2B (the published numbers)
    assert methods.at["N_opt", "hoffmann_2022_unrounded"] == pytest.approx(40.4e9, rel=2e-3)
    assert methods.at["N_opt", "besiroglu_2024"] == pytest.approx(72.2e9, rel=2e-3)


def test_human_numbers():
    from bayescale.report._format import human, interval

    assert human(7.09e10) == "70.9B" and human(1.33e12) == "1.33T"
    assert interval(71e9, 60e9, 84e9) == "71B [60B, 84B]"
    assert interval(19.2, 13.4, 27.1, 2) == "19 [13, 27]"
    assert human(5.76e23) == "5.76e23" and human(0.33921) == "0.339"
    assert human(999.96) == "1k" and human(float("nan")) == ""
