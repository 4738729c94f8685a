"""Prototype: energy-conserving subsampling HMC (HMCECS) against full-data NUTS on
checkpoint rows. A measurement, not a library change: nothing in ``bayescale`` uses it.

Run ``python benchmarks/bench_rows_ecs.py --rows 10000 --methods nuts,ecs`` (full NUTS
and HMCECS on the same data, compared in Monte Carlo standard errors) or
``--rows 200000 --methods ecs``; ``--out FILE`` writes the JSON (default: print only).

The issue: fit NUTS, 4 chains x (1000 warmup + 1000 draws), on 200,000 checkpoint rows
in under 3 minutes on 2 cores. Full-data NUTS costs O(n) per leapfrog step (127 s
sampling at 10,000 rows, ~45 min extrapolated at 200,000). HMCECS (Dang et al. 2019;
NumPyro's ``HMCECS``) runs NUTS on a subsample of m rows per step, with the full-data
log-likelihood estimated by a second-order Taylor proxy about a reference point plus
the subsample's correction (difference estimator), and a Gibbs/pseudo-marginal update of
the subsample indices between NUTS steps (in ``num_blocks`` blocks).

Data: ``bench_rows.synthetic_checkpoints(n)`` (12 model sizes 1e7-1e10, tokens 1-200 per
parameter, Hoffmann et al. 2022's law, 0.01 normal noise on log loss). Model: a
self-contained copy of bayescale's Chinchilla model (``estimators/model.py``) in its
default (sheared) coordinates: ``E ~ U(0, median loss)``, ``alpha, beta ~ U(0, 1.5)``,
``a_c = log A - alpha log N0 ~ Normal(6 - alpha log N0, 10)`` (the same density as
``centred_log_prior``), likewise ``b_c``, ``sigma ~ HalfNormal(0.1)``, Student-t (nu = 4)
on log loss about ``logsumexp(a_c - alpha (log N - log N0), b_c - beta (log D - log D0),
log E)``, centre = mean log inputs. NUTS as bayescale configures it: dense mass,
target_accept 0.8, tree depth 10, the chains run one after another (``lax.map``) inside
one ``jit`` program, so compile and sampling time separate. Initial points (``--init``):
``laplace`` (default) draws each chain from the Laplace approximation at the reference,
``N(mode, (2 sd)^2)``; ``jitter`` is bayescale's ``init_near`` (the reference jittered
by U(-0.3, 0.3) in unconstrained space). At 200,000 rows HMCECS needs the former: started
0.3 away (hundreds of posterior sds) the Taylor proxy is far off, and the run failed
(R-hat 3.4, subsample acceptance 0.50, 542 leapfrog steps per draw, 427 s).

Taylor reference (``--reference``): ``huber`` is ``bayescale.fit(runs, method="huber")``
with sigma the likelihood's maximum-likelihood scale given those law parameters;
``map`` refines that point to the mode of the full-data posterior in NumPyro's
unconstrained space (BFGS in float64 on all rows: ~10 iterations; 11-27 s with its
compiles on the loaded 2-core machine). The proxy's error grows
with the cube of the distance to the reference, and its variance enters the estimator
times n^2 / m, so the reference must sit within a few posterior sds of the mode.

Measured 2026-12-01 on the shared 2-core machine (nice 10; load average 3-4 during the
10,000-row and the first 200,000-row runs, 0.1 during the Huber-reference 200,000-row run),
Student-t, 4 chains x (1000 + 1000) one after another, m = 1000 in 10 blocks, Laplace inits:

* 10,000 rows, MAP reference: full NUTS compile 7.3 s, sampling 29.6 s, 31 leapfrog steps
  per draw, R-hat <= 1.003, bulk ESS >= 1578; HMCECS compile 18.9 s, sampling 41.0 s,
  31 steps, R-hat <= 1.004, bulk ESS >= 1395, subsample acceptance 0.999. Means of E, A,
  B, alpha, beta, sigma differ by 0.3-1.1 Monte Carlo standard errors (<= 0.04 posterior
  sd), sds by 1-4%.
* 200,000 rows, HMCECS: Huber reference (idle machine) Huber fit 34.9 s, Laplace 10.3 s,
  compile 10.8 s, sampling 60.0 s, 64 steps per draw, R-hat <= 1.0044, bulk ESS >= 1054
  (sigma; >= 1391 for the law), acceptance 0.989; MAP reference (loaded machine) Huber
  89.3 s, MAP + Laplace 27.3 s, compile 44.3 s, sampling 125.0 s, R-hat <= 1.0063, bulk
  ESS >= 968. Posterior means within 0.8 posterior sd of Hoffmann et al.'s constants.
* This self-contained model samples 10,000 rows in ~28 s where bayescale's fit takes
  ~110-118 s with the same 31 steps per draw: bayescale's ``log_loss_theta`` (the kernel
  vmapped over rows, a logsumexp over a minor axis of 3) costs 447 us per value-and-gradient
  at 10,000 rows against 93 us for the three terms stacked on axis 0 (as here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SITES = ("E", "a_c", "b_c", "alpha", "beta", "sigma")
REPORTED = ("E", "A", "B", "alpha", "beta", "sigma")
INIT_RADIUS = 0.3  # as bayescale.estimators._nuts_setup.INIT_RADIUS


# --------------------------------------------------------------------------- model
def model(log_X, y, centre, E_max, *, subsample_size=None, likelihood="student_t", nu=4.0):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import logsumexp

    E = numpyro.sample("E", dist.Uniform(0.0, E_max))
    alpha = numpyro.sample("alpha", dist.Uniform(0.0, 1.5))
    beta = numpyro.sample("beta", dist.Uniform(0.0, 1.5))
    a_c = numpyro.sample("a_c", dist.Normal(6.0 - alpha * centre[0], 10.0))
    b_c = numpyro.sample("b_c", dist.Normal(6.0 - beta * centre[1], 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.1))
    with numpyro.plate("data", y.shape[0], subsample_size=subsample_size):
        X = numpyro.subsample(log_X, event_dim=1)
        obs = numpyro.subsample(y, event_dim=0)
        mu = logsumexp(jnp.stack([a_c - alpha * (X[:, 0] - centre[0]),
                                  b_c - beta * (X[:, 1] - centre[1]),
                                  jnp.broadcast_to(jnp.log(E), X[:, 0].shape)]), axis=0)
        noise = (dist.StudentT(nu, mu, sigma) if likelihood == "student_t"
                 else dist.Normal(mu, sigma))
        numpyro.sample("obs", noise, obs=obs)


def init_near(site=None, *, values, radius):
    """bayescale's ``init_near``: ``values`` jittered by U(-radius, radius) unconstrained
    (NumPyro wants a ``functools.partial`` as init strategy)."""
    import functools

    import jax
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import init_to_median

    if site is None:
        return functools.partial(init_near, values=values, radius=radius)
    if site["type"] == "sample" and not site["is_observed"] and site["name"] in values:
        t = biject_to(site["fn"].support)
        jitter = jax.random.uniform(site["kwargs"]["rng_key"], (), minval=-radius,
                                    maxval=radius)
        return t(t.inv(jnp.asarray(values[site["name"]])) + jitter)
    return init_to_median(site)


# --------------------------------------------------------------------------- reference
def huber_reference(runs, log_X, y, centre, likelihood):
    """Huber fit (bayescale) -> sites, sigma = ML scale of the likelihood at those params."""
    import numpy as np
    from scipy import optimize, stats

    import bayescale

    t0 = time.perf_counter()
    res = bayescale.fit(runs, method="huber")
    t_huber = time.perf_counter() - t0
    p = {k: float(np.asarray(getattr(res.params, k))) for k in ("E", "A", "B", "alpha", "beta")}
    mu = np.logaddexp.reduce(np.stack([
        np.log(p["A"]) - p["alpha"] * log_X[:, 0], np.log(p["B"]) - p["beta"] * log_X[:, 1],
        np.full(len(y), np.log(p["E"]))]), axis=0)
    r = y - mu
    if likelihood == "normal":
        sigma = float(np.sqrt(np.mean(r ** 2)))
    else:
        nll = lambda ls: -stats.t.logpdf(r, 4.0, scale=math.exp(ls)).sum()  # noqa: E731
        sigma = math.exp(optimize.minimize_scalar(nll, bounds=(-12, 0), method="bounded").x)
    sites = {"E": p["E"], "alpha": p["alpha"], "beta": p["beta"],
             "a_c": math.log(p["A"]) - p["alpha"] * centre[0],
             "b_c": math.log(p["B"]) - p["beta"] * centre[1], "sigma": sigma}
    return sites, t_huber, p


def laplace(start, log_X, y, centre, E_max, likelihood, *, optimise, chains, scale, seed):
    """Optionally move ``start`` to the mode of the full-data posterior in NumPyro's
    unconstrained space (BFGS, float64, all rows); then draw each chain's initial point
    from the Laplace approximation there, ``N(mode, (scale^2) H^-1)`` with ``H`` the exact
    Hessian of the potential (float64)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_value
    from numpyro.infer.util import initialize_model, potential_energy
    from scipy import optimize

    t0 = time.perf_counter()
    with jax.enable_x64(True):
        args = (jnp.asarray(log_X, jnp.float64), jnp.asarray(y, jnp.float64),
                jnp.asarray(centre, jnp.float64), jnp.asarray(E_max, jnp.float64))
        kw = {"likelihood": likelihood}
        info = initialize_model(jax.random.PRNGKey(0), model, model_args=args, model_kwargs=kw,
                                init_strategy=init_to_value(values=start))
        flat0, unravel = ravel_pytree(info.param_info.z)
        pot = lambda f: potential_energy(model, args, kw, unravel(f))  # noqa: E731
        pe = jax.jit(jax.value_and_grad(pot))
        fun = lambda f: tuple(np.asarray(v, np.float64) for v in pe(jnp.asarray(f)))  # noqa
        x, meta = np.asarray(flat0), {"optimised": False}
        if optimise:
            out = optimize.minimize(fun, x, jac=True, method="BFGS",
                                    options={"gtol": 1e-6, "maxiter": 2000})
            x = out.x
            meta = {"optimised": True, "iterations": int(out.nit), "success": bool(out.success),
                    "message": str(out.message)}
        H = np.asarray(jax.jit(jax.hessian(pot))(jnp.asarray(x)))
        w, V = np.linalg.eigh(0.5 * (H + H.T))
        meta["hessian_min_eig"] = float(w.min())
        L = V / np.sqrt(np.maximum(w, 1e-12 * w.max()))  # cov = L L^T
        rng = np.random.default_rng(seed)
        post = info.postprocess_fn
        sites = {k: float(post(unravel(jnp.asarray(x)))[k]) for k in SITES}
        inits = [post(unravel(jnp.asarray(x + scale * L @ rng.standard_normal(x.size))))
                 for _ in range(chains)]
        inits = {k: np.array([float(i[k]) for i in inits]) for k in SITES}
        meta["laplace_sd"] = {k: float(np.std(inits[k])) for k in SITES} if chains > 1 else None
    return sites, inits, time.perf_counter() - t0, meta


