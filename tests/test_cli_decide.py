"""``bayescale decide --unique-tokens``: a law with unique tokens as an input (data_constrained).

The optimum decide compares the plan with must be the one ``bayescale frontier`` reports
for the same budget and unique-token budget; the plan's loss is the law at (N, D, U)
(``bayescale.laws.loss``), and decide reports the same fields (regret, Bayes-optimal and
plug-in plans) as for a law without U.
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
    # the plan's loss is the law at (N, D, U): a published law is one draw
    from bayescale.laws import loss
    from bayescale.laws.published import PUBLISHED

    N, D, U = 7e9, 2.3e11, float(UNIQUE)
    assert out["loss"]["median"] == pytest.approx(float(loss(PUBLISHED[LAW].params, N, D, U)),
                                                  rel=1e-5)
    # the same fields as for a law without U: regret, Bayes-optimal and plug-in plans
    assert "note" not in out
    assert out["regret"] == pytest.approx(out["excess_loss"]["median"], abs=1e-5)  # one draw
    assert out["regret"] > 0
    for name in ("bayes_optimal", "plug_in"):
        plan = out[name]
        assert plan["N"] == pytest.approx(frontier_row["N_opt"]["median"], rel=1e-5)
        assert plan["D"] == pytest.approx(frontier_row["D_opt"]["median"], rel=1e-5)
        assert plan["regret"] == pytest.approx(0.0, abs=1e-6)
    # the data-constrained frontier inverted numerically (tests/test_efficiency.py): the
    # plan is not the optimum, so below 1
    assert 0 < out["compute_efficiency"]["median"] < 1


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
    assert "regret (expected loss minus Bayes-optimal plan's)" in text
    assert "bayes-optimal plan: N = 7.03e+09" in text and "plug-in plan:" in text


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


# ---------------------------------------------------------------------------
# --structural: law-form uncertainty (issue 10)
# ---------------------------------------------------------------------------

STRUCT_DATA = ["synthetic", "--resamples", "40"]
STRUCT_C = 1e24
STRUCT_PLAN = ["--params", "3e10", "--tokens", "5e12"]  # 6ND = 9e23, within the budget
STRUCT_LAWS = ["--structural", "chinchilla,kaplan"]


def _decide_json(argv, stack=None):
    """``bayescale decide ... --json`` (stdout parsed); ``stack_laws`` returns ``stack``
    when given (no refit), and the stack the command used is returned beside the output."""
    import contextlib
    import io

    import bayescale.estimators.stacking as stacking

    real, seen = stacking.stack_laws, []

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs) if stack is None else stack)
        return seen[-1]

    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(stacking, "stack_laws", spy)
        code = main(["decide", *argv, "--json"])
    assert code == 0
    return json.loads(buf.getvalue()), (seen[0] if seen else None)


@pytest.fixture(scope="module")
def structural_run():
    """One real ``decide --structural`` run (the laws fitted and stacked by the command)."""
    out, stack = _decide_json([*STRUCT_DATA, "--budget", str(STRUCT_C), *STRUCT_PLAN,
                                  *STRUCT_LAWS])
    return out, stack


def _forced(stack, weights, optimum_errors=None):
    """The stack with forced weights, and no optimum error unless given (the mixture's
    mechanics are the subject; the error is checked with a known point mass)."""
    import dataclasses

    import numpy as np

    return dataclasses.replace(stack, weights=np.asarray(weights, dtype=float),
                               optimum_errors=optimum_errors or {})


def _per_law(stack, N, D, C):
    """Each law's per-draw N_opt, plan loss and L_opt, by the laws' formulas (numpy) and the
    public optimum, not by decide."""
    import numpy as np

    from bayescale.planning.frontier import compute_optimal

    out = {}
    for name in stack.laws:
        p = [np.asarray(v, dtype=float) for v in stack.fits[name].params]
        if name == "chinchilla":
            E, A, B, alpha, beta = p
            L = E + A / N ** alpha + B / D ** beta
        else:
            N_c, D_c, a_N, a_D = p
            L = ((N_c / N) ** (a_N / a_D) + D_c / D) ** a_D
        opt = compute_optimal(stack.fits[name].params, C)
        out[name] = {"N_opt": np.asarray(opt.N_opt, float).reshape(-1), "L": L.reshape(-1),
                     "L_opt": np.asarray(opt.L_opt, float).reshape(-1)}
    return out


def _pool_by_hand(per_law, laws, weights, num, seed):
    """The documented mixture: largest-remainder counts, whole copies plus a remainder drawn
    without replacement by ``default_rng(seed)``, laws in order."""
    import numpy as np

    raw = np.asarray(weights) * num
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: num - counts.sum()]:
        counts[k] += 1
    rng = np.random.default_rng(seed)
    pooled = {key: [] for key in ("N_opt", "L", "L_opt")}
    for name, m in zip(laws, counts):
        S = per_law[name]["N_opt"].size
        idx = np.concatenate([np.tile(np.arange(S), m // S),
                              np.sort(rng.choice(S, m % S, replace=False))])
        for key in pooled:
            pooled[key].append(per_law[name][key][idx])
    return {key: np.concatenate(v) for key, v in pooled.items()}


@pytest.mark.slow
def test_decide_structural_runs_and_reports_two_bands(structural_run):
    out, stack = structural_run
    st = out["structural"]
    assert st["laws"] == ["chinchilla", "kaplan"] == list(stack.laws)
    assert st["weights"] == pytest.approx(list(stack.weights)) and st["top"] == stack.top
    assert set(st) >= {"laws", "weights", "top", "within", "structural"}
    for band in ("within", "structural"):
        b = st[band]
        assert b["excess_loss"]["lower"] <= b["excess_loss"]["median"] <= b["excess_loss"]["upper"]
        assert set(b["p_within_loss"]) == set(b["p_N_opt_within"]) == {"1%", "5%"}
        assert 0 <= b["plan_N_quantile"] <= 1
    assert st["within"]["law"] == stack.top and st["within"]["num_draws"] == 40
    assert st["structural"]["num_draws"] == 40


@pytest.mark.slow
@pytest.mark.parametrize("weights, law", [((1.0, 0.0), "chinchilla"), ((0.0, 1.0), "kaplan")])
def test_decide_structural_with_one_law_is_that_laws_answer(structural_run, weights, law):
    """Weights (1, 0): the pooled answer is the plain ``decide`` answer of that law on the
    same fit (the top-level answer, from ``decide``'s own path, fitted apart)."""
    _, stack = structural_run
    out, _ = _decide_json([*STRUCT_DATA, "--budget", str(STRUCT_C), *STRUCT_PLAN,
                              "--law", law, *STRUCT_LAWS], stack=_forced(stack, weights))
    st = out["structural"]
    assert st["top"] == law
    pooled, within = st["structural"], st["within"]
    assert pooled == {k: v for k, v in within.items() if k != "law"}
    assert pooled["loss"] == pytest.approx(out["loss"], rel=1e-12)
    assert pooled["excess_loss"] == pytest.approx(out["excess_loss"], rel=1e-12)
    assert pooled["L_opt"] == pytest.approx(out["optimum"]["L_opt"], rel=1e-12)
    assert pooled["N_opt"] == pytest.approx(out["optimum"]["N_opt"], rel=1e-12)
    assert pooled["p_within_loss"] == out["p_within_loss"]
    # closed-form for chinchilla, the numerical frontier inverted for kaplan: the same path
    assert pooled["compute_efficiency"] == pytest.approx(out["compute_efficiency"], rel=1e-12)
    assert pooled["p_within_compute"] == out["p_within_compute"]


@pytest.mark.slow
def test_decide_structural_pools_by_weight_as_recomputed_by_hand(structural_run):
    """The pooled N percentile, P(N_opt within x) and excess loss against an independent
    recomputation from each law's draws (numpy, the weights' proportions)."""
    import numpy as np

    _, stack = structural_run
    per_law = _per_law(stack, 1.0, 1.0, STRUCT_C)  # N_opt draws only, here
    med = {k: float(np.median(v["N_opt"])) for k, v in per_law.items()}
    assert abs(np.log(med["chinchilla"] / med["kaplan"])) > np.log(1.5)  # laws disagree
    N = float(np.sqrt(med["chinchilla"] * med["kaplan"]))  # between the laws' optima
    D = STRUCT_C / (6 * N)
    weights = (0.3, 0.7)
    # a known optimum error, +0.2 decades of N per decade beyond the data for both laws:
    # every pooled N_opt draw is the law's times 10**(0.2 d)
    from bayescale.estimators.optimum_error import OptimumError

    point = OptimumError(np.array([0.2]), np.array([1e-12]), np.ones((1, 1)))
    out, _ = _decide_json([*STRUCT_DATA, "--budget", str(STRUCT_C), "--params", repr(N),
                              "--tokens", repr(D), *STRUCT_LAWS, "--within", "10%",
                              "--within", "50%"],
                          stack=_forced(stack, weights, {k: point for k in stack.laws}))
    per_law = _per_law(stack, N, D, STRUCT_C)
    d = max(np.log10(STRUCT_C / stack.C_max), 0.0)
    assert d > 0.5  # the budget is beyond the data: the error moves N_opt
    own = {k: np.mean(v["N_opt"] <= N) for k, v in per_law.items()}  # within: unmoved
    for v in per_law.values():
        v["N_opt"] = v["N_opt"] * 10 ** (0.2 * d)
    pooled = _pool_by_hand(per_law, stack.laws, weights, 40, stack.info["seed"])
    assert pooled["N_opt"].size == 40
    st = out["structural"]["structural"]
    assert st["plan_N_quantile"] == pytest.approx(np.mean(pooled["N_opt"] <= N), abs=1e-12)
    for key, w in (("10%", 0.1), ("50%", 0.5)):
        by_hand = np.mean(np.abs(np.log(pooled["N_opt"] / N)) <= np.log1p(w))
        assert st["p_N_opt_within"][key] == pytest.approx(by_hand, abs=1e-12)
    excess = pooled["L"] - pooled["L_opt"]
    assert st["excess_loss"]["median"] == pytest.approx(np.median(excess), abs=2e-5)
    assert st["excess_loss"]["upper"] == pytest.approx(np.quantile(excess, 0.95), abs=2e-5)
    # the pool is not either law alone: between the laws' own (moved) quantiles
    moved = [np.mean(v["N_opt"] <= N) for v in per_law.values()]
    assert min(moved) <= st["plan_N_quantile"] <= max(moved)
    assert out["structural"]["top"] == "kaplan"  # the larger forced weight
    assert out["structural"]["within"]["plan_N_quantile"] == pytest.approx(own["kaplan"])


@pytest.mark.slow
def test_decide_structural_text(structural_run, capsys):
    import bayescale.estimators.stacking as stacking

    _, stack = structural_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stacking, "stack_laws", lambda *a, **k: stack)
        assert main(["decide", *STRUCT_DATA, "--budget", str(STRUCT_C), *STRUCT_PLAN,
                     *STRUCT_LAWS]) == 0
    text = capsys.readouterr().out
    assert "structural uncertainty: stacking weights chinchilla" in text
    rows = [line.split() for line in text.splitlines()]
    bands = [r for r in rows if len(r) > 1 and r[0] in ("within", "structural")
             and r[1] != "uncertainty:"]
    assert [r[0] for r in bands] == ["within", "structural"]
    assert all(len(r) == 13 for r in bands)  # excess [lo, hi], 2 P(L), C_eq/C, N_opt, pct, 2 P(N)


@pytest.mark.parametrize("source, extra, message", [
    ("DIR", [], "needs SOURCE data"),  # a fit folder
    ("besiroglu2024", [], "needs SOURCE data"),  # a published law
    ("synthetic", ["--method", "isoflop"], "loss laws"),
])
def test_decide_structural_refuses_a_fit_folder_exit_2(tmp_path, capsys, source, extra,
                                                       message):
    if source == "DIR":
        (tmp_path / "fit.json").write_text("{}")
        source = str(tmp_path)
    assert main(["decide", source, "--budget", "1e22", *PLAN, *STRUCT_LAWS, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayescale decide: error:") and message in err
    assert "Traceback" not in err
