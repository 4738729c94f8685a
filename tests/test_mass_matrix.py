"""The mass matrix of a model with run offsets: one dense block over every site but the
offsets' ``run_z``, started at the inverse Hessian of the potential, computed by a program
of its own that each sampling program takes as an argument.

Oracles: Gaussian models, whose potential's inverse Hessian is their covariance in closed
form; the condition-number floor by hand; the compile cache's keys (a second fit with other
sampler lengths reuses the start's program).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import numpyro
import numpyro.distributions as dist

from bayescale.data.runs import load_runs
from bayescale.errors import ConvergenceWarning
from bayescale.estimators import _nuts_program, nuts
from bayescale.estimators.fit import fit
from bayescale.estimators.run_offsets import RUN_SITE, mass_block, mass_matrix
from test_checkpoint_runs import _checkpoints


def _gaussian(sd_a, sd_b, slope):
    """``b ~ a`` + noise, and offsets that stay out of the block: the covariance of (a, b) is
    ``[[sd_a², slope sd_a²], [slope sd_a², slope² sd_a² + sd_b²]]``."""

    def model():
        a = numpyro.sample("a", dist.Normal(0.0, sd_a))
        numpyro.sample("b", dist.Normal(slope * a, sd_b))
        numpyro.sample(RUN_SITE, dist.Normal(0.0, 1.0).expand([3]))

    return model


def _at(values):
    from numpyro.infer import init_to_value

    return init_to_value(values=values)


def test_the_start_is_the_covariance_of_a_gaussian():
    model = _gaussian(2.0, 0.5, 0.7)
    block = mass_block(model)
    assert block == ("a", "b")  # sorted, without the offsets
    # the Hessian of a Gaussian potential is the same everywhere: any initial point
    start = mass_matrix(model, _at({"a": 0.3, "b": -1.0, RUN_SITE: np.zeros(3)}), block)
    assert list(start) == [block]
    cov = np.array([[4.0, 0.7 * 4.0], [0.7 * 4.0, 0.49 * 4.0 + 0.25]])
    np.testing.assert_allclose(np.asarray(start[block]), cov, rtol=1e-5)


def test_the_start_keeps_its_condition_number_below_1e6():
    """A site 1e4 times narrower than the other: the Hessian's eigenvalues 1e8 and 1; the
    smaller is raised to 1e-6 of the larger (100), so that the matrix's Cholesky holds."""
    model = _gaussian(1e-4, 1.0, 0.0)
    block = mass_block(model)
    start = mass_matrix(model, _at({"a": 0.0, "b": 0.0, RUN_SITE: np.zeros(3)}), block)[block]
    np.testing.assert_allclose(np.asarray(start), np.diag([1e-8, 1e-2]), rtol=1e-4, atol=1e-12)


def test_the_start_is_its_own_program_reused_across_sampler_lengths(monkeypatch):
    """Above HESSIAN_START_ROWS (here 0) the start is compiled once beside the sampling
    programs (one per sampler setting) and reused. (That the fit uses it, and passes:
    test_gate_datasets' misfitting_checkpoints, 4,843 rows.)"""
    runs = load_runs(_checkpoints(1), run_column="run_id", check_plausible=False)
    monkeypatch.setattr(nuts, "_PROGRAMS", OrderedDict())
    monkeypatch.setattr(_nuts_program, "HESSIAN_START_ROWS", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for warmup in (20, 30):
            fit(runs, method="bayes", chains=1, warmup=warmup, draws=10, retry=False)
    assert sorted(key[0] for key in nuts._PROGRAMS) == ["run_all", "run_all", "start"]
