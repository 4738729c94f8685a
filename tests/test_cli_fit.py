"""Smoke tests of the ``bayescale`` command line: ``bayescale fit`` and ``--version``.

The Huber grid fit (4500 starts on the 240 Epoch runs) runs once per module, with
``--json`` and ``--out`` together, and every test below reads that one result.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.cli import main

# Epoch's grid fit on the 240 runs (scipy L-BFGS-B from the same 4500 starts), see
# issue 2 and ../shared/data/PROVENANCE-chinchilla_svg_extracted.md.
EPOCH_GRID = {"A": 477.8, "B": 2143.4, "E": 1.8172, "alpha": 0.3473, "beta": 0.3672}
EPOCH_OBJECTIVE = 0.00101827402
PARAMS = ("E", "A", "B", "alpha", "beta")


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    # The command line turns on JAX's persistent cache under the user's home; tests
    # must neither write there nor change the global JAX configuration.
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")


def _run_main(argv):
    """main(argv) with stdout and stderr captured: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def huber_cli(tmp_path_factory, chinchilla_240):
    """One `bayescale fit chinchilla --method huber --exclude-top 5 --json --out DIR`.

    Requesting ``chinchilla_240`` skips (outside CI) when the data file is missing.
    """
    out_dir = tmp_path_factory.mktemp("fit") / "chinchilla"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESCALE_NO_CACHE", "1")
        code, stdout, stderr = _run_main(
            ["fit", "chinchilla", "--method", "huber", "--exclude-top", "5", "--json",
             "--out", str(out_dir)])
    return {"code": code, "stdout": stdout, "stderr": stderr, "dir": out_dir}


# ---------------------------------------------------------------- fit --json / --out


def test_fit_json(huber_cli):
    assert huber_cli["code"] == 0, huber_cli["stderr"]
    payload = json.loads(huber_cli["stdout"])  # stdout is exactly one JSON object
    assert payload["method"] == "huber"
    assert payload["n_runs"] == 240
    assert set(payload["params"]) == set(PARAMS)
    assert all(isinstance(payload["params"][k], float) for k in PARAMS)
    assert payload["data"]["dropped_rows"] == [0, 1, 2, 3, 4]
    assert payload["data"]["dropped_by"] == ["exclude_top=5"]
    assert payload["timing"]["wall"] > 0
    # Not a bootstrap: no intervals.
    assert "intervals" not in payload


def test_fit_json_reproduces_epoch_grid_fit(huber_cli):
    payload = json.loads(huber_cli["stdout"])
    for k in PARAMS:
        assert payload["params"][k] == pytest.approx(EPOCH_GRID[k], rel=5e-3), k
    assert payload["objective"] <= EPOCH_OBJECTIVE + 1e-10


def test_fit_out_writes_the_fit_folder(huber_cli):
    folder = huber_cli["dir"]
    assert sorted(p.name for p in folder.iterdir()) == ["draws.csv", "fit.json", "runs.csv",
                                                        "summary.csv"]
    # fit.json is the JSON printed on stdout.
    assert json.loads((folder / "fit.json").read_text()) == json.loads(huber_cli["stdout"])
    summary = pd.read_csv(folder / "summary.csv", index_col=0)
    assert set(PARAMS) <= set(summary.index) and "estimate" in summary.columns
    draws = pd.read_csv(folder / "draws.csv")
    assert len(draws) == 1 and list(draws.columns[:5]) == list(PARAMS)
    runs = pd.read_csv(folder / "runs.csv", index_col=0)
    assert len(runs) == 240 and list(runs.columns) == ["N", "D", "C", "loss"]
    assert runs.index.min() == 5  # rows 0-4 were dropped
    # The paths written are reported on stderr, not stdout.
    assert "wrote" in huber_cli["stderr"] and "fit.json" in huber_cli["stderr"]


