"""Fitting the three methods and comparing them: the numbers behind the report.

:func:`fit_methods` fits the law three ways (the NUTS posterior, Besiroglu et al.'s
bootstrap, and the Huber grid fit of Hoffmann et al. that the bootstrap is centred on);
:func:`compare_methods` tabulates their estimates and intervals beside the published
fits, and :func:`compare_methods_json` makes that table JSON-ready.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data.runs import Runs, load_runs
from bayescale.errors import BayescaleError, ConvergenceWarning
from bayescale.estimators.fit import PARAM_NAMES, ScalingFit, fit
from bayescale.laws.chinchilla import (
    BESIROGLU_2024,
    HOFFMANN_2022,
    HOFFMANN_2022_UNROUNDED,
    LawParams,
    allocation_exponents,
)
from bayescale.planning.frontier import compute_optimal

__all__ = [
    "GOPHER_BUDGET",
    "PUBLISHED",
    "AT_BUDGET",
    "Steps",
    "is_chinchilla_data",
    "quantities",
    "default_budgets",
    "fit_methods",
    "published_row",
    "compare_methods",
    "compare_methods_json",
]

#: Gopher's training budget (Hoffmann et al. 2022, Table 3): the reference budget.
GOPHER_BUDGET = 5.76e23

#: Published coefficient sets shown beside the fits of the Chinchilla data.
PUBLISHED = {"hoffmann_2022": HOFFMANN_2022, "hoffmann_2022_unrounded": HOFFMANN_2022_UNROUNDED,
             "besiroglu_2024": BESIROGLU_2024}

QUANTITIES = PARAM_NAMES + ("a_opt", "b_opt")
#: Quantities given at the reference budget.
AT_BUDGET = ("N_opt", "D_opt", "tokens_per_param")
METHOD_ORDER = ("bayes", "bootstrap", "huber")


def is_chinchilla_data(runs: Runs) -> bool:
    """Whether ``runs`` are Hoffmann et al.'s runs (the registered ``chinchilla`` data),
    the only data the published coefficients and their story are about."""
    return str(getattr(runs, "source", "")) == "chinchilla"


def default_budgets(runs: Runs, *, beyond: float = 2.0, step: float = 0.5) -> np.ndarray:
    """A log grid from the data's smallest compute to ``beyond`` decades past its largest.

    Points sit on round values every ``step`` decades (1e18, 3.16e18, 1e19, ...), the
    first at or below the smallest run and the last at or above ``C_max 10**beyond``.
    """
    lo = math.floor(math.log10(float(runs.C.min())) / step) * step
    hi = math.ceil((math.log10(float(runs.C.max())) + beyond) / step) * step
    return 10.0 ** np.arange(lo, hi + step / 2, step)


def show_progress(quiet: bool) -> bool:
    return not quiet and bool(getattr(sys.stderr, "isatty", lambda: False)())


class Steps:
    """A progress bar over the report's steps (tqdm), silent when not shown.

    ``check`` (for example :meth:`bayescale.io.InterruptGuard.check`) is called at
    the start and end of every step: the points where a run may stop.
    """

    def __init__(self, names: Sequence[str], show: bool,
                 check: Callable[[], None] | None = None):
        self.bar = None
        self.check = check or (lambda: None)
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc="bayescale report", unit="step",
                            file=sys.stderr, leave=True)

    def start(self, name: str) -> None:
        self.check()
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.refresh()

    def done(self) -> None:
        self.check()
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def quantities(law_name: str) -> tuple[str, ...]:
    """The rows of the method table above the budget rows: the law's own parameters
    (its paper's symbols) and, for the Chinchilla law, its allocation exponents."""
    from bayescale.laws.registry import get_law

    names = get_law(law_name).param_names
    return names + (("a_opt", "b_opt") if law_name == "chinchilla" else ())


def valid_draws(f: ScalingFit) -> ScalingFit:
    """Drop draws with a non-finite or non-positive parameter (a failed resample)."""
    if f.is_point:
        return f
    arr = np.stack([np.asarray(v, dtype=float) for v in f.params])
    keep = np.all(np.isfinite(arr) & (arr > 0), axis=0)
    if keep.all():
        return f
    if not keep.any():
        raise BayescaleError(f"every draw of the {f.method} fit has an invalid parameter.")
    info = dict(f.info, dropped_draws=int((~keep).sum()))
    return dataclasses.replace(f, params=type(f.params)(*(v[keep] for v in arr)), info=info)


def fit_methods(runs: Runs, *, bayes_options: Mapping[str, Any] | None = None,
                resamples: int = 4000, seed: int = 0, level: float = 0.9,
                quiet: bool = True, steps: Steps | None = None,
                law: Any = "chinchilla") -> dict[str, ScalingFit]:
    """The Bayesian fit, the bootstrap and the Huber grid fit of ``runs``.

    The Huber fit is the bootstrap's reference (the grid fit to the full data that
    :func:`bayescale.estimators.huber.fit_bootstrap` computes anyway), so it is not run twice.

    Parameters
    ----------
    runs : Runs
    bayes_options : options of :func:`bayescale.estimators.nuts.sample_posterior` (chains,
        warmup, draws, likelihood, ...); ``posterior_predictive`` defaults to true and
        ``progress`` to a bar on a terminal unless ``quiet``.
    resamples : bootstrap resamples.
    seed : seed of both the bootstrap and NUTS.
    level : interval level of the fits.
    steps : progress (and interrupt checks) of a caller's larger run.
    law : the law fitted by all three (a name or a :class:`bayescale.laws.Law`; default
        Chinchilla's).

    Returns
    -------
    dict
        ``{"bayes": ..., "bootstrap": ..., "huber": ...}`` :class:`ScalingFit` s;
        ``info["convergence_warnings"]`` of the Bayesian fit lists the
        :class:`ConvergenceWarning` messages it raised (they are re-emitted).
    """
    steps = steps or Steps([], False)
    options = {"posterior_predictive": True, "progress": show_progress(quiet)}
    options.update(bayes_options or {})
    # The bootstrap runs in a thread beside NUTS: each keeps about one of two cores busy
    # (XLA releases the GIL while it runs), so the two take about as long as the longer
    # (misfitting_checkpoints: NUTS 82 s, bootstrap 90 s, one after the other).
    boot_job = _Beside(lambda: valid_draws(fit(runs, method="bootstrap", level=level, seed=seed,
                                                resamples=int(resamples), law=law)))
    steps.start("NUTS sampling")
    # (warnings.catch_warnings is process-wide: the bootstrap thread must not enter one, or
    # it could restore this one's recorder after it ends, nor trace a NumPyro model, whose
    # handler stack is process-wide too; its own warnings meanwhile are recorded here with
    # their thread, re-emitted below, and not counted as NUTS's)
    main, caught = threading.get_ident(), []
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.showwarning = lambda message, category, filename, lineno, *_: caught.append(
            (threading.get_ident(), message, category, filename, lineno))
        bayes = fit(runs, method="bayes", level=level, seed=seed, law=law, **options)
    messages = [str(message) for thread, message, category, *_ in caught
                if thread == main and issubclass(category, ConvergenceWarning)]
    for _, message, category, filename, lineno in caught:  # back to the caller's filters
        warnings.warn_explicit(message, category, filename, lineno)
    bayes = dataclasses.replace(bayes, info=dict(bayes.info, convergence_warnings=messages))
    steps.done()
    steps.start(f"bootstrap ({resamples} resamples)")
    boot = boot_job.result(check=steps.check)
    steps.done()
    reference = boot.law.params_type(*(np.asarray(v, dtype=float) for v in boot.reference))
    if boot.law.name == "chinchilla":
        note = ("Huber grid fit (Hoffmann et al. 2022 Approach 3, 4500 L-BFGS starts, "
                "delta 1e-3) to all the runs")
    else:
        note = f"Huber grid fit of the {boot.law.name} law (L-BFGS, delta 1e-3) to all the runs"
    huber = ScalingFit(method="huber", params=reference, runs=runs, level=level,
                       info={"note": note})
    return {"bayes": bayes, "bootstrap": boot, "huber": huber}


class _Beside:
    """``fn()`` in a daemon thread, started at once; :meth:`result` waits for it (calling
    ``check`` every 0.2 s, so that Ctrl-C is not held up) and returns its value or raises its
    exception. A daemon, so that an interrupted run does not wait for it to finish: when
    the caller stops early (Ctrl-C, or NUTS raised), the thread is abandoned and runs to
    its end in the background (the bootstrap: up to its full time), its result dropped.
    It does not inherit the caller's thread-local JAX settings (``jax.enable_x64``,
    ``jax.default_device`` contexts): ``fn`` sets what it needs (the bootstrap enters
    ``enable_x64`` itself)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True,
                                        name="bayescale-beside")
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._out["error"] = exc

    def result(self, check: Callable[[], None] = lambda: None) -> Any:
        while self._thread.is_alive():
            check()
            self._thread.join(0.2)
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def _at_budget(f: ScalingFit, C: float, level: float,
               unique_tokens: float | None = None) -> dict[str, tuple[float, float, float]]:
    fr = f.frontier([C], **({} if unique_tokens is None else {"unique_tokens": unique_tokens}))
    out = {}
    for q in AT_BUDGET:
        v = np.asarray(getattr(fr, q), dtype=float)[:, 0]
        if v.size == 1:
            out[q] = (float(v[0]), math.nan, math.nan)
        else:
            med, lo, hi = np.quantile(v, [0.5, (1 - level) / 2, (1 + level) / 2])
            out[q] = (float(med), float(lo), float(hi))
    return out


def published_row(params: LawParams, C: float) -> dict[str, float]:
    """A published coefficient set's parameters, allocation exponents and its
    compute-optimal allocation at ``C`` (from the law and the frontier solver)."""
    row = dict(zip(PARAM_NAMES, (float(v) for v in params)))
    a_opt, b_opt = allocation_exponents(params)
    opt = compute_optimal(params, float(C))
    row.update(a_opt=float(a_opt), b_opt=float(b_opt), N_opt=float(opt.N_opt),
               D_opt=float(opt.D_opt))
    row["tokens_per_param"] = row["D_opt"] / row["N_opt"]
    return row


def compare_methods(runs: Runs | Any = None, *, fits: Mapping[str, ScalingFit] | None = None,
                    reference_budget: float = GOPHER_BUDGET, level: float = 0.9,
                    bayes_options: Mapping[str, Any] | None = None, resamples: int = 4000,
                    seed: int = 0, quiet: bool = True, published: bool = True,
                    law: Any = "chinchilla", unique_tokens: float | None = None) -> pd.DataFrame:
    """Side-by-side table of the Bayesian fit, the bootstrap and the Huber fit.

    Parameters
    ----------
    runs : Runs or anything :func:`bayescale.load_runs` takes; fitted with
        :func:`fit_methods` unless ``fits`` is given.
    fits : already computed fits by method (``bayes``, ``bootstrap``, ``huber``).
    reference_budget : budget (FLOPs) at which ``N_opt``, ``D_opt`` and tokens per
        parameter are given (default Gopher's 5.76e23).
    level : central interval level for the Bayesian and bootstrap columns.
    published : add columns with the published fits (Hoffmann et al. 2022 rounded
        and unrounded, Besiroglu et al. 2024); Chinchilla-law fits only (ignored for
        another law, whose parameters these are not).
    law : the law fitted when ``fits`` is not given (default Chinchilla's).
    unique_tokens : the unique-token budget ``U`` of the allocation at the reference
        budget, for laws that take it (``data_constrained``).

    Returns
    -------
    pandas.DataFrame
        Indexed by quantity (the law's parameters, e.g. ``E, A, B, alpha, beta,
        a_opt, b_opt`` for Chinchilla or ``N_c, D_c, alpha_N, alpha_D`` for Kaplan,
        then ``N_opt, D_opt, tokens_per_param``); for each method columns ``<method>``
        (estimate: median over draws, or the point estimate), ``<method>_lower`` and
        ``<method>_upper`` (NaN for a point estimate); ``attrs`` holds ``level``,
        ``reference_budget`` and ``law`` (its name).
    """
    if fits is None:
        if runs is None:
            raise BayescaleError("compare_methods needs runs or fits.")
        if not isinstance(runs, Runs):
            runs = load_runs(runs)
        fits = fit_methods(runs, bayes_options=bayes_options, resamples=resamples, seed=seed,
                           level=level, quiet=quiet, law=law)
    C = float(reference_budget)
    if not (math.isfinite(C) and C > 0):
        raise BayescaleError(f"reference_budget must be positive FLOPs, got {reference_budget!r}.")
    cols: dict[str, list[float]] = {}
    names = [m for m in METHOD_ORDER if m in fits] + [m for m in fits if m not in METHOD_ORDER]
    law_name = fits[names[0]].law.name
    rows = quantities(law_name)
    index = list(rows) + list(AT_BUDGET)
    for m in names:
        f = fits[m]
        est = f.point_estimate()
        ivals = f.intervals(level)
        at = _at_budget(f, C, level, unique_tokens)
        cols[m] = [est[q] for q in rows] + [at[q][0] for q in AT_BUDGET]
        cols[f"{m}_lower"] = [ivals.get(q, (math.nan,))[0] for q in rows] + \
            [at[q][1] for q in AT_BUDGET]
        cols[f"{m}_upper"] = [ivals.get(q, (math.nan, math.nan))[1] for q in rows] + \
            [at[q][2] for q in AT_BUDGET]
    if published and law_name == "chinchilla":
        for name, params in PUBLISHED.items():
            row = published_row(params, C)
            cols[name] = [row[q] for q in index]
    table = pd.DataFrame(cols, index=pd.Index(index, name="quantity"))
    table.attrs.update(level=float(level), reference_budget=C, law=law_name)
    return table


def compare_methods_json(table: pd.DataFrame) -> dict[str, Any]:
    """JSON-ready form of :func:`compare_methods`'s table.

    ``{"level", "reference_budget", "methods": {method: {quantity: {"estimate",
    "lower", "upper"}}}, "published": {name: {quantity: value}}}``; missing bounds are
    ``null``.
    """
    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    methods, published = {}, {}
    for col in table.columns:
        if col.endswith(("_lower", "_upper")):
            continue
        if col in PUBLISHED:
            published[col] = {q: num(table.at[q, col]) for q in table.index}
            continue
        methods[col] = {q: {"estimate": num(table.at[q, col]),
                            "lower": num(table.at[q, f"{col}_lower"]),
                            "upper": num(table.at[q, f"{col}_upper"])} for q in table.index}
    return {"level": table.attrs.get("level"), "reference_budget": table.attrs.get(
        "reference_budget"), "quantities_at_reference_budget": list(AT_BUDGET),
        "methods": methods, "published": published}
