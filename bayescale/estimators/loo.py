"""Leave-one-out cross-validation of a NUTS fit, on every row or on a subsample of rows.

PSIS-LOO (Vehtari, Gelman & Gabry 2017, :func:`arviz.loo`) needs every row's
log-likelihood at every draw. A fit that subsampled its rows (HMCECS,
:mod:`bayescale.estimators.subsample`) records none: draws x rows values are gigabytes at
a million rows. For it, :func:`psis_loo` uses the difference estimator of Magnusson,
Andersen, Jonasson & Vehtari (2019):

* every row gets a cheap approximation ``a_i`` of its ``elpd_i``: the log density of its
  loss at the posterior median parameters (their "point log predictive density");
* ``m`` rows drawn by simple random sampling (``seed``) get exact PSIS-LOO ``e_i``, their
  log-likelihood computed from the draws;
* ``elpd = sum_i a_i + n mean_sample(e_i - a_i)``, unbiased, with subsampling standard error
  ``n sqrt((1 - m/n) var_sample(e_i - a_i) / m)`` (the error of estimating from ``m`` rows,
  reported apart from the usual ``se``, which measures the rows' own spread and is
  estimated the same way from the squares, less the subsampling variance: the R package
  ``loo``'s ``srs_diff_est``).

The same seed draws the same rows for every fit of the same runs, so two laws' elpd can be
compared row by row (:func:`elpd_difference`).

References
----------
A. Vehtari, A. Gelman, J. Gabry, "Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC", Statistics and Computing 27 (2017) 1413-1432.
M. Magnusson, M. R. Andersen, J. Jonasson, A. Vehtari, "Bayesian leave-one-out
cross-validation for large data", ICML 2019, PMLR 97: 4244-4253.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from bayescale.errors import BayescaleError

__all__ = ["DEFAULT_M", "LooResult", "psis_loo", "pointwise_log_lik", "elpd_difference"]

#: Rows with exact PSIS-LOO in a subsampled LOO (Magnusson et al. use 100-1000).
DEFAULT_M = 1000


class LooResult(NamedTuple):
    """PSIS-LOO of one fit. ``elpd``, ``se`` and ``p_loo`` as :func:`arviz.loo`'s
    ``elpd_loo``, ``se`` and ``p_loo``; ``subsampling_se``: the error of estimating
    ``elpd`` from ``m`` rows (0 with every row); ``rows``: the rows with exact PSIS-LOO
    (all, or the subsample), ``elpd_i`` and ``pareto_k`` theirs; ``approx_i``: every
    row's approximation (``None`` with every row)."""

    elpd: float
    se: float
    p_loo: float
    subsampling_se: float
    n: int
    rows: np.ndarray
    elpd_i: np.ndarray
    pareto_k: np.ndarray
    approx_i: np.ndarray | None = None

    @property
    def subsampled(self) -> bool:
        return self.approx_i is not None


def _nu(fit, post):
    from bayescale.estimators.priors import fixed_nu

    if "nu" in post:
        return np.asarray(post["nu"], dtype=float)[..., None]
    return fixed_nu(fit.info)


def pointwise_log_lik(fit, rows=None, *, point: bool = False) -> np.ndarray:
    """The log-likelihood of ``fit``'s runs at ``rows`` (default all), ``(chains, draws,
    rows)`` from the posterior draws, or ``(rows,)`` at the posterior median parameters
    (``point``). Only for fits without run effects (their rows' offsets are not kept)."""
    import jax.numpy as jnp

    from bayescale.estimators.likelihoods import likelihood_distribution
    from bayescale.laws.registry import log_loss

    post, runs, law = fit.idata.posterior, fit.runs, fit.law
    if "run_offset" in post:
        raise BayescaleError("pointwise_log_lik: a fit with run effects records its own "
                             "log-likelihood (idata.log_likelihood); use that.")
    rows = np.arange(len(runs)) if rows is None else np.asarray(rows)
    names = (*law.param_names, "sigma")
    values = {k: np.asarray(post[k], dtype=float)[..., None] for k in names}
    nu = _nu(fit, post)
    if point:
        values = {k: np.median(v) for k, v in values.items()}
        nu = float(np.median(nu))
    args = [runs.N[rows], runs.D[rows]] + ([runs.U[rows]] if "U" in law.inputs else [])
    mu = log_loss(law.params(*(values[k] for k in law.param_names)), *args)
    noise = likelihood_distribution(fit.info.get("likelihood", "student_t"), mu,
                                    jnp.asarray(values["sigma"]), nu)
    y = jnp.broadcast_to(jnp.asarray(runs.log_loss[rows]), jnp.shape(mu))
    return np.asarray(noise.log_prob(y), dtype=float)


