"""A hierarchical model over groups: each group's law, with the exponents partially pooled.

Corpora, evaluations or tokenisers fitted one at a time each get their own law, and a
group with few runs gets a wide (or, for a weakly identified ``(B, beta)``, a wild)
posterior. Fitted as one law they are silently pooled, which is wrong whenever the
groups differ. The hierarchical model sits between the two: every group ``g`` has its
own law, and its exponents are drawn from a population whose spread is learnt from the
data,

    alpha_g ~ Normal(mu_alpha, tau_alpha)       (and likewise beta, ...)
    mu_alpha ~ the law's prior on alpha         (Uniform(0, 1.5) for Chinchilla)
    tau_alpha ~ LogNormal(log EXPONENT_TAU, 0.75)

so a group with few runs borrows strength from the others as far as the groups agree,
and no further: when the groups' exponents really differ, ``tau`` grows and each group
keeps its own. The law's exponents are its coordinates named ``alpha*`` or ``beta*``.

Sampling. Where each group's data pin its exponents down (the usual case), the centred
form above samples well; where they do not and ``tau`` is small, it has a funnel (Neal
2003; Betancourt & Girolami 2015) and NUTS diverges. :func:`sample_pooled` therefore
tries the centred form first and, when the diagnostics fail, samples the non-centred
form (``alpha_g = mu_alpha + tau_alpha z_g``, ``z_g ~ Normal(0, 1)``), which has no
funnel but needs trajectories about five times longer.

Every other coordinate is per group with the law's own prior: ``E_g`` below the group's
median loss (groups may be different evaluations, with different loss levels), the
coefficients in the law's centred coordinates at the centre of *all* runs (as in
:mod:`bayescale.estimators.model`), the noise scale ``sigma_g`` per group; ``nu`` (the
Student-t degrees of freedom) is shared and fixed as in the single-group model. With
``pool_coefficients=True`` the centred coefficients are pooled too (``a_c,g ~
Normal(mu_a_c, tau_a)``, ``tau_a ~ LogNormal(log COEFFICIENT_TAU, 0.75)``): the
reducible loss *at the centre of the data* is then shared across groups up to that
spread, which suits groups that
differ only in tokeniser-free details (seeds, small recipe changes), not corpora.

Priors on the spreads. ``EXPONENT_TAU = 0.05``: published exponents for one law family
fitted to different corpora or replications differ by a few hundredths to about a
tenth (Hoffmann et al. 2022 against Besiroglu et al. 2024 on the same runs: alpha 0.34
against 0.35, beta 0.28 against 0.37; Gadre et al. 2024 fit C4, RedPajama and
RefinedWeb separately). A log-normal of median 0.05 and log-scale 0.75 puts 95% of its
mass on spreads of 0.012-0.22. It is boundary-avoiding (its density vanishes at
``tau = 0``; Chung et al. 2013): groups are never assumed identical, which also keeps
NUTS out of the funnel's neck; with groups that are in fact identical, pooling is then
strong but not complete (the group estimates stay a spread of about 0.01 apart, well
inside their intervals). ``COEFFICIENT_TAU = 0.5`` (nats of the log
coefficient at the data's centre): a factor of about 1.6 either way in the reducible loss.

References
----------
R. M. Neal, "Slice sampling", Annals of Statistics 31 (2003) 705-767 (the funnel).
M. J. Betancourt, M. Girolami, "Hamiltonian Monte Carlo for Hierarchical Models", in
Current Trends in Bayesian Methodology with Applications (2015), arXiv:1312.0906.
Y. Chung, S. Rabe-Hesketh, V. Dorie, A. Gelman, J. Liu, "A nondegenerate penalized
likelihood estimator for variance parameters in multilevel models", Psychometrika 78
(2013) 685-709.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError
from bayescale.estimators import model as models
from bayescale.estimators._nuts_program import EXTRA_FIELDS
from bayescale.estimators._nuts_setup import RETRY_WARMUP, initial_values
from bayescale.estimators.padding import bucket_size, pad_rows
from bayescale.laws.base import Law

__all__ = ["EXPONENT_TAU", "COEFFICIENT_TAU", "PooledPosterior", "pooled_model",
           "pooled_coords", "sample_pooled"]

EXPONENT_TAU = 0.05
COEFFICIENT_TAU = 0.5
TAU_LOG_SCALE = 0.75
_INIT_RADIUS = 0.1
_PROGRAMS: dict = {}  # settings -> jitted NUTS program, the most recently used last
_PROGRAMS_MAX = 4


def pooled_coords(law: Law, pool_coefficients: bool = False) -> tuple[str, ...]:
    """The law's coordinates pooled across groups: its exponents (``alpha*``, ``beta*``)
    and, with ``pool_coefficients``, its sheared (centred) coefficients."""
    exps = tuple(c for c in law.coords if c.startswith(("alpha", "beta")))
    if not exps:
        raise BayescaleError(f"the {law.name} law has no exponents named alpha*/beta* to pool.")
    sheared = tuple(c for c, _, _ in law.shears) if pool_coefficients else ()
    return exps + sheared


def pooled_model(log_X, group, log_loss=None, *, law: Law, num_groups: int, E_max, centre,
                 likelihood: str = "student_t", pool_coefficients: bool = False,
                 centred: bool = True, mask=None) -> None:
    """The hierarchical model (module docstring) on stacked log inputs ``log_X``
    (``(n, len(law.inputs))``) with integer group labels ``group`` (``(n,)``, in
    ``0..num_groups-1``); ``E_max`` is ``(num_groups,)``, the bound on each ``E_g``;
    ``mask`` leaves padding rows out of the likelihood."""
    priors = models.default_priors(1.0, likelihood=likelihood, law=law)
    shear = models.shear_of(law)
    pooled = pooled_coords(law, pool_coefficients)
    E_max = jnp.asarray(E_max)
    hyper = {}
    for coord in law.coords:  # population means and spreads (exponents first)
        if coord in pooled and coord not in shear:
            hyper[coord] = (numpyro.sample(f"{coord}_mu", priors[law.prior_key(coord)]),
                            numpyro.sample(f"{coord}_tau", dist.LogNormal(math.log(EXPONENT_TAU), TAU_LOG_SCALE)))
    for coord in law.coords:
        if coord in pooled and coord in shear:
            exponent, i = shear[coord]
            k = 1.0 if exponent is None else hyper[exponent][0]
            mu_c = numpyro.sample(f"{coord}_c_mu", models.centred_log_prior(
                priors[law.prior_key(coord)], k * centre[i]))
            hyper[coord] = (mu_c, numpyro.sample(
                f"{coord}_tau", dist.LogNormal(math.log(COEFFICIENT_TAU), TAU_LOG_SCALE)))
    theta = {}
    with numpyro.plate("groups", num_groups):
        for coord in law.coords:
            if coord in shear:
                continue
            prior = law.priors[coord]
            key = law.prior_key(coord)
            if coord in pooled:
                mu, tau = hyper[coord]
                if centred:
                    theta[coord] = numpyro.sample(coord, dist.Normal(mu, tau))
                else:
                    theta[coord] = numpyro.deterministic(coord, mu + tau * numpyro.sample(
                        f"{coord}_z", dist.Normal(0.0, 1.0)))
            elif prior.kind == "log_uniform_below_loss":
                theta[coord] = jnp.log(numpyro.sample(
                    key, dist.Uniform(float(prior.a), float(prior.b) * E_max)))
            else:
                theta[coord] = numpyro.sample(coord, priors[key])
        for coord in law.coords:
            if coord not in shear:
                continue
            exponent, i = shear[coord]
            shift = (1.0 if exponent is None else theta[exponent]) * centre[i]
            if coord in pooled:
                mu, tau = hyper[coord]
                centred_value = (numpyro.sample(f"{coord}_c", dist.Normal(mu, tau)) if centred
                                 else mu + tau * numpyro.sample(f"{coord}_z",
                                                                dist.Normal(0.0, 1.0)))
            else:
                centred_value = numpyro.sample(f"{coord}_c", models.centred_log_prior(
                    priors[law.prior_key(coord)], shift))
            theta[coord] = centred_value + shift
        sigma = numpyro.sample("sigma", priors["sigma"])
    vec = jnp.stack([theta[c] for c in law.coords], axis=-1)  # (group, k)
    sites = {law.prior_key(c) if law.priors[c].kind == "log_uniform_below_loss" else c
             for c in law.coords if c not in shear}  # already named in the trace
    with numpyro.plate("groups", num_groups):
        for name, value in zip(law.param_names, law.from_theta(vec)):
            if name not in sites:
                numpyro.deterministic(name, value)
    rows = vec[group]
    mu = jax.vmap(law.kernel)(rows, log_X)
    noise = models.likelihood_distribution(likelihood, mu, sigma[group], priors["nu"])
    with numpyro.plate("runs", log_X.shape[0]), \
            numpyro.handlers.mask(mask=True if mask is None else mask):
        numpyro.sample("log_loss", noise, obs=log_loss)
    if log_loss is not None:
        numpyro.deterministic("log_lik", noise.log_prob(jnp.asarray(log_loss)))


class PooledPosterior(NamedTuple):
    """What :func:`sample_pooled` returns.

    ``params``: ``{group: law parameters, leaves (draw,)}``; ``hyper``: ``{site: (draw,)}``
    for the population sites (``alpha_mu``, ``alpha_tau``, ...); ``log_lik``: ``(chain,
    draw, run)`` in the order of ``runs``; ``idata``: ``arviz.InferenceData`` of the joint
    posterior; ``diagnostics``; ``info`` (settings, timing)."""

    params: dict[str, Any]
    hyper: dict[str, np.ndarray]
    log_lik: np.ndarray
    idata: Any
    diagnostics: Any
    info: dict


def _group_index(groups: dict[str, Runs]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stacked ``log_X`` inputs are built by the caller; here: labels, E bounds, order."""
    labels = np.concatenate([np.full(len(r), i, dtype=np.int32)
                             for i, r in enumerate(groups.values())])
    E_max = np.array([float(np.median(r.loss)) for r in groups.values()])
    return labels, E_max, np.concatenate([np.asarray(r.row) for r in groups.values()])


