"""``bayescale report``, ``compare`` and ``datasets`` through :func:`bayescale.cli.main`.

The fits are the session's small ones (``fit_methods`` is swapped for them) so the
tests check the command line, not NUTS; one slow test runs the whole thing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
from _report_fits import small_fits

from bayescale.report import build as report
from bayescale.report import compare
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

    monkeypatch.setattr(report, "fit_methods", fake_fit_methods)  # report
    monkeypatch.setattr(compare, "fit_methods", fake_fit_methods)  # compare
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


CHILD = """
import pickle, sys, time
from bayescale.cli import main
from bayescale.report import build

fits_path, out, mode = sys.argv[1:4]
with open(fits_path, "rb") as fh:
    fits = pickle.load(fh)


def fake_fit_methods(runs, **kwargs):
    print("fitting", file=sys.stderr, flush=True)
    t0 = time.time()
    while mode == "swallowed" and time.time() - t0 < 60:  # "figures": interrupted later
        try:
            time.sleep(0.01)
        except KeyboardInterrupt:
            if mode != "swallowed":
                raise
            # a callback that prints and drops the exception, as JAX's GC hook did
            print("Exception ignored ... KeyboardInterrupt", file=sys.stderr, flush=True)
            break
    return fits


def slow_figures(*args):
    print("figures", file=sys.stderr, flush=True)
    time.sleep(60)
    raise AssertionError("not interrupted")


build.fit_methods = fake_fit_methods
if mode == "figures":
    build.draw_figures = slow_figures
sys.exit(main(["report", "synthetic", "--out", out, "--budget", "1e21", "--quiet"]))
"""


def test_ctrl_c_exits_130_and_keeps_the_previous_report(tmp_path):
    # Ctrl-C was swallowed in 2 of 16 trials: the run went on, exited 0 and replaced the
    # previous report. Interrupt the command at several moments, including inside a
    # callback that drops the KeyboardInterrupt.
    import pickle
    import shutil
    import signal
    import subprocess
    import sys

    fits_path = tmp_path / "fits.pkl"
    fits_path.write_bytes(pickle.dumps(small_fits()))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    previous = tmp_path / "previous"  # a report folder as a previous run left it
    previous.mkdir()
    (previous / "report.html").write_text("the previous report")
    (previous / "manifest.json").write_text('{"files": ["report.html"]}')
    (previous / "MY_NOTES.md").write_text("the user's")
    snapshot = {p.relative_to(previous): p.read_bytes()
                for p in previous.rglob("*") if p.is_file()}
    for mode, wait_for in (("swallowed", "fitting"), ("figures", "figures")):
        out = tmp_path / mode
        shutil.copytree(previous, out)
        child = subprocess.Popen([sys.executable, str(script), str(fits_path), str(out), mode],
                                 stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "BAYESCALE_NO_CACHE": "1"})
        lines = []
        for line in child.stderr:
            lines.append(line)
            if line.strip() == wait_for:
                break
        child.send_signal(signal.SIGINT)
        _, rest = child.communicate(timeout=120)
        assert child.returncode == 130, (mode, "".join(lines) + rest)
        assert "interrupted" in rest
        assert {p.relative_to(out): p.read_bytes()
                for p in out.rglob("*") if p.is_file()} == snapshot, mode
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{mode}.")]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
def test_report_end_to_end(tmp_path):
    out = tmp_path / "rep"
    status, stdout, stderr = _run(["report", "synthetic", "--out", str(out), "--chains", "2",
                                   "--warmup", "300", "--draws", "300", "--resamples", "200"])
    assert status == 0, stderr
    assert (out / "manifest.json").is_file()
