"""Convergence diagnostics of a NUTS fit: R-hat, bulk/tail ESS, divergences, E-BFMI.

The numbers come from ArviZ (``az.rhat``, ``az.ess``, ``az.bfmi``); this module only
collects them and applies the usual thresholds (Vehtari et al. 2021): rank-normalised
R-hat <= 1.01, bulk ESS >= 400 and no divergent transition. E-BFMI below 0.3 is
reported (and included in the warning text) but does not fail a fit by itself.
R-hat compares chains, so it needs at least 2: with one chain it is NaN (``None``
in JSON), is not checked, and :attr:`Diagnostics.notes` says so; the ESS and
divergence checks still apply.

References
----------
A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Buerkner, "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC",
Bayesian Analysis 16 (2021) 667-718.
M. Betancourt, "A Conceptual Introduction to Hamiltonian Monte Carlo",
arXiv:1701.02434 (2017), sec. 6.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayescale.errors import ConvergenceError, ConvergenceWarning

__all__ = ["Diagnostics", "compute_diagnostics", "check", "DIAGNOSED_PARAMS", "not_diagnosed",
           "RHAT_MAX", "ESS_BULK_MIN", "EBFMI_MIN", "RHAT_MIN_CHAINS"]

#: Parameters checked, those of them in the posterior (``nu`` only when it is sampled).
# Chinchilla first, in this order; other laws add their own parameters after these.
DIAGNOSED_PARAMS = ("E", "A", "B", "alpha", "beta", "a_opt", "b_opt", "sigma", "nu")
RHAT_MAX = 1.01
ESS_BULK_MIN = 400
EBFMI_MIN = 0.3
RHAT_MIN_CHAINS = 2
RHAT_NOTE = (f"R-hat needs at least {RHAT_MIN_CHAINS} chains; with 1 chain it is not "
             "computed or checked (run chains >= 2 to check convergence across chains)")


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class Diagnostics(NamedTuple):
    """Convergence diagnostics of one fit.

    Attributes
    ----------
    rhat_max : largest rank-normalised split R-hat over :data:`DIAGNOSED_PARAMS`
        (NaN with one chain).
    ess_bulk_min, ess_tail_min : smallest bulk and tail effective sample sizes.
    divergences : number of divergent transitions after warmup (all chains).
    ebfmi_min : smallest per-chain energy Bayesian fraction of missing information.
    ok : R-hat <= 1.01 (when there are >= 2 chains), bulk ESS >= 400 and no divergence.
    per_param : DataFrame indexed by parameter with columns r_hat, ess_bulk, ess_tail.
    chains : number of chains (``None``: unknown, R-hat is checked).
    notes : remarks that are not failures, e.g. that R-hat was not checked.
    """

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    ebfmi_min: float
    ok: bool
    per_param: pd.DataFrame
    chains: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def rhat_checked(self) -> bool:
        """Whether R-hat applies (at least 2 chains, or an unknown number)."""
        return self.chains is None or self.chains >= RHAT_MIN_CHAINS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scalars (no ``per_param``); NaN and infinities become ``None``."""
        return {
            "rhat_max": _finite_or_none(self.rhat_max),
            "ess_bulk_min": _finite_or_none(self.ess_bulk_min),
            "ess_tail_min": _finite_or_none(self.ess_tail_min),
            "divergences": int(self.divergences),
            "ebfmi_min": _finite_or_none(self.ebfmi_min),
            "ok": bool(self.ok),
            "chains": None if self.chains is None else int(self.chains),
            "notes": list(self.notes),
        }

    def problems(self) -> list[str]:
        """What failed, in words (empty when ``ok``)."""
        out = []
        if self.rhat_checked and not self.rhat_max <= RHAT_MAX:  # also catches NaN
            out.append(f"R-hat {self.rhat_max:.3f} > {RHAT_MAX}")
        if not self.ess_bulk_min >= ESS_BULK_MIN:
            out.append(f"bulk ESS {self.ess_bulk_min:.0f} < {ESS_BULK_MIN}")
        if self.divergences > 0:
            out.append(f"{self.divergences} divergent transition(s)")
        return out


def not_diagnosed(law) -> tuple[str, ...]:
    """The posterior sites of a fit of ``law`` that are sampling coordinates, not
    parameters (left out of the per-parameter table): the centred coefficients, the slope
    coordinates and the run offsets (``run_offset`` and its standard normal ``run_z``)."""
    from bayescale.estimators.run_offsets import RUN_SITE
    from bayescale.estimators.slope_coords import SLOPE_SITES

    return (tuple(f"{coord}_c" for coord, _, _ in law.shears) + ("run_offset", RUN_SITE)
            + SLOPE_SITES)