def _initial(law: Law, groups: dict[str, Runs], log_X: np.ndarray, y: np.ndarray,
             labels: np.ndarray, centre, likelihood: str, pool_coefficients: bool,
             centred: bool) -> dict:
    """Per-group starting points (as the single-group model's), put in the pooled sites."""
    per = [initial_values(law, log_X[labels == g], y[labels == g], centre, likelihood)
           for g in range(len(groups))]
    values = {k: np.array([p[k] for p in per], dtype=float) for k in per[0]}
    pooled = pooled_coords(law, pool_coefficients)
    shear = {c for c, _, _ in law.shears}
    for coord in pooled:
        site = f"{coord}_c" if coord in shear else coord
        v = values.pop(site)
        mu = float(np.mean(v))
        tau = float(max(np.std(v), 0.2 * (COEFFICIENT_TAU if coord in shear else EXPONENT_TAU)))
        values[f"{coord}_c_mu" if coord in shear else f"{coord}_mu"] = mu
        values[f"{coord}_tau"] = tau
        values[f"{coord}_z"] = (v - mu) / tau
        if centred:
            values[f"{coord}_c" if coord in shear else coord] = v
    return values


def _program(model, settings):
    """NUTS for all chains as one function to jit (as :mod:`bayescale.estimators.nuts`
    does): each chain is NumPyro's single-chain run from its own starting point, mapped
    over the chains; the data and starting points are arguments, so data of another
    size in the same bucket reuse the compiled program."""
    from numpyro.infer import MCMC, NUTS

    _, _, _, _, target_accept, dense_mass, warmup, draws, chains, _ = settings

    def run_all(rng_key, init_u, log_X, group, y, E_max, mask, centre):
        kernel = NUTS(model, target_accept_prob=target_accept, dense_mass=dense_mass)

        def one_chain(key_and_init):
            key, init = key_and_init
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=1,
                        progress_bar=False)
            mcmc.run(key, log_X, group, y, E_max=E_max, mask=mask, centre=centre,
                     init_params=init, extra_fields=EXTRA_FIELDS)
            return mcmc.get_samples(), mcmc.get_extra_fields()

        return jax.lax.map(one_chain, (jax.random.split(rng_key, chains), init_u))

    return run_all


