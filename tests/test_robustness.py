"""Edge cases found in review: fit folders, strict JSON, options, convergence reports."""

from __future__ import annotations

import json
import os
import stat

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayescale import errors
from bayescale.cli import main
from bayescale.estimators.fit import fit
from bayescale.io import dumps_json, load_fit, save_fit
from bayescale._solvers.lbfgs import minimize_batch
from bayescale.data.simulate import simulate_runs


@pytest.fixture(scope="module")
def runs():
    return simulate_runs(seed=3)


@pytest.fixture(scope="module")
def huber(runs):
    return fit(runs, method="huber")


@pytest.fixture(scope="module")
def boot(runs):
    return fit(runs, method="bootstrap", resamples=50, seed=0)


def test_resaving_replaces_the_whole_folder(tmp_path, huber, boot):
    out = tmp_path / "fit"
    (out / "posterior.nc").parent.mkdir()
    save_fit(boot, out)
    # Pretend a Bayesian fit was there before: its posterior must not survive.
    (out / "posterior.nc").write_bytes(b"stale")
    save_fit(huber, out)
    assert not (out / "posterior.nc").exists()
    loaded = load_fit(out)
    assert loaded.method == "huber" and loaded.is_point and loaded.idata is None
    assert [p.name for p in tmp_path.iterdir()] == ["fit"]  # no temporary folders left


def test_interrupted_save_leaves_previous_folder(tmp_path, huber, boot, monkeypatch):
    out = tmp_path / "fit"
    save_fit(boot, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(huber.runs), "to_frame", broken)
    with pytest.raises(KeyboardInterrupt):
        save_fit(huber, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit"]
    assert load_fit(out).method == "bootstrap"


def test_refuses_to_replace_a_folder_that_is_not_a_fit(tmp_path, huber):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(errors.DataError, match="refusing to replace"):
        save_fit(huber, out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_saved_files_are_not_private(tmp_path, huber):
    out = tmp_path / "fit"
    save_fit(huber, out)
    mask = os.umask(0o022)
    os.umask(mask)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def test_corrupt_fit_folder_is_a_data_error(tmp_path, huber):
    out = tmp_path / "fit"
    save_fit(huber, out)
    (out / "fit.json").write_text("{not json")
    with pytest.raises(errors.DataError, match="unreadable"):
        load_fit(out)
    assert main(["frontier", str(out), "--budget", "1e23"]) == 2


def test_json_is_strict():
    text = dumps_json({"a": float("inf"), "b": [float("nan"), 1.0], "c": {"d": -float("inf")}})
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": {"d": None}}
    assert "Infinity" not in text and "NaN" not in text


def test_unknown_options_and_bad_seed_are_clear_errors(runs):
    with pytest.raises(errors.BayescaleError, match="no option 'tol'.*max_iter"):
        fit(runs, method="huber", tol=1e-8)
    with pytest.raises(errors.BayescaleError, match="no option 'resample'"):
        fit(runs, method="bootstrap", resample=10)
    with pytest.raises(errors.BayescaleError, match="no option 'draw'"):
        fit(runs, method="bayes", draw=10)
    with pytest.raises(errors.BayescaleError, match="seed"):
        fit(runs, method="bootstrap", seed=-1)
    with pytest.raises(errors.BayescaleError, match="polish"):
        fit(runs, method="huber", polish=0)


def test_unconverged_point_fit_warns_or_raises(runs):
    starts = np.array([[5.0, 5.0, 0.5, 0.3, 0.3]])
    with pytest.warns(errors.ConvergenceWarning, match="did not converge"):
        res = fit(runs, method="huber", starts=starts, max_iter=2)
    assert res.info["converged"] is False
    with pytest.raises(errors.ConvergenceError):
        fit(runs, method="huber", starts=starts, max_iter=2, strict=True)


@pytest.mark.float64  # the stall it documents happens in float64 (the fits' precision)
def test_a_stall_far_from_a_stationary_point_is_not_convergence():
    # |x - 0.3| has gradient +-1 everywhere: L-BFGS stalls at the kink, with a
    # gradient far from zero; that must not be reported as converged.
    def kinked(x):
        return jnp.sum(jnp.abs(x - 0.3))

    res = minimize_batch(kinked, jnp.zeros((1, 2)), max_iter=200)
    # The gradient at the returned point is still +-1 (the old solver returned status 2
    # there, with grad_norm 1.0, and called it converged).
    assert float(res.grad_norm[0]) == pytest.approx(1.0)
    assert not bool(res.converged[0])


def test_too_few_runs_for_five_parameters():
    frame = pd.DataFrame({"N": [1e8, 2e8, 4e8, 1e8, 2e8], "D": [1e9, 3e9, 9e9, 3e9, 9e9],
                          "loss": [3.0, 2.8, 2.6, 2.9, 2.7]})
    with pytest.raises(errors.DataError, match="at least 6 runs"):
        from bayescale import load_runs

        load_runs(frame)


def test_cli_out_under_a_file_exits_2(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code = main(["fit", "synthetic", "--method", "huber", "--out", str(blocker / "x")])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_decide_refuses_over_budget_plans_and_bad_within(tmp_path, huber, capsys):
    out = tmp_path / "fit"
    save_fit(huber, out)
    # 6 * 70e9 * 1.5e12 = 6.3e23, 9.4% over 5.76e23 (beyond the 5% tolerance): not
    # comparable with that budget's optimum.
    assert main(["decide", str(out), "--budget", "5.76e23", "--params", "70e9",
                 "--tokens", "1.5e12"]) == 2
    assert "over the budget" in capsys.readouterr().err
    assert main(["decide", str(out), "--budget", "5.76e23", "--params", "70e9",
                 "--tokens", "1.37e12", "--within", "150%"]) == 2
    assert main(["decide", str(out), "--budget", "5.76e23", "--params", "70e9",
                 "--tokens", "1.37e12", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["plan"]["over_budget"] is False


def test_missing_path_is_named_as_such(capsys):
    assert main(["frontier", "no/such/folder", "--budget", "1e23"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_dash_reads_a_csv_from_stdin(monkeypatch, runs):
    import io

    from bayescale import load_runs

    text = runs.to_frame().to_csv()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    loaded = load_runs("-")
    assert loaded.source == "stdin" and len(loaded) == len(runs)
    np.testing.assert_allclose(loaded.loss, runs.loss)
