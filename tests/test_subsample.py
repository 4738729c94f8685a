"""Subsampling NUTS (HMCECS, bayescale.estimators.subsample): agreement with full-data NUTS,
``subsample="auto"`` off for small data, and its errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.errors import BayescaleError, DataWarning
from bayescale.estimators import subsample as ecs
from bayescale.laws.chinchilla import HOFFMANN_2022 as P


def checkpoints(n: int, seed: int = 0, runs: bool = False):
    """Checkpoints of 12 training runs under Hoffmann et al.'s law, 0.01 noise on log loss
    (as benchmarks/bench_rows.py's synthetic_checkpoints)."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 1e10, 12), -(-n // 12))[:n]
    D = N * np.exp(rng.uniform(0.0, np.log(200.0), n))
    loss = (P.E + P.A / N**P.alpha + P.B / D**P.beta) * np.exp(rng.normal(0, 0.01, n))
    df = pd.DataFrame({"N": N, "D": D, "loss": loss})
    if runs:
        df["run"] = np.searchsorted(np.unique(N), N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return bayescale.load_runs(df, run_column="run" if runs else None)


def test_subsample_rows():
    assert ecs.subsample_rows("auto", ecs.AUTO_ROWS - 1, run_effects=False) == 0
    assert ecs.subsample_rows("auto", ecs.AUTO_ROWS, run_effects=False) == ecs.AUTO_SIZE
    assert ecs.subsample_rows("auto", 10 * ecs.AUTO_ROWS, run_effects=True) == 0  # full NUTS
    assert ecs.subsample_rows(None, 10**6, run_effects=True) == 0
    assert ecs.subsample_rows(0, 10**6, run_effects=False) == 0
    assert ecs.subsample_rows(np.int64(500), 5000, run_effects=False) == 500
    assert [ecs.num_blocks(m) for m in (50, 500, 1000, 1001)] == [1, 5, 10, 7]


@pytest.mark.parametrize("bad", ["all", True, 1.5, -3, 1, 300])
def test_bad_subsample_is_an_error(bad):
    runs = checkpoints(300)
    with pytest.raises(BayescaleError, match="subsample"):
        bayescale.fit(runs, method="bayes", subsample=bad)


def test_cli_subsample_values():
    import argparse

    from bayescale.cli._common import subsample_arg

    assert [subsample_arg(t) for t in ("auto", "none", "0", "500")] == ["auto", None, None, 500]
    with pytest.raises(argparse.ArgumentTypeError, match="--subsample"):
        subsample_arg("many")


def test_run_effects_refuse_subsampling():
    runs = checkpoints(600, runs=True)
    with pytest.raises(BayescaleError, match="run effects"):
        bayescale.fit(runs, method="bayes", subsample=100)


@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")  # a short run
def test_auto_leaves_small_data_alone():
    runs = checkpoints(200)
    f = bayescale.fit(runs, method="bayes", chains=2, warmup=100, draws=100, progress=False,
                      retry=False)
    assert f.info["subsample"] is None
    assert "log_likelihood" in f.idata.groups()  # LOO as before


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")  # checked below
def test_subsampled_fit_matches_full_nuts(monkeypatch):
    """HMCECS (m = 500 of 5,000 rows) against full NUTS on the same data (~20 s for full
    NUTS, ~60-90 s for HMCECS with its Huber fit, Laplace step and compile, 2 loaded cores);
    and a second dataset of 5,050 rows reuses the HMCECS program (one bucket).

    Tolerance from Monte Carlo error: each fit has a bulk ESS >= 400 (asserted), so a
    posterior mean's MCSE is at most sd / sqrt(400) = 0.05 sd and the difference of two
    independent fits' means has an MCSE of at most 0.071 sd: 0.25 sd is 3.5 of those. The
    relative MCSE of an sd is about 1 / sqrt(2 ESS) <= 0.035, of the ratio of two <= 0.05:
    25% is 5 of those. (Measured: means within 0.03 sd, sds within 4%.) R-hat is allowed
    1.02 here: 4 x 500 draws are a short run (full NUTS itself gave 1.0146 with 300). With
    4 x 400 draws a CI run once gave 391 for sigma: 500 draws keep the floor with room.
    """
    from collections import OrderedDict

    from bayescale.estimators import nuts

    monkeypatch.setattr(nuts, "_PROGRAMS", OrderedDict())  # empty: a new program would show
    runs = checkpoints(5000)
    kw = dict(chains=4, warmup=300, draws=500, progress=False, retry=False)
    sub = bayescale.fit(runs, method="bayes", subsample=500, **kw)
    assert len(nuts._PROGRAMS) == 1
    # another size in the same bucket (5,120 rows, padded and masked): no new program
    other = bayescale.fit(checkpoints(5050, seed=1), method="bayes", subsample=500, **kw)
    assert sub.info["subsample"]["padded_to"] == other.info["subsample"]["padded_to"] == 5120
    assert len(nuts._PROGRAMS) == 1
    assert other.info["subsample"]["subsample_accept"] >= ecs.MIN_ACCEPT
    full = bayescale.fit(runs, method="bayes", subsample=None, **kw)
    assert sub.info["subsample"]["m"] == 500 and sub.info["subsample"]["num_blocks"] == 5
    assert sub.info["subsample"]["subsample_accept"] >= ecs.MIN_ACCEPT
    assert full.info["subsample"] is None
    assert "log_likelihood" not in sub.idata.groups()
    # the program runs in float64 (module docstring); the draws come back in the caller's
    assert sub.info["subsample"]["dtype"] == "float64"
    assert sub.idata.posterior["alpha"].dtype == full.idata.posterior["alpha"].dtype
    for f in (sub, full):
        d = f.diagnostics
        assert d.divergences == 0 and d.rhat_max <= 1.02 and d.ess_bulk_min >= 400, d
    for name in ("E", "A", "B", "alpha", "beta", "sigma"):
        a = np.asarray(sub.idata.posterior[name]).ravel()
        b = np.asarray(full.idata.posterior[name]).ravel()
        assert abs(a.mean() - b.mean()) <= 0.25 * b.std(), name
        assert abs(a.std() / b.std() - 1) <= 0.25, name


def test_padded_rows_add_nothing_to_the_subsampled_likelihood():
    """The model's subsample branch masks the distribution itself (HMCECS reads
    ``fn.log_prob``): a padded row's log-likelihood is 0, a real row's the likelihood's own.
    Oracle: scipy's Student-t density at the model's own mean and scale."""
    import jax.numpy as jnp
    from numpyro import handlers
    from scipy import stats

    from bayescale.estimators import model as models
    from bayescale.estimators.padding import pad_rows
    from bayescale.laws.base import log_loss_theta
    from bayescale.laws.registry import get_law

    law = get_law("chinchilla")
    runs = checkpoints(40)
    log_X = np.column_stack([runs.log_N, runs.log_D])
    X_pad, y_pad, mask = pad_rows(48, log_X, runs.log_loss)
    centre = models.data_centre(*log_X.T)
    idx = np.array([0, 5, 39, 40, 47])  # three real rows, two padding rows
    kw = dict(law=law, priors=None, likelihood="student_t", centre=centre, E_max=3.0,
              subsample_size=len(idx), mask=np.asarray(mask))
    with handlers.seed(rng_seed=0), handlers.substitute(data={"runs": jnp.asarray(idx)}):
        tr = handlers.trace(models.law_model).get_trace(X_pad, y_pad, **kw)
    site = tr["log_loss"]
    lp = np.asarray(site["fn"].log_prob(site["value"]))
    assert np.all(lp[3:] == 0.0) and np.all(lp[:3] != 0.0)
    theta = np.asarray(law.to_theta(law.params(*(np.asarray(tr[k]["value"]) for k in
                                                 law.param_names))))
    mu = np.asarray(log_loss_theta(law, theta, X_pad[idx[:3]]))
    sigma = float(tr["sigma"]["value"])
    expected = stats.t.logpdf(y_pad[idx[:3]], models.DEFAULT_NU, loc=mu, scale=sigma)
    np.testing.assert_allclose(lp[:3], expected, rtol=2e-5, atol=1e-5)



def test_laplace_step_reuses_its_program_and_finds_the_unpadded_mode(monkeypatch):
    """The Laplace step pads the rows to their bucket: 600 and 620 rows (bucket 640)
    share one compiled potential, no retrace. Oracle for the padding: NumPyro's own
    potential of the unpadded rows (float64) has its mode at the mode returned (Newton
    decrement about 0)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_value
    from numpyro.infer.util import initialize_model, potential_energy

    from bayescale.estimators import model as models
    from bayescale.laws.registry import get_law

    monkeypatch.delenv("BAYESCALE_NO_BUCKETS", raising=False)
    law = get_law("chinchilla")
    ecs._POTENTIALS.clear()
    first = None
    for n, seed in ((600, 0), (620, 1)):
        runs = checkpoints(n, seed=seed)
        log_X, y = np.column_stack([runs.log_N, runs.log_D]), runs.log_loss
        centre = models.data_centre(*log_X.T)
        E_max = float(np.median(runs.loss))
        kw = dict(priors=models.resolve_priors({}, E_max=E_max, likelihood="student_t", law=law),
                  likelihood="student_t", centre=centre, E_max=E_max, law=law, run=None,
                  num_runs=0, slope_coords=False)
        start = dict(models.sample_sites(law, np.asarray(law.to_theta(P), float), centre),
                     sigma=0.01)  # the law the rows were drawn from (no Huber fit: faster)
        reference, inits, info = ecs.laplace_start(models.law_model, log_X, y, kw, start,
                                                   chains=2, seed=0, dtype=jnp.float32)
        assert info["hessian_min_eig"] > 0 and set(inits) == set(reference)
        first = first or next(iter(ecs._POTENTIALS.values()))
        with jax.enable_x64(True):
            args = (jnp.asarray(log_X, jnp.float64), jnp.asarray(y, jnp.float64))
            kw64 = dict(kw, E_max=jnp.float64(E_max), record_log_likelihood=False)
            z = initialize_model(jax.random.PRNGKey(0), models.law_model, model_args=args,
                                 model_kwargs=kw64, init_strategy=init_to_value(
                                     values={k: np.float64(v) for k, v in reference.items()})
                                 ).param_info.z
            flat, unravel = ravel_pytree(z)

            def unpadded(f):
                return potential_energy(models.law_model, args, kw64, unravel(f))

            g, H = jax.jit(jax.grad(unpadded))(flat), jax.jit(jax.hessian(unpadded))(flat)
            decrement = float(g @ jnp.linalg.solve(H, g))
        # Newton decrement g' H^-1 g: the squared distance to the unpadded mode in posterior
        # sds; the reference is returned in float32, so it is small, not 0
        assert decrement < 1e-4, decrement
    # rows padded already, with their mask (program_args pads once): the same mode
    from bayescale.estimators.padding import pad_rows

    X_pad, y_pad, mask = pad_rows(640, log_X, y)
    again, _, _ = ecs.laplace_start(models.law_model, X_pad, y_pad, kw, start, chains=2,
                                    seed=0, dtype=jnp.float32, mask=mask)
    for k in reference:
        np.testing.assert_array_equal(np.asarray(again[k]), np.asarray(reference[k]))
    assert len(ecs._POTENTIALS) == 1
    assert next(iter(ecs._POTENTIALS.values())) is first  # the first call's, served again
    value_grad, hessian = first
    assert value_grad._cache_size() == 1 and hessian._cache_size() == 1


def test_as_dtype_casts_floats_and_integers_and_keeps_the_rest():
    """The float64 program's draws and statistics, back in the caller's dtypes."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        tree = {"a": jnp.ones((2, 3), jnp.float64), "n": jnp.arange(3, dtype=jnp.int64),
                "d": jnp.array([True, False])}
        out = ecs.as_dtype(tree, jnp.float32)
    assert out["a"].dtype == jnp.float32 and out["n"].dtype == jnp.int32
    assert out["d"].dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(out["n"]), [0, 1, 2])
