"""The grouped report (``bayescale report DATA --group ... [--pool]``,
:func:`bayescale.report.group_report.build_group_report`) and the line saying which N the
answer is in (issue 9).

The oracles are the library's own fits computed here, independently of the report: each
group's fit on that group's own runs (``load_runs(NAME, group=VALUE)``), and a pooled
:class:`GroupFits` fitted here with the same settings for the shrinkage and PSIS-LOO.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import io
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale import fit, load_runs
from bayescale.cli import main
from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.estimators.group_fits import GroupFits
from bayescale.report import group_report
from bayescale.report._format import human, interval
from bayescale.report.render import n_convention_line
from cli_examples import SHRINK, shrunk

GROUPS = ("C4", "RedPajama", "RefinedWeb")
# The NUTS sizes of the slow test's command (the report --help example, shrunk as
# tests/cli_examples.py shrinks every example; the fits fail the diagnostics gate, which is
# fine: the report must say so)
NUTS = {k.lstrip("-"): int(v) for k, v in SHRINK.items() if k != "--resamples"}


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _files(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _html_table(page: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of one HTML table of the page (cells unescaped)."""
    table = page[page.index(f'id="table-{table_id}"'):]
    table = table[:table.index("</table>")]
    thead, tbody = table.split("<tbody>")
    head = [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", thead, flags=re.S)]
    rows = [[html.unescape(c.strip()) for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", tbody, flags=re.S)]
    return head, rows


def _quiet_fit(runs, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # small settings: expected
        return fit(runs, **kwargs)


# ------------------------------------------------------------------ which N the answer is in


def test_n_convention_line_says_which_n_and_where_it_came_from():
    runs = load_runs("gadre2024", group="all")
    assert runs.n_convention == "total"
    line = n_convention_line(runs)
    assert line.startswith("N counts total parameters") and "dataset's convention" in line
    stated = load_runs("gadre2024", group="all", n_convention="non_embedding")
    line = n_convention_line(stated)
    assert line.startswith("N counts non-embedding parameters (as stated by n_convention")
    line = n_convention_line(dataclasses.replace(runs, source="DataFrame"))
    assert line.startswith("N counts total parameters") and "as recorded" in line
    for convention in (None, "not stated"):
        line = n_convention_line(dataclasses.replace(runs, n_convention=convention))
        assert "not stated" in line and "Pearce & Song 2024" in line
        assert "arXiv:2406.12907" in line and "exponents" in line


def test_single_report_page_states_the_n_convention(monkeypatch):
    # The single-fit report's header, rendered from its context (the sections, which need
    # the fits, are left out here; tests/test_report.py renders whole reports).
    from bayescale.report import render

    monkeypatch.setattr(render, "sections", lambda ctx: [])
    runs = load_runs(load_runs("synthetic").to_frame())  # a table that states no convention
    ctx = {"provenance": runs.describe(), "created": "today", "settings": {"version": "0"},
           "law": "chinchilla", "runs": runs, "problems": []}
    assert runs.n_convention is None
    page, md = render.render_html(ctx, {}, {}), render.render_markdown(ctx, {}, {})
    assert f'<p id="n-convention">{html.escape(n_convention_line(runs))}</p>' in page
    assert "N convention: not stated" in md and "arXiv:2406.12907" in md
    # near the top: after the law, before the banner
    assert page.index('id="law"') < page.index('id="n-convention"') < page.index(
        'id="diagnostics-banner"')
    assert md.index("Law: chinchilla") < md.index("N convention") < md.index("Diagnostics")
    ctx["runs"] = load_runs("gadre2024", group="C4")
    md = render.render_markdown(ctx, {}, {})
    assert "N counts total parameters, embeddings included (the dataset's convention)" in md


def _drawn_groups(runs) -> GroupFits:
    """Fits of each group made up without fitting (64 draws around Hoffmann et al.'s law,
    each group its own exponent), so that the page can be checked in the fast suite."""
    from bayescale.estimators.fit import ScalingFit
    from bayescale.estimators.groups import split_groups
    from bayescale.laws.chinchilla import LawParams

    rng = np.random.default_rng(0)
    fits = {}
    for k, (g, sub) in enumerate(split_groups(runs).items()):
        noise = 0.02 * rng.standard_normal((5, 64))
        params = LawParams(E=1.7 + 0.05 * k + noise[0], A=406.4 * np.exp(noise[1]),
                           B=410.7 * np.exp(noise[2]), alpha=0.30 + 0.02 * k + noise[3] / 2,
                           beta=0.28 + noise[4] / 2)
        fits[g] = ScalingFit(method="bootstrap", params=params, runs=sub, level=0.9)
    return GroupFits(fits=fits, method="bootstrap", level=0.9,
                     reference_budget=100.0 * float(runs.C.max()))


@pytest.fixture(scope="module")
def drawn_report(tmp_path_factory):
    """The grouped report of gadre2024 from :func:`_drawn_groups` (no fitting)."""
    out = tmp_path_factory.mktemp("groups") / "report"
    runs = load_runs("gadre2024", group="all")
    result = _drawn_groups(runs)
    paths = group_report.build_group_report(runs, out_dir=out, result=result, quiet=True)
    return runs, result, out, paths


def _check_groups_table(page: str, oracle: pd.DataFrame) -> None:
    """The page's table of groups shows ``oracle`` (GroupFits.table), formatted for people."""
    head, rows = _html_table(page, "groups")
    assert head[:3] == ["group", "n_runs", "alpha"] and "N_opt" in head and "D_opt" in head
    assert [r[0] for r in rows] == list(oracle.index)
    for g, row in zip(oracle.index, rows):
        cells = dict(zip(head, row))
        assert cells["n_runs"] == str(oracle.at[g, "n_runs"])
        for col in ("alpha", "beta", "a_opt", "b_opt", "E", "N_opt"):
            want = human(oracle.at[g, col])
            if f"{col}_lower" in oracle.columns:
                want = interval(oracle.at[g, col], oracle.at[g, f"{col}_lower"],
                                oracle.at[g, f"{col}_upper"])
            assert cells[col] == want, (g, col)


def test_grouped_report_shows_the_groups_table(drawn_report):
    runs, result, out, paths = drawn_report
    oracle = result.table()
    written = pd.read_csv(paths["groups"], index_col=0)
    assert list(written.index) == list(GROUPS)
    for col in oracle.columns:
        np.testing.assert_allclose(written[col], oracle[col], rtol=1e-9, err_msg=col)
    C = result.reference_budget
    for g in GROUPS:  # D_opt beside N_opt: the frontier's tokens at the same budget
        D = np.asarray(result.fits[g].frontier([C]).D_opt, dtype=float).reshape(-1)
        assert written.at[g, "D_opt"] == pytest.approx(float(np.median(D)), rel=1e-6)
        assert written.at[g, "D_opt_lower"] < written.at[g, "D_opt"] < written.at[
            g, "D_opt_upper"]
    page = paths["html"].read_text()
    _check_groups_table(page, oracle)
    assert f"C = {human(C)} FLOPs" in page
    md = paths["markdown"].read_text()
    assert md.index("## Answer") < md.index("## Diagnostics") < md.index("## Data")
    assert "![" in md and "figures/groups.png" in md


def test_grouped_report_files_and_page(drawn_report):
    runs, result, out, paths = drawn_report
    expected = {"report.html", "report.md", "figures/groups.png", "groups.csv", "groups.json",
                "manifest.json"}
    assert _files(out) == expected
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 1  # self-contained
    assert "https://" not in page.split("<body>")[0]
    line = n_convention_line(runs)
    assert line.startswith("N counts total parameters") and line in html.unescape(page)
    assert page.index('id="n-convention"') < page.index('<h2 id="answer"')
    assert line in paths["markdown"].read_text()
    assert 'id="pooling"' not in page and not (out / "shrinkage.csv").exists()
    assert "no sampler diagnostics" in page
    assert "bayescale report gadre2024 --select group=VALUE" in page
    payload = json.loads(paths["groups_json"].read_text())
    assert set(payload["groups"]) == set(GROUPS) and payload["method"] == "bootstrap"


def test_grouped_report_manifest_last_and_atomic(drawn_report, monkeypatch):
    runs, result, out, paths = drawn_report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "groups" and manifest["settings"]["groups"] == list(GROUPS)
    assert set(manifest["files"]) == _files(out) - {"manifest.json"}
    written = {f: (out / f).stat().st_mtime_ns for f in _files(out)}
    assert written["manifest.json"] == max(written.values())  # written last
    # an interrupted re-run leaves the previous report as it was, and nothing beside it
    before = {f: (out / f).read_bytes() for f in _files(out)}

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted while writing")

    monkeypatch.setattr(group_report, "page_html", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        group_report.build_group_report(runs, out_dir=out, result=result, quiet=True)
    assert {f: (out / f).read_bytes() for f in _files(out)} == before
    assert [p.name for p in out.parent.iterdir()] == [out.name]


@pytest.mark.slow
def test_grouped_report_table_is_each_groups_own_fit(tmp_path):
    # the report fits the groups (Huber: no sampling); the oracle is each group fitted on its
    # own runs, loaded as one group
    runs = load_runs("gadre2024", group="all")
    paths = group_report.build_group_report(runs, out_dir=tmp_path / "r", method="huber",
                                            quiet=True)
    C = 100.0 * float(runs.C.max())
    own = {g: _quiet_fit(load_runs("gadre2024", group=g), method="huber") for g in GROUPS}
    oracle = GroupFits(fits=own, method="huber", level=0.9, reference_budget=C).table()
    written = pd.read_csv(paths["groups"], index_col=0)
    for col in oracle.columns:
        np.testing.assert_allclose(written[col], oracle[col], rtol=1e-5, err_msg=col)
    for g in GROUPS:
        D = np.asarray(own[g].frontier([C]).D_opt, dtype=float).reshape(-1)[0]
        assert written.at[g, "D_opt"] == pytest.approx(float(D), rel=1e-5)
    _check_groups_table(paths["html"].read_text(), written)


def test_loo_sentence_says_which_and_how_strongly():
    loo = {"difference": 1.5, "difference_se": 0.8, "pareto_k_max_pooled": 0.5,
           "pareto_k_max_separate": 0.4}
    text = group_report.loo_sentence(loo)
    assert text.startswith("PSIS-LOO cannot tell the two apart") and "+1.5, se 0.8" in text
    assert "the pooled model is at most slightly better" in text and "Pareto" not in text
    loo.update(difference=-9.0, difference_se=1.0, pareto_k_max_pooled=0.9)
    text = group_report.loo_sentence(loo)
    assert "strongly prefers the groups fitted on their own" in text and "-9.0" in text
    assert "Pareto k" in text
    loo.update(difference=6.0, difference_se=2.0, pareto_k_max_pooled=0.1)
    assert "clearly prefers the pooled model" in group_report.loo_sentence(loo)
    loo.update(difference=5.0, difference_se=4.0)
    assert "weakly prefers the pooled model" in group_report.loo_sentence(loo)
    loo.update(difference=3.0, difference_se=0.1)  # many se, but below 4 nats: small
    assert "cannot tell the two apart" in group_report.loo_sentence(loo)


# ------------------------------------------------------------------ command line: errors


@pytest.fixture
def corpus_csv(tmp_path):
    frame = load_runs("synthetic").to_frame()
    frame["corpus"] = np.where(np.arange(len(frame)) % 2 == 0, "web", "code")
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("argv, message", [
    (["{csv}", "--group", "nosuch"], "no group column 'nosuch'"),
    (["gadre2024", "--group", "corpus"], "use --group all"),
    (["{csv}", "--group", "all"], "--group COLUMN"),
    (["synthetic", "--pool"], "give --group"),
    (["gadre2024", "--group", "all", "--pool-coefficients"], "goes with --pool"),
    (["gadre2024", "--group", "all", "--budget", "1e22"], "--budget"),
    (["gadre2024", "--group", "all", "--select", "group=C4"], "--select"),
    (["gadre2024"], "--group all"),  # a multi-group dataset without --group
])
def test_bad_group_options_exit_2_with_a_message(argv, message, corpus_csv, tmp_path):
    out = tmp_path / "rep"
    argv = [a.replace("{csv}", str(corpus_csv)) for a in argv]
    status, stdout, stderr = _run(["report", *argv, "--out", str(out), "--quiet"])
    assert status == 2, stderr
    assert message in stderr and "Traceback" not in stderr
    assert stderr.startswith("bayescale report: error:")
    assert not out.exists()


def test_group_help_documents_the_grouped_report(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "bayescale report gadre2024 --group all --pool" in text
    assert "--pool-coefficients" in text and "--select group=VALUE" in text


def test_python_api_refuses_runs_without_groups(tmp_path):
    with pytest.raises(BayescaleError, match="no group labels"):
        group_report.build_group_report(load_runs("synthetic"), out_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ NUTS and pooling (slow)


@pytest.mark.slow
def test_pooled_grouped_report_from_the_command_line(tmp_path, monkeypatch):
    # The pooled model is sampled once (by the command); the GroupFits it returns is kept,
    # and the page must show what its table, shrinkage() and loo_comparison() say. Its
    # separate fits must be each group's own fit (checked for C4, whose program is compiled).
    from bayescale.estimators import groups

    kept = []
    real = groups.fit_groups

    def keep(*args, **kwargs):
        kept.append(real(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(groups, "fit_groups", keep)
    # the report --help example as typed, smaller samples (test_cli_options.py leaves this
    # example to this test), written to this test's folder
    out = tmp_path / "rep"
    argv = shrunk("bayescale report gadre2024 --group all --pool --out reports/gadre2024")
    argv[argv.index("--out") + 1] = str(out)
    status, stdout, stderr = _run([*argv, "--json"])
    assert status == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    payload = json.loads(stdout)
    assert set(payload) == {"out", "diagnostics_ok", "files"}
    assert {"html", "markdown", "groups", "shrinkage", "loo", "manifest"} <= set(
        payload["files"])
    assert _files(out) == {"report.html", "report.md", "figures/groups.png", "groups.csv",
                           "groups.json", "shrinkage.csv", "loo.csv", "manifest.json"}
    (result,) = kept
    assert result.pooled and list(result.fits) == list(GROUPS)
    page = (out / "report.html").read_text()
    text = html.unescape(page)
    assert text.index('id="answer"') < text.index('id="pooling"') < text.index(
        'id="diagnostics"')
    # the answer: the pooled model's table
    table = result.table()
    written = pd.read_csv(out / "groups.csv", index_col=0)
    for col in table.columns:
        np.testing.assert_allclose(written[col], table[col], rtol=1e-9, err_msg=col)
    _check_groups_table(page, table)
    # each group with and without pooling
    shrink = result.shrinkage()
    got = pd.read_csv(out / "shrinkage.csv", index_col=[0, 1])
    np.testing.assert_allclose(got[shrink.columns].to_numpy(), shrink.to_numpy(), rtol=1e-9)
    head, rows = _html_table(page, "shrinkage")
    assert head == ["group", "parameter", "separate", "pooled", "width ratio"]
    assert rows == [[g, p, interval(r["separate"], r["separate_lower"], r["separate_upper"]),
                     interval(r["pooled"], r["pooled_lower"], r["pooled_upper"]),
                     f"{r['width_ratio']:.2f}"] for (g, p), r in shrink.iterrows()]
    # PSIS-LOO, pooled against separate, and the sentence saying which is preferred
    loo = result.loo_comparison()
    loo_csv = pd.read_csv(out / "loo.csv", index_col=0)
    assert loo_csv.at["pooled - separate", "elpd_loo"] == pytest.approx(loo["difference"])
    assert loo_csv.at["pooled - separate", "se"] == pytest.approx(loo["difference_se"])
    assert loo_csv.at["pooled", "elpd_loo"] == pytest.approx(loo["elpd_pooled"])
    assert group_report.loo_sentence(loo) in text
    assert f"{loo['difference']:+.1f}, se {loo['difference_se']:.1f}" in text
    assert re.search(r"PSIS-LOO (cannot tell|(weakly|clearly|strongly) prefers)", text)
    # the diagnostics of every model
    _, rows = _html_table(page, "diagnostics")
    assert [r[0] for r in rows] == ["pooled model"] + [f"{g} (on its own)" for g in GROUPS]
    manifest = json.loads((out / "manifest.json").read_text())
    assert payload["diagnostics_ok"] is manifest["diagnostics_ok"]
    assert ('class="banner warning"' in page) is not manifest["diagnostics_ok"]
    # the separate fits are the library's fit of each group's own runs
    own = _quiet_fit(load_runs("gadre2024", group="C4"), method="bayes", seed=0,
                     progress=False, **NUTS)
    np.testing.assert_array_equal(np.asarray(own.params.alpha),
                                  np.asarray(result.separate["C4"].params.alpha))
    assert shrink.at[("C4", "alpha"), "separate"] == pytest.approx(
        float(np.median(own.params.alpha)), rel=1e-9)