def test_load_fit_round_trips(huber_cli):
    from bayescale.io import load_fit

    payload = json.loads(huber_cli["stdout"])
    fit = load_fit(huber_cli["dir"])
    assert fit.method == "huber" and fit.is_point and len(fit.runs) == 240
    for k in PARAMS:
        value = getattr(fit.params, k)
        assert np.ndim(value) == 0
        assert float(value) == pytest.approx(payload["params"][k], rel=1e-14)
    assert fit.to_dict()["params"] == pytest.approx(payload["params"], rel=1e-14)
    assert fit.runs.source == "chinchilla"


def test_plain_text_output_formats_the_same_result(huber_cli):
    # The text report (no --json) of the saved fit: runs, dropped rows, the table.
    from bayescale.cli.fit import _format
    from bayescale.io import load_fit

    payload = json.loads(huber_cli["stdout"])
    text = _format(load_fit(huber_cli["dir"]), payload, 0.9)
    assert "method=huber" in text and "runs=240" in text
    assert "dropped 5 rows (exclude_top=5)" in text
    assert "alpha" in text and "objective = " in text


# ---------------------------------------------------------------- bad input -> exit 2


def _assert_clean_error(code: int, stdout: str, stderr: str, *fragments: str) -> None:
    assert code == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    message = stderr.strip()
    assert message.startswith("bayescale fit: error: ")
    assert "\n\n" not in message and len(message.splitlines()) == 1  # one paragraph
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file(capsys, tmp_path):
    code = main(["fit", str(tmp_path / "nope.csv"), "--method", "huber"])
    captured = capsys.readouterr()
    _assert_clean_error(code, captured.out, captured.err, "no such file", "nope.csv", "chinchilla")


def test_unknown_dataset(capsys):
    code = main(["fit", "chinchila", "--method", "huber"])
    captured = capsys.readouterr()
    _assert_clean_error(code, captured.out, captured.err, "unknown dataset 'chinchila'",
                        "registered datasets are: chinchilla")


def test_csv_with_nan_loss(capsys, tmp_path):
    path = tmp_path / "runs.csv"
    pd.DataFrame({"params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
                  "tokens": [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10],
                  "loss": [3.4, 3.1, np.nan, 2.7, 2.8, 2.5]}).to_csv(path, index=False)
    code = main(["fit", str(path), "--method", "huber"])
    captured = capsys.readouterr()
    # data row 2 is line 4 of the file (header = line 1); the fix is not Python
    _assert_clean_error(code, captured.out, captured.err, "column 'loss'", "NaN", "line 4",
                        "Fix:")
    assert "df" not in captured.err and path.read_text().splitlines()[4 - 1].endswith(",")


def test_unknown_column_name(capsys, chinchilla_245):
    code = main(["fit", "chinchilla", "--method", "huber", "--loss-column", "final_loss"])
    captured = capsys.readouterr()
    _assert_clean_error(code, captured.out, captured.err, "'final_loss'", "given for loss",
                        "'Model Size'", "Fix:")


def test_bad_query_and_level(capsys, chinchilla_245):
    code = main(["fit", "chinchilla", "--method", "huber", "--query", "tokens > 1"])
    captured = capsys.readouterr()
    _assert_clean_error(code, captured.out, captured.err, "query 'tokens > 1'")
    code = main(["fit", "chinchilla", "--method", "huber", "--level", "1.5"])
    captured = capsys.readouterr()
    _assert_clean_error(code, captured.out, captured.err, "--level must be between 0 and 1")


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "chinchilla", "--method", "least_squares"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "fit" in capsys.readouterr().out


# ---------------------------------------------------------------- --version, --help


