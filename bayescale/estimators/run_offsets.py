"""Per-run offsets: the checkpoints of one training run share its luck.

Rows that are checkpoints of the same training run (a ``run`` column) are not independent
evidence: the seed, the data order and the recipe move all of a run's losses together.
The model (:func:`bayescale.estimators.model.law_model`) gives every run ``r`` an offset
in log loss, ``Normal(0, tau_run)`` with ``tau_run ~ HalfNormal(RUN_TAU)``.

How NUTS samples the offsets matters more than usual here (Betancourt & Girolami 2015,
"Hamiltonian Monte Carlo for hierarchical models", arXiv:1312.0906). A run with many rows
pins its offset to about ``sigma / sqrt(rows)``, far inside ``tau_run`` (checkpoints:
sigma 0.2-1% of the loss, tau_run 1-6%): sampled non-centred, as ``tau_run * z_r``, the
``z_r`` and ``tau_run`` then lie on a narrow ridge (``misfitting_checkpoints``: tree depth
10, 1023 leapfrog steps per draw, at step size 0.009), while centred, as the offset itself,
they are nearly independent. A run of one or two rows (which a Student-t likelihood may
also call an outlier) is the opposite case. :func:`sample_run_offsets` therefore centres
each run with :data:`RUN_CENTRED_ROWS` rows or more and leaves the others non-centred, in
one site.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array

__all__ = ["RUN_TAU", "RUN_CENTRED_ROWS", "sample_run_offsets"]

#: Scale of the half-normal prior on the run-to-run offset in log loss (``tau_run``):
#: runs that differ only in seed differ by about 0.5-2% in final loss (e.g. the seeds of
#: Biderman et al. 2023, Pythia), so 0.05 leaves room for recipe differences too.
RUN_TAU = 0.05
#: Runs with at least this many rows get centred offsets.
RUN_CENTRED_ROWS = 3


def sample_run_offsets(run: Array, num_runs: int, mask=None) -> Array:
    """Sample ``tau_run`` and the offsets of ``num_runs`` runs; returns the offset of every
    row (``offset[run]``), in log loss.

    ``run``: each row's run index, below ``num_runs`` (runs beyond the data pad the count to
    a size bucket and touch no row). ``mask``: the rows that count (padding rows are False).
    One site, ``run_offset``: the offset itself (``Normal(0, tau_run)``) for the runs with
    :data:`RUN_CENTRED_ROWS` rows or more, ``z_r ~ Normal(0, 1)`` with offset ``tau_run z_r``
    for the rest (and the padding). Where no run has that many rows this is the plain
    non-centred model."""
    tau_run = numpyro.sample("tau_run", dist.HalfNormal(RUN_TAU))
    with numpyro.plate("training_runs", num_runs):
        rows = jnp.zeros(num_runs).at[run].add(1.0 if mask is None else jnp.asarray(mask, float))
        pinned = rows >= RUN_CENTRED_ROWS
        raw = numpyro.sample("run_offset", dist.Normal(0.0, jnp.where(pinned, tau_run, 1.0)))
    return jnp.where(pinned, raw, tau_run * raw)[run]
