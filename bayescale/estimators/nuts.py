"""NUTS for :mod:`bayescale.estimators.model`: runs -> :class:`Posterior` (draws, InferenceData, diagnostics).

Without a progress bar the whole NUTS run of all chains (initialisation, warmup,
draws) is traced into one ``jit`` program, so that a fit is one XLA compile, or one
read of JAX's persistent compilation cache. The data, their centre, ``E_max`` (the
bound of the default prior on E) and the initial point are arguments of that program,
not constants in it, and the compiled program is kept in memory keyed by the static
settings (chains, warmup, draws, chain method, likelihood, mass matrix, tree depth,
target acceptance, the priors) and the data's size: a second fit in the same process
with the same settings on data of the same size, whatever the values, neither traces
nor compiles again. Priors that cannot be described exactly by a hashable key (a
distribution class from outside NumPyro, or non-array parameters) are compiled into
a fresh program on every call. With a progress bar, or ``pmap`` chains, NumPyro
drives and compiles its own loop (every call). Chains run in parallel (``pmap``) when
there are at least as many devices as chains, else one after another on a CPU and
vectorised on an accelerator (``chain_method="auto"``); the code is the same on CPU
and GPU.

References
----------
M. D. Hoffman, A. Gelman, "The No-U-Turn Sampler", JMLR 15 (2014).
A. Vehtari et al., "Rank-normalization, folding, and localization: an improved
R-hat", Bayesian Analysis 16 (2021).
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.estimators import model as models
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError
from bayescale.estimators._nuts_setup import (  # noqa: F401  (tests inspect the cache keys)
    _INIT_RADIUS,
    _UNKEYABLE,
    _args_signature,
    _checked_sites,
    _init_near,
    _initial_values,
    _priors_key,
)
from bayescale.estimators.idata import load_idata, save_idata, to_inference_data  # noqa: F401

# ArviZ 0.2x announces its 1.x refactor with a multi-line FutureWarning on import (once a
# day per user cache); it is about ArviZ's future API, which a bayescale user neither calls
# nor can act on. Filter exactly that message, here where ArviZ is imported (also in the
# background thread below; a filter set at import time is thread-safe, catch_warnings is not).
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor",
                        category=FutureWarning, module="arviz")

if TYPE_CHECKING:  # diagnostics comes after inference in the layering (STYLE.md section 1)
    from bayescale.estimators.diagnostics import Diagnostics

__all__ = ["Posterior", "sample_posterior", "save_idata", "load_idata", "CHAIN_METHODS"]

CHAIN_METHODS = ("auto", "vectorized", "parallel", "sequential")
_COMPILE_EVENTS = frozenset({
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
})


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


class _CompileClock:
    """Wall time JAX spends tracing, lowering and compiling (XLA, or a persistent-cache
    read), as the union of the time spans JAX reports through ``jax.monitoring``."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def _listen(self, event: str, start: float, end: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            self.spans.append((start, end))

    def __enter__(self) -> "_CompileClock":
        jax.monitoring.register_event_time_span_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._listen)

    @property
    def seconds(self) -> float:
        total, current_end = 0.0, -math.inf
        for start, end in sorted(self.spans):
            if end <= current_end:
                continue
            total += end - max(start, current_end)
            current_end = end
        return total


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BayescaleError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _chain_method(chain_method: str, chains: int) -> str:
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








def _import_arviz_in_background() -> None:
    # ArviZ (with xarray) takes ~1 s to import; XLA releases the GIL while it compiles
    # and runs NUTS, so import it meanwhile. A failed import here is retried (and raised) by the
    # main thread's own import, under Python's import lock.
    if "arviz" not in sys.modules:
        threading.Thread(target=_quiet_import, args=("arviz",), daemon=True).start()


def _quiet_import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - re-raised by the main thread's import
        pass