# --------------------------------------------------------------------------- samplers
def program(kind, *, m, num_blocks, chains, warmup, draws, likelihood, init_jitter,
            target_accept=0.8, max_tree_depth=10):
    """All chains, one after another (``lax.map``), in one traceable function. Chain c
    starts at ``inits[site][c]`` (``init_jitter``: that point jittered by U(-0.3, 0.3)
    in unconstrained space, as bayescale does)."""
    import jax
    from numpyro.infer import HMCECS, MCMC, NUTS, init_to_value

    fields = (("num_steps", "diverging") if kind == "nuts"
              else ("hmc_state.num_steps", "hmc_state.diverging", "accept_prob"))

    def run_all(rng_key, log_X, y, centre, E_max, inits, ref_values):
        def one_chain(key_init):
            key, init = key_init
            strategy = (init_near(values=init, radius=INIT_RADIUS) if init_jitter
                        else init_to_value(values=init))
            inner = NUTS(model, dense_mass=True, target_accept_prob=target_accept,
                         max_tree_depth=max_tree_depth, init_strategy=strategy)
            kernel = inner if kind == "nuts" else HMCECS(
                inner, num_blocks=num_blocks, proxy=HMCECS.taylor_proxy(ref_values))
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=1,
                        progress_bar=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mcmc.run(key, log_X, y, centre, E_max, extra_fields=fields,
                         subsample_size=None if kind == "nuts" else m, likelihood=likelihood)
            samples = {k: v for k, v in mcmc.get_samples().items() if k in SITES}
            return samples, mcmc.get_extra_fields()

        return jax.lax.map(one_chain, (jax.random.split(rng_key, chains), inits))

    return run_all


