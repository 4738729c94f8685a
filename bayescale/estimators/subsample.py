"""Subsampling NUTS for many rows: energy-conserving subsampling HMC (HMCECS).

Full-data NUTS costs O(n) per leapfrog step (checkpoint dumps of 200,000 rows: ~12 min
on 2 cores). HMCECS (Dang et al. 2019; NumPyro's :class:`~numpyro.infer.HMCECS`) runs
NUTS on the posterior with the full-data log-likelihood replaced by an unbiased
estimate from ``m`` rows per step: a second-order Taylor expansion of every row's
log-likelihood about a reference point (summed over all rows once, in closed form)
plus the subsample's correction to it (the difference estimator), with the subsample
indices refreshed between NUTS steps by a Metropolis-within-Gibbs step on one of
``num_blocks`` blocks (a correlated pseudo-marginal update, so the estimate's noise
does not make the chains stick). The estimate's variance grows like ``n^2 / m`` times
the proxy's error, which grows with the cube of the distance to the reference: the
reference must be within a few posterior sds of the mode, and so must the chains'
starting points (started ``0.3`` away in unconstrained space, as full-data NUTS is,
the prototype ``benchmarks/bench_rows_ecs.py`` failed at 200,000 rows: R-hat 3.4,
subsample acceptance 0.50).

So a subsampled fit (:func:`bayescale.estimators.nuts.sample_posterior` with
``subsample``):

1. takes the Huber grid fit (:func:`bayescale.estimators.huber.fit_huber`) mapped to the
   model's sites, ``sigma`` the likelihood's maximum-likelihood scale at it
   (:func:`huber_reference`);
2. moves it to the posterior mode of the full data with a few damped Newton steps in
   NumPyro's unconstrained space (float64, all rows) and takes the exact Hessian there:
   the Laplace approximation (:func:`laplace_start`); the mode is the Taylor reference;
3. starts each chain from ``N(mode, (2 sd)^2)`` of that approximation (over-dispersed, so
   R-hat still compares chains from different places) and runs HMCECS-NUTS, all chains in
   one ``jit`` program (:func:`ecs_program`).

The program runs in float64 (whatever the caller's dtype; the draws come back in it):
the estimate multiplies every row's log-likelihood by about ``n / m``, and a row's
float32 rounding (~2e-7 of a value of a few nats, much of it shared by all rows) then
becomes ~0.25 nats of noise at a million rows that changes from one leapfrog step to
the next. NUTS answers it with tiny steps: at a million rows after 150 warmup steps,
422 leapfrog steps per draw in float32 against 60 in float64, 121 s against 14 s; at
200,000 rows 63 either way, and float64 was faster on 2 CPU cores (15 s against 20 s),
since the ``m`` rows of a step are few (``benchmarks/RESULTS.md``).

What is given up: the pointwise log-likelihood is not recorded (it would be
``chains * draws * n`` values), so a subsampled fit's InferenceData has no
``log_likelihood`` group and ``arviz.loo`` cannot take it; law comparison and stacking
use :func:`bayescale.estimators.loo.psis_loo` instead, PSIS-LOO from the draws on a
subsample of rows (Magnusson et al. 2019). Run effects (a ``run`` column with repeated runs) are not subsampled:
asked for explicitly that is an error, and ``"auto"`` leaves such data to full NUTS.

References
----------
K.-D. Dang, M. Quiroz, R. Kohn, M.-N. Tran, M. Villani, "Hamiltonian Monte Carlo with
Energy Conserving Subsampling", JMLR 20 (2019) 1-31.
M. Quiroz, R. Kohn, M. Villani, M.-N. Tran, "Speeding Up MCMC by Efficient Data
Subsampling", JASA 114 (2019) 831-843.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.errors import BayescaleError, ConvergenceError, ConvergenceWarning
from bayescale.estimators import model as models
from bayescale.estimators._nuts_setup import huber_sites
from bayescale.estimators.padding import bucket_size, pad_rows

__all__ = ["AUTO_ROWS", "AUTO_SIZE", "MIN_ACCEPT", "subsample_rows", "num_blocks",
           "huber_reference", "laplace_start", "program_args", "as_dtype", "ecs_program", "describe",
           "check_accept"]

#: ``subsample="auto"`` subsamples from this many rows on (full NUTS below: ~37 s of
#: sampling at 10,000 rows, linear in rows).
AUTO_ROWS = 50_000
#: The subsample size ``"auto"`` takes (200,000 rows: ~60 s of sampling, R-hat <= 1.005).
AUTO_SIZE = 1000
#: Rows per block of the subsample's Gibbs update (NumPyro's Taylor proxy takes per-row
#: Hessians of a block by ``jacrev``, O(block^2) per step).
BLOCK_ROWS = 100
#: Below this mean acceptance of the subsample updates the chains mix poorly: warned.
MIN_ACCEPT = 0.9
#: Initial points: the Laplace approximation's sd times this.
INIT_SCALE = 2.0
_NEWTON_STEPS = 8


def subsample_rows(subsample: Any, n: int, *, run_effects: bool) -> int:
    """The subsample size ``m`` for ``n`` rows, 0 for full-data NUTS.

    ``"auto"``: :data:`AUTO_SIZE` from :data:`AUTO_ROWS` rows on, without run effects;
    ``None`` or 0: off; an integer ``2 <= m < n``: that size.
    """
    if subsample is None:
        return 0
    if isinstance(subsample, str):
        if subsample != "auto":
            raise BayescaleError(f"subsample must be 'auto', None or an integer number of "
                                 f"rows, got {subsample!r}.")
        return AUTO_SIZE if n >= AUTO_ROWS and not run_effects else 0
    if isinstance(subsample, bool) or not isinstance(subsample, (int, np.integer)):
        raise BayescaleError(f"subsample must be 'auto', None or an integer number of rows, "
                             f"got {subsample!r}.")
    m = int(subsample)
    if m == 0:
        return 0
    if not 2 <= m < n:
        raise BayescaleError(f"subsample must be between 2 and the number of rows less one "
                             f"({n - 1}), or 0/None for all rows; got {m}.")
    if run_effects:
        raise BayescaleError(
            "subsampling (subsample=...) does not support run effects yet: these runs have a "
            "'run' column with several rows per run. Fit all rows (subsample=None), or load "
            "the runs without run_column= to treat the rows as independent.")
    return m


def num_blocks(m: int) -> int:
    """Blocks of the subsample's Gibbs update: about ``m / BLOCK_ROWS``, dividing ``m``."""
    k = max(1, m // BLOCK_ROWS)
    while m % k:
        k -= 1
    return k


def huber_reference(law, log_X: np.ndarray, y: np.ndarray, centre, likelihood: str,
                    ) -> dict[str, float]:
    """The Huber grid fit mapped to the model's sampled sites, with ``sigma`` the
    maximum-likelihood scale of ``likelihood`` given the fit's residuals."""
    from scipy import optimize, stats

    values, resid = huber_sites(law, log_X, y, centre)
    scale = float(max(np.sqrt(np.mean(resid ** 2)), 1e-4))
    if likelihood == "student_t":
        nll = lambda s: -stats.t.logpdf(resid, models.DEFAULT_NU, scale=math.exp(s)).sum()  # noqa: E731
        scale = math.exp(optimize.minimize_scalar(
            nll, bounds=(math.log(scale) - 5, math.log(scale) + 1), method="bounded").x)
    values["sigma"] = scale * models.HUBER_DELTA if likelihood == "huber" else scale
    return values


#: The Laplace step's compiled potential (value and gradient, Hessian), per model, static
#: model arguments and sites; the rows are arguments, so a size in the same bucket reuses it.
#: The :data:`_POTENTIALS_MAX` most recently used are kept.
_POTENTIALS: OrderedDict = OrderedDict()
_POTENTIALS_MAX = 8


def _potential_programs(model, model_kwargs: Mapping[str, Any], priors, z: Mapping[str, Any],
                        unravel):
    """Jitted ``(value_and_grad, hessian)`` of the potential at a flat point ``f``, taking
    the rows as arguments: ``fn(f, log_X, y, mask, centre, E_max)``. ``priors`` are the
    user's (the default priors are built from the traced ``E_max``, as in the NUTS
    program); one pair per model, law, likelihood, coordinates, priors and sites (their
    shapes and dtypes); priors that cannot be keyed (see ``_nuts_setup.priors_key``) compile
    every call. No run effects (they are not subsampled)."""
    from numpyro.infer.util import potential_energy

    from bayescale.estimators._nuts_setup import UNKEYABLE, priors_key

    if model_kwargs.get("num_runs"):
        raise BayescaleError("the Laplace step of a subsampled fit takes no run effects.")
    static = dict(priors=priors, law=model_kwargs["law"], likelihood=model_kwargs["likelihood"],
                  slope_coords=model_kwargs.get("slope_coords", False), subsample_size=None,
                  record_log_likelihood=False)
    pkey = priors_key(priors)
    key = None if pkey is UNKEYABLE else (
        model, static["law"], static["likelihood"], static["slope_coords"], pkey,
        tuple((k, np.shape(v), str(jnp.result_type(v))) for k, v in z.items()))
    if key is not None and key in _POTENTIALS:
        _POTENTIALS.move_to_end(key)
        return _POTENTIALS[key]

    def potential(f, log_X, y, mask, centre, E_max):
        kw = dict(static, mask=mask, E_max=E_max,
                  centre=tuple(centre[i] for i in range(centre.shape[0])))
        return potential_energy(model, (log_X, y), kw, unravel(f))

    programs = jax.jit(jax.value_and_grad(potential)), jax.jit(jax.hessian(potential))
    if key is not None:
        _POTENTIALS[key] = programs
        while len(_POTENTIALS) > _POTENTIALS_MAX:
            _POTENTIALS.popitem(last=False)
    return programs


def laplace_start(model, log_X: np.ndarray, y: np.ndarray, model_kwargs: Mapping[str, Any],
                  start: Mapping[str, float], *, chains: int, seed: int, dtype,
                  priors: Mapping[str, Any] | None = None, mask: np.ndarray | None = None,
                  ) -> tuple[dict, dict, dict]:
    """The mode of the full-data posterior near ``start`` and each chain's initial point.

    In NumPyro's unconstrained space, float64, all rows: up to eight Newton steps from
    ``start`` with its exact Hessian (each halved until the potential decreases), then the
    exact Hessian ``H`` at the point reached. Returns ``(reference, inits, info)``: the
    mode's sampled sites, per-site arrays of ``chains`` initial points drawn from
    ``N(mode, INIT_SCALE^2 H^-1)`` (both in ``dtype``) and what happened (Newton steps, the
    Hessian's smallest eigenvalue, seconds). ``priors``: the user's overrides behind
    ``model_kwargs["priors"]`` (the resolved priors, which the program rebuilds from them
    and the traced ``E_max``; checked to agree site by site). The rows are padded
    to their size bucket (masked out of the likelihood), so that data of another size in
    the same bucket reuse the compiled potential; ``mask`` (the real rows) says ``log_X``
    and ``y`` are padded already (:func:`program_args` pads once for both).
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_value
    from numpyro.infer.util import initialize_model

    t0 = time.perf_counter()
    rebuilt = models.resolve_priors(priors, E_max=float(model_kwargs["E_max"]),
                                    likelihood=model_kwargs["likelihood"], law=model_kwargs["law"])
    given = model_kwargs["priors"]
    if {k: type(v) for k, v in rebuilt.items()} != {k: type(v) for k, v in given.items()}:
        raise BayescaleError("laplace_start: priors= must be the user's overrides behind "
                             "model_kwargs['priors'] (resolve_priors(priors) differs from it).")
    X_pad, y_pad, mask = (pad_rows(bucket_size(len(y)), log_X, y) if mask is None
                          else (log_X, y, mask))
    with jax.enable_x64(True):
        args = (jnp.asarray(X_pad, jnp.float64), jnp.asarray(y_pad, jnp.float64))
        data = (jnp.asarray(mask), jnp.asarray(model_kwargs["centre"], jnp.float64),
                jnp.asarray(model_kwargs["E_max"], jnp.float64))
        kw = dict(model_kwargs, subsample_size=None, record_log_likelihood=False,
                  E_max=data[2], mask=data[0])
        init = initialize_model(jax.random.PRNGKey(seed), model, model_args=args,
                                model_kwargs=kw, init_strategy=init_to_value(values=dict(start)))
        x, unravel = ravel_pytree(init.param_info.z)
        vg, hess = _potential_programs(model, model_kwargs, priors, init.param_info.z, unravel)

        def value_grad(f):
            return vg(jnp.asarray(f, jnp.float64), *args, *data)

        def hessian(f):
            return hess(jnp.asarray(f, jnp.float64), *args, *data)

        def inverse_factor(H):
            # not positive definite (far from the mode): |eigenvalues|, not a blow-up
            w, V = np.linalg.eigh(0.5 * (H + H.T))
            return w, V / np.sqrt(np.maximum(np.abs(w), 1e-8 * max(np.abs(w).max(), 1e-300)))

        w, L = inverse_factor(np.asarray(hessian(x)))
        steps = 0
        for _ in range(_NEWTON_STEPS):
            u, g = (np.asarray(v) for v in value_grad(x))
            if not (w.min() > 0 and np.all(np.isfinite(g))):
                break
            step = L @ (L.T @ g)  # H^-1 g
            t = 1.0
            while t > 1e-3 and not float(value_grad(x - t * step)[0]) < u:
                t /= 2
            if t <= 1e-3:
                break
            x, steps = x - t * step, steps + 1
            if float(g @ step) < 1e-6:  # the Newton decrement: at the mode
                break
        if steps:
            w, L = inverse_factor(np.asarray(hessian(x)))
        post = init.postprocess_fn
        sites = list(init.param_info.z)
        reference = {k: jnp.asarray(np.asarray(post(unravel(x))[k]), dtype) for k in sites}
        rng = np.random.default_rng(seed)
        draws = [post(unravel(x + INIT_SCALE * L @ rng.standard_normal(x.size)))
                 for _ in range(chains)]
        inits = {k: jnp.asarray(np.stack([np.asarray(d[k]) for d in draws]), dtype)
                 for k in sites}
    info = {"newton_steps": steps, "hessian_min_eig": float(w.min()),
            "seconds": time.perf_counter() - t0}
    return reference, inits, info


def program_args(model, rng_key, log_X: np.ndarray, y: np.ndarray,
                 model_kwargs: Mapping[str, Any], start: Mapping[str, float], *, chains: int,
                 seed: int, dtype, priors: Mapping[str, Any] | None = None,
                 ) -> tuple[tuple, dict]:
    """The traced arguments of :func:`ecs_program` (the rows padded to a size bucket with a
    mask, the chains' initial points and the Taylor reference from :func:`laplace_start`)
    and :func:`laplace_start`'s info (``priors``: the user's). The padding
    (:mod:`bayescale.estimators.padding`, at most a quarter of the rows) lets another
    dataset of a size in the same bucket reuse the compiled program; the subsample is drawn
    from all ``bucket`` rows, padded ones adding 0, so the estimate of the real rows'
    log-likelihood stays unbiased."""
    X_pad, y_pad, mask = pad_rows(bucket_size(len(y)), log_X, y)
    reference, inits, info = laplace_start(model, X_pad, y_pad, model_kwargs, start,
                                           chains=chains, seed=seed, dtype=dtype, priors=priors,
                                           mask=mask)
    args = (rng_key, jnp.asarray(X_pad, dtype), jnp.asarray(y_pad, dtype),
            jnp.asarray(model_kwargs["centre"], dtype), jnp.asarray(model_kwargs["E_max"], dtype),
            inits, reference, jnp.asarray(mask))
    return args, info


def ecs_program(settings, priors: Mapping[str, Any] | None, extra_fields: tuple[str, ...]):
    """The function traced into one program (as ``nuts_program`` for full-data NUTS):
    HMCECS-NUTS for all chains from the traced ``(rng_key, log_X, y, centre, E_max, inits,
    reference, mask)`` (``mask``: the real rows of the padded ``log_X``, ``y``), chain ``c``
    starting at ``inits[site][c]``. ``settings`` (the NUTS
    program's, with ``subsample`` and ``num_blocks``) and ``priors`` are static. The
    sampler statistics come back under their full-data names (``extra_fields``) plus
    ``subsample_accept``."""
    from numpyro.infer import HMCECS, MCMC, NUTS, init_to_value

    fields = tuple(f"hmc_state.{f}" for f in extra_fields) + ("accept_prob",)

    def run_all(rng_key, log_X, y, centre, E_max, inits, reference, mask):
        def one_chain(key_init):
            key, init = key_init
            inner = NUTS(models.law_model, target_accept_prob=settings.target_accept,
                         dense_mass=settings.dense_mass, max_tree_depth=settings.max_tree_depth,
                         init_strategy=init_to_value(values=init))
            kernel = HMCECS(inner, num_blocks=settings.num_blocks,
                            proxy=HMCECS.taylor_proxy(reference))
            mcmc = MCMC(kernel, num_warmup=settings.warmup, num_samples=settings.draws,
                        num_chains=1, progress_bar=False)
            mcmc.run(key, log_X, y, extra_fields=fields, priors=priors, law=settings.law,
                     likelihood=settings.likelihood,
                     centre=tuple(centre[i] for i in range(len(settings.law.inputs))),
                     E_max=E_max, subsample_size=settings.subsample,
                     slope_coords=settings.slope_coords, mask=mask)
            got = mcmc.get_extra_fields()
            stats = {f: got[f"hmc_state.{f}"] for f in extra_fields}
            stats["subsample_accept"] = got["accept_prob"]
            return mcmc.get_samples(), stats

        keys = (jax.random.split(rng_key, settings.chains), inits)
        if settings.method == "sequential":
            return jax.lax.map(one_chain, keys)
        return jax.vmap(one_chain)(keys)

    return run_all


def as_dtype(tree, dtype):
    """``tree``'s floating arrays in ``dtype`` and its integer arrays in the default
    integer type: the float64 program's draws and statistics, for a caller without x64."""
    integer = jnp.int64 if jnp.dtype(dtype) == jnp.float64 else jnp.int32

    def cast(v):
        v = jnp.asarray(v)
        if jnp.issubdtype(v.dtype, jnp.floating):
            return v.astype(dtype)
        return v.astype(integer) if jnp.issubdtype(v.dtype, jnp.integer) else v

    return jax.tree.map(cast, tree)


def describe(m: int, stats: Mapping[str, Any], laplace: Mapping[str, Any],
             huber_seconds: float, *, rows: int) -> dict:
    """``info["subsample"]`` of a subsampled fit of ``rows`` rows (``laplace``:
    :func:`laplace_start`'s info; the seconds of the Huber fit and of the Laplace step are
    part of ``info["timing"]``'s total, the latter of its ``sampling`` less its compiles).
    ``padded_to``: the bucket the rows were padded to; the ``m`` rows of a step are drawn
    from all of it, so on average ``m * rows / padded_to`` (at least 0.8 m) are real."""
    accept = float(np.mean(np.asarray(stats["subsample_accept"])))
    return {"m": m, "num_blocks": num_blocks(m), "subsample_accept": accept,
            "padded_to": bucket_size(int(rows)),
            "min_accept": MIN_ACCEPT, "reference": "Huber fit, Newton steps to the mode",
            "dtype": "float64",
            "huber_seconds": huber_seconds, "laplace": dict(laplace),
            "log_likelihood": "not recorded (LOO: bayescale.estimators.loo.psis_loo)"}


def check_accept(info: Mapping[str, Any], *, strict: bool = False, stacklevel: int = 1) -> None:
    """Warn (``strict``: raise) when the subsample updates' mean acceptance is below
    :data:`MIN_ACCEPT`: the likelihood estimate is noisy (the reference far from the
    mode, or ``m`` too small) and the chains stick."""
    accept = info["subsample_accept"]
    if accept >= MIN_ACCEPT:
        return
    message = (f"subsampled NUTS (HMCECS, m = {info['m']}): the subsample updates were "
               f"accepted {accept:.2f} of the time (< {MIN_ACCEPT}); the chains may mix poorly. "
               f"Try a larger subsample (subsample=...) or all rows (subsample=None).")
    if strict:
        raise ConvergenceError(message)
    warnings.warn(ConvergenceWarning(message), stacklevel=stacklevel + 1)
