"""``bayescale frontier`` and ``bayescale decide`` through ``bayescale.cli.main``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayescale.cli import build_parser, main
from bayescale.data.runs import Runs
from bayescale.estimators.fit import ScalingFit
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams

GOPHER_C = "5.76e23"

_RUNS = dict(N=np.array([1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9]),
             D=np.array([2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10]),
             loss=np.array([3.4, 3.1, 3.1, 2.7, 2.8, 2.5]))


def _fit(num_draws=50, seed=3, method="bootstrap"):
    rng = np.random.default_rng(seed)
    params = LawParams(*(np.asarray(v) * np.exp(0.05 * rng.standard_normal(num_draws))
                         for v in BESIROGLU_2024))
    runs = Runs(row=np.arange(6), source="toy", **_RUNS)
    return ScalingFit(method=method, params=params, runs=runs)


def _write_fit_folder(path, fit):
    """A fit folder as `bayescale fit ... --out DIR` writes it (fit.json, draws.csv, runs.csv)."""
    from bayescale.io import save_fit

    save_fit(fit, path)
    return path


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    return _write_fit_folder(tmp_path_factory.mktemp("fit"), _fit())


def _json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_frontier_json(fit_dir, capsys):
    out = _json(capsys, ["frontier", str(fit_dir), "--budget", "1e21", "--budget", GOPHER_C,
                         "--json"])
    assert out["cost"] == "train" and out["num_draws"] == 50 and out["level"] == 0.9
    rows = out["budgets"]
    assert [r["C"] for r in rows] == [1e21, 5.76e23]
    for r in rows:
        for q in ("N_opt", "D_opt", "L_opt", "tokens_per_param"):
            assert set(r[q]) == {"median", "lower", "upper"}
            assert r[q]["lower"] <= r[q]["median"] <= r[q]["upper"]
        assert r["extrapolation"] > 0  # the toy runs stop at ~1e19 FLOPs
    fit = _fit()
    # Hoffmann et al. (2022), eq. (4): N_opt = G (C / 6) ** (beta / (alpha + beta)) with
    # G = (alpha A / (beta B)) ** (1 / (alpha + beta)), per draw, then the median.
    p = fit.params
    a, b = np.asarray(p.alpha), np.asarray(p.beta)
    G = (a * np.asarray(p.A) / (b * np.asarray(p.B))) ** (1 / (a + b))
    expected = np.median(G * (5.76e23 / 6) ** (b / (a + b)))
    # The CLI computes in float32 by default (7 significant digits).
    assert rows[1]["N_opt"]["median"] == pytest.approx(expected, rel=1e-5)
    C_max = float(fit.runs.C.max())
    assert rows[1]["extrapolation"] == pytest.approx(np.log10(5.76e23 / C_max))


def test_frontier_table_and_level(fit_dir, capsys):
    assert main(["frontier", str(fit_dir), "-C", "1e22", "--level", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "50% interval" in text and "1e+22" in text and "OOM" in text


def test_frontier_inference_cost(fit_dir, capsys):
    train = _json(capsys, ["frontier", str(fit_dir), "-C", "1e23", "--json"])
    inf = _json(capsys, ["frontier", str(fit_dir), "-C", "1e23", "--cost", "inference",
                         "--inference-tokens", "1e13", "--json"])
    assert inf["cost"] == "inference" and inf["inference_tokens"] == 1e13
    b_inf, b_train = inf["budgets"][0], train["budgets"][0]
    assert b_inf["converged"] == 1.0
    assert b_inf["N_opt"]["median"] < b_train["N_opt"]["median"]


def test_fit_json_path_accepted(fit_dir, capsys):
    out = _json(capsys, ["frontier", str(fit_dir / "fit.json"), "-C", "1e22", "--json"])
    assert len(out["budgets"]) == 1


@pytest.mark.parametrize("argv, message", [
    (["--budget", "1e2x"], "not a number"),
    (["--budget=-1e20"], "positive"),
    (["--budget", "inf"], "positive"),
    (["--budget", "1e22", "--cost", "inference"], "--inference-tokens"),
    (["--budget", "1e22", "--inference-tokens", "1e12"], "--cost inference"),
    (["--budget", "1e22", "--cost", "inference", "--inference-tokens", "many"], "not a number"),
    (["--budget", "1e22", "--level", "1.5"], "level"),
])
def test_frontier_bad_input_exits_2(fit_dir, capsys, argv, message):
    assert main(["frontier", str(fit_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_source_exits_2(tmp_path, capsys):
    assert main(["frontier", str(tmp_path / "nope.csv"), "--budget", "1e22"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["frontier", str(empty), "--budget", "1e22"]) == 2
    assert "fit folder" in capsys.readouterr().err


def test_decide_json(fit_dir, capsys):
    out = _json(capsys, ["decide", str(fit_dir), "--budget", "5.88e23", "--params", "70e9",
                         "--tokens", "1.4e12", "--json"])
    assert out["plan"]["N"] == 70e9 and out["plan"]["D"] == 1.4e12
    assert not out["plan"]["over_budget"]
    assert set(out["p_within_loss"]) == {"1%", "5%"}
    assert 0 <= out["p_within_loss"]["1%"] <= 1 and out["regret"] >= 0
    assert out["bayes_optimal"]["regret"] == pytest.approx(0.0, abs=1e-12)
    assert out["extrapolation"] > 0 and out["num_draws"] == 50
    # issue 10: the plan's loss 3+ decades beyond the toy runs, with the extrapolation
    # error: wider than the in-model interval, which assumes the law is exact, and the
    # same as bayescale predict gives for that run
    hp, loss = out["predicted_loss"], out["loss"]
    assert hp["extrapolation_decades"] > 3 and hp["structural"] == "auto"
    assert hp["upper"] - hp["lower"] > 2 * (loss["upper"] - loss["lower"])
    pred = _json(capsys, ["predict", str(fit_dir), "--params", "70e9", "--tokens", "1.4e12",
                          "--json"])["points"][0]
    assert hp["median"] == pytest.approx(pred["median"], rel=1e-9)
    assert [hp["lower"], hp["upper"]] == pytest.approx(pred["intervals"]["0.9"], rel=1e-9)
    # N_opt with the optimum error beyond the data: wider than the law's own interval
    from bayescale.io import load_fit

    hn, n_opt = out["n_opt_honest"], out["optimum"]["N_opt"]
    assert hn["decades"] == pytest.approx(np.log10(5.88e23 / load_fit(fit_dir).runs.C.max()))
    assert hn["upper"] - hn["lower"] > n_opt["upper"] - n_opt["lower"]


def test_decide_n_opt_moves_by_a_known_optimum_error(fit_dir, capsys, monkeypatch):
    # a point-mass optimum error, +0.3 decades of N per decade beyond the data: every draw's
    # N_opt moves by exactly 10**(0.3 d), so its quantiles are the law's times that factor
    from bayescale.estimators import optimum_error

    point = optimum_error.OptimumError(np.array([0.3]), np.array([1e-12]), np.ones((1, 1)))
    monkeypatch.setattr(optimum_error, "estimate", lambda runs, law, **kwargs: point)
    out = _json(capsys, ["decide", str(fit_dir), "--budget", "5.88e23", "--params", "70e9",
                         "--tokens", "1.4e12", "--json"])
    from bayescale.io import load_fit
    from bayescale.planning.frontier import compute_optimal

    hn = out["n_opt_honest"]
    factor = 10 ** (0.3 * hn["decades"])
    assert hn["decades"] > 3
    # the fit's 50 draws, repeated to 1000 (a band per draw), each moved by the factor
    draws = np.asarray(compute_optimal(load_fit(fit_dir).params, 5.88e23).N_opt, float)
    expected = np.quantile(np.resize(draws.reshape(-1), 1000) * factor, [0.05, 0.5, 0.95])
    got = [hn["lower"], hn["median"], hn["upper"]]
    assert got == pytest.approx(list(expected), rel=1e-5)
    assert hn["median"] == pytest.approx(out["optimum"]["N_opt"]["median"] * factor, rel=1e-4)


def test_decide_text_and_within(fit_dir, capsys):
    assert main(["decide", str(fit_dir), "-N", "7e10", "-D", "1.4e12", "--within", "2%",
                 "--within", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "P(loss within 2% of optimum)" in text and "within 10%" in text
    assert "bayes-optimal plan" in text and "plug-in plan" in text
    assert "predicted loss of this run, with observation noise and the extrapolation" in text
    assert "N_opt at C with the optimum error" in text


@pytest.mark.parametrize("argv, message", [
    (["--params", "0", "--tokens", "1e12"], "--params"),
    (["--params", "7e10", "--tokens", "x"], "--tokens"),
    (["--params", "7e10", "--tokens", "1e12", "--budget", "-3"], "budget"),
    (["--params", "7e10", "--tokens", "1e12", "--within", "lots"], "--within"),
])
def test_decide_bad_input_exits_2(fit_dir, capsys, argv, message):
    assert main(["decide", str(fit_dir), *argv]) == 2
    assert message in capsys.readouterr().err


def test_dataset_source_is_fitted_first(tmp_path, capsys, monkeypatch):
    import bayescale.estimators.fit

    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n" + "".join(f"{n},{d},{l}\n" for n, d, l in
                                          zip(_RUNS["N"], _RUNS["D"], _RUNS["loss"]))
                   + "6.4e9,3.2e10,2.4\n")  # a 7th run: 6 remain after --exclude-top 1
    calls = {}

    def fake_fit(runs, *, method, seed=0, law="chinchilla", **options):
        assert law == "chinchilla"  # the default --law
        calls.update(method=method, n_runs=len(runs), seed=seed, **options)
        return _fit(num_draws=20)

    monkeypatch.setattr(bayescale.estimators.fit, "fit", fake_fit)
    out = _json(capsys, ["frontier", str(csv), "-C", "1e22", "--exclude-top", "1",
                         "--resamples", "20", "--json"])
    assert calls == {"method": "bootstrap", "n_runs": 6, "seed": 0, "resamples": 20}
    assert out["method"] == "bootstrap" and out["num_draws"] == 20
    _json(capsys, ["decide", str(csv), "-N", "1e9", "-D", "2e10", "--method", "huber", "--json"])
    assert calls["method"] == "huber"
    assert main(["frontier", str(csv), "-C", "1e22", "--method", "huber", "--resamples", "5"]) == 2


@pytest.mark.parametrize("command", ["frontier", "decide"])
def test_help_has_examples(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    text = sub.format_help()
    assert "examples:" in text and f"bayescale {command} " in text
