"""bayescale: Bayesian fits of neural scaling laws and compute-optimal decisions.

Heavy modules (JAX, pandas, NumPyro) load on first use, so ``import bayescale`` and
``bayescale --version`` stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_runs": "bayescale.data",
    "Runs": "bayescale.data",
    "LawParams": "bayescale.law",
    "fit": "bayescale.fitting",
    "ScalingFit": "bayescale.fitting",
    "DataError": "bayescale.errors",
    "BayescaleError": "bayescale.errors",
    "DatasetNotFoundError": "bayescale.errors",
    "ConvergenceWarning": "bayescale.errors",
    "ConvergenceError": "bayescale.errors",
    "DATASETS": "bayescale.datasets",
    "Frontier": "bayescale.frontier",
    "compute_optimal": "bayescale.frontier",
    "simulate_runs": "bayescale.synthetic",
    "HOFFMANN_2022": "bayescale.law",
    "BESIROGLU_2024": "bayescale.law",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


def __dir__():
    return __all__