class _Settings(NamedTuple):
    """The static (compile-time) settings of a NUTS program; hashable."""

    likelihood: str
    law: Any
    chains: int
    warmup: int
    draws: int
    method: str
    dense_mass: bool
    max_tree_depth: int
    target_accept: float


# The automatic second attempt when the diagnostics fail (issue 9: on a published
# 199-run sweep with a weakly identified (B, beta), the defaults gave R-hat 1.13 and 281
# divergences while target_accept=0.95 with 2000 warmup steps passed).
RETRY_TARGET_ACCEPT = 0.95
RETRY_WARMUP = 2000

_EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size",
                 "potential_energy")
_PROGRAMS: "OrderedDict[tuple, Any]" = OrderedDict()  # key -> compiled NUTS program
_PROGRAMS_MAX = 8










def _nuts_program(settings: _Settings, priors: Mapping[str, Any] | None):
    """The function traced into one program: NUTS for all chains, from the traced
    ``(rng_key, log_X, y, centre, E_max, init_values)``; ``settings`` and the
    user's ``priors`` (default priors are built from the traced ``E_max``) are static.
    """
    from numpyro.infer import MCMC, NUTS

    check = _checked_sites(priors, settings.law)

    def run_all(rng_key, log_X, y, centre, E_max, init_values):
        kernel = NUTS(models.law_model, target_accept_prob=settings.target_accept,
                      dense_mass=settings.dense_mass, max_tree_depth=settings.max_tree_depth,
                      init_strategy=_init_near(values=init_values, radius=_INIT_RADIUS,
                                               check=check))

        def one_chain(key):
            mcmc = MCMC(kernel, num_warmup=settings.warmup, num_samples=settings.draws,
                        num_chains=1, progress_bar=False)
            mcmc.run(key, log_X, y, extra_fields=_EXTRA_FIELDS,
                     record_log_likelihood=True, priors=priors, law=settings.law,
                     likelihood=settings.likelihood,
                     centre=tuple(centre[i] for i in range(len(settings.law.inputs))),
                     E_max=E_max)
            return mcmc.get_samples(), mcmc.get_extra_fields()

        keys = jax.random.split(rng_key, settings.chains)
        if settings.method == "sequential":
            return jax.lax.map(one_chain, keys)
        return jax.vmap(one_chain)(keys)

    return run_all


def _run_as_one_program(settings: _Settings, priors: Mapping[str, Any] | None, args: tuple):
    """NUTS for all chains (initialisation, warmup, draws) as one ``jit`` program.

    Each chain is NumPyro's single-chain ``MCMC.run``, traced once and mapped over the
    chains' keys: ``lax.map`` for ``"sequential"`` (one chain after another in a
    loop: the program holds one chain, so tracing and compiling cost as much as for
    one chain) or ``vmap`` for ``"vectorized"`` (chains in lock step, for
    accelerators; batching NUTS's loops costs about 1 s more tracing on CPU). Run
    eagerly instead, NumPyro's initialisation dispatches some 200 small programs,
    each compiled or read from the persistent cache on its own, and its
    ``"sequential"`` method traces the chains one by one into one program.
    The chain keys are ``random.split(rng_key, chains)``, as NumPyro's.

    The compiled program is kept (the last ``_PROGRAMS_MAX``) under ``settings``, the
    priors' key and the shapes and dtypes of ``args``; unkeyable priors compile
    every call. ArviZ is imported while XLA compiles and runs the program (which
    releases the GIL; tracing does not).

    Returns samples and extra fields with leading axes ``(chain, draw)``.
    """
    pkey = _priors_key(priors)
    key = None
    if pkey is not _UNKEYABLE:
        key = (settings, pkey, _args_signature(args), jax.default_backend(),
               str(jax.config.jax_default_device), bool(jax.config.jax_enable_x64))
    compiled = _PROGRAMS.get(key) if key is not None else None
    if compiled is None:
        lowered = jax.jit(_nuts_program(settings, priors)).lower(*args)
        _import_arviz_in_background()
        compiled = lowered.compile()
        if key is not None:
            _PROGRAMS[key] = compiled
            while len(_PROGRAMS) > _PROGRAMS_MAX:
                _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
        _import_arviz_in_background()
    return compiled(*args)


