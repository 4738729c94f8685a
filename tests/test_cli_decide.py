"""``bayescale decide --unique-tokens``: a law with unique tokens as an input (data_constrained).

The optimum decide compares the plan with must be the one ``bayescale frontier`` reports
for the same budget and unique-token budget.
"""

from __future__ import annotations

import json

import pytest

from bayescale.cli import main

LAW = "muennighoff2023"  # the published data-constrained law (Muennighoff et al. 2023)
BUDGET, UNIQUE = "1e22", "25e9"
PLAN = ["--params", "7e9", "--tokens", "2.3e11"]  # 6ND = 9.66e21, within the budget


def _json(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def frontier_row():
    """The frontier's row at the budget, as ``bayescale frontier ... --json`` prints it."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["frontier", LAW, "--budget", BUDGET, "--unique-tokens", UNIQUE, "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    assert out["unique_tokens"] == float(UNIQUE)
    (row,) = out["budgets"]
    return row


def test_decide_unique_tokens_matches_frontier(frontier_row, capsys):
    out = _json(capsys, ["decide", LAW, "--budget", BUDGET, "--unique-tokens", UNIQUE, *PLAN,
                         "--json"])
    assert out["law"] == "data_constrained" and out["unique_tokens"] == float(UNIQUE)
    assert out["plan"]["C"] == float(BUDGET) and not out["plan"]["over_budget"]
    for key in ("N_opt", "D_opt", "L_opt"):
        assert out["optimum"][key]["median"] == pytest.approx(frontier_row[key]["median"],
                                                              rel=1e-6)
    # the plan is not the optimum: it loses a little, and only a little
    assert out["loss"]["median"] > out["optimum"]["L_opt"]["median"]
    assert 0 < out["excess_loss"]["median"] < 0.01
    assert out["p_within_loss"] == {"1%": 1.0, "5%": 1.0}
    assert "regret" not in out and "not computed" in out["note"]


def test_decide_at_the_frontier_optimum_has_no_excess_loss(frontier_row, capsys):
    """The plan's loss (the law at N, D, U) and the frontier's L_opt are computed apart:
    at the frontier's own (N_opt, D_opt) they agree."""
    N, D = frontier_row["N_opt"]["median"], frontier_row["D_opt"]["median"]
    out = _json(capsys, ["decide", LAW, "--budget", BUDGET, "-U", UNIQUE, "--params", repr(N),
                         "--tokens", repr(D), "--json"])
    assert out["loss"]["median"] == pytest.approx(frontier_row["L_opt"]["median"], rel=1e-5)
    assert abs(out["excess_loss"]["median"]) < 1e-4


def test_decide_unique_tokens_text(capsys):
    assert main(["decide", LAW, "--budget", BUDGET, "--unique-tokens", UNIQUE, *PLAN]) == 0
    text = capsys.readouterr().out
    assert "unique tokens U = 2.5e+10" in text and "N_opt at C" in text
    assert "P(loss within 1% of optimum)" in text


@pytest.mark.parametrize("argv, message", [
    ([LAW, "--budget", BUDGET, *PLAN], "--unique-tokens"),  # the law needs U, as frontier does
    (["besiroglu2024", "--budget", BUDGET, "--unique-tokens", UNIQUE, *PLAN],
     "the chinchilla law has none"),
    ([LAW, "--budget", BUDGET, "--unique-tokens", "lots", *PLAN], "--unique-tokens"),
])
def test_decide_unique_tokens_errors_exit_2(capsys, argv, message):
    assert main(["decide", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayescale decide: error:") and message in err
    assert "Traceback" not in err


def test_frontier_without_unique_tokens_is_refused_alike(capsys):
    """decide's refusal is the frontier's: the same message from the same code path."""
    assert main(["frontier", LAW, "--budget", BUDGET]) == 2
    frontier_err = capsys.readouterr().err
    assert main(["decide", LAW, "--budget", BUDGET, *PLAN]) == 2
    decide_err = capsys.readouterr().err
    assert frontier_err.split("error:", 1)[1] == decide_err.split("error:", 1)[1]
