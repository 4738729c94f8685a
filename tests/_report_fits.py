"""Small fits shared by the report, plot, browser and CLI tests (computed once per session).

Synthetic runs (Hoffmann et al.'s law on the Epoch-like design), NUTS with 2 chains x
100 warmup x 100 draws, 100 bootstrap resamples: enough to draw every figure and
table, far too little for the diagnostics to pass (which exercises the banner).
"""

from __future__ import annotations

import functools
import warnings


@functools.cache
def small_fits():
    from bayescale.errors import ConvergenceWarning
    from bayescale.report.build import fit_methods
    from bayescale.data.simulate import simulate_runs

    runs = simulate_runs(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny settings: expected
        return fit_methods(runs, bayes_options=dict(chains=2, warmup=100, draws=100),
                           resamples=100, seed=0, quiet=True)
