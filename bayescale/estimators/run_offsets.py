"""Per-run offsets: the checkpoints of one training run share its luck.

Rows that are checkpoints of the same training run (a ``run`` column) are not independent
evidence: the seed, the data order and the recipe move all of a run's losses together.
The model (:func:`bayescale.estimators.model.law_model`) gives every run ``r`` an offset
in log loss, ``o_r ~ Normal(0, tau_run)`` with ``tau_run ~ HalfNormal(RUN_TAU)``.

How NUTS samples the offsets decides whether the fit takes one minute or ten (Betancourt
& Girolami 2015, "Hamiltonian Monte Carlo for hierarchical models", arXiv:1312.0906). A
run with many rows pins its offset to about ``sigma / sqrt(rows)``, far inside
``tau_run`` (checkpoints: sigma 0.2-1% of the loss, tau_run 1-6%), *at a place that moves
with the law*: every offset follows its run's mean residual from the law, so the law's
coordinates and all the offsets slide together on a curved ridge. On
``misfitting_checkpoints`` (4,843 checkpoints of 240 runs) the non-centred offsets
(``tau_run z_r``) did not finish in 20 minutes, and the centred ones (the offset itself,
for runs of 3+ rows) needed 150-430 leapfrog steps per draw with a dense mass matrix over
all 263 sampled coordinates (256 offsets, the bucket's padding included), the maximum,
1023, after short warmups, and 7-9 minutes.

:func:`sample_run_offsets` samples instead ``z_r ~ Normal(0, 1)`` with

    ``o_r = m_r + s_r z_r``,  ``s_r = (n_r I + 1 / tau_run**2) ** -1/2``,
    ``m_r = s_r**2 I sum_i (y_i - mu_i)``,

the mean and scale of the run's offset given the law, ``sigma`` and ``tau_run`` in the
normal approximation (``n_r`` the run's rows, ``y_i - mu_i`` their residuals from the
law, ``I`` one row's Fisher information,
:func:`bayescale.estimators.likelihoods.row_precision`). This is a change of variables,
not an approximation: ``(law, z) -> (law, o)`` is a bijection whose Jacobian is
triangular with diagonal ``s_r``, and the model adds ``log N(o_r; 0, tau_run) + log s_r
- log N(z_r; 0, 1)`` (site ``run_offset_prior``), so the posterior of the law and the
offsets is the same model's. It interpolates between the two classic choices: a run with
no rows (the padding of a size bucket) has ``m_r = 0, s_r = tau_run`` (non-centred), a
run of many rows ``o_r`` near its mean residual (centred on its data). The ``z_r`` are
then nearly independent of the law and of each other, so the fit adapts a dense mass
matrix over the law's coordinates, ``sigma`` and ``tau_run`` and a diagonal one over the
``z_r``, started at the inverse Hessian and at 1 (:func:`mass_matrix`).
``misfitting_checkpoints``: 31 leapfrog steps per draw, and the default fit (4 x (1000 +
1000)) in 42-46 s of sampling on 2 cores instead of 405-513 s (``benchmarks/RESULTS.md``).

The posterior keeps both sites: ``run_z`` and ``run_offset`` (the offsets themselves, in
log loss, a deterministic site).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array

__all__ = ["RUN_TAU", "RUN_PINNED_ROWS", "RUN_SITE", "sample_run_offsets", "mass_block",
           "mass_matrix"]

#: Scale of the half-normal prior on the run-to-run offset in log loss (``tau_run``):
#: runs that differ only in seed differ by about 0.5-2% in final loss (e.g. the seeds of
#: Biderman et al. 2023, Pythia), so 0.05 leaves room for recipe differences too.
RUN_TAU = 0.05
#: Runs with at least this many rows count as checkpoint curves (their rows pin the offset);
#: when the median run is one, NUTS defaults to slope coordinates and a target acceptance
#: of 0.9 (:func:`bayescale.estimators.nuts.sample_posterior`).
RUN_PINNED_ROWS = 3
#: The sampled site of the offsets (standard normal; ``run_offset`` is the offset itself).
RUN_SITE = "run_z"


def sample_run_offsets(run: Array, num_runs: int, resid: Array | None = None,
                       row_precision: Array | float = 1.0, mask=None) -> Array:
    """Sample ``tau_run`` and the offsets of ``num_runs`` runs; returns the offset of every
    row (``offset[run]``), in log loss.

    ``run``: each row's run index, below ``num_runs`` (runs beyond the data pad the count to
    a size bucket and touch no row). ``resid``: each row's observed log loss minus the
    law's (what centres the offsets; None where there are no data, e.g. a prior
    predictive: then every offset is ``tau_run z_r``). ``row_precision``: one row's Fisher
    information about its location. ``mask``: the rows that count (padding rows are
    False). Sites: ``tau_run``, ``run_z`` (plate ``training_runs``), the factor
    ``run_offset_prior`` and the deterministic ``run_offset``; see the module docstring."""
    tau_run = numpyro.sample("tau_run", dist.HalfNormal(RUN_TAU))
    if resid is None:
        m = jnp.zeros(num_runs, dtype=jnp.result_type(tau_run))
        s = jnp.broadcast_to(tau_run, (num_runs,))
    else:
        resid = jnp.asarray(resid)
        w = (jnp.ones(resid.shape[0], resid.dtype) if mask is None
             else jnp.asarray(mask, resid.dtype))
        # one scatter: rows per run and their residuals' sum (a padding row adds 0 to both)
        sums = jnp.zeros((num_runs, 2), resid.dtype).at[run].add(
            jnp.stack([w, jnp.where(w > 0, resid, 0.0)], axis=-1))
        precision = sums[:, 0] * row_precision + 1.0 / tau_run**2
        s = jax.lax.rsqrt(precision)
        m = sums[:, 1] * row_precision / precision
    with numpyro.plate("training_runs", num_runs):
        z = numpyro.sample(RUN_SITE, dist.Normal(0.0, 1.0))
    offset = m + s * z
    # the offsets' own prior and the change of variables' Jacobian, less z's N(0, 1)
    numpyro.factor("run_offset_prior", jnp.sum(
        dist.Normal(0.0, tau_run).log_prob(offset) + jnp.log(s) - dist.Normal(0.0, 1.0).log_prob(z)))
    numpyro.deterministic("run_offset", offset)
    return offset[run]


def mass_block(model, *args, **kwargs) -> tuple[str, ...]:
    """The sites of the dense block of a model with run offsets: every latent site of
    ``model(*args, **kwargs)`` but :data:`RUN_SITE`, sorted (an abstract trace: nothing runs
    or compiles)."""
    from numpyro import handlers
    from numpyro.infer import init_to_uniform

    def latent(*args):  # (improper priors cannot be sampled: substitute a value)
        trace = handlers.trace(handlers.substitute(handlers.seed(model, 0),
                                                   substitute_fn=init_to_uniform)).get_trace(
            *args, **kwargs)
        return {name: site["value"] for name, site in trace.items()
                if site["type"] == "sample" and not site["is_observed"]}

    return tuple(sorted(name for name in jax.eval_shape(latent, *args) if name != RUN_SITE))


def mass_matrix(model, init_strategy, block: tuple[str, ...], *args, **kwargs) -> dict:
    """NUTS's ``inverse_mass_matrix`` for a model with run offsets, ``{block: matrix}`` (with
    ``dense_mass=[block]``, ``block`` from :func:`mass_block`): one dense block over every
    latent site but :data:`RUN_SITE` (the law's coordinates, ``sigma``,
    ``nu``, ``tau_run``), started at the inverse Hessian of the potential over that block
    at the initial point (``init_strategy``; ``|eigenvalues|`` where it is not positive
    definite). The ``run_z`` are left out of the dict: NumPyro gives the sites outside
    ``dense_mass``'s blocks one diagonal, started at 1 (they are nearly independent
    standard normals; see the module docstring).

    Both matter for time. A dense matrix over all ~250 sites must be learned from warmup
    draws (``misfitting_checkpoints``: 1023 leapfrog steps per draw after 200 warmup
    steps, 150 after 1000). And NumPyro starts from the identity, under which the first
    100 warmup iterations took 500-1000 leapfrog steps each (beta's posterior sd is 0.002,
    the ``z_r``'s 1): 100,000 of the 124,000 steps of a whole warmup. Traces
    ``model(*args, **kwargs)`` (also under ``jit``)."""
    from numpyro import handlers
    from numpyro.infer.util import potential_energy, unconstrain_fn

    # the initial point, unconstrained (NumPyro's initialize_model would also search for a
    # valid point in a loop of gradients: twice the compile, for a start the program checks)
    trace = handlers.trace(handlers.substitute(handlers.seed(model, 0),
                                               substitute_fn=init_strategy)).get_trace(*args,
                                                                                       **kwargs)
    z = unconstrain_fn(model, args, kwargs, {
        name: site["value"] for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]})
    x = jnp.stack([jnp.reshape(z[name], ()) for name in block])

    def potential(v):
        return potential_energy(model, args, kwargs,
                                {**z, **{name: v[i] for i, name in enumerate(block)}})

    # column by column (a loop of one forward-over-reverse product): compiles in half the
    # time of jax.hessian's batched one
    grad = jax.grad(potential)
    H = jax.lax.map(lambda e: jax.jvp(grad, (x,), (e,))[1], jnp.eye(len(block), dtype=x.dtype))
    w, V = jnp.linalg.eigh(0.5 * (H + H.T))
    w = jnp.abs(w)
    # condition number at most 1e6, so that NumPyro's Cholesky of it holds in float32
    # (misfitting_checkpoints: 3e4)
    w = jnp.maximum(w, 1e-6 * jnp.max(w))
    inverse = (V / w[None, :]) @ V.T
    inverse = 0.5 * (inverse + inverse.T)
    ok = jnp.all(jnp.isfinite(jnp.linalg.cholesky(inverse))) & (jnp.max(w) > 0)
    inverse = jnp.where(ok, inverse, jnp.eye(len(block), dtype=inverse.dtype))
    return {block: inverse}
