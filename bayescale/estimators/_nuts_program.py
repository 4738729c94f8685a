"""One NUTS program per fit (private to :mod:`bayescale.estimators.nuts`): the static
settings, the program traced into one ``jit``, its compile-once cache, and the clock of
the time JAX spends compiling.

Without a progress bar the whole NUTS run of all chains (initialisation, warmup,
draws) is traced into one ``jit`` program (:func:`nuts_program`), so that a fit is one
XLA compile, or one read of JAX's persistent compilation cache. The data, their centre,
``E_max`` and the initial point are arguments of that program, not constants in it;
:func:`run_as_one_program` keeps the compiled program keyed by the static
:class:`Settings`, the priors' key and the data's size, so a second fit with the same
settings on data of the same size bucket (the runs are padded and masked,
:mod:`bayescale.estimators.padding`) neither traces nor compiles again. ArviZ is imported
in a background thread while XLA compiles and runs (:func:`import_arviz_in_background`);
:class:`CompileClock` measures the compile time reported in a fit's ``info["timing"]``.

References
----------
M. D. Hoffman, A. Gelman, "The No-U-Turn Sampler", JMLR 15 (2014).
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from bayescale.estimators import model as models
from bayescale.estimators import subsample
from bayescale.estimators._nuts_setup import (
    INIT_RADIUS,
    UNKEYABLE,
    args_signature,
    checked_sites,
    init_near,
    priors_key,
)
from bayescale.estimators.run_offsets import mass_block, mass_matrix

__all__ = ["Settings", "EXTRA_FIELDS", "CompileClock", "import_arviz_in_background",
           "mass_settings", "mass_start", "nuts_program", "run_as_one_program", "run_subsampled"]

# ArviZ 0.2x announces its 1.x refactor with a multi-line FutureWarning on import (once a
# day per user cache); it is about ArviZ's future API, which a bayescale user neither calls
# nor can act on. Filter exactly that message, here where ArviZ is imported (in the
# background thread below; a filter set at import time is thread-safe, catch_warnings is not).
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor",
                        category=FutureWarning, module="arviz")


_COMPILE_EVENTS = frozenset({
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
})

#: Data of at least this many rows (padded) with run offsets start NUTS's mass matrix at the
#: inverse Hessian (:func:`mass_start`). misfitting_checkpoints (4,843 rows): one chain's
#: warmup took 43,224 leapfrog steps instead of 123,749. On smaller data the steps are cheap
#: and the start's compile (8-9 s) costs about what it saves: 200 checkpoints of 20 runs,
#: default settings, 2 cores: sampling 8-10 s with it (its compile not counted) and 16-17 s
#: without. (The progress-bar path compares the unpadded rows.)
HESSIAN_START_ROWS = 1024

#: The sampler statistics recorded per draw (``sample_stats`` of the InferenceData).
EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size",
                "potential_energy")


class CompileClock:
    """Wall time JAX spends tracing, lowering and compiling (XLA, or a persistent-cache
    read) in this thread, as the union of the time spans JAX reports through
    ``jax.monitoring`` (which calls its listeners in the compiling thread; a report's
    bootstrap compiles in another, beside NUTS)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.thread = threading.get_ident()

    def _listen(self, event: str, start: float, end: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS and threading.get_ident() == self.thread:
            self.spans.append((start, end))

    def __enter__(self) -> "CompileClock":
        self.thread = threading.get_ident()
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


class Settings(NamedTuple):
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
    num_runs: int = 0  # training runs with their own offset (0: rows are independent)
    slope_coords: bool = False  # Chinchilla's E, alpha, a_c sampled in slope coordinates
    subsample: int = 0  # HMCECS subsample size (0: all rows; estimators.subsample)
    num_blocks: int = 0  # blocks of HMCECS's subsample update


def import_arviz_in_background() -> None:
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


def program_model_kwargs(settings: Settings, priors: Mapping[str, Any] | None, centre, E_max,
                         mask, run) -> dict[str, Any]:
    """The keyword arguments of :func:`bayescale.estimators.model.law_model` in a program."""
    return dict(record_log_likelihood=True, priors=priors, law=settings.law,
                likelihood=settings.likelihood,
                centre=tuple(centre[i] for i in range(len(settings.law.inputs))),
                E_max=E_max, mask=mask, run=run, num_runs=settings.num_runs,
                slope_coords=settings.slope_coords)


def mass_start(settings: Settings, priors: Mapping[str, Any] | None, args: tuple, *,
               cache: "OrderedDict[tuple, Any]", max_size: int) -> dict | None:
    """The start of NUTS's inverse mass matrix, ``{block: matrix}``, for a model with run
    offsets, ``settings.dense_mass`` and :data:`HESSIAN_START_ROWS` rows or more
    (:func:`bayescale.estimators.run_offsets.mass_matrix` at the unjittered initial
    point), or ``None`` (NumPyro's identity). ``args``: ``(log_X, y, centre, E_max,
    init_values, mask, run)``, traced as in :func:`nuts_program`.

    It is a program of its own, compiled once per model and data size (kept in ``cache``,
    keyed without the sampler's lengths, which do not change it) and passed to the sampling
    program as an argument: traced into each NUTS program, it more than doubled that
    program's compile (a small checkpoint fit: 12 s to 28 s)."""
    if not (settings.dense_mass and settings.num_runs) or args[1].shape[0] < HESSIAN_START_ROWS:
        return None
    check = checked_sites(priors, settings.law)
    model = settings._replace(chains=1, warmup=1, draws=1, method="", max_tree_depth=1,
                              target_accept=0.5)

    def start(log_X, y, centre, E_max, init_values, mask, run):
        kwargs = program_model_kwargs(model, priors, centre, E_max, mask, run)
        block = mass_block(models.law_model, log_X, y, **kwargs)
        return mass_matrix(models.law_model, init_near(values=init_values, radius=0.0,
                                                       check=check), block, log_X, y, **kwargs)

    return _cached(start, model, priors, args, cache=cache, max_size=max_size)(*args)


def mass_settings(settings: Settings, start: dict | None, log_X, y,
                  model_kwargs: Mapping[str, Any]) -> tuple[Any, dict | None]:
    """NUTS's ``(dense_mass, inverse_mass_matrix)``: for a model with run offsets and
    ``settings.dense_mass``, one dense block over the law's sites and a diagonal over the
    offsets (:func:`bayescale.estimators.run_offsets.mass_block`), started at ``start``
    (:func:`mass_start`) or the identity; otherwise ``(settings.dense_mass, None)``."""
    if not (settings.dense_mass and settings.num_runs):
        return settings.dense_mass, None
    return [mass_block(models.law_model, log_X, y, **model_kwargs)], start


def _cached(fn, settings: Settings, priors, args: tuple, *, cache: "OrderedDict[tuple, Any]",
            max_size: int):
    """``jit(fn)`` compiled for ``args``, kept in ``cache`` (the ``max_size`` most recently
    used) under ``settings``, the priors' key and the shapes and dtypes of ``args``;
    unkeyable priors compile every call."""
    pkey = priors_key(priors)
    key = None
    if pkey is not UNKEYABLE:
        key = (fn.__name__, settings, pkey, args_signature(args), jax.default_backend(),
               str(jax.config.jax_default_device), bool(jax.config.jax_enable_x64))
    compiled = cache.get(key) if key is not None else None
    if compiled is None:
        lowered = jax.jit(fn).lower(*args)
        import_arviz_in_background()
        compiled = lowered.compile()
        if key is not None:
            cache[key] = compiled
            while len(cache) > max_size:
                cache.popitem(last=False)
    else:
        cache.move_to_end(key)
        import_arviz_in_background()
    return compiled


def nuts_program(settings: Settings, priors: Mapping[str, Any] | None):
    """The function traced into one program: NUTS for all chains, from the traced
    ``(rng_key, log_X, y, centre, E_max, init_values, mask, run, start)`` (``start``: the
    mass matrix's, :func:`mass_start`); ``settings`` and the
    user's ``priors`` (default priors are built from the traced ``E_max``) are static.
    With ``settings.subsample``: HMCECS, :func:`bayescale.estimators.subsample.ecs_program`.
    """
    from numpyro.infer import MCMC, NUTS

    if settings.subsample:  # (rng_key, log_X, y, centre, E_max, inits, reference, mask)
        return subsample.ecs_program(settings, priors, EXTRA_FIELDS)
    check = checked_sites(priors, settings.law)

    def run_all(rng_key, log_X, y, centre, E_max, init_values, mask, run, start):
        model_kwargs = program_model_kwargs(settings, priors, centre, E_max, mask, run)
        dense, inverse = mass_settings(settings, start, log_X, y, model_kwargs)
        kernel = NUTS(models.law_model, target_accept_prob=settings.target_accept,
                      dense_mass=dense, inverse_mass_matrix=inverse,
                      max_tree_depth=settings.max_tree_depth,
                      init_strategy=init_near(values=init_values, radius=INIT_RADIUS,
                                               check=check))

        def one_chain(key):
            mcmc = MCMC(kernel, num_warmup=settings.warmup, num_samples=settings.draws,
                        num_chains=1, progress_bar=False)
            mcmc.run(key, log_X, y, extra_fields=EXTRA_FIELDS, **model_kwargs)
            return mcmc.get_samples(), mcmc.get_extra_fields()

        keys = jax.random.split(rng_key, settings.chains)
        if settings.method == "sequential":
            return jax.lax.map(one_chain, keys)
        return jax.vmap(one_chain)(keys)

    return run_all


def run_as_one_program(settings: Settings, priors: Mapping[str, Any] | None, args: tuple,
                       *, cache: "OrderedDict[tuple, Any]", max_size: int):
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

    The compiled program is kept in ``cache`` (the caller's; the ``max_size`` most
    recently used) under ``settings``, the priors' key and the shapes and dtypes of
    ``args``; unkeyable priors compile every call. ArviZ is imported while XLA compiles and runs the program (which
    releases the GIL; tracing does not).

    Returns samples and extra fields with leading axes ``(chain, draw)``.
    """
    return _cached(nuts_program(settings, priors), settings, priors, args, cache=cache,
                   max_size=max_size)(*args)


def run_subsampled(settings: Settings, priors: Mapping[str, Any] | None, rng_key, log_X, y,
                   model_kwargs: Mapping[str, Any], start: Mapping[str, float], *, seed: int,
                   dtype, cache: "OrderedDict[tuple, Any]", max_size: int):
    """HMCECS (``settings.subsample``) from the Laplace approximation at the mode, in
    float64 whatever ``dtype`` (why: the subsample module's docstring): the program's
    arguments (:func:`bayescale.estimators.subsample.program_args`), the program
    (:func:`run_as_one_program`), and the draws and statistics cast back to ``dtype``.
    Returns ``(samples, stats, laplace_info)``."""
    with jax.enable_x64(True):
        traced, laplace = subsample.program_args(
            models.law_model, rng_key, log_X, y, model_kwargs, start, chains=settings.chains,
            seed=seed, dtype=jax.numpy.float64, priors=priors)
        samples, stats = subsample.as_dtype(
            run_as_one_program(settings, priors, traced, cache=cache, max_size=max_size), dtype)
    return samples, stats, laplace
