"""NUTS for :mod:`bayescale.estimators.model`: runs -> :class:`Posterior` (draws, InferenceData, diagnostics).

Without a progress bar the whole NUTS run of all chains (initialisation, warmup,
draws) is traced into one ``jit`` program, so that a fit is one XLA compile, or one
read of JAX's persistent compilation cache. The data, their centre, ``E_max`` (the
bound of the default prior on E) and the initial point are arguments of that program,
not constants in it, and the compiled program is kept in memory keyed by the static
settings (chains, warmup, draws, chain method, likelihood, mass matrix, tree depth,
target acceptance, the priors) and the data's size: a second fit in the same process
with the same settings on data of the same size, whatever the values, neither traces
nor compiles again (the program and its cache: :mod:`bayescale.estimators._nuts_program`;
the initial point and the cache keys: :mod:`bayescale.estimators._nuts_setup`). Priors
that cannot be described exactly by a hashable key are compiled into a fresh program on
every call. With a progress bar, or ``pmap`` chains, NumPyro drives and compiles its own
loop (every call). Chains run in parallel (``pmap``) when there are at least as many
devices as chains, else one after another on a CPU and vectorised on an accelerator
(``chain_method="auto"``). From 50,000 rows on NUTS runs on subsamples of the rows
(HMCECS, Dang et al. 2019: :mod:`bayescale.estimators.subsample`).

References
----------
M. D. Hoffman, A. Gelman, "The No-U-Turn Sampler", JMLR 15 (2014).
K.-D. Dang et al., "Hamiltonian Monte Carlo with Energy Conserving Subsampling", JMLR 20 (2019).
A. Vehtari et al., "Rank-normalization, folding, and localization: an improved
R-hat", Bayesian Analysis 16 (2021).
"""

from __future__ import annotations

import math
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.estimators import model as models
from bayescale.estimators import subsample as ecs
from bayescale.estimators.run_offsets import RUN_SITE
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError
from bayescale.estimators._nuts_setup import (  # noqa: F401  (tests inspect the cache keys)
    CHAIN_METHODS, resolve_chain_method, INIT_RADIUS, UNKEYABLE, args_signature, checked_sites,
    init_near, initial_values, priors_key, slope_coords_apply, slope_init, run_effects,
    check_int, CHECKPOINT_TARGET_ACCEPT, DEFAULT_TARGET_ACCEPT, RETRY_TARGET_ACCEPT,
    RETRY_WARMUP,
)
from bayescale.estimators._nuts_program import (
    EXTRA_FIELDS, CompileClock, Settings, import_arviz_in_background, mass_settings, mass_start,
    run_as_one_program, run_subsampled,
)
from bayescale.estimators.idata import load_idata, save_idata, to_inference_data  # noqa: F401
from bayescale.estimators.padding import bucket_size, pad_rows

if TYPE_CHECKING:  # diagnostics comes after inference in the layering (STYLE.md section 1)
    from bayescale.estimators.diagnostics import Diagnostics

__all__ = ["Posterior", "sample_posterior", "save_idata", "load_idata", "CHAIN_METHODS"]

class Posterior(NamedTuple):
    """The result of :func:`sample_posterior`.

    Attributes
    ----------
    params : the law's parameters (e.g. :class:`~bayescale.laws.chinchilla.LawParams`) of
        NumPy arrays of shape
        ``(chains * draws,)``, chain-major.
    idata : ``arviz.InferenceData`` with groups posterior, sample_stats,
        observed_data, log_likelihood (so ``arviz.loo`` works) and, when asked,
        posterior_predictive.
    diagnostics : :class:`~bayescale.estimators.diagnostics.Diagnostics`.
    info : settings, priors (as text), the centre, and ``timing`` in seconds.
    """

    params: Any
    idata: Any
    diagnostics: "Diagnostics"
    info: dict


# The compiled NUTS programs and the mass-matrix start programs of run offsets
# (_nuts_program.mass_start), the most recently used last (see run_as_one_program).
_PROGRAMS: "OrderedDict[tuple, Any]" = OrderedDict()  # key -> compiled NUTS program
_PROGRAMS_MAX = 8


