"""The command line's shared options and its examples (issue 13, "Command line").

* every example in every subcommand's ``--help`` runs (exit 0), as a user would type it,
  with only the sampler sizes shrunk;
* ``decide`` accepts a plan within the stated budget tolerance (Chinchilla's 70B x 1.4T
  at Gopher's 5.76e23 is 2.1% over) and says so;
* the cost settings ``--n-ctx``, ``--aspect-ratio``, ``--vocab-size`` reach the cost model;
* one definition of the methods and likelihoods, and the data options on every command;
* a first run prints no ArviZ deprecation notice.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from cli_examples import COVERED, SHRINK, examples, run_main, shrunk

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_home: Path | None = None) -> dict:
    env = dict(os.environ, BAYESCALE_NO_CACHE="1", PYTHONWARNINGS="default")
    if tmp_home is not None:  # a new user: no ArviZ "daily warning" stamp yet
        env.update(HOME=str(tmp_home), XDG_CACHE_HOME=str(tmp_home / ".cache"))
    return env


def _bayescale(args, cwd, *, home: Path | None = None, timeout=600):
    return subprocess.run([sys.executable, "-m", "bayescale", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=_env(home))


# ---------------------------------------------------------------- the --help examples


EXAMPLES = examples()


def _slow(example: str) -> bool:
    """Examples that fit data run with the slow tests (in CI after the fast suite); those
    reading the fit folder or listing datasets run in the fast suite."""
    argv = shlex.split(example)[1:]
    return not (argv[0] == "datasets" or (len(argv) > 1 and argv[1].startswith("fits/")))


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory, chinchilla_240):
    """A working folder with what the examples name: my_runs.csv, sweep.csv (an isoFLOP
    sweep with budget and corpus columns), candidates.csv (runs a team could train next, for
    ``design``), target_region.csv (farseer's held-out larger runs, ``design --targets``) and
    fits/chinchilla."""
    from bayescale import load_runs

    folder = tmp_path_factory.mktemp("examples")
    frame = load_runs("synthetic").to_frame()
    pd.DataFrame({"params": frame["N"], "tokens": frame["D"],
                  "eval_loss": frame["loss"]}).to_csv(folder / "my_runs.csv", index=False)
    sweep = load_runs("synthetic").to_frame()  # an isoFLOP sweep: budget and corpus columns
    sweep["budget"] = sweep["C"].round(-16)
    sweep["corpus"] = np.where(np.arange(len(sweep)) % 2 == 0, "web", "code")
    sweep.drop(columns="C").to_csv(folder / "sweep.csv", index=False)
    N, D = np.meshgrid(np.geomspace(1e8, 3e9, 6), np.geomspace(2e9, 6e10, 6))
    pd.DataFrame({"N": N.ravel(), "D": D.ravel()}).to_csv(folder / "candidates.csv", index=False)
    target = load_runs("farseer", split="test")  # the larger runs a design aims to predict
    pd.DataFrame({"N": target.N, "D": target.D}).to_csv(folder / "target_region.csv", index=False)
    proc = _bayescale(["fit", "chinchilla", "--exclude-top", "5", "--chains", "2", "--warmup",
                       "40", "--draws", "40", "--out", "fits/chinchilla", "--quiet"], folder)
    assert proc.returncode == 0, proc.stderr
    return folder


def test_every_subcommand_has_examples():
    commands = {c for c, _ in EXAMPLES}
    assert {"fit", "frontier", "decide", "report", "compare"} <= commands, commands


def test_covered_examples_are_run_by_the_test_that_covers_them():
    # an example left out below is run, shrunk, by a slow test of the file named in
    # COVERED, which checks its output; that file must name the example as written
    for example, filename in COVERED.items():
        assert example in [e for _, e in EXAMPLES], example
        source = (REPO / "tests" / filename).read_text()
        assert f'shrunk("{example}")' in source, (example, filename)


@pytest.mark.parametrize("command, example", [
    pytest.param(c, e, marks=[pytest.mark.slow] if _slow(e) else [], id=e)
    for c, e in EXAMPLES if e not in COVERED])
def test_help_example_runs(example_dir, command, example, monkeypatch):
    # In this process (the commands share their compiled programs, which keeps the slow
    # suite inside CI's time), from the examples' folder, with warnings shown as a shell
    # shows them; other tests here run `python -m bayescale` in a subprocess.
    import warnings

    monkeypatch.chdir(example_dir)
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")  # the CLI leaves JAX's config alone
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code, out, err = run_main(shrunk(example, example_dir))
    assert code == 0, (example, err[-3000:])
    assert "Traceback" not in err


# ---------------------------------------------------------------- decide: budget tolerance


def test_decide_accepts_chinchilla_at_gophers_budget(example_dir):
    # 6 * 70e9 * 1.4e12 = 5.88e23 FLOPs, 2.08% over Gopher's 5.76e23 (Hoffmann et al. 2022
    # compare exactly this plan at that budget).
    proc = _bayescale(["decide", "fits/chinchilla", "--budget", "5.76e23", "--params", "70e9",
                       "--tokens", "1.4e12"], example_dir)
    assert proc.returncode == 0, proc.stderr
    assert "2.1% over the budget" in proc.stdout and "5% tolerance" in proc.stdout
    assert "OVER BUDGET" not in proc.stdout
    # 6% over (5.88e23 / 5.547e23 = 1.06) is beyond the tolerance: refused, and the message
    # gives the smallest budget that is accepted (5.88e23 / 1.05 = 5.6e23).
    proc = _bayescale(["decide", "fits/chinchilla", "--budget", "5.547e23", "--params", "70e9",
                       "--tokens", "1.4e12"], example_dir)
    assert proc.returncode == 2
    assert "6.0% over" in proc.stderr and "5.6e+23" in proc.stderr


def test_library_and_command_line_share_the_tolerance():
    from bayescale._util import BUDGET_TOLERANCE
    from bayescale.laws.chinchilla import LawParams
    from bayescale.planning.decisions import assess_plan

    assert BUDGET_TOLERANCE == 0.05
    # Hoffmann et al. (2022) approach-3 fit, one draw.
    params = LawParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    plan = assess_plan(params, 70e9, 1.4e12, budget=5.76e23)["plan"]
    assert plan["over_budget"] is False
    plan = assess_plan(params, 70e9, 1.4e12, budget=5.547e23)["plan"]
    assert plan["over_budget"] is True


# ---------------------------------------------------------------- cost settings


def _attention_cost(N, D, n_ctx, r):
    # Kaplan et al. (2020) Table 1: C = D (6 N + 6 n_layer n_ctx d_model), with
    # N = 12 n_layer d_model^2 and d_model = r n_layer, so n_layer = (N / (12 r^2))^(1/3).
    n_layer = (N / (12 * r**2)) ** (1 / 3)
    return D * (6 * N + 6 * n_layer * n_ctx * r * n_layer)


def test_frontier_cost_settings_reach_the_cost_model(example_dir):
    C = 1e24
    proc = _bayescale(["frontier", "fits/chinchilla", "--budget", str(C), "--cost", "attention",
                       "--n-ctx", "8192", "--aspect-ratio", "128", "--json"], example_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cost_settings"] == {"n_ctx": 8192, "aspect_ratio": 128}
    row = out["budgets"][0]
    N, D = row["N_opt"]["median"], row["D_opt"]["median"]
    # Every draw's plan lies on the budget curve cost(N, D) = C, along which D falls as N
    # grows, so the medians lie on it too (up to the even number of draws).
    assert _attention_cost(N, D, 8192, 128) == pytest.approx(C, rel=1e-2)
    assert abs(_attention_cost(N, D, 2048, 128) / C - 1) > 0.03  # not the default n_ctx


def test_design_cost_settings_price_the_runs(tmp_path):
    """``design --cost attention --n-ctx ...``: every proposed run is priced by Kaplan et
    al.'s attention cost with those settings (oracle: the formula above), the runs stay
    within the experiment budget, and the output says the optimum error (learned for 6ND)
    is left out."""
    from bayescale.data.simulate import simulate_runs

    csv = tmp_path / "runs.csv"
    simulate_runs(seed=0, models_per_budget=5).to_frame().to_csv(csv)
    F = 1e20
    code, out, err = run_main(["design", str(csv), "--resamples", "40", "--target-budget",
                               "1e24", "--experiment-budget", str(F), "--k", "3", "--cost",
                               "attention", "--n-ctx", "8192", "--aspect-ratio", "128",
                               "--json"])
    assert code == 0, err
    out = json.loads(out)
    assert out["cost_settings"] == {"n_ctx": 8192, "aspect_ratio": 128}
    assert out["info"]["cost"] == "attention"
    props = out["proposals"]
    assert props and sum(p["cost"] for p in props) <= F * (1 + 1e-9)
    for p in props:
        assert p["cost"] == pytest.approx(_attention_cost(p["N"], p["D"], 8192, 128), rel=1e-5)
        assert p["cost"] > 6 * p["N"] * p["D"] * 1.001    # not priced at 6ND
    assert "not 'attention'" in out["info"]["optimum_error_note"]
    # C*'s frontier is priced by the same model: "before" is the fit's own attention-priced
    # N_opt interval (the same bootstrap fitted in Python), not the 6ND one
    import bayescale
    from bayescale.planning.costs import get_cost

    fit = bayescale.fit(bayescale.load_runs(str(csv)), method="bootstrap", resamples=40, seed=0)
    median = {name: float(np.median(fit.frontier([1e24], cost=get_cost(name, **kw)).N_opt))
              for name, kw in (("attention", {"n_ctx": 8192, "aspect_ratio": 128}),
                               ("train", {}))}
    assert out["before"]["median"] == pytest.approx(median["attention"], rel=1e-3)
    assert abs(median["attention"] / median["train"] - 1) > 5e-3   # which 1e-3 tells apart


@pytest.mark.parametrize("command", [["frontier", "--budget", "1e24"],
                                     ["design", "--target-budget", "1e24",
                                      "--experiment-budget", "1e21"]])
@pytest.mark.parametrize("argv, fragment", [
    (["--cost", "train", "--vocab-size", "50000"], "--vocab-size goes with --cost non-embedding"),
    (["--cost", "non-embedding", "--n-ctx", "4096"], "--n-ctx goes with --cost attention"),
    (["--cost", "attention", "--n-ctx", "-1"], "--n-ctx must be a positive number"),
])
def test_cost_settings_are_checked(command, argv, fragment, tmp_path):
    code, out, err = run_main([command[0], str(tmp_path / "nope.csv"), *command[1:], *argv])
    assert code == 2 and fragment in err, err


def test_design_does_not_offer_the_inference_cost(tmp_path, capsys):
    """One cost model prices the small runs and C*; the small runs are not served, so
    design refuses --cost inference (argparse's choices) rather than charging them for it."""
    with pytest.raises(SystemExit):
        main(["design", str(tmp_path / "nope.csv"), "--target-budget", "1e24",
              "--experiment-budget", "1e21", "--cost", "inference"])
    assert "invalid choice: 'inference'" in capsys.readouterr().err


# ---------------------------------------------------------------- one definition of each


def test_methods_and_likelihoods_have_one_definition():
    from bayescale.cli import _common
    from bayescale.estimators.model import LIKELIHOODS

    assert tuple(_common.LIKELIHOODS) == tuple(LIKELIHOODS)
    for module in ("fit", "frontier", "report"):
        source = (REPO / "bayescale" / "cli" / f"{module}.py").read_text()
        assert not re.search(r"^_?(METHODS|LIKELIHOODS)\s*=", source, flags=re.M), module


def test_law_help_names_every_shipped_law():
    """--law's help is a literal (the registry imports JAX); it must name every law the
    package ships (the registry's, before any test registers its own), and every
    subcommand with --law shows it."""
    from bayescale.cli import _common, build_parser
    from bayescale.laws import registry

    from bayescale.laws.base import Law

    shipped = {v.name for mod in (registry.chinchilla, registry.kaplan,
                                  registry.data_constrained, registry.farseer)
               for v in vars(mod).values() if isinstance(v, Law)}
    assert {"chinchilla", "kaplan", "data_constrained", "farseer"} <= set(shipped)
    for name in shipped:
        assert re.search(rf"\b{name}\b", _common.LAWS_HELP), name
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and "fit" in a.choices)
    for command in ("fit", "report", "design", "predict"):
        help_text = " ".join(subparsers.choices[command].format_help().split())
        assert "farseer" in help_text, command


def test_building_the_parser_does_not_import_jax():
    script = ("import sys; from bayescale.cli import build_parser; build_parser(); "
              "assert 'jax' not in sys.modules, 'jax imported'")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unknown_likelihood_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "synthetic", "--likelihood", "cauchy"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'student_t', 'normal', 'huber'" in err


@pytest.mark.parametrize("command", [["frontier", "--budget", "1e24"],
                                     ["decide", "--params", "7e10", "--tokens", "1.4e12"]])
def test_frontier_and_decide_take_the_data_options(command, tmp_path):
    # The same flags as fit: the CSV below needs --sep, the column names and --query.
    frame = pd.DataFrame({"n_params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9, 1e10],
                          "toks": [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10, 1e9],
                          "ppl_loss": [3.4, 3.1, 3.1, 2.7, 2.8, 2.5, 9.0]})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False, sep="|")
    from bayescale.cli import build_parser

    args = build_parser().parse_args(
        [command[0], str(path), *command[1:], "--N-column", "n_params", "--D-column", "toks",
         "--loss-column", "ppl_loss", "--sep", "|", "--query", "N < 5e9", "--drop-duplicates",
         "--no-plausibility-checks"])
    from bayescale.cli._common import load_runs_from_args

    runs = load_runs_from_args(args, source=args.source)
    assert len(runs) == 6 and runs.dropped["dropped_by"].tolist() == ["query"]