def run_sampler(kind, data, ref, inits, *, seed, **settings):
    import jax
    import jax.numpy as jnp

    log_X, y, centre, E_max = data
    f32 = jnp.float32
    args = (jax.random.PRNGKey(seed), jnp.asarray(log_X, f32), jnp.asarray(y, f32),
            jnp.asarray(centre, f32), jnp.asarray(E_max, f32),
            {k: jnp.asarray(v, f32) for k, v in inits.items()},
            {k: jnp.asarray(v, f32) for k, v in ref.items()})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = jax.jit(program(kind, **settings)).lower(*args).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples, extra = jax.block_until_ready(compiled(*args))
    t_sample = time.perf_counter() - t0
    return samples, extra, t_compile, t_sample


# --------------------------------------------------------------------------- summaries
def summarise(samples, extra, centre):
    import arviz as az
    import numpy as np

    post = {k: np.asarray(samples[k], np.float64) for k in SITES}
    post["A"] = np.exp(post["a_c"] + post["alpha"] * centre[0])
    post["B"] = np.exp(post["b_c"] + post["beta"] * centre[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(posterior={k: post[k] for k in REPORTED})
        ess_b, ess_t = az.ess(idata, method="bulk"), az.ess(idata, method="tail")
        rhat, mcse = az.rhat(idata), az.mcse(idata, method="mean")
        mcse_sd = az.mcse(idata, method="sd")
    out = {k: {"mean": float(post[k].mean()), "sd": float(post[k].std()),
               "mcse_mean": float(mcse[k]), "mcse_sd": float(mcse_sd[k]),
               "ess_bulk": float(ess_b[k]), "ess_tail": float(ess_t[k]),
               "rhat": float(rhat[k])} for k in REPORTED}
    steps = extra.get("num_steps", extra.get("hmc_state.num_steps"))
    div = extra.get("diverging", extra.get("hmc_state.diverging"))
    diag = {"rhat_max": max(v["rhat"] for v in out.values()),
            "ess_bulk_min": min(v["ess_bulk"] for v in out.values()),
            "ess_tail_min": min(v["ess_tail"] for v in out.values()),
            "divergences": int(np.asarray(div).sum()),
            "leapfrog_per_draw": float(np.asarray(steps).mean())}
    if "accept_prob" in extra:
        diag["subsample_accept"] = float(np.asarray(extra["accept_prob"]).mean())
    diag["ok"] = (diag["rhat_max"] <= 1.01 and diag["ess_bulk_min"] >= 400
                  and diag["divergences"] == 0)
    return out, diag


def compare(a, b):
    """``a`` against ``b`` (e.g. HMCECS against full NUTS): mean difference in MC standard
    errors of the difference, and sd ratio."""
    out = {}
    for k in REPORTED:
        se = math.hypot(a[k]["mcse_mean"], b[k]["mcse_mean"])
        out[k] = {"diff_in_mcse": (a[k]["mean"] - b[k]["mean"]) / se,
                  "diff_in_post_sd": (a[k]["mean"] - b[k]["mean"]) / b[k]["sd"],
                  "sd_ratio": a[k]["sd"] / b[k]["sd"]}
    return out


# --------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--methods", default="nuts,ecs", help="comma list of nuts, ecs")
    ap.add_argument("--m", default="1000", help="comma list of HMCECS subsample sizes")
    ap.add_argument("--blocks", type=int, default=0,
                    help="HMCECS num_blocks (default m // 100: NumPyro's Taylor proxy "
                         "takes per-row Hessians by jacrev, O(block^2) per step)")
    ap.add_argument("--reference", default="map", choices=("huber", "map"))
    ap.add_argument("--init", default="laplace", choices=("laplace", "jitter"),
                    help="laplace: each chain from N(reference, (2 sd)^2) of the Laplace "
                         "approximation; jitter: the reference jittered by U(-0.3, 0.3) "
                         "unconstrained (bayescale's init_near)")
    ap.add_argument("--likelihood", default="student_t", choices=("student_t", "normal"))
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import numpy as np

    from bayescale import load_runs
    from bayescale.errors import DataWarning
    from bayescale.laws.chinchilla import HOFFMANN_2022 as P
    from bench_rows import synthetic_checkpoints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        runs = load_runs(synthetic_checkpoints(args.rows))
    log_X = np.column_stack([runs.log_N, runs.log_D]).astype(np.float64)
    y = np.asarray(runs.log_loss, np.float64)
    centre = tuple(float(v) for v in log_X.mean(axis=0))
    E_max = float(np.median(runs.loss))
    data = (log_X, y, centre, E_max)
    truth = {k: float(getattr(P, k)) for k in ("E", "A", "B", "alpha", "beta")}

    ref, t_huber, huber_params = huber_reference(runs, log_X, y, centre, args.likelihood)
    result = {"rows": args.rows, "likelihood": args.likelihood, "chains": args.chains,
              "warmup": args.warmup, "draws": args.draws, "chain_method": "sequential (lax.map)",
              "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg(),
              "truth": truth, "huber": {"seconds": t_huber, "params": huber_params,
                                        "reference_sites": dict(ref)}}
    ref, inits, t_map, map_info = laplace(ref, log_X, y, centre, E_max, args.likelihood,
                                          optimise=args.reference == "map", chains=args.chains,
                                          scale=2.0, seed=args.seed)
    result["reference"] = {"kind": args.reference, "seconds": t_map, "sites": ref,
                           "init": args.init, **map_info}
    if args.init == "jitter":
        inits = {k: np.full(args.chains, v) for k, v in ref.items()}
    print(json.dumps({"huber_s": round(t_huber, 1), "reference": result["reference"]}), flush=True)

    common = dict(chains=args.chains, warmup=args.warmup, draws=args.draws,
                  likelihood=args.likelihood)
    runs_out = {}
    for method in args.methods.split(","):
        for m in (map(int, args.m.split(",")) if method == "ecs" else (None,)):
            name = "nuts" if method == "nuts" else f"ecs_m{m}"
            blocks = args.blocks or max(1, (m or 0) // 100)
            samples, extra, t_c, t_s = run_sampler(
                method, data, ref, inits, seed=args.seed, m=m, num_blocks=blocks,
                init_jitter=args.init == "jitter", **common)
            summ, diag = summarise(samples, extra, centre)
            runs_out[name] = {"m": m, "num_blocks": None if m is None else blocks,
                              "compile_s": t_c, "sampling_s": t_s, "diagnostics": diag,
                              "posterior": summ,
                              "mean_minus_truth_in_sd": {
                                  k: (summ[k]["mean"] - truth[k]) / summ[k]["sd"]
                                  for k in truth}}
            print(json.dumps({name: {"compile_s": round(t_c, 1), "sampling_s": round(t_s, 1),
                                     **diag}}), flush=True)
            for k in REPORTED:
                s = summ[k]
                print(f"  {k:>6}: mean {s['mean']:.6g} sd {s['sd']:.3g} mcse {s['mcse_mean']:.2g}"
                      f" ess {s['ess_bulk']:.0f}/{s['ess_tail']:.0f} rhat {s['rhat']:.4f}"
                      + (f" truth {truth[k]:.6g}" if k in truth else ""), flush=True)
    if "nuts" in runs_out:
        for name, r in runs_out.items():
            if name != "nuts":
                r["vs_nuts"] = compare(r["posterior"], runs_out["nuts"]["posterior"])
                print(name, "vs nuts:", json.dumps(
                    {k: {kk: round(vv, 2) for kk, vv in v.items()}
                     for k, v in r["vs_nuts"].items()}), flush=True)
    result["runs"] = runs_out
    result["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
