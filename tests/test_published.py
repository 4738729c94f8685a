"""Published coefficient sets as sources, and ``bayescale laws``.

Oracles: Besiroglu et al. (2024) report N_opt = 72.2B (their refit) and Hoffmann et al.'s
unrounded coefficients give 40.4B at Gopher's 5.76e23 FLOPs (README table, Hoffmann et
al. 2022 Table 3 lists 40B); Muennighoff et al.'s README gives 7.022e9 parameters at
1e22 FLOPs and U = 25e9 (their 1000-point grid search, so within 2%).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import bayescale
from bayescale.cli import main
from bayescale.errors import BayescaleError


@pytest.mark.parametrize("name,expected_N", [("besiroglu2024", 72.2e9),
                                             ("hoffmann2022_unrounded", 40.4e9)])
def test_published_chinchilla_sets_at_gophers_budget(name, expected_N):
    f = bayescale.published(name)
    assert f.is_point and f.method == "published" and f.runs is None
    N = float(f.frontier([5.76e23]).N_opt[0, 0])
    assert N == pytest.approx(expected_N, rel=1e-3)  # published to 3 significant figures


def test_published_data_constrained_and_kaplan():
    f = bayescale.published("muennighoff2023")
    assert f.law.name == "data_constrained"
    N = float(f.frontier([1e22], unique_tokens=25e9).N_opt[0, 0])
    np.testing.assert_allclose(N, 7.022e9, rtol=0.02)
    k = bayescale.published("kaplan2020")
    assert set(k.to_dict()["params"]) == {"N_c", "D_c", "alpha_N", "alpha_D"}
    with pytest.raises(BayescaleError, match="no published law 'kaplan'"):
        bayescale.published("kaplan")


def test_laws_command_lists_laws_and_published_sets(capsys):
    assert main(["laws", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {l["name"] for l in out["laws"]} >= {"chinchilla", "kaplan", "data_constrained"}
    pub = {p["name"]: p for p in out["published"]}
    assert {"hoffmann2022", "hoffmann2022_unrounded", "besiroglu2024", "kaplan2020",
            "muennighoff2023"} <= set(pub)
    assert pub["kaplan2020"]["params"] == {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076,
                                           "alpha_D": 0.095}
    assert main(["laws"]) == 0
    assert "muennighoff2023" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _no_persistent_compilation_cache(monkeypatch):
    # As in test_cli_fit: the command line run in process must not turn on JAX's
    # persistent cache (the user's home, and the global JAX configuration) for the tests
    # after it.
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")


def test_cli_frontier_and_decide_answer_from_published_laws(capsys):
    assert main(["frontier", "muennighoff2023", "--budget", "1e22", "--unique-tokens", "25e9",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "data_constrained" and out["method"] == "published"
    np.testing.assert_allclose(out["budgets"][0]["N_opt"]["median"], 7.022e9, rtol=0.02)
    assert main(["decide", "kaplan2020", "--budget", "1e22", "--params", "2e10",
                 "--tokens", "8e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # an off-optimum plan: efficiency below 1 (Kaplan's L_opt(C) inverted numerically)
    assert 0 < out["compute_efficiency"]["median"] < 1
    assert out["p_within_compute"]["1%"] is not None
    assert out["loss"]["median"] > out["optimum"]["L_opt"]["median"]


def test_cli_fit_takes_a_law(capsys):
    assert main(["fit", "synthetic", "--law", "kaplan", "--method", "huber", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "kaplan" and set(out["params"]) == {"N_c", "D_c", "alpha_N", "alpha_D"}
    assert main(["fit", "synthetic", "--law", "kaplin", "--method", "huber"]) == 2
    assert "unknown law 'kaplin'" in capsys.readouterr().err


def test_cli_selects_a_group_and_a_split(capsys):
    # the registry's advice for a multi-corpus dataset names --select group=...
    assert main(["fit", "gadre2024", "--method", "huber", "--json"]) == 2
    assert "--select group=" in capsys.readouterr().err
    assert main(["fit", "gadre2024", "--select", "group=C4", "--method", "huber",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] > 0
    # PROVENANCE.md (active_sl): the data_constrained test split holds 21 larger runs
    assert main(["fit", "data_constrained", "--split", "test", "--method", "huber",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] == 21
    assert main(["fit", "gadre2024", "--select", "corpus=C4"]) == 2
    assert "--query" in capsys.readouterr().err
