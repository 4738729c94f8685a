"""Setting NUTS up (private to :mod:`bayescale.estimators.nuts`): the chain method, the
data-driven initial point, the init strategy that jitters it per chain, and the keys under
which compiled NUTS programs are cached, the first attempt's target acceptance and the
automatic retry's settings, and the integer checks of the arguments."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution

from bayescale.estimators import model as models
from bayescale.errors import BayescaleError
from bayescale.estimators import slope_coords
from bayescale.estimators.run_offsets import RUN_PINNED_ROWS, RUN_SITE

INIT_RADIUS = 0.3  # jitter of the initial point per chain, in unconstrained space
CHAIN_METHODS = ("auto", "vectorized", "parallel", "sequential")


def resolve_chain_method(chain_method: str, chains: int) -> str:
    if chain_method not in CHAIN_METHODS:
        raise BayescaleError(f"unknown chain_method {chain_method!r}; choose one of "
                             f"{', '.join(CHAIN_METHODS)}.")
    if chain_method == "auto":
        if chains > 1 and jax.local_device_count() >= chains:
            return "parallel"
        # One CPU core runs a NUTS chain as fast alone as batched with the others, and
        # the unbatched program traces and compiles several times faster; an
        # accelerator wants the chains batched.
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"
    if chain_method == "parallel" and jax.local_device_count() < chains:
        raise BayescaleError(
            f"chain_method='parallel' needs at least {chains} devices, found "
            f"{jax.local_device_count()}; use 'vectorized' (or 'auto'), or on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={chains} before importing jax.")
    return chain_method


def run_effects(runs, bucket) -> tuple[np.ndarray | None, int, int, int]:
    """``(run index per row or None, number of run offsets (padded by bucket), number of
    real runs, how many of them have run_offsets.RUN_PINNED_ROWS rows or more)`` for runs
    with a ``run`` column (checkpoint curves, whose rows pin their offsets).

    Runs that are one row each (a run column of distinct ids, e.g. steplaw's run names)
    get no offsets: an offset per row is the observation noise again, and the two scales
    would form a funnel (steplaw: E-BFMI 0.06, R-hat 1.12 on sigma)."""
    if getattr(runs, "run", None) is None:
        return None, 0, 0, 0
    labels, idx, counts = np.unique(np.asarray(runs.run).astype(str), return_inverse=True,
                                    return_counts=True)
    if labels.shape[0] == len(runs):
        return None, 0, 0, 0
    return (idx, bucket(labels.shape[0]), int(labels.shape[0]),
            int(np.sum(counts >= RUN_PINNED_ROWS)))


def huber_sites(law, log_X: np.ndarray, y: np.ndarray, centre) -> tuple[dict, np.ndarray]:
    """The Huber grid fit of ``law`` (:func:`bayescale.estimators.huber.fit_huber`) mapped
    to the model's sampled sites (no ``sigma``), and its residuals in log loss."""
    from bayescale.estimators.huber import fit_huber
    from bayescale.laws.base import log_loss_theta

    log_U = log_X[:, 2] if log_X.shape[1] > 2 else None
    res = fit_huber(log_X[:, 0], log_X[:, 1], y, law=law, log_U=log_U)
    theta = np.array([res.info["theta"][c] for c in law.coords])
    with jax.enable_x64(True):
        resid = y - np.asarray(log_loss_theta(law, jnp.asarray(theta), jnp.asarray(log_X)))
    return models.sample_sites(law, theta, centre), resid


def initial_values(law, log_X: np.ndarray, y: np.ndarray, centre,
                    likelihood: str) -> dict[str, float]:
    """A data-driven starting point for NUTS.

    Chinchilla: a cheap heuristic (E just below the smallest loss, exponents 0.3, the
    two reducible terms splitting the loss at the centre, from a linear fit of log loss
    on centred log N, log D; sigma from that fit's residuals). Other laws: the Huber
    grid fit of the law (:func:`bayescale.estimators.huber.fit_huber`), mapped to the
    model's sampled sites, with sigma from its residuals.
    """
    if law is not models.CHINCHILLA:
        values, resid = huber_sites(law, log_X, y, centre)
        scale = float(max(np.std(resid), 1e-3))
        values["sigma"] = scale * models.HUBER_DELTA if likelihood == "huber" else scale
        return values
    log_N, log_D = log_X[:, 0], log_X[:, 1]
    E_max = float(np.exp(np.min(y)))
    X = np.column_stack([np.ones_like(log_N), log_N - centre[0], log_D - centre[1]])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    E0 = 0.85 * E_max
    reducible = max(math.exp(coef[0]) - E0, 0.1 * E0)
    scale = float(max(np.std(resid), 1e-3))
    sigma0 = scale * models.HUBER_DELTA if likelihood == "huber" else scale
    return {"E": E0, "alpha": 0.3, "beta": 0.3, "a_c": math.log(reducible / 2),
            "b_c": math.log(reducible / 2), "sigma": sigma0}


def slope_coords_apply(law, priors: Mapping[str, Any]) -> bool:
    """Whether NUTS samples ``law`` in slope coordinates under ``priors`` (the user's): the
    Chinchilla law with the default priors on E, alpha and log A."""
    return law is models.CHINCHILLA and not {"E", "alpha", "log_A"} & set(priors or {})


def slope_init(values: dict[str, float], E_max: float) -> dict[str, float]:
    """The initial point in slope coordinates (E, alpha and a_c replaced)."""
    values = dict(values)
    z = slope_coords.natural_to_slope(values.pop("E"), values.pop("alpha"), values.pop("a_c"),
                                      E_max, models.EXPONENT_MAX)
    return {**values, **dict(zip(slope_coords.SLOPE_SITES, z))}


def _site_priors(law) -> dict[str, str]:
    """The prior key that bounds each sampled site (e.g. a_c: the centred log A)."""
    sheared = {coord for coord, _, _ in law.shears}
    out = {"sigma": "sigma"}
    for coord in law.coords:
        key = law.prior_key(coord)
        if coord in sheared:
            out[f"{coord}_c"] = key
        elif law.priors[coord].kind == "log_uniform_below_loss":
            out[key] = key
        else:
            out[coord] = key
    return out


def init_near(site=None, *, values: Mapping[str, float], radius: float,
               check: frozenset = frozenset()):
    """Init strategy: ``values`` jittered by ``Uniform(-radius, radius)`` in
    unconstrained space (each chain its own jitter); other sites: the prior median.

    For the sites in ``check`` (those with a user prior, which may exclude the
    heuristic value) a value outside the prior's support falls back to the prior
    median. The default priors always contain the heuristic values, and leaving the
    fallback out of the program for them saves XLA compile time when ``values`` are
    traced (it cannot be folded away as with constants).
    """
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import init_to_median

    if site is None:
        return partial(init_near, values=values, radius=radius, check=check)
    if site["type"] == "sample" and not site["is_observed"] and site["name"] in values:
        transform = biject_to(site["fn"].support)
        value = jnp.asarray(values[site["name"]], dtype=jnp.result_type(float))
        rng_key = site["kwargs"].get("rng_key")
        sample_shape = site["kwargs"].get("sample_shape", ())
        jitter = jax.random.uniform(rng_key, sample_shape, minval=-radius, maxval=radius)
        near = transform(transform.inv(value) + jitter)
        if site["name"] not in check:
            return near
        # a user prior may exclude the heuristic value: fall back to the prior median
        return jnp.where(site["fn"].support(value), near, init_to_median(site))
    if site["type"] == "sample" and site["name"] == RUN_SITE:
        # every run's offset starts at its mean residual from the law (z = 0): a jitter of
        # the size of the other sites' would put them many times their spread away
        return jnp.zeros(site["fn"].shape(), dtype=jnp.result_type(float))
    return init_to_median(site)


UNKEYABLE = object()


def priors_key(priors: Mapping[str, Any] | None):
    """A hashable key that determines the user's ``priors`` exactly, or ``UNKEYABLE``.

    A distribution is described by its pytree structure (classes, static fields) and
    the bytes of its parameters; that is exact for NumPyro's own classes (which
    declare their fields for ``jit``/``vmap``), so only they are keyed: any other
    class (a user's ``Distribution`` subclass may keep state outside its pytree)
    makes the fit compile its own program.
    """
    if not priors:
        return ()
    items = []
    for name in sorted(priors):
        value = priors[name]
        if not isinstance(value, Distribution):  # a fixed nu (resolve_priors made it a float)
            try:
                items.append((name, "fixed", float(value)))
                continue
            except (TypeError, ValueError):
                return UNKEYABLE
        try:
            leaves, treedef = jax.tree_util.tree_flatten(value)
            hash(treedef)
        except Exception:  # noqa: BLE001 - anything unusual: compile per call
            return UNKEYABLE
        if not all(t in (tuple, list, dict, type(None)) or t.__module__.startswith("numpyro.")
                   for t in _node_types(treedef)):
            return UNKEYABLE
        described = []
        for leaf in leaves:
            if isinstance(leaf, jax.core.Tracer):
                return UNKEYABLE
            try:
                a = np.asarray(leaf)
            except Exception:  # noqa: BLE001
                return UNKEYABLE
            if a.dtype.kind not in "biuf":
                return UNKEYABLE
            described.append((a.dtype.str, a.shape, a.tobytes()))
        items.append((name, treedef, tuple(described)))
    return tuple(items)


def _node_types(treedef):
    data = treedef.node_data()
    if data is not None:
        yield data[0]
    for child in treedef.children():
        yield from _node_types(child)


def args_signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return treedef, tuple((np.shape(x), str(jnp.result_type(x))) for x in leaves)


def checked_sites(priors: Mapping[str, Any] | None, law) -> frozenset:
    """Initialised sites whose prior the user gave (see :func:`init_near`)."""
    return frozenset(site for site, key in _site_priors(law).items() if key in (priors or {}))


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BayescaleError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


# The automatic second attempt when the diagnostics fail (issue 9: on a published
# 199-run sweep with a weakly identified (B, beta), the defaults gave R-hat 1.13 and 281
# divergences while target_accept=0.95 with 2000 warmup steps passed; the Chinchilla law on
# data_constrained kept 2 divergences that way, at 0.99 too, and passes in slope coordinates).
RETRY_TARGET_ACCEPT = 0.95
RETRY_WARMUP = 2000
# The first attempt's target acceptance: NumPyro's 0.8, and 0.9 when the median run is a
# checkpoint curve (run_offsets.RUN_PINNED_ROWS rows). misfitting_checkpoints (4,843 rows, 240
# runs), with the offsets of before: at 0.8 the first attempt kept 4 divergences and the
# retry passed (1025 s in all), at 0.9 one attempt passed (405 s). With the conditional
# offsets (run_offsets) 0.8 and 0.9 both passed at seeds 0 and 1 with the same 31 leapfrog
# steps per draw; 0.9 stays, at no cost. benchmarks/RESULTS.md.
DEFAULT_TARGET_ACCEPT = 0.8
CHECKPOINT_TARGET_ACCEPT = 0.9