def _init_params(model, args, kwargs, values: dict, chains: int, key) -> dict:
    """Unconstrained starting points, one per chain: ``values`` jittered by
    ``Uniform(-0.1, 0.1)`` in unconstrained space (each site's support read from one
    trace of the model with ``values`` substituted)."""
    from numpyro.distributions.transforms import biject_to

    data = {k: jnp.asarray(v) for k, v in values.items()}
    trace = numpyro.handlers.trace(numpyro.handlers.seed(
        numpyro.handlers.substitute(model, data=data), 0)).get_trace(*args, **kwargs)
    out = {}
    for name, site in trace.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        u = biject_to(site["fn"].support).inv(site["value"])
        key, sub = jax.random.split(key)
        shape = (chains,) + jnp.shape(u)
        out[name] = jnp.broadcast_to(u, shape) + jax.random.uniform(
            sub, shape, u.dtype, -_INIT_RADIUS, _INIT_RADIUS)
    return out


def sample_pooled(groups: dict[str, Runs], *, law: Law, seed: int = 0, chains: int = 4,
                  warmup: int = 1000, draws: int = 1000, likelihood: str = "student_t",
                  target_accept: float = 0.95, pool_coefficients: bool = False,
                  dense_mass: bool = True, strict: bool = False,
                  retry: bool = True) -> PooledPosterior:
    """NUTS on the hierarchical model of ``groups`` (``{label: Runs}``, two or more).

    The first attempt is the centred parameterisation (fast where each group's data
    pin its exponents down, the usual case); when it fails the diagnostics gate
    (divergences at small spreads: the funnel) the fit is sampled again non-centred,
    which has no funnel but needs longer trajectories, with a longer warmup
    (``max(2 warmup, 2000)``, as the single-group retry), and the second attempt is kept
    (``info["retry"]``: the first one's diagnostics); ``retry=False`` keeps the first
    attempt (short chains). ``target_accept`` is 0.95: hierarchical posteriors have tight
    curvature where the spreads are small. The groups' runs are padded to one size bucket
    (:mod:`bayescale.estimators.padding`, masked out of the likelihood): one jitted
    program per bucket, number of groups and settings.

    Raises
    ------
    BayescaleError
        Fewer than two groups, or a law with unique tokens.
    ConvergenceError
        ``strict=True`` and the diagnostics fail after the retry.

    Warns
    -----
    ConvergenceWarning
        When the diagnostics fail after the retry and ``strict`` is false.
    """
    from bayescale.estimators import diagnostics as _diagnostics

    if len(groups) < 2:
        raise BayescaleError("pooling needs at least two groups; fit one group on its own.")
    missing = [g for g, r in groups.items() if "U" in law.inputs and r.U is None]
    if missing:
        raise BayescaleError(f"the {law.name} law needs unique tokens U for every run; groups "
                             f"{missing} have none (load them with U=COLUMN).")
    models.check_likelihood(likelihood)
    kwargs = dict(law=law, seed=int(seed), chains=int(chains), warmup=int(warmup),
                  draws=int(draws), likelihood=likelihood, target_accept=float(target_accept),
                  pool_coefficients=bool(pool_coefficients), dense_mass=bool(dense_mass))
    t0 = time.perf_counter()
    post = _sample_once(groups, centred=True, **kwargs)
    if retry and not post.diagnostics.ok:
        first = post.diagnostics.to_dict()
        kwargs["warmup"] = max(2 * int(warmup), RETRY_WARMUP)
        post = _sample_once(groups, centred=False, **kwargs)
        post.info["retry"] = {"reason": "the centred parameterisation failed the diagnostics; "
                                        f"sampled again non-centred with {kwargs['warmup']} "
                                        "warmup steps",
                              "first_attempt": first}
    post.info["timing"]["total"] = time.perf_counter() - t0
    _diagnostics.check(post.diagnostics, strict=strict, stacklevel=3, likelihood=likelihood)
    return post


