"""The report's figures and its approaches comparison, for whichever law was fitted.

:func:`draw_figures` draws the figures of :mod:`bayescale.report.plots` from the three
fits and their frontiers; :func:`figure_captions` gives each its caption (the
Chinchilla captions of :data:`FIGURES`, with the law's own parameters otherwise);
:func:`approaches` and :func:`approaches_figure` compare Hoffmann et al.'s three
approaches (:mod:`bayescale.report.approaches`). What a law does not allow is left
out, and :func:`draw_figures` says why in one line each.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102 (2024).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from bayescale.errors import BayescaleError
from bayescale.estimators.fit import ScalingFit
from bayescale.report.compare import quantities

__all__ = ["FIGURES", "figure_captions", "draw_figures", "approaches", "approaches_figure"]

#: Figure file stem -> caption (for the Chinchilla law; see :func:`figure_captions`).
FIGURES = {
    "frontier": "Compute-optimal model size and tokens (posterior median and band; bootstrap "
                "median and bounds dashed), with the compute range of the runs shaded and, on "
                "the Chinchilla data, the published fits and the models trained (Chinchilla, "
                "Gopher); below, the width of each band as the ratio of its upper to its "
                "lower bound.",
    "tokens_per_param": "Compute-optimal tokens per parameter, with the 20-tokens-per-"
                        "parameter rule of thumb.",
    "methods": "Estimates and intervals for each parameter and a_opt from the Bayesian fit, "
               "the bootstrap and the Huber fit.",
    "pair": "Joint distribution of (E, A, B, alpha, beta): posterior draws (blue) over the "
            "bootstrap resamples (orange), outline histograms, and the Huber estimate.",
    "approaches": "Compute-optimal model size N_opt(C) estimated three ways where the runs "
                  "allow them (Approach 1: envelope of training curves; 2: isoFLOP "
                  "parabolas; 3: the parametric law, bootstrap), each with its band, and "
                  "Kaplan et al.'s (2020) allocation for reference.",
    "runs": "Runs on loss vs compute, coloured by model size, with the fitted loss curves "
            "(bands: posterior interval); right, the isoFLOP profiles with each minimum marked.",
    "residuals": "Residuals of log loss vs model size and tokens, with posterior-predictive "
                 "intervals.",
}

_QUIET = ".*(non-positive|No artists).*"  # a band touching zero, an empty legend: not errors


def figure_captions(law_name: str = "chinchilla") -> dict[str, str]:
    """:data:`FIGURES`, with the captions that name parameters written for ``law_name``."""
    if law_name == "chinchilla":
        return dict(FIGURES)
    from bayescale.laws.registry import get_law

    names = ", ".join(get_law(law_name).param_names)
    return dict(FIGURES, methods=(
        f"Estimates and intervals for each parameter of the {law_name} law from the Bayesian "
        "fit, the bootstrap and the Huber fit."), pair=(
        f"Joint distribution of ({names}): posterior draws (blue) over the bootstrap "
        "resamples (orange), outline histograms, and the Huber estimate."))


def draw_figures(fits: Mapping[str, ScalingFit], frontiers: Mapping[str, Any], data_C_range,
                 level: float, references: bool) -> tuple[dict[str, Any], list[str]]:
    """The figures, and one line for each left out.

    ``references``: draw the published Chinchilla fits and models (the Chinchilla law
    on the Chinchilla data only).
    """
    from bayescale.report import plots as plot

    bayes, boot, huber = fits["bayes"], fits["bootstrap"], fits["huber"]
    law = bayes.law
    others = {"bootstrap": frontiers["bootstrap"]}
    shown = [q for q in quantities(law.name) if q != "b_opt"]
    notes = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUIET, category=UserWarning)
        figs = {
            "frontier": plot.plot_frontier(frontiers["bayes"], data_C_range=data_C_range,
                                           others=others, level=level, references=references),
            "tokens_per_param": plot.plot_tokens_per_param(
                frontiers["bayes"], data_C_range=data_C_range, others=others, level=level,
                references=references),
            "methods": plot.plot_methods(fits, level=level, references=references,
                                         quantities=shown),
            "pair": plot.plot_pair(bayes, huber=huber, bootstrap=boot, level=level),
        }
        if "U" in law.inputs:
            notes.append(f"The runs figure (fitted loss curves along compute at fixed model "
                         f"size) is left out: the {law.name} law's loss also depends on each "
                         f"run's unique tokens, so one curve per size does not exist.")
        else:
            figs["runs"] = plot.plot_runs(bayes, level=level)
        figs["residuals"] = plot.plot_residuals(bayes, level=level)
    return figs, notes


def approaches(runs, fits, budgets, level, seed, resamples):
    """Hoffmann et al.'s three approaches (:mod:`bayescale.report.approaches`), Approach 3
    being the report's bootstrap; what each fit warned about is kept for the page.

    Approach 3 needs the Chinchilla law's constant allocation exponents: for another law
    it is left out (``skipped``) and Approaches 1 and 2, which fit no law, are compared.
    Returns ``(comparison, None)``, or ``(None, why)`` when no approach could be fitted.
    """
    from bayescale.report.approaches import compare_approaches

    n = max(100, min(int(resamples), 1000))
    law = fits["bootstrap"].law
    chinchilla = law.name == "chinchilla"
    which = (1, 2, 3) if chinchilla else (1, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            comparison = compare_approaches(
                runs, which, budgets=[float(budgets.max())], level=level, seed=seed,
                options={1: {"resamples": n}, 2: {"resamples": n}},
                fits={3: fits["bootstrap"]} if chinchilla else None)
        except BayescaleError as exc:
            if chinchilla:
                raise
            return None, (f"Approach 3 is left out (the {law.name} law has no constant "
                          f"allocation exponents) and Approaches 1 and 2 could not be "
                          f"fitted: {exc}")
    comparison.notes = [str(w.message) for w in caught]
    if not chinchilla:
        comparison.skipped[3] = (f"the {law.name} law has no constant allocation exponents "
                                 f"(N_opt ~ C^a is the Chinchilla law's); its allocation is "
                                 f"the frontier above.")
    return comparison, None


def approaches_figure(comparison, lo: float, hi: float):
    from bayescale.report.approaches import plot_approaches

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_QUIET, category=UserWarning)
        return plot_approaches(comparison, C_range=(lo, hi))
