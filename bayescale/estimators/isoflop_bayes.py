"""Approach 2 as one Bayesian model: isoFLOP parabolas and the allocation fitted jointly.

For budgets ``k`` with runs ``(x_i = log N_i, y_i = log L_i)``::

    y_i        ~ StudentT(nu = 4, y0_k + kappa_k (x_i - v_k)^2, sigma)    (robust, like Huber)
    v_k        ~ Normal(log_G_N + a log C_k, tau)                          (vertex = log N*_k)
    kappa_k    ~ LogNormal(log 0.05, 2.5)   (curvature > 0: an interior minimum)
    a ~ Normal(0.5, 0.5), tau ~ HalfNormal(0.5), sigma ~ HalfNormal(0.05)

so each budget's minimiser ``N*_k = exp(v_k)`` carries its own uncertainty into ``a`` and
``G_N`` and ``tau`` absorbs scatter of the minimisers about the power law (including the
shape bias of Approach 2, which a parabola cannot know about). ``b = 1 - a`` and
``log G_D = -log 6 - log G_N`` since ``N* D* = C / 6``. The vertices are sampled
non-centred; arrays are padded to power-of-two sizes (masked) so one compiled sampler
serves sweeps of similar size. Diagnostics (R-hat, ESS, divergences) come from
:func:`bayescale.estimators.diagnostics.compute_diagnostics` on ``a, log_G_N, tau, sigma``.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022), Approach 2.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.estimators.allocation import AllocationParams
from bayescale.estimators.diagnostics import check, compute_diagnostics

__all__ = ["isoflop_model", "sample_isoflop", "IsoflopPosterior", "NU"]

NU = 4.0
_DIAGNOSED = ("a", "log_G_N", "tau", "sigma")


class IsoflopPosterior(NamedTuple):
    params: AllocationParams  # arrays over draws
    vertex: np.ndarray  # (draw, K) log N*_k
    idata: Any
    diagnostics: Any
    info: dict


def isoflop_model(x, y, mask, log_c, budget_mask):
    """The joint model; ``x`` (centred log N) and ``y`` are ``[K, M]`` with ``mask``, ``log_c``
    (centred log C) ``[K]`` with ``budget_mask`` (padding budgets see no data)."""
    import numpyro
    import numpyro.distributions as dist

    a = numpyro.sample("a", dist.Normal(0.5, 0.5))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.05))
    K = x.shape[0]
    with numpyro.plate("budget", K):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        log_kappa = numpyro.sample("log_kappa", dist.Normal(np.log(0.05), 2.5))
        y0 = numpyro.sample("y0", dist.Normal(0.0, 1.0))
    vertex = numpyro.deterministic("vertex", mu + a * log_c + tau * z)
    mean = (y0[:, None] + jnp.exp(log_kappa)[:, None] * (x - vertex[:, None]) ** 2)
    with numpyro.handlers.mask(mask=mask & budget_mask[:, None]):
        numpyro.sample("y", dist.StudentT(NU, mean, sigma), obs=y)


def _pad(x_k, y_k):
    K, M = len(x_k), max(len(x) for x in x_k)
    Kp, Mp = max(4, 1 << int(np.ceil(np.log2(K)))), max(8, 1 << int(np.ceil(np.log2(M))))
    X, Y, mask = np.zeros((Kp, Mp)), np.zeros((Kp, Mp)), np.zeros((Kp, Mp), bool)
    for k in range(K):
        n = len(x_k[k])
        X[k, :n], Y[k, :n], mask[k, :n] = x_k[k], y_k[k], True
    return X, Y, mask, Kp


@functools.lru_cache(maxsize=8)
def _program(chains: int, warmup: int, draws: int):
    """NUTS for all chains as one jitted program (``lax.map`` over the chains' keys, each
    NumPyro's single-chain ``MCMC.run``), as :mod:`bayescale.estimators.nuts` does: run
    eagerly, NumPyro compiled two programs on every call (12 s of a 19 s fit of 85 runs);
    jitted, a sweep padded to the same sizes reuses the compiled program."""
    from numpyro.infer import MCMC, NUTS, init_to_value

    def run_all(rng_key, X, Y, mask, log_c, bmask, init):
        kernel = NUTS(isoflop_model, init_strategy=init_to_value(values=init),
                      dense_mass=False, target_accept_prob=0.9)

        def one_chain(key):
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=1,
                        progress_bar=False)
            mcmc.run(key, X, Y, mask, log_c, bmask, extra_fields=("diverging", "energy"))
            return mcmc.get_samples(), mcmc.get_extra_fields()

        return jax.lax.map(one_chain, jax.random.split(rng_key, chains))

    return jax.jit(run_all)


def sample_isoflop(x_k, y_k, log_C, *, seed=0, chains=4, warmup=500, draws=500,
                   strict=False, ref_vertex=None) -> IsoflopPosterior:
    """NUTS on :func:`isoflop_model` for profiles ``x_k, y_k`` (lists of arrays) at budgets
    ``log_C``; starts from the least-squares parabolas (``ref_vertex``: their vertices)."""
    import arviz as az

    K = len(x_k)
    xm = float(np.mean(np.concatenate(x_k)))
    ym = [float(np.mean(y)) for y in y_k]
    cm = float(np.mean(log_C))
    X, Y, mask, Kp = _pad([x - xm for x in x_k], [y - m for y, m in zip(y_k, ym)])
    log_c = np.zeros(Kp)
    log_c[:K] = np.asarray(log_C) - cm
    bmask = np.arange(Kp) < K
    # start: each budget's least-squares parabola, and the line through its vertices
    coef = [np.polyfit(x - xm, y - m, 2) for x, y, m in zip(x_k, y_k, ym)]
    v0 = (np.array([-c[1] / (2 * c[0]) for c in coef]) if ref_vertex is None
          else np.asarray(ref_vertex) - xm)
    kap0 = np.full(Kp, 0.05)
    kap0[:K] = [max(c[0], 1e-4) for c in coef]
    y00 = np.zeros(Kp)
    y00[:K] = [c[2] - c[1] ** 2 / (4 * max(c[0], 1e-4)) for c in coef]
    a0, mu0 = np.polyfit(log_c[:K], v0, 1)
    tau0 = max(float(np.std(v0 - mu0 - a0 * log_c[:K])), 0.05)
    z0 = np.zeros(Kp)
    z0[:K] = (v0 - mu0 - a0 * log_c[:K]) / tau0
    init = {"a": a0, "mu": mu0, "tau": tau0, "sigma": 0.01, "z": z0,
            "log_kappa": np.log(kap0), "y0": y00}
    with jax.enable_x64(True):
        samples, stats = _program(int(chains), int(warmup), int(draws))(
            jax.random.PRNGKey(int(seed)), X, Y, mask, log_c, bmask,
            {k: jnp.asarray(v, dtype=jnp.float64) for k, v in init.items()})
        samples = {k: np.asarray(v) for k, v in samples.items()}
        stats = {k: np.asarray(v) for k, v in stats.items()}
    a = samples["a"]
    log_G_N = samples["mu"] + xm - a * cm
    posterior = {"a": a, "log_G_N": log_G_N, "tau": samples["tau"], "sigma": samples["sigma"],
                 "vertex": samples["vertex"][..., :K] + xm}
    idata = az.from_dict(posterior={**posterior, "b": 1 - a},
                         sample_stats={"diverging": stats["diverging"],
                                       "energy": stats["energy"]})
    diag = compute_diagnostics(idata, exclude=("vertex", "b"))
    check(diag, strict, stacklevel=4)
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in posterior.items()}
    log6 = np.log(6.0)
    params = AllocationParams(a=flat["a"], b=1 - flat["a"], log_G_N=flat["log_G_N"],
                              log_G_D=-log6 - flat["log_G_N"])
    info = {"chains": int(chains), "warmup": int(warmup), "draws": int(draws),
            "likelihood": f"student_t(nu={NU:g})",
            "tau": float(np.median(flat["tau"])), "sigma": float(np.median(flat["sigma"])),
            "diagnostics_ok": bool(diag.ok)}
    return IsoflopPosterior(params=params, vertex=flat["vertex"], idata=idata,
                            diagnostics=diag, info=info)
