"""Groups side by side (bayescale.estimators.groups) and the checkpoint warning.

Oracles: each group's Huber fit equals the fit of that group's runs done by hand (the
padding adds exactly zero to the objective) and recovers the law the group was drawn from;
the checkpoint rule fires on runs checkpointed every k steps and not on sweeps of lengths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.data import loaders
from bayescale.data.runs import load_runs
from bayescale.data.simulate import simulate_runs
from bayescale.errors import BayescaleError, DataWarning
from bayescale.estimators.fit import fit
from bayescale.estimators.padding import bucket_size
from bayescale.estimators.groups import fit_groups
from bayescale.laws.chinchilla import LawParams

TRUE = {"x": LawParams(1.8, 400.0, 410.0, 0.34, 0.28),
        "y": LawParams(1.6, 300.0, 900.0, 0.30, 0.36)}
DATA = Path(os.environ.get("BAYESCALE_DATA", "").split(os.pathsep)[0] or
            Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "steplaw").is_dir() and not os.environ.get("CI"),
                                reason=f"{DATA} has no shared datasets; set BAYESCALE_DATA")


def _grouped():
    """Two groups from different laws, of different sizes (90 and 72 runs)."""
    a = simulate_runs(TRUE["x"], seed=0)
    b = simulate_runs(TRUE["y"], seed=1, models_per_budget=8)
    cat = {k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in ("N", "D", "loss")}
    runs = dataclasses.replace(a, **cat, row=np.arange(len(a) + len(b)),
                               group=np.array(["x"] * len(a) + ["y"] * len(b), dtype=object))
    return runs, {"x": a, "y": b}


@pytest.mark.slow
def test_shrunk_group_fit_is_its_own_shrunk_huber_fit():
    """``shrink`` keeps the groups on the padded path (one program; a traced strength) and
    each group's fit is :func:`bayescale.fit`'s shrunk fit of that group alone."""
    runs, parts = _grouped()
    result = fit_groups(runs, method="huber", shrink=50.0)
    got, by_hand = result.fits["y"], fit(parts["y"], method="huber", shrink=50.0)
    assert got.info["shrink"] == by_hand.info["shrink"] == 50.0
    assert "padded_to" in got.info  # the padded path, not a fallback per group
    assert np.isclose(got.info["objective"], by_hand.info["objective"], rtol=1e-10)
    for k in ("E", "A", "B", "alpha", "beta"):
        assert np.isclose(got.point_estimate()[k], by_hand.point_estimate()[k], rtol=1e-6)
    plain = fit(parts["y"], method="huber")

    def pull(p):  # squared distance of (log A, log B) from their prior mean, 6
        return (np.log(p["A"]) - 6) ** 2 + (np.log(p["B"]) - 6) ** 2

    assert pull(got.point_estimate()) < pull(plain.point_estimate())


@pytest.mark.slow
def test_each_group_fit_is_its_own_huber_fit_and_recovers_its_law():
    runs, parts = _grouped()
    result = fit_groups(runs, method="huber")
    assert list(result.fits) == ["x", "y"]
    for name, sub in parts.items():
        got = result.fits[name]
        assert abs(got.point_estimate()["alpha"] - TRUE[name].alpha) < 0.05
        assert abs(got.point_estimate()["beta"] - TRUE[name].beta) < 0.05
    for name, sub in [("y", parts["y"])]:  # by hand: one group (each such fit compiles)
        by_hand = fit(sub, method="huber")
        got = result.fits[name]
        assert len(got.runs) == len(sub)
        # The objective is what the solver certifies (to 1e-10 here); along the flat
        # (A, alpha) valley the parameters are fixed only to the solver's tolerance, and
        # the two fits are padded to different sizes (summation order), so 1e-6.
        for k in ("E", "A", "B", "alpha", "beta"):
            assert np.isclose(got.point_estimate()[k], by_hand.point_estimate()[k], rtol=1e-6)
        assert np.isclose(got.info["objective"], by_hand.info["objective"], rtol=1e-10)
        C = result.reference_budget
        # the table's N_opt is the group fit's own frontier (float32 solve: 1e-6) ...
        assert np.isclose(result.table().loc[name, "N_opt"],
                          float(np.asarray(got.frontier([C]).N_opt).ravel()[0]), rtol=1e-6)
        # ... and the hand fit's within what parameters equal to 1e-6 allow: log N_opt
        # moves by log(C/6) / (alpha + beta) ~ 80 per unit of alpha, so ~3e-5 relative
        assert np.isclose(result.table().loc[name, "N_opt"],
                          float(np.asarray(by_hand.frontier([C]).N_opt).ravel()[0]), rtol=1e-4)
    # one compile for both groups: both are padded to one shape, so the second group
    # reuses the first's program (no timed assertion: a program compiled earlier in the
    # session makes the first group fast too)
    assert result.info["padded_to"] == bucket_size(max(len(p) for p in parts.values()))
    payload = json.loads(json.dumps(result.to_dict()))
    assert set(payload["groups"]) == {"x", "y"}
    assert payload["groups"]["y"]["n_runs"] == 72
    assert set(payload["groups"]["x"]["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert set(payload["table"]) == {"x", "y"}


@pytest.mark.slow
def test_each_group_bootstrap_is_its_own_bootstrap():
    runs, parts = _grouped()
    result = fit_groups(runs, method="bootstrap", resamples=32, seed=3)
    by_hand = fit(parts["y"], method="bootstrap", resamples=32, seed=3)
    got = result.fits["y"]
    assert got.num_draws == by_hand.num_draws
    # Each resample is the same objective (padded rows weigh 0), solved to the bootstrap's
    # tolerance on the objective change: the minima agree closely (one resample of 32
    # stops 3e-4 higher on the objective on one path than the other); along the flat (A, alpha)
    # valley the solutions may stop at different points, so compare objectives, and the
    # draws where the valley is not flat.
    import jax

    from bayescale.estimators import bootstrap, huber
    from bayescale.laws.chinchilla import LAW

    weights = bootstrap.bootstrap_weights(len(parts["y"]), 32, 3)
    log_X = huber.log_inputs(LAW, parts["y"].log_N, parts["y"].log_D)
    with jax.enable_x64(True):
        def objective(f, i):
            theta = LAW.to_theta(LawParams(*(np.float64(v[i]) for v in f.params)))
            return float(huber.law_objective(theta, weights[i], log_X, parts["y"].log_loss))

        for i in range(got.num_draws):
            assert np.isclose(objective(got, i), objective(by_hand, i), rtol=1e-3)
    close = np.isclose(got.draws().to_numpy(), by_hand.draws().to_numpy(), rtol=1e-3)
    assert close.all(axis=1).mean() >= 0.9
    table = result.table()
    assert table.loc["y", "alpha_lower"] < table.loc["y", "alpha"] < table.loc["y", "alpha_upper"]


@pytest.mark.slow
def test_shrunk_group_bootstrap_is_its_own_shrunk_bootstrap():
    """With ``shrink`` the groups' bootstrap stays on the padded path (one program for all
    groups) and each group's resamples are :func:`bayescale.fit`'s shrunk bootstrap of that
    group alone: the same resamples (seed), the same shrunk start and objective. The pull
    makes the valley less flat, so the draws themselves agree."""
    runs, parts = _grouped()
    result = fit_groups(runs, method="bootstrap", resamples=32, seed=3, shrink=50.0)
    got = result.fits["y"]
    by_hand = fit(parts["y"], method="bootstrap", resamples=32, seed=3, shrink=50.0)
    assert "padded_to" in got.info  # the padded path, not a fallback per group
    assert got.info["shrink"] == by_hand.info["shrink"] == 50.0
    assert got.num_draws == by_hand.num_draws
    close = np.isclose(got.draws().to_numpy(), by_hand.draws().to_numpy(), rtol=1e-3)
    assert close.all(axis=1).mean() >= 0.9
    plain = fit(parts["y"], method="bootstrap", resamples=32, seed=3)
    # the pull: the shrunk resamples' log A sit nearer the prior mean (6) than the plain ones
    assert np.median(np.abs(np.log(got.params.A) - 6)) < \
        np.median(np.abs(np.log(plain.params.A) - 6))


def test_errors_name_the_problem():
    runs, parts = _grouped()
    with pytest.raises(BayescaleError, match="no group labels"):
        fit_groups(parts["x"], method="huber")
    few = dataclasses.replace(runs, group=np.array(["x"] * (len(runs) - 3) + ["tiny"] * 3,
                                                   dtype=object))
    with pytest.raises(BayescaleError, match="'tiny' \\(3 runs\\)"):
        fit_groups(few, method="huber")


def _checkpoints(num_ckpt=20, runs_per_N=1):
    rows = []
    for N in (1e8, 3e8, 1e9):
        for k in range(1, num_ckpt + 1):
            D = 20 * N * k / num_ckpt
            rows.append({"N": N, "D": D, "loss": 1.7 + 400 / N ** 0.34 + 410 / D ** 0.28})
    return pd.DataFrame(rows)


def test_checkpoint_warning_fires_on_checkpoints_and_names_the_fix():
    frame = _checkpoints()
    with pytest.warns(DataWarning, match="checkpoints of the same training runs") as caught:
        load_runs(frame)
    message = caught[0].message
    assert "run_column=" in str(message) and "--run-column" in message.cli_message
    assert "too narrow" in str(message) and "final checkpoint" in str(message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(frame.assign(run=frame["N"].astype(str)), run_column="run")
        load_runs(frame, check_plausible=False)


def test_checkpoint_rule_spares_sweeps_of_run_lengths():
    # seven evenly spaced lengths (misfitting has six): below the threshold of eight
    assert loaders.checkpoint_stretch(np.arange(1, 8) * 1e9) == 7
    assert loaders.checkpoint_stretch(np.arange(1, 9) * 1e9) == 8
    # doubling lengths, however many: no arithmetic stretch beyond two
    assert loaders.checkpoint_stretch(2.0 ** np.arange(30, 42)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(_checkpoints(num_ckpt=7))


@needs_data
@pytest.mark.parametrize("name, options", [
    ("chinchilla", {}), ("misfitting", {}), ("misfitting", {"best_per_cell": False}),
    ("data_constrained", {}), ("data_constrained", {"split": "test"}), ("farseer", {}),
    ("steplaw", {}), ("gadre2024", {"group": "all"}), ("marin_isoflop", {"group": "all"}),
    ("synthetic", {}), ("misfitting_checkpoints", {})])
def test_no_checkpoint_warning_on_registered_datasets(name, options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_runs(name, **options)
    assert not [w for w in caught if "checkpoints" in str(w.message)]


@needs_data
def test_checkpoint_warning_on_misfitting_checkpoints_as_a_plain_csv():
    path = DATA / "misfitting" / "scaling_results.csv"
    with pytest.warns(DataWarning, match="checkpoints"):
        load_runs(path, D="D", C="C", drop_duplicates=True)


@needs_data
def test_group_all_keeps_every_group_with_labels():
    runs = load_runs("marin_isoflop", group="all")
    assert sorted(set(runs.group)) == ["comma", "dclm", "nemotron"]
    assert len(runs) == 258
    with pytest.raises(BayescaleError, match="--group all"):
        load_runs("marin_isoflop")


def _run_main(argv):
    from bayescale.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_cli_group_column(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    runs, parts = _grouped()
    frame = runs.to_frame().assign(corpus=runs.group).drop(columns=["group", "C"])
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    code, out, err = _run_main(["fit", str(path), "--group", "corpus", "--method", "huber",
                                "--json"])
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload["groups"]) == {"x", "y"}
    by_hand = fit(parts["y"], method="huber").point_estimate()
    assert np.isclose(payload["groups"]["y"]["params"]["alpha"], by_hand["alpha"], rtol=1e-8)
    code, out, err = _run_main(["fit", str(path), "--group", "all", "--method", "huber"])
    assert code != 0 and "--group COLUMN" in err


def _draws_fit(truth, runs, seed):
    """A ScalingFit with 200 draws scattered around ``truth`` (as a bootstrap gives)."""
    from bayescale.estimators.fit import ScalingFit

    rng = np.random.default_rng(seed)
    params = LawParams(*(np.asarray(v) * np.exp(0.05 * rng.standard_normal(200))
                         for v in truth))
    return ScalingFit(method="bootstrap", params=params, runs=runs, level=0.9)


def test_table_and_figure_show_each_groups_draws():
    from bayescale.estimators.groups import GroupFits
    from bayescale.report.groups import plot_groups

    _, parts = _grouped()
    fits = {k: _draws_fit(TRUE[k], parts[k], i) for i, k in enumerate(parts)}
    result = GroupFits(fits=fits, method="bootstrap", level=0.9, reference_budget=1e23)
    table = result.table()
    for k, f in fits.items():
        a_opt = f.params.beta / (f.params.alpha + f.params.beta)  # closed form
        assert np.isclose(table.loc[k, "a_opt"], np.median(a_opt))
        assert np.isclose(table.loc[k, "a_opt_lower"], np.quantile(a_opt, 0.05))
        N = np.asarray(f.frontier([1e23]).N_opt).ravel()
        assert np.isclose(table.loc[k, "N_opt"], np.median(N))
        assert np.isclose(table.loc[k, "N_opt_upper"], np.quantile(N, 0.95))
        assert table.loc[k, "n_runs"] == len(parts[k])
    fig = plot_groups(result)
    for k in fits:
        est, lo, hi = fig.drawn["N_opt"][k]
        assert (est, lo, hi) == (table.loc[k, "N_opt"], table.loc[k, "N_opt_lower"],
                                 table.loc[k, "N_opt_upper"])
        assert set(fig.drawn["exponents"][k]) == {"a_opt", "b_opt"}
        assert lo < est < hi
    # the groups' laws differ, and so do their exponents as drawn
    assert fig.drawn["exponents"]["x"]["a_opt"][0] < fig.drawn["exponents"]["y"]["a_opt"][0]
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["groups"]["x"] == json.loads(json.dumps(fits["x"].to_dict(0.9)))
    assert payload["table"]["y"]["N_opt_lower"] == pytest.approx(table.loc["y", "N_opt_lower"])


def test_cli_text_table_is_for_people():
    from bayescale.report.group_text import human_table

    table = pd.DataFrame({"n_runs": [85], "a_opt": [0.3412], "a_opt_lower": [0.2951],
                          "a_opt_upper": [0.4058], "N_opt": [8.77e9], "N_opt_lower": [6.22e9],
                          "N_opt_upper": [1.44e10]}, index=pd.Index(["comma"], name="group"))
    shown = human_table(table)
    assert list(shown.columns) == ["n_runs", "a_opt", "N_opt"]
    assert shown.loc["comma", "a_opt"] == "0.341 [0.295, 0.406]"
    assert shown.loc["comma", "N_opt"] == "8.77B [6.22B, 14.4B]"


def test_an_error_in_one_group_names_the_group():
    runs, _ = _grouped()
    with pytest.raises(BayescaleError, match="group 'x': .*no option"):
        fit_groups(runs, method="huber_mle", bogus=1)


def test_group_all_without_a_group_column_says_so(tmp_path):
    frame = _checkpoints(num_ckpt=3)
    with pytest.raises(BayescaleError, match="no group column 'group'.*group_column="):
        load_runs(frame, group="all")
    runs = load_runs(frame.assign(corpus=np.where(frame["N"] > 2e8, "b", "a")),
                     group="all", group_column="corpus")
    assert sorted(set(runs.group)) == ["a", "b"]
    with pytest.raises(BayescaleError, match="no group labels"):
        fit_groups(load_runs(frame), method="huber")


def test_cli_group_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    code, _, err = _run_main(["fit", "synthetic", "--group", "all", "--method", "huber"])
    assert code != 0 and "no groups to fit side by side" in err
    code, _, err = _run_main(["fit", "synthetic", "--group", "corpus", "--method", "huber"])
    assert code != 0 and "--group all" in err
    code, _, err = _run_main(["fit", "synthetic", "--group", "all", "--select", "group=a"])
    assert code != 0 and "give one of them" in err