def test_version_in_process(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bayescale {bayescale.__version__}"


def test_version_does_not_import_jax():
    script = ("import sys; from bayescale.cli import main; main(['--version']); "
              "assert 'jax' not in sys.modules, 'jax imported'; "
              "assert 'pandas' not in sys.modules, 'pandas imported'")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"bayescale {bayescale.__version__}"


def test_python_dash_m_version():
    proc = subprocess.run([sys.executable, "-m", "bayescale", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"bayescale {bayescale.__version__}"


def test_fit_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "bayescale fit chinchilla --method huber --exclude-top 5 --json" in out
    for flag in ("--method", "--exclude-top", "--resamples", "--seed", "--json", "--out"):
        assert flag in out


# ---------------------------------------------------------------- closed stdout


def test_broken_pipe_exits_quietly_in_process(capsys, monkeypatch):
    import bayescale.cli.fit as cli_fit

    def run(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_fit, "run", run)
    assert main(["fit", "anything"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("lines", [1, 20000])  # still buffered at return / written during run
def test_broken_pipe_exits_quietly_through_a_real_pipe(lines):
    # Like `bayescale fit ... | head -c 0`: the reader goes away before the output.
    script = (
        "import sys, bayescale.cli.fit as f\n"
        "def run(args):\n"
        f"    for _ in range({lines}):\n"
        "        print('x' * 99)\n"
        "    return 0\n"
        "f.run = run\n"
        "from bayescale.cli import main\n"
        "sys.exit(main(['fit', 'anything']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "BAYESCALE_NO_CACHE": "1"})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


# ---------------------------------------------------------------- interval level, diagnostics


@pytest.fixture(scope="module")
def bayes_cli(tmp_path_factory):
    """A short `bayescale fit synthetic --out DIR` (NUTS, 2 chains x 40 draws: unconverged)."""
    import warnings

    from bayescale.errors import ConvergenceWarning

    out_dir = tmp_path_factory.mktemp("fit") / "bayes"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setenv("BAYESCALE_NO_CACHE", "1")
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 draws: expected
        code, stdout, stderr = _run_main(
            ["fit", "synthetic", "--chains", "2", "--warmup", "40", "--draws", "40", "--quiet",
             "--out", str(out_dir)])
    assert code == 0, stderr
    return {"stdout": stdout, "dir": out_dir}


def test_fit_text_states_the_interval_level(bayes_cli):
    # The table's columns are "lower" and "upper": the level must be said in words.
    assert "90% central credible interval" in bayes_cli["stdout"]
    assert "lower" in bayes_cli["stdout"]


def test_fit_text_states_the_bootstrap_level():
    import warnings

    from bayescale.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 resamples: a few may fail
        code, stdout, stderr = _run_main(["fit", "synthetic", "--method", "bootstrap",
                                          "--resamples", "40"])
        assert code == 0, stderr
        assert "95% bootstrap percentile interval" in stdout
        code, stdout, stderr = _run_main(["fit", "synthetic", "--method", "bootstrap",
                                          "--resamples", "40", "--level", "0.8"])
        assert "80% bootstrap percentile interval" in stdout


def test_load_fit_keeps_the_bayesian_diagnostics(bayes_cli):
    from bayescale.io import load_fit

    folder = bayes_cli["dir"]
    fit = load_fit(folder)
    saved = json.loads((folder / "fit.json").read_text())
    assert fit.diagnostics is not None
    assert fit.diagnostics.to_dict() == saved["diagnostics"]
    # Per parameter: the table the original fit wrote equals the loaded fit's.
    written = pd.read_csv(folder / "summary.csv", index_col=0)
    loaded = fit.summary()
    for column in ("r_hat", "ess_bulk", "ess_tail"):
        np.testing.assert_allclose(loaded[column].to_numpy(float),
                                   written.loc[loaded.index, column].to_numpy(float),
                                   rtol=1e-12)
    # ... and it is ArviZ's ESS of the saved posterior (sigma too, which summary.csv lacks).
    import arviz as az

    ess = az.ess(fit.idata.posterior, method="bulk")
    assert fit.diagnostics.per_param.loc["sigma", "ess_bulk"] == pytest.approx(
        float(ess["sigma"]), rel=1e-12)
