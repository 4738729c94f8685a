"""bayescale: Bayesian fits of neural scaling laws and compute-optimal decisions.

Heavy modules (JAX, pandas, NumPyro) load on first use, so ``import bayescale`` and
``bayescale --version`` stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0.dev0"

_LAZY = {
    "load_runs": "bayescale.data.runs",
    "Runs": "bayescale.data.runs",
    "LawParams": "bayescale.laws.chinchilla",
    "fit": "bayescale.estimators.fit",
    "ScalingFit": "bayescale.estimators.fit",
    "published": "bayescale.estimators.fit",
    "get_law": "bayescale.laws.registry",
    "DataError": "bayescale.errors",
    "BayescaleError": "bayescale.errors",
    "DatasetNotFoundError": "bayescale.errors",
    "ConvergenceWarning": "bayescale.errors",
    "ConvergenceError": "bayescale.errors",
    "DATASETS": "bayescale.data.registry",
    "Frontier": "bayescale.planning.frontier",
    "compute_optimal": "bayescale.planning.frontier",
    "simulate_runs": "bayescale.data.simulate",
    "HOFFMANN_2022": "bayescale.laws.chinchilla",
    "BESIROGLU_2024": "bayescale.laws.chinchilla",
}

# Modules reached as attributes: ``bayescale.design.next_runs(fit, ...)``.
_MODULES = {"design": "bayescale.design"}

__all__ = sorted(_LAZY) + sorted(_MODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


def __dir__():
    return __all__