def sample_posterior(
    runs: Runs,
    *,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    likelihood: str = "student_t",
    priors: Mapping[str, Any] | None = None,
    target_accept: float = 0.8,
    chain_method: str = "auto",
    progress: bool | None = None,
    strict: bool = False,
    posterior_predictive: bool = False,
    dense_mass: bool = True,
    max_tree_depth: int = 10,
    law: Any = "chinchilla",
    retry: bool = True,
    _stacklevel: int = 2,
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
    target_accept : NUTS target acceptance probability, in (0, 1).
    chain_method : ``"auto"`` (``"parallel"`` when there are at least ``chains``
        devices, else ``"sequential"`` on CPU and ``"vectorized"`` on an accelerator),
        ``"vectorized"``, ``"parallel"`` or ``"sequential"``.
    progress : show a progress bar; default only when stderr is a terminal.
    strict : raise :class:`~bayescale.errors.ConvergenceError` instead of warning
        when the diagnostics fail.
    posterior_predictive : also draw predictive log losses at the runs
        (``idata.posterior_predictive["log_loss"]``).
    dense_mass : adapt a dense mass matrix (default; the 6 parameters are correlated).
    max_tree_depth : NUTS maximum tree depth.
    law : the law to fit (a name or a :class:`~bayescale.laws.base.Law`; default
        Chinchilla). Laws other than Chinchilla start NUTS from their Huber grid fit.
    retry : when the diagnostics fail for the sampler's sake (divergences or R-hat,
        not only a low ESS) in a run long enough to pass them (``chains * draws`` at
        least the ESS threshold), sample once more with ``target_accept = 0.95``
        and ``warmup = max(2 warmup, 2000)`` (smaller steps and a longer adaptation:
        what weakly identified posteriors such as a flat (B, beta) ridge need), and
        keep the second attempt; ``info["retry"]`` records the first attempt's
        diagnostics. Default on; skipped when ``target_accept`` is already >= 0.95.

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
    seed = _check_int("seed", seed, 0)
    chains = _check_int("chains", chains, 1)
    warmup = _check_int("warmup", warmup, 1)
    draws = _check_int("draws", draws, 1)
    max_tree_depth = _check_int("max_tree_depth", max_tree_depth, 1)
    models.check_likelihood(likelihood)
    target_accept = float(target_accept)
    if not 0.0 < target_accept < 1.0:
        raise BayescaleError(f"target_accept must be in (0, 1), e.g. 0.8, got {target_accept}.")
    method = _chain_method(chain_method, chains)
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

    from numpyro.infer import MCMC, NUTS

    dtype = jnp.result_type(float)  # float32 unless the user enabled x64
    y_np = runs.log_loss
    log_X_np = np.column_stack([runs.log_N, runs.log_D]
                               + ([np.log(np.asarray(runs.U, dtype=float))]
                                  if "U" in law.inputs else []))
    centre = models.data_centre(*log_X_np.T)
    log_X, y = (jnp.asarray(v, dtype=dtype) for v in (log_X_np, y_np))
    init_values = _initial_values(law, log_X_np, y_np, centre, likelihood)
    model_kwargs = dict(priors=resolved, likelihood=likelihood, centre=centre, E_max=E_max,
                        law=law)
    rng_key = jax.random.PRNGKey(seed)
    settings = _Settings(likelihood=likelihood, law=law, chains=chains, warmup=warmup, draws=draws,
                         method=method, dense_mass=bool(dense_mass),
                         max_tree_depth=max_tree_depth, target_accept=target_accept)
    with _CompileClock() as clock_run:
        t0 = time.perf_counter()
        if progress or method == "parallel":
            # A progress bar steps the sampler from Python, and pmap places the chains
            # itself: let NumPyro drive (it jits its sampling loop on its own).
            _import_arviz_in_background()
            kernel = NUTS(models.law_model, target_accept_prob=target_accept,
                          dense_mass=dense_mass, max_tree_depth=max_tree_depth,
                          init_strategy=_init_near(values=init_values, radius=_INIT_RADIUS,
                                                   check=_checked_sites(user_priors, law)))
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                        chain_method=method, progress_bar=progress)
            mcmc.run(rng_key, log_X, y, extra_fields=_EXTRA_FIELDS,
                     record_log_likelihood=True, **model_kwargs)
            samples = mcmc.get_samples(group_by_chain=True)
            stats = mcmc.get_extra_fields(group_by_chain=True)
        else:
            # data-dependent values are arguments of the program, not constants in it
            traced = (rng_key, log_X, y, jnp.asarray(centre, dtype=dtype),
                      jnp.asarray(E_max, dtype=dtype),
                      {k: jnp.asarray(v, dtype=dtype) for k, v in init_values.items()})
            samples, stats = _run_as_one_program(settings, user_priors or None, traced)
        samples, stats = jax.block_until_ready((samples, stats))
        t_run = time.perf_counter() - t0
    with _CompileClock() as clock_post:
        t0 = time.perf_counter()
        from numpyro.infer import Predictive

        loglik = samples.pop("log_lik")
        predictive = None
        if posterior_predictive:
            pred = Predictive(models.law_model, posterior_samples=samples, batch_ndims=2,
                              return_sites=["log_loss"])
            predictive = pred(jax.random.fold_in(rng_key, 1), log_X, None,
                              **model_kwargs)["log_loss"]
        idata = to_inference_data(samples, stats, loglik, predictive, y_np, runs, law)
        from bayescale.estimators import diagnostics as _diagnostics  # lazy: later in the layering

        diagnostics = _diagnostics.compute_diagnostics(
            idata, exclude=tuple(f"{coord}_c" for coord, _, _ in law.shears))
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
        "dtype": str(np.dtype(dtype)),
        "device": jax.devices()[0].platform,
        "centre": dict(zip((f"log_{i}0" for i in law.inputs), centre)),
        "priors": models.describe_priors(resolved),
        "leapfrog_per_draw": float(num_steps.mean()),
        "timing": {
            "compile": clock_run.seconds + clock_post.seconds,
            "sampling": max(t_run - clock_run.seconds, 0.0),
            "postprocess": max(t_post - clock_post.seconds, 0.0),
            "total": time.perf_counter() - t_start,
        },
    }
    geometry = diagnostics.divergences > 0 or (math.isfinite(diagnostics.rhat_max)
                                               and diagnostics.rhat_max > _diagnostics.RHAT_MAX)
    if (not diagnostics.ok and retry and geometry and target_accept < RETRY_TARGET_ACCEPT
            and chains * draws >= _diagnostics.ESS_BULK_MIN):
        second = sample_posterior(
            runs, seed=seed, chains=chains, warmup=max(2 * warmup, RETRY_WARMUP), draws=draws,
            likelihood=likelihood, priors=priors, target_accept=RETRY_TARGET_ACCEPT,
            chain_method=chain_method, progress=progress, strict=strict,
            posterior_predictive=posterior_predictive, dense_mass=dense_mass,
            max_tree_depth=max_tree_depth, law=law, retry=False, _stacklevel=_stacklevel + 1)
        second.info["retry"] = {
            "reason": "the first attempt failed the diagnostics",
            "first_attempt": {"target_accept": target_accept, "warmup": warmup,
                              **diagnostics.to_dict()},
        }
        second.info["timing"]["total"] = time.perf_counter() - t_start
        return second
    _diagnostics.check(diagnostics, strict=strict, stacklevel=_stacklevel,
                       likelihood=likelihood)
    return Posterior(params=params, idata=idata, diagnostics=diagnostics, info=info)








