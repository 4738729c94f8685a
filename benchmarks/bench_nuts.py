"""NUTS benchmark: bayescale's default fit vs the model a NumPyro newcomer would write.

Run ``python benchmarks/bench_nuts.py [--skip-cli]``; writes ``benchmarks/results/nuts.json``
and prints a table. Both fits use 4 chains x 1000 warmup x 1000 draws on the 240
Chinchilla runs of Besiroglu et al. (2024), in the same process, float32 (JAX default).

* ``bayescale``: :func:`bayescale.estimators.nuts.sample_posterior` defaults (Student-t,
  centred parameterisation, dense mass matrix, data-driven initialisation).
* ``bayescale-normal``: the same with the Normal likelihood (like for like with the newcomer).
* ``newcomer``: Normal likelihood on log loss, ``a, b, e, alpha, beta`` sampled in
  their natural form with uniform priors, NUTS defaults (diagonal mass,
  ``init_to_uniform``, target 0.8).

"compile" is the wall time JAX reports (``jax.monitoring`` time spans) for tracing,
lowering and XLA compilation; "sampling" is the rest of ``MCMC.run``.
The CLI part times ``bayescale fit chinchilla --method bayes --json`` as a fresh
process with an empty and then a warm persistent compilation cache
(``JAX_COMPILATION_CACHE_DIR`` pointing at a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def newcomer_model(log_N, log_D, log_loss=None):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import logsumexp

    a = numpyro.sample("a", dist.Uniform(0.0, 30.0))
    b = numpyro.sample("b", dist.Uniform(0.0, 30.0))
    e = numpyro.sample("e", dist.Uniform(-2.0, 2.0))
    alpha = numpyro.sample("alpha", dist.Uniform(0.0, 2.0))
    beta = numpyro.sample("beta", dist.Uniform(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    mu = logsumexp(jnp.stack([a - alpha * log_N, b - beta * log_D, e * jnp.ones_like(log_N)]),
                   axis=0)
    with numpyro.plate("runs", log_N.shape[0]):
        numpyro.sample("obs", dist.Normal(mu, sigma), obs=log_loss)


def run_newcomer(runs, seed=0, chains=4, warmup=1000, draws=1000):
    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    from bayescale.estimators._nuts_program import CompileClock as _CompileClock

    mcmc = MCMC(NUTS(newcomer_model), num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    args = [jnp.asarray(v, dtype=jnp.float32) for v in (runs.log_N, runs.log_D, runs.log_loss)]
    with _CompileClock() as clock:
        t0 = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("num_steps", "diverging"))
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        wall = time.perf_counter() - t0
    ess = az.ess({k: np.asarray(v) for k, v in samples.items()
                  if k in ("a", "b", "e", "alpha", "beta")}, method="bulk")
    ess_min = float(min(float(ess[k]) for k in ess.data_vars))
    rhat = az.rhat({k: np.asarray(v) for k, v in samples.items()
                    if k in ("a", "b", "e", "alpha", "beta")})
    stats = mcmc.get_extra_fields()
    sampling = wall - clock.seconds
    return {"wall": wall, "compile": clock.seconds, "sampling": sampling,
            "leapfrog_per_draw": float(np.mean(stats["num_steps"])),
            "divergences": int(np.sum(stats["diverging"])),
            "rhat_max": float(max(float(rhat[k]) for k in rhat.data_vars)),
            "ess_bulk_min": ess_min, "ess_bulk_min_per_s": ess_min / sampling,
            "medians": {k: float(np.median(samples[k])) for k in ("e", "alpha", "beta")}}


def run_bayescale(runs, likelihood="student_t", seed=0):
    import warnings

    import numpy as np

    from bayescale.estimators.nuts import sample_posterior

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        post = sample_posterior(runs, seed=seed, likelihood=likelihood)
    wall = time.perf_counter() - t0
    t = post.info["timing"]
    d = post.diagnostics
    return {"wall": wall, "compile": t["compile"], "sampling": t["sampling"],
            "postprocess": t["postprocess"], "leapfrog_per_draw": post.info["leapfrog_per_draw"],
            "divergences": d.divergences, "rhat_max": d.rhat_max,
            "ess_bulk_min": d.ess_bulk_min, "ess_bulk_min_per_s": d.ess_bulk_min / t["sampling"],
            "medians": {k: float(np.median(getattr(post.params, k)))
                        for k in ("E", "alpha", "beta")}}


def time_cli(cache_dir: Path) -> dict:
    exe = shutil.which("bayescale") or str(Path(sys.executable).with_name("bayescale"))
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
           "BAYESCALE_DATA": os.environ.get("BAYESCALE_DATA", str(ROOT.parent / "shared" / "data"))}
    cmd = [exe, "fit", "chinchilla", "--method", "bayes", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = {"cmd": " ".join(cmd[1:]), "wall": wall, "rc": proc.returncode}
    if proc.returncode == 0:
        try:
            out["timing"] = json.loads(proc.stdout).get("timing")
        except json.JSONDecodeError:
            out["stdout_tail"] = proc.stdout[-300:]
    else:
        out["stderr_tail"] = proc.stderr[-500:]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "nuts.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("BAYESCALE_DATA", str(ROOT.parent / "shared" / "data"))

    import jax

    from bayescale import load_runs

    runs = load_runs("chinchilla", exclude_top=5)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "device": jax.devices()[0].device_kind,
                           "loadavg_before": os.getloadavg()},
               "settings": "4 chains x 1000 warmup x 1000 draws, 240 runs, float32"}
    results["newcomer"] = run_newcomer(runs)
    results["bayescale"] = run_bayescale(runs)
    results["bayescale-normal"] = run_bayescale(runs, likelihood="normal")
    results["ratio_ess_per_s"] = (results["bayescale"]["ess_bulk_min_per_s"]
                                  / results["newcomer"]["ess_bulk_min_per_s"])
    results["ratio_ess_per_s_normal"] = (results["bayescale-normal"]["ess_bulk_min_per_s"]
                                         / results["newcomer"]["ess_bulk_min_per_s"])
    if not args.skip_cli:
        with tempfile.TemporaryDirectory() as tmp:
            results["cli_cold_cache"] = time_cli(Path(tmp))
            results["cli_warm_cache"] = time_cli(Path(tmp))
    results["machine"]["loadavg_after"] = os.getloadavg()

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    cols = ("wall", "compile", "sampling", "leapfrog_per_draw", "ess_bulk_min",
            "ess_bulk_min_per_s", "divergences")
    print(f"{'model':18s}" + "".join(f"{c:>20s}" for c in cols))
    for name in ("newcomer", "bayescale", "bayescale-normal"):
        r = results[name]
        print(f"{name:18s}" + "".join(f"{r[c]:20.2f}" for c in cols))
    print(f"ESS/s ratio (default / newcomer): {results['ratio_ess_per_s']:.1f}x; "
          f"normal / newcomer: {results['ratio_ess_per_s_normal']:.1f}x")
    for key in ("cli_cold_cache", "cli_warm_cache"):
        if key in results:
            r = results[key]
            print(f"{key}: {r['wall']:.2f} s (rc {r['rc']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