def _arviz_loo(idata):
    import arviz as az

    with warnings.catch_warnings():  # Pareto-k warnings: the k are returned instead
        warnings.simplefilter("ignore", UserWarning)
        return az.loo(idata, pointwise=True)


def psis_loo(fit, *, m: int = DEFAULT_M, seed: int = 0, subsample: bool | None = None
             ) -> LooResult:
    """PSIS-LOO of a NUTS fit: :func:`arviz.loo` when the fit recorded every row's
    log-likelihood, else the subsampled estimate of the module docstring from ``m`` rows
    drawn with ``seed`` (all rows when there are no more than ``m``). ``subsample=True``
    takes the subsampled estimate even from a fit that recorded every row (its recorded
    values at the ``m`` rows), so that it pairs row by row with fits that did not."""
    idata = getattr(fit, "idata", None)
    if idata is None or "posterior" not in idata.groups():
        raise BayescaleError("LOO needs a Bayesian fit (method='bayes').")
    n = len(fit.runs)
    recorded = "log_likelihood" in idata.groups()
    if recorded and not subsample:
        loo = _arviz_loo(idata)
        return LooResult(float(loo.elpd_loo), float(loo.se), float(loo.p_loo), 0.0, n,
                         np.arange(n), np.asarray(loo.loo_i, dtype=float).reshape(-1),
                         np.asarray(loo.pareto_k, dtype=float).reshape(-1))
    import arviz as az

    m = int(m)
    if m < 2:
        raise BayescaleError(f"m must be an integer >= 2 (rows with exact PSIS-LOO), got {m}.")
    rows = np.sort(np.random.default_rng(seed).choice(n, min(m, n), replace=False))
    ll = (np.asarray(idata.log_likelihood["log_loss"], dtype=float)[..., rows] if recorded
          else pointwise_log_lik(fit, rows))
    # the whole posterior, so that the relative efficiency is arviz.loo's on the fit
    post = {k: np.asarray(v) for k, v in idata.posterior.data_vars.items()}
    loo = _arviz_loo(az.from_dict(posterior=post, log_likelihood={"log_loss": ll}))
    e = np.asarray(loo.loo_i, dtype=float).reshape(-1)
    approx = pointwise_log_lik(fit, point=True)
    lpd = _logmeanexp(ll)
    if len(rows) == n:  # every row computed: no subsampling error
        elpd, t2, p_loo, sub_se = e.sum(), (e ** 2).sum(), (lpd - e).sum(), 0.0
    else:
        d = e - approx[rows]
        elpd = approx.sum() + n * d.mean()
        t2 = (approx ** 2).sum() + n * (e ** 2 - approx[rows] ** 2).mean()
        p_loo = n * (lpd - e).mean()
        sub_se = n * np.sqrt((1 - len(rows) / n) * d.var(ddof=1) / len(rows))
    # (elpd^2 - sub_se^2 estimates elpd's square without its subsampling variance)
    se = np.sqrt(max(t2 - (elpd ** 2 - sub_se ** 2) / n, 0.0))
    return LooResult(float(elpd), float(se), float(p_loo), float(sub_se), n, rows, e,
                     np.asarray(loo.pareto_k, dtype=float).reshape(-1),
                     None if len(rows) == n else approx)


def _logmeanexp(ll: np.ndarray) -> np.ndarray:
    """``log mean_draws exp(ll)`` per row of ``(chains, draws, rows)``."""
    from scipy.special import logsumexp

    flat = ll.reshape(-1, ll.shape[-1])
    return logsumexp(flat, axis=0) - np.log(flat.shape[0])


def elpd_difference(a: LooResult, b: LooResult) -> dict[str, Any]:
    """``a.elpd - b.elpd`` with its standard error from the row-by-row differences (as
    :func:`arviz.compare`'s ``dse``) and, for subsampled estimates, its subsampling error.
    Both must be of the same runs and rows (the same ``m`` and ``seed``)."""
    if a.n != b.n or not np.array_equal(a.rows, b.rows) or a.subsampled != b.subsampled:
        raise BayescaleError("elpd_difference: the two LOO estimates are of different rows; "
                             "compute both with psis_loo on the same runs, m and seed.")
    n, k = a.n, len(a.rows)
    e = a.elpd_i - b.elpd_i
    if not a.subsampled:
        diff, t2, sub_se = e.sum(), (e ** 2).sum(), 0.0
    else:
        approx = a.approx_i - b.approx_i
        d = e - approx[a.rows]
        diff = approx.sum() + n * d.mean()
        t2 = (approx ** 2).sum() + n * (e ** 2 - approx[a.rows] ** 2).mean()
        sub_se = n * np.sqrt((1 - k / n) * d.var(ddof=1) / k)
    se = np.sqrt(max(t2 - (diff ** 2 - sub_se ** 2) / n, 0.0))
    return {"elpd_diff": float(diff), "dse": float(se), "subsampling_se": float(sub_se)}