def compute_diagnostics(idata, exclude: tuple[str, ...] = ()) -> Diagnostics:
    """Diagnostics from an ``arviz.InferenceData`` with posterior and sample_stats.

    R-hat needs at least 2 chains: with one, ``r_hat`` is NaN, ``rhat_max`` is NaN,
    R-hat is not checked and ``notes`` says so. ``exclude`` names posterior variables
    not to diagnose (the centred sampling coordinates, reparameterisations of the law's
    parameters).
    """
    import arviz as az

    # the law's parameters (paper symbols), derived quantities and the noise model
    names = [n for n in DIAGNOSED_PARAMS if n in idata.posterior]
    names += [str(n) for n in idata.posterior.data_vars
              if n not in names and str(n) not in exclude]
    post = idata.posterior[names]
    chains = int(post.sizes.get("chain", 1))
    with warnings.catch_warnings():
        # ArviZ warns (RuntimeWarning) for degenerate chains, e.g. a stuck chain of
        # constant draws; the NaN / inf it returns fails the checks below instead.
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(post) if chains >= RHAT_MIN_CHAINS else None
        ess_bulk = az.ess(post, method="bulk")
        ess_tail = az.ess(post, method="tail")
        try:
            bfmi = np.asarray(az.bfmi(idata))
        except (KeyError, AttributeError, ValueError):
            bfmi = np.array([np.nan])
    # A variable with dimensions beyond (chain, draw), e.g. one value per group of a
    # hierarchical model, gives one row per element: "alpha[c4]".
    labels, r_hat, bulk, tail = [], [], [], []
    for n in names:
        flat_bulk = ess_bulk[n].stack(_e=ess_bulk[n].dims) if ess_bulk[n].dims else None
        if flat_bulk is None:
            labels.append(n)
            keys = [None]
        else:
            keys = list(flat_bulk["_e"].values)
            labels += [f"{n}[{','.join(str(v) for v in np.atleast_1d(k))}]" for k in keys]

        def values(ds, n=n, keys=keys):
            if ds is None:
                return [np.nan] * len(keys)
            v = ds[n]
            return [float(v)] if keys == [None] else \
                [float(x) for x in np.asarray(v.stack(_e=v.dims)).reshape(-1)]

        r_hat += values(rhat)
        bulk += values(ess_bulk)
        tail += values(ess_tail)
    per_param = pd.DataFrame({"r_hat": r_hat, "ess_bulk": bulk, "ess_tail": tail},
                             index=pd.Index(labels, name="parameter"))
    divergences = int(np.sum(np.asarray(idata.sample_stats["diverging"])))
    if rhat is not None:
        rhat_max = float(np.max(np.nan_to_num(per_param["r_hat"], nan=np.inf)))
        notes: tuple[str, ...] = ()
    else:
        rhat_max, notes = float("nan"), (RHAT_NOTE,)
    ess_bulk_min = float(np.min(np.nan_to_num(per_param["ess_bulk"], nan=0.0)))
    ess_tail_min = float(np.min(np.nan_to_num(per_param["ess_tail"], nan=0.0)))
    ebfmi_min = float(np.nanmin(bfmi)) if np.any(np.isfinite(bfmi)) else float("nan")
    diag = Diagnostics(rhat_max=rhat_max, ess_bulk_min=ess_bulk_min, ess_tail_min=ess_tail_min,
                       divergences=divergences, ebfmi_min=ebfmi_min, ok=False,
                       per_param=per_param, chains=chains, notes=notes)
    return diag._replace(ok=not diag.problems())


def _advice(diag: Diagnostics, likelihood: str | None = None, *, cli: bool = False) -> str:
    """What to try, in Python (``target_accept=0.95``) or command-line form
    (``--target-accept 0.95``)."""
    tips = []
    if diag.divergences > 0:
        tips.append(f"raise {'--target-accept 0.95' if cli else 'target_accept (e.g. 0.95)'} "
                    "so NUTS takes smaller steps")
    if (diag.rhat_checked and not diag.rhat_max <= RHAT_MAX) or \
            not diag.ess_bulk_min >= ESS_BULK_MIN:
        tips.append("run longer (more warmup and draws, e.g. "
                    + ("--warmup 2000 --draws 2000" if cli else "warmup=2000, draws=2000")
                    + ") or more chains" + (" (--chains 4)" if cli else ""))
    if np.isfinite(diag.ebfmi_min) and diag.ebfmi_min < EBFMI_MIN:
        tips.append(f"E-BFMI {diag.ebfmi_min:.2f} < {EBFMI_MIN} suggests heavy tails or a "
                    "funnel: check the priors (e.g. on sigma)")
    if likelihood == "student_t":
        tips.append("check the data for runs far off the law (the Student-t likelihood "
                    "already discounts a few outliers; many, or a systematic misfit, "
                    "need the runs looked at or removed"
                    + (", e.g. with --exclude-top K or --query" if cli else "") + ")")
    else:
        tips.append("check the data for runs far off the law (try "
                    + ("--likelihood student_t" if cli else "likelihood='student_t'") + ")")
    return "; ".join(tips)


def check(diag: Diagnostics, strict: bool = False, *, stacklevel: int = 1,
          likelihood: str | None = None) -> Diagnostics:
    """Warn (or, with ``strict``, raise) when ``diag`` fails the thresholds.

    Parameters
    ----------
    diag : the diagnostics to check.
    strict : raise :class:`~bayescale.errors.ConvergenceError` instead of warning.
    stacklevel : frames above the caller of ``check`` to attribute the warning to
        (1: the caller itself).
    likelihood : the likelihood of the fit (``"student_t"``, ``"normal"``, ``"huber"``),
        for the advice in the message; ``None`` if unknown.

    Returns
    -------
    Diagnostics
        ``diag`` unchanged.

    Warns
    -----
    ConvergenceWarning
        R-hat > 1.01 (with >= 2 chains), bulk ESS < 400 or any divergence (and
        ``strict`` is false).
    """
    problems = diag.problems()
    if not problems:
        return diag
    head = f"NUTS did not converge: {', '.join(problems)}. Try: "
    tail = ". The estimates may be unreliable."
    message = head + _advice(diag, likelihood) + tail
    cli = head + _advice(diag, likelihood, cli=True) + tail
    if strict:
        raise ConvergenceError(message, cli=cli)
    warnings.warn(ConvergenceWarning(message, cli=cli), stacklevel=stacklevel + 1)
    return diag
