"""``bayescale report``, ``compare`` and ``datasets`` through :func:`bayescale.cli.main`.

The fits are the session's small ones (``fit_methods`` is swapped for them) so the
tests check the command line, not NUTS; one slow test runs the whole thing.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from _report_fits import small_fits

from bayescale.report import build as report
from bayescale.cli import main


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")


@pytest.fixture
def cached_fits(monkeypatch):
    fits = small_fits()
    calls = []

    def fake_fit_methods(runs, **kwargs):
        calls.append(kwargs)
        return fits

    monkeypatch.setattr(report, "fit_methods", fake_fit_methods)
    return calls


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", ["report", "compare", "datasets"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"bayescale {command}" in text


def test_report_command(cached_fits, tmp_path):
    out = tmp_path / "rep"
    status, stdout, stderr = _run(["report", "synthetic", "--out", str(out), "--budget", "1e21",
                                   "--budget", "1e23", "--chains", "2", "--warmup", "50",
                                   "--draws", "50", "--resamples", "20", "--quiet"])
    assert status == 0, stderr
    assert "report.html" in stdout and "FAILED" in stdout  # tiny fits fail diagnostics
    assert stderr == ""  # --quiet
    assert (out / "report.html").is_file() and (out / "figures" / "pair.png").is_file()
    assert cached_fits[0]["bayes_options"]["chains"] == 2
    assert cached_fits[0]["resamples"] == 20
    frontier = (out / "frontier.csv").read_text().splitlines()
    assert len(frontier) == 3  # header + the two budgets


def test_report_json(cached_fits, tmp_path):
    status, stdout, _ = _run(["report", "synthetic", "--out", str(tmp_path / "r"), "--json"])
    assert status == 0
    payload = json.loads(stdout)
    assert payload["diagnostics_ok"] is False
    assert set(payload["files"]) >= {"html", "markdown", "json", "posterior", "frontier"}


def test_report_bad_input_exits_2(cached_fits, tmp_path):
    (tmp_path / "keep.txt").write_text("user file")
    status, _, stderr = _run(["report", "synthetic", "--out", str(tmp_path)])
    assert status == 2 and "not a bayescale report" in stderr
    status, _, stderr = _run(["report", "synthetic", "--level", "2", "--out",
                              str(tmp_path / "x")])
    assert status == 2 and "--level" in stderr
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        main(["report", "synthetic", "--budget", "-5"])
    assert exc.value.code == 2
    status, _, stderr = _run(["report", "no_such_dataset"])
    assert status == 2 and "synthetic" in stderr


def test_compare_command(cached_fits):
    status, stdout, _ = _run(["compare", "synthetic", "--quiet"])
    assert status == 0
    for word in ("bayes", "bootstrap", "huber", "a_opt", "tokens_per_param", "hoffmann_2022"):
        assert word in stdout
    status, stdout, _ = _run(["compare", "synthetic", "--json", "--reference-budget", "1e22"])
    payload = json.loads(stdout)
    assert payload["reference_budget"] == 1e22
    assert set(payload["methods"]) == {"bayes", "bootstrap", "huber"}
    bayes = payload["methods"]["bayes"]["alpha"]
    assert bayes["lower"] <= bayes["estimate"] <= bayes["upper"]
    assert payload["diagnostics"]["ok"] is False


def test_datasets_command():
    status, stdout, _ = _run(["datasets"])
    assert status == 0 and "chinchilla" in stdout and "synthetic" in stdout
    status, stdout, _ = _run(["datasets", "--json"])
    entries = {e["name"]: e for e in json.loads(stdout)["datasets"]}
    assert entries["chinchilla"]["num_runs"] == 245
    assert entries["synthetic"]["available"] is True
    assert "Besiroglu" in entries["chinchilla"]["citation"]


def test_datasets_reports_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status, stdout, _ = _run(["datasets", "--json"])
    entries = {e["name"]: e for e in json.loads(stdout)["datasets"]}
    assert entries["chinchilla"]["available"] is False
    status, stdout, _ = _run(["datasets"])
    assert "BAYESCALE_DATA" in stdout


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
def test_report_end_to_end(tmp_path):
    out = tmp_path / "rep"
    status, stdout, stderr = _run(["report", "synthetic", "--out", str(out), "--chains", "2",
                                   "--warmup", "300", "--draws", "300", "--resamples", "200"])
    assert status == 0, stderr
    assert (out / "manifest.json").is_file()