# ---------------------------------------------------------------- error messages in CLI terms


def test_errors_give_the_flag_not_python(tmp_path):
    frame = pd.DataFrame({"N": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
                          "params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
                          "D": [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10],
                          "loss": [3.4, 3.1, 3.1, 2.7, 2.8, 2.5]})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    code, out, err = run_main(["fit", str(path), "--method", "huber"])
    assert code == 2 and "--N-column N" in err and "N='N'" not in err and "load_runs" not in err
    # duplicates: the flag is named; with it, the drop is reported on stderr
    frame = frame.drop(columns="params")
    pd.concat([frame, frame.iloc[[2]]]).to_csv(path, index=False)
    code, out, err = run_main(["fit", str(path), "--method", "huber"])
    assert code == 2 and "--drop-duplicates" in err and "line 8" in err, err
    # a folder
    code, out, err = run_main(["fit", str(tmp_path), "--method", "huber"])
    assert code == 2 and "is a folder" in err


def test_plausibility_warning_on_stderr_and_its_flag(tmp_path):
    # Tokens in billions (the D = 20 meaning 20B): warned, in command-line terms;
    # the warning is printed before the fit, which here fails on the data (nothing to fit).
    frame = pd.DataFrame({"N": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
                          "D": [2, 8, 2, 32, 8, 32], "loss": [3.4, 3.1, 3.1, 2.7, 2.8, 2.5]})
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    from bayescale.cli import build_parser
    from bayescale.cli._common import load_runs_from_args

    args = build_parser().parse_args(["fit", str(path)])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        load_runs_from_args(args)
    assert "bayescale: warning: column 'D'" in err.getvalue()
    assert "--no-plausibility-checks" in err.getvalue()
    assert "check_plausible" not in err.getvalue()
    args = build_parser().parse_args(["fit", str(path), "--no-plausibility-checks"])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        load_runs_from_args(args)
    assert err.getvalue() == ""