def _sample_once(groups: dict[str, Runs], *, law: Law, seed: int, chains: int, warmup: int,
                 draws: int, likelihood: str, target_accept: float, pool_coefficients: bool,
                 dense_mass: bool, centred: bool) -> PooledPosterior:
    t_start = time.perf_counter()
    labels, E_max, rows = _group_index(groups)
    log_X = np.concatenate([np.column_stack([r.log_N, r.log_D] + (
        [np.log(r.U)] if "U" in law.inputs else [])) for r in groups.values()])
    y = np.concatenate([r.log_loss for r in groups.values()])
    centre = models.data_centre(*log_X.T)
    init = _initial(law, groups, log_X, y, labels, centre, likelihood, pool_coefficients,
                    centred)
    n = y.shape[0]
    X_pad, y_pad, mask = pad_rows(bucket_size(n), log_X, y)
    labels_pad = np.pad(labels, (0, X_pad.shape[0] - n))
    dtype = jnp.result_type(float)
    settings = (law, len(groups), likelihood, bool(pool_coefficients), float(target_accept),
                bool(dense_mass), int(warmup), int(draws), int(chains), bool(centred))
    args = (jnp.asarray(X_pad, dtype), jnp.asarray(labels_pad), jnp.asarray(y_pad, dtype),
            jnp.asarray(E_max, dtype), jnp.asarray(mask), jnp.asarray(centre, dtype))
    rng_key, init_key = jax.random.split(jax.random.PRNGKey(int(seed)))
    model = functools.partial(pooled_model, law=law, num_groups=len(groups),
                              likelihood=likelihood, pool_coefficients=bool(pool_coefficients),
                              centred=bool(centred))
    init_u = _init_params(model, args[:3], dict(E_max=args[3], mask=args[4], centre=args[5]),
                          init, int(chains), init_key)
    program = _PROGRAMS.pop(settings, None) or jax.jit(_program(model, settings))
    _PROGRAMS[settings] = program  # the most recently used last
    while len(_PROGRAMS) > _PROGRAMS_MAX:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    t_run = time.perf_counter()
    samples, stats = jax.block_until_ready(program(rng_key, init_u, *args))
    t_run = time.perf_counter() - t_run
    samples = {k: np.asarray(v) for k, v in samples.items()}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    log_lik = samples.pop("log_lik")[..., :n]

    import arviz as az

    from bayescale.estimators import diagnostics as _diagnostics

    names = list(groups)
    idata = az.from_dict(
        posterior={k: v for k, v in samples.items()},
        sample_stats={"diverging": np.asarray(stats["diverging"]),
                      "energy": np.asarray(stats["energy"]),
                      "n_steps": np.asarray(stats["num_steps"]),
                      "acceptance_rate": np.asarray(stats["accept_prob"]),
                      "step_size": np.asarray(stats["adapt_state.step_size"]),
                      "lp": -np.asarray(stats["potential_energy"])},
        log_likelihood={"log_loss": log_lik},
        observed_data={"log_loss": y},
        coords={"group": names, "run": rows},
        dims={**{k: ["group"] for k, v in samples.items() if v.ndim == 3
                 and v.shape[-1] == len(names)}, "log_loss": ["run"]})
    diag = _diagnostics.compute_diagnostics(idata, exclude=tuple(
        k for k in samples if k.endswith(("_z", "_c"))))
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    params = {g: law.params_type(*(flat[p][:, i].astype(float) for p in law.param_names))
              for i, g in enumerate(names)}
    hyper = {k: flat[k].astype(float) for k in samples if k.endswith(("_mu", "_tau"))}
    info = {"law": law.name, "likelihood": likelihood, "chains": int(chains),
            "warmup": int(warmup), "draws": int(draws), "seed": int(seed),
            "target_accept": float(target_accept), "pool_coefficients": bool(pool_coefficients),
            "parameterisation": "centred" if centred else "non-centred",
            "pooled": list(pooled_coords(law, pool_coefficients)),
            "hyperpriors": {
                "exponent_tau": f"LogNormal(log {EXPONENT_TAU:g}, {TAU_LOG_SCALE:g})",
                "coefficient_tau": f"LogNormal(log {COEFFICIENT_TAU:g}, {TAU_LOG_SCALE:g})"},
            "centre": dict(zip(("log_N0", "log_D0"), (float(c) for c in centre))),
            "groups": {g: len(r) for g, r in groups.items()},
            "leapfrog_per_draw": float(np.asarray(stats["num_steps"]).mean()),
            "timing": {"sampling": t_run, "total": time.perf_counter() - t_start}}
    if not math.isfinite(info["leapfrog_per_draw"]):
        info["leapfrog_per_draw"] = None
    return PooledPosterior(params=params, hyper=hyper, log_lik=log_lik, idata=idata,
                           diagnostics=diag, info=info)