def sample_posterior(
    runs: Runs,
    *,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    likelihood: str = "student_t",
    priors: Mapping[str, Any] | None = None,
    target_accept: float | None = None,
    chain_method: str = "auto",
    progress: bool | None = None,
    strict: bool = False,
    posterior_predictive: bool = False,
    dense_mass: bool = True,
    max_tree_depth: int = 10,
    law: Any = "chinchilla",
    retry: bool = True,
    slope_coords: bool | None = None,
    subsample: int | str | None = "auto",
    _stacklevel: int = 2,
    _start: tuple[dict, float] | None = None,
) -> Posterior:
    """Sample the posterior of the law's parameters with NUTS.

    Parameters
    ----------
    runs : :class:`~bayescale.data.runs.Runs`
    seed : random seed (initial jitter and NUTS).
    chains, warmup, draws : number of chains, warmup (adaptation) iterations and
        kept draws per chain.
    likelihood : ``"student_t"`` (default), ``"normal"`` or ``"huber"``; see
        :func:`bayescale.estimators.model.scaling_law_model`.
    priors : overrides of :func:`bayescale.estimators.model.default_priors`, keyed by
        ``E, log_A, log_B, alpha, beta, sigma, nu``.
    target_accept : NUTS target acceptance probability, in (0, 1). ``None`` (default):
        0.8, or 0.9 when the median run is a checkpoint curve of 3 rows or more (where
        0.8 tends to leave a few divergences for the retry).
    chain_method : ``"auto"`` (``"parallel"`` when there are at least ``chains``
        devices, else ``"sequential"`` on CPU and ``"vectorized"`` on an accelerator),
        ``"vectorized"``, ``"parallel"`` or ``"sequential"``.
    progress : show a progress bar; default only when stderr is a terminal.
    strict : raise :class:`~bayescale.errors.ConvergenceError` instead of warning
        when the diagnostics fail.
    posterior_predictive : also draw predictive log losses at the runs
        (``idata.posterior_predictive["log_loss"]``).
    dense_mass : adapt a dense mass matrix (default; the law's parameters are correlated;
        with run offsets, dense over the law and diagonal over the offsets).
    max_tree_depth : NUTS maximum tree depth.
    law : the law to fit (a name or a :class:`~bayescale.laws.base.Law`; default
        Chinchilla). Laws other than Chinchilla start NUTS from their Huber grid fit.
    retry : when the diagnostics fail for the sampler's sake (divergences or R-hat,
        not only a low ESS) in a run long enough to pass them (``chains * draws`` at
        least the ESS threshold), sample once more with ``target_accept = 0.95``
        and ``warmup = max(2 warmup, 2000)`` (smaller steps and a longer adaptation:
        what weakly identified posteriors such as a flat (B, beta) ridge need) and, for
        the Chinchilla law under the default priors on E, alpha and log A, in slope
        coordinates (``slope_coords``), and keep the second attempt; ``info["retry"]``
        records the first attempt's settings and diagnostics and what changed. Default
        on; skipped when ``target_accept`` is already >= 0.95 and there is nothing else
        to change.
    slope_coords : sample the Chinchilla law's E, alpha and log A in slope coordinates
        (:func:`bayescale.estimators.slope_coords.slope_to_natural`; the same posterior): for a
        weakly identified E, where E, alpha and A slide along a curved ridge (a law that
        does not fit the runs well, e.g. the Chinchilla law on Muennighoff et al.'s
        repeated-data runs); on a well identified posterior they take about twice the
        leapfrog steps of the default coordinates. Needs the default priors on E, alpha
        and log_A. The automatic retry turns them on. ``None`` (default): on where
        allowed for fits whose median run is a checkpoint curve (see
        ``Runs with a run column`` below), off otherwise.
    subsample : HMCECS, NUTS on ``m`` rows per step (:mod:`bayescale.estimators.subsample`):
        ``"auto"`` (default) ``m = 1000`` from 50,000 rows on (unless the runs have run
        effects), an integer ``m``, or ``None``/0 for all rows. Chains start from a Laplace
        approximation at the posterior mode; no pointwise log-likelihood (LOO:
        :func:`bayescale.estimators.loo.psis_loo`); ``info["subsample"]`` records ``m``,
        ``num_blocks`` and ``subsample_accept`` (and ``huber_seconds``, the first
        attempt's on a retry, which reuses that fit).

    Runs with a ``run`` column (checkpoints of training runs, ``load_runs(...,
    run_column=...)``) get a per-run offset in log loss (see
    :func:`bayescale.estimators.model.law_model`): the checkpoints of one run are not
    independent evidence; ``info["run_effects"]`` counts the runs, the rows and the
    ``pinned_runs`` (``run_offsets.RUN_PINNED_ROWS`` rows or more). Posterior site
    ``run_offset``: one per run in the order of the sorted run labels (sampled as ``run_z``:
    :mod:`bayescale.estimators.run_offsets`). Runs of one row each add nothing (None).

    Returns
    -------
    Posterior
        ``info["timing"]`` holds ``compile`` (wall seconds JAX spent tracing,
        lowering and XLA-compiling, or reading the persistent compilation cache,
        during the whole fit), ``sampling`` (the rest of the NUTS run: warmup and
        draws), ``postprocess`` (log-likelihood, predictive draws, InferenceData,
        diagnostics, less their compile time) and ``total``.

    Raises
    ------
    BayescaleError
        Bad arguments (before anything is compiled).
    ConvergenceError
        ``strict=True`` and R-hat > 1.01 (checked with >= 2 chains), bulk ESS < 400
        or a divergence.

    Warns
    -----
    ConvergenceWarning
        When the diagnostics fail and ``strict`` is false.
    """
    t_start = time.perf_counter()
    if not isinstance(runs, Runs):
        raise BayescaleError(f"runs must be bayescale.data.runs.Runs (see bayescale.load_runs), "
                             f"got {type(runs).__name__}.")
    seed = check_int("seed", seed, 0)
    chains = check_int("chains", chains, 1)
    warmup = check_int("warmup", warmup, 1)
    draws = check_int("draws", draws, 1)
    max_tree_depth = check_int("max_tree_depth", max_tree_depth, 1)
    models.check_likelihood(likelihood)
    if target_accept is not None:
        target_accept = float(target_accept)
        if not 0.0 < target_accept < 1.0:
            raise BayescaleError(f"target_accept must be in (0, 1), e.g. 0.8, got "
                                 f"{target_accept}.")
    method = resolve_chain_method(chain_method, chains)
    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    from bayescale.laws.registry import get_law

    law = get_law(law)
    if "U" in law.inputs and getattr(runs, "U", None) is None:
        raise BayescaleError(f"the {law.name} law needs the unique tokens of every run: add a "
                             f"'U' (or 'unique_tokens') column.")
    # the prior bound on E: the median loss, so that one low outlier cannot cap E
    E_max = float(np.median(runs.loss))
    user_priors = dict(priors or {})
    resolved = models.resolve_priors(user_priors, E_max=E_max, likelihood=likelihood,
                                     law=law)  # validates, before compiling
    user_priors = {k: resolved[k] for k in user_priors}  # e.g. a fixed nu as a float
    can_slope = slope_coords_apply(law, user_priors)
    if slope_coords and not can_slope:
        raise BayescaleError("slope_coords=True needs the Chinchilla law with the default "
                             "priors on E, alpha and log_A.")

    from numpyro.infer import MCMC, NUTS

    dtype = jnp.result_type(float)  # float32 unless the user enabled x64
    y_np = runs.log_loss
    log_X_np = np.column_stack([runs.log_N, runs.log_D]
                               + ([np.log(np.asarray(runs.U, dtype=float))]
                                  if "U" in law.inputs else []))
    centre = models.data_centre(*log_X_np.T)
    log_X, y = (jnp.asarray(v, dtype=dtype) for v in (log_X_np, y_np))
    # Checkpoints of training runs (a run column): one offset per run, the runs padded to
    # a size bucket too (the padded runs' offsets touch no row).
    run_idx, num_runs, real_runs, pinned_runs = run_effects(runs, bucket_size)
    typical = run_idx is not None and 2 * pinned_runs >= real_runs  # median run: 3+ rows
    # the offsets take each run's level, so E is left to the curvature alone: its ridge
    # with alpha and A (misfitting's checkpoints: bulk ESS 5 in 200 draws, 100 in slope
    # coordinates)
    slope_coords = bool(can_slope and typical if slope_coords is None else slope_coords)
    if target_accept is None:
        target_accept = CHECKPOINT_TARGET_ACCEPT if typical else DEFAULT_TARGET_ACCEPT
    m = ecs.subsample_rows(subsample, len(runs), run_effects=run_idx is not None)
    if _start is None:  # a retry is given the first attempt's (start values, seconds)
        t_ref = time.perf_counter()
        _start = ((ecs.huber_reference if m else initial_values)(law, log_X_np, y_np, centre,
                                                                  likelihood),
                  time.perf_counter() - t_ref)
    init_values, t_ref = dict(_start[0]), _start[1]
    # slope coordinates (slope_coords.slope_to_natural): the ridge a misfit leaves made straight
    if slope_coords:
        init_values = slope_init(init_values, E_max)
    model_kwargs = dict(priors=resolved, likelihood=likelihood, centre=centre, E_max=E_max,
                        law=law, run=None if run_idx is None else jnp.asarray(run_idx),
                        num_runs=num_runs, slope_coords=slope_coords)
    rng_key = jax.random.PRNGKey(seed)
    if m:  # one program: no progress bar, no pmap
        progress, method = False, "vectorized" if method == "parallel" else method
    settings = Settings(likelihood=likelihood, law=law, chains=chains, warmup=warmup, draws=draws,
                         method=method, dense_mass=bool(dense_mass),
                         max_tree_depth=max_tree_depth, target_accept=target_accept,
                         num_runs=num_runs, slope_coords=slope_coords, subsample=m,
                         num_blocks=ecs.num_blocks(m) if m else 0)
    with CompileClock() as clock_run:
        t0 = time.perf_counter()
        if progress or method == "parallel":
            # A progress bar steps the sampler from Python, and pmap places the chains
            # itself: let NumPyro drive (it jits its sampling loop on its own).
            import_arviz_in_background()
            start = mass_start(settings, user_priors or None, (
                log_X, y, jnp.asarray(centre, dtype=dtype), jnp.asarray(E_max, dtype=dtype),
                {k: jnp.asarray(v, dtype=dtype) for k, v in init_values.items()}, None,
                model_kwargs["run"]), cache=_PROGRAMS, max_size=_PROGRAMS_MAX)
            dense, inverse = mass_settings(settings, start, log_X, y, model_kwargs)
            kernel = NUTS(models.law_model, target_accept_prob=target_accept,
                          dense_mass=dense, inverse_mass_matrix=inverse,
                          max_tree_depth=max_tree_depth,
                          init_strategy=init_near(values=init_values, radius=INIT_RADIUS,
                                                   check=checked_sites(user_priors, law)))
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                        chain_method=method, progress_bar=progress)
            mcmc.run(rng_key, log_X, y, extra_fields=EXTRA_FIELDS,
                     record_log_likelihood=True, **model_kwargs)
            samples = mcmc.get_samples(group_by_chain=True)
            stats = mcmc.get_extra_fields(group_by_chain=True)
        else:
            # Data-dependent values are arguments of the program, not constants in it,
            # and the runs are padded to a size bucket (masked out of the likelihood), so
            # data of another size in the same bucket reuse the compiled program.
            n = y_np.shape[0]
            if m:  # HMCECS from the Laplace approximation at the mode, padded, in float64
                samples, stats, laplace = run_subsampled(
                    settings, user_priors or None, rng_key, log_X_np, y_np, model_kwargs,
                    init_values, seed=seed, dtype=dtype, cache=_PROGRAMS, max_size=_PROGRAMS_MAX)
            else:
                X_pad, y_pad, mask = pad_rows(bucket_size(n), log_X_np, y_np)
                traced = (rng_key, jnp.asarray(X_pad, dtype=dtype), jnp.asarray(y_pad, dtype=dtype),
                          jnp.asarray(centre, dtype=dtype), jnp.asarray(E_max, dtype=dtype),
                          {k: jnp.asarray(v, dtype=dtype) for k, v in init_values.items()},
                          jnp.asarray(mask),
                          jnp.asarray(np.pad(np.zeros(n, int) if run_idx is None else run_idx,
                                             (0, X_pad.shape[0] - n))))
                traced += (mass_start(settings, user_priors or None, traced[1:],
                                      cache=_PROGRAMS, max_size=_PROGRAMS_MAX),)
                samples, stats = run_as_one_program(settings, user_priors or None, traced,
                                                    cache=_PROGRAMS, max_size=_PROGRAMS_MAX)
                samples["log_lik"] = samples["log_lik"][..., :n]
        samples, stats = jax.block_until_ready((samples, stats))
        t_run = time.perf_counter() - t0
    with CompileClock() as clock_post:
        t0 = time.perf_counter()
        from numpyro.infer import Predictive

        loglik = samples.pop("log_lik", None)
        predictive = None
        if posterior_predictive:
            pred = Predictive(models.law_model, posterior_samples=samples, batch_ndims=2,
                              return_sites=["log_loss"])
            predictive = pred(jax.random.fold_in(rng_key, 1), log_X, None, run_reference=y,
                              **model_kwargs)["log_loss"]
        if run_idx is not None:  # the offsets of the runs padding the bucket are not data
            for site in ("run_offset", RUN_SITE):
                samples[site] = samples[site][..., :real_runs]
        idata = to_inference_data(samples, stats, loglik, predictive, y_np, runs, law)
        from bayescale.estimators import diagnostics as _diagnostics  # lazy: later in the layering

        diagnostics = _diagnostics.compute_diagnostics(
            idata, exclude=_diagnostics.not_diagnosed(law))
        t_post = time.perf_counter() - t0

    flat = {k: np.asarray(v).reshape(-1) for k, v in samples.items()}
    params = law.params_type(*(flat[k].astype(float) for k in law.param_names))
    num_steps = np.asarray(stats["num_steps"])
    info = {
        "likelihood": likelihood,
        "law": law.name,
        "chains": chains,
        "warmup": warmup,
        "draws": draws,
        "seed": seed,
        "target_accept": target_accept,
        "chain_method": method,
        "dense_mass": bool(dense_mass),
        "slope_coords": slope_coords,
        "dtype": str(np.dtype(dtype)),
        "device": jax.devices()[0].platform,
        "centre": dict(zip((f"log_{i}0" for i in law.inputs), centre)),
        "priors": models.describe_priors(resolved),
        "leapfrog_per_draw": float(num_steps.mean()),
        "run_effects": (None if run_idx is None else {
            "runs": real_runs, "rows": int(len(runs)),
            "pinned_runs": pinned_runs,
            "tau_run_median": float(np.median(np.asarray(samples["tau_run"])))}),
        "timing": {
            "compile": clock_run.seconds + clock_post.seconds,
            "sampling": max(t_run - clock_run.seconds, 0.0),
            "postprocess": max(t_post - clock_post.seconds, 0.0),
            "total": time.perf_counter() - t_start,
        },
    }
    # HMCECS's size, blocks, acceptance and bucket
    info["subsample"] = ecs.describe(m, stats, laplace, t_ref, rows=len(runs)) if m else None
    geometry = diagnostics.divergences > 0 or (math.isfinite(diagnostics.rhat_max)
                                               and diagnostics.rhat_max > _diagnostics.RHAT_MAX)
    to_slope = can_slope and not slope_coords
    if (not diagnostics.ok and retry and geometry
            and (target_accept < RETRY_TARGET_ACCEPT or to_slope)
            and chains * draws >= _diagnostics.ESS_BULK_MIN):
        changes = {"target_accept": max(target_accept, RETRY_TARGET_ACCEPT),
                   "warmup": max(2 * warmup, RETRY_WARMUP),
                   "slope_coords": slope_coords or to_slope}
        second = sample_posterior(
            runs, seed=seed, chains=chains, draws=draws, likelihood=likelihood, priors=priors,
            chain_method=chain_method, progress=progress, strict=strict,
            posterior_predictive=posterior_predictive, dense_mass=dense_mass,
            max_tree_depth=max_tree_depth, law=law, retry=False, subsample=subsample,
            _stacklevel=_stacklevel + 1, _start=_start, **changes)
        second.info["retry"] = {
            "reason": "the first attempt failed the diagnostics",
            "first_attempt": {"target_accept": target_accept, "warmup": warmup,
                              "slope_coords": slope_coords, **diagnostics.to_dict()},
            "changed": changes,
        }
        second.info["timing"]["total"] = time.perf_counter() - t_start
        return second
    _diagnostics.check(diagnostics, strict=strict, stacklevel=_stacklevel,
                       likelihood=likelihood)
    if m:
        ecs.check_accept(info["subsample"], strict=strict, stacklevel=_stacklevel)
    return Posterior(params=params, idata=idata, diagnostics=diagnostics, info=info)