# ---------------------------------------------------------------- a new user's first run


def test_first_run_prints_no_arviz_deprecation(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = _bayescale(["fit", "synthetic", "--method", "bayes", "--chains", "1", "--warmup",
                       "30", "--draws", "30", "--quiet"], tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr
    assert "r_hat" in proc.stdout or "ess_bulk" in proc.stdout  # ArviZ did run
    assert "FutureWarning" not in proc.stderr and "ArviZ is undergoing" not in proc.stderr


def test_convergence_advice_is_given_as_flags_on_the_command_line(capsys):
    """Issue 13: the CLI told users to set ``target_accept=0.95`` and ``warmup=2000``,
    Python they cannot type at a shell. The command line now tells the flags, while the
    library's warning keeps the Python form."""
    import argparse
    import warnings

    import pandas as pd

    from bayescale.cli import _run_telling_warnings
    from bayescale.errors import ConvergenceWarning
    from bayescale.estimators.diagnostics import Diagnostics, check

    bad = Diagnostics(rhat_max=1.2, ess_bulk_min=30.0, ess_tail_min=40.0, divergences=12,
                      ebfmi_min=0.5, ok=False, per_param=pd.DataFrame(), chains=4)
    with pytest.warns(ConvergenceWarning) as record:
        check(bad, likelihood="normal")
    python_form = str(record[0].message)
    assert "target_accept" in python_form and "warmup=2000" in python_form

    args = argparse.Namespace(func=lambda a: check(bad, likelihood="normal") and 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape as a Python warning
        _run_telling_warnings(args)
    err = capsys.readouterr().err
    assert err.startswith("bayescale: warning: NUTS did not converge")
    for flag in ("--target-accept 0.95", "--warmup 2000", "--chains 4", "--likelihood student_t"):
        assert flag in err, flag
    for python in ("target_accept", "warmup=", "likelihood='"):
        assert python not in err, python


def test_other_warnings_pass_through_the_command_once():
    """A warning that is not bayescale's is passed on unchanged, once (re-emitting it
    inside the recording context once recorded it again while it was being read: the
    command never ended and its memory grew without bound)."""
    import argparse
    import warnings

    from bayescale.cli import _run_telling_warnings

    def func(args):
        warnings.warn("from a library", UserWarning)
        return 0

    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        assert _run_telling_warnings(argparse.Namespace(func=func)) == 0
    assert [str(w.message) for w in outer] == ["from a library"]
