"""From runs to a decision report: three fits side by side, the frontier, decisions.

:func:`build_report` fits the law three ways (the NUTS posterior, Besiroglu et al.'s
bootstrap, and the Huber grid fit of Hoffmann et al. that the bootstrap is centred
on), computes the compute-optimal frontier and the decision table at a set of
budgets, draws the six figures of :mod:`bayescale.report.plots`, and writes one folder.
The law is Chinchilla's unless ``law=`` names another (``kaplan``, ``data_constrained``,
...): every fit is of that law, the tables use its parameters, and what only the
Chinchilla law has (the published fits, ``a_opt``, Approach 3) is left out with a
line saying why; the data-constrained law's frontier and decision table are at a
unique-token budget ``unique_tokens=U`` (required), and it has no runs figure yet.

``report.html``
    Self-contained (figures embedded as base64 PNG, inline CSS); opens from disk.
``report.md``
    The same text and tables, figures linked from ``figures/``.
``figures/*.png``
    The six figures.
``summary.csv``, ``draws.csv``, ``runs.csv``, ``fit.json``, ``posterior.nc``
    The Bayesian fit, as :func:`bayescale.io.save_fit` writes it: the report folder
    is also a fit folder (``bayescale frontier REPORT_DIR --budget C`` works).
``methods.csv``
    :func:`compare_methods`: estimates and intervals of the three methods.
``frontier.csv``, ``decisions.csv``
    The frontier summary per budget and the decision table per budget and plan (at the
    unique-token budget U for a law that takes it).
``approaches.csv``
    Hoffmann et al.'s Approaches 1, 2 and 3 where the runs allow them
    (:mod:`bayescale.report.approaches`): a, b and N_opt, D_opt at the largest budget.
``structural.csv``, ``backtest.csv``
    Only with ``structural=LAWS`` and ``backtest=HOLDOUT`` (:mod:`bayescale.report.honest`):
    N_opt and D_opt per budget within the top-weighted law and with law-form uncertainty
    (leave-future-out stacking of the laws), and the leave-future-out backtest per held-out
    run; the page gets a section for each.
``manifest.json``
    Written last: the list of files, the version, the settings.

The folder is built in a hidden temporary sibling (``.NAME.partial-*``) and swapped
into place with renames (:func:`bayescale.io.atomic_folder`), so an interrupted run
leaves either the previous report or none, never a half-written one. A re-run
replaces what the previous run wrote (its manifest lists it) and keeps every other
file (the user's notes); a file of the user's with the name of one being written is
refused, not overwritten. A folder that is not a bayescale report (no
``manifest.json``) and is not empty is never replaced. Ctrl-C stops the run (exit
130 from the command line) and leaves the previous report as it was, even when the
interrupt lands in a callback that swallows it (:class:`bayescale.io.InterruptGuard`).

The fits and tables come from :mod:`.compare`, the figures from :mod:`.figures` and
:mod:`.plots`, the pages from :mod:`.render`, the folder's manifest and atomic swap from
:mod:`.folder`; this module orchestrates them and writes the folder's files.

References
----------
J. Hoffmann et al., arXiv:2203.15556 (2022); T. Besiroglu et al., arXiv:2404.10102
(2024); J. Kaplan et al., arXiv:2001.08361 (2020); N. Sardana et al.,
arXiv:2401.00448 (2023).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayescale._atomic import InterruptGuard, check_destination
from bayescale._util import as_budgets
from bayescale.data.runs import Runs, load_runs
from bayescale.errors import BayescaleError
from bayescale.estimators.fit import ScalingFit
from bayescale.io import save_fit
from bayescale.report import honest as _honest
from bayescale.report.figures import FIGURES, approaches_figure, draw_figures, figure_captions
from bayescale.report.figures import approaches as compare_approaches
from bayescale.report.compare import (
    GOPHER_BUDGET,
    Steps,
    compare_methods,
    compare_methods_json,
    default_budgets,
    fit_methods,
    is_chinchilla_data,
    show_progress,
)
from bayescale.report.folder import (
    MARKER,
    commit_report,
    plain,
    png_bytes,
    tell_written,
    write_manifest,
)
from bayescale.report.render import context, methods_display, render_html, render_markdown

__all__ = [
    "GOPHER_BUDGET",
    "FIGURES",
    "default_budgets",
    "fit_methods",
    "compare_methods",
    "compare_methods_json",
    "methods_display",
    "build_report",
]

def _write_folder(folder: Path, ctx, figs) -> dict[str, Path]:
    """Write every file of the report into ``folder`` (a fresh temporary folder)."""
    fits, level = ctx["fits"], ctx["level"]
    bayes = fits["bayes"]
    methods = ctx["methods"]
    payload = bayes.to_dict(level)
    payload["report"] = {
        "comparison": compare_methods_json(methods),
        "frontier": ctx["frontiers"]["bayes"].to_dict(level),
        "settings": ctx["settings"],
        **_honest.payload(ctx.get("honest") or {}),
    }
    payload = json.loads(json.dumps(payload, default=plain))  # plain types
    written = {k: Path(v) for k, v in save_fit(bayes, folder, level=level, payload=payload,
                                               atomic=False).items()}
    written["methods"] = folder / "methods.csv"
    methods.to_csv(written["methods"])
    written["frontier"] = folder / "frontier.csv"
    ctx["frontiers"]["bayes"].summary(level).to_csv(written["frontier"])
    if ctx["decisions"] is not None:
        written["decisions"] = folder / "decisions.csv"
        ctx["decisions"].to_csv(written["decisions"])
    if ctx.get("approaches") is not None:
        written["approaches"] = folder / "approaches.csv"
        ctx["approaches"].table.to_csv(written["approaches"])
    written.update(_honest.write_files(folder, ctx.get("honest") or {}))
    figdir = folder / "figures"
    figdir.mkdir()
    pngs, rel = {}, {}
    for name, fig in figs.items():
        pngs[name] = png_bytes(fig)
        path = figdir / f"{name}.png"
        path.write_bytes(pngs[name])
        written[f"figure_{name}"] = path
        rel[name] = f"figures/{name}.png"
    written["markdown"] = folder / "report.md"
    written["markdown"].write_text(render_markdown(ctx, rel, ctx["captions"]), encoding="utf-8")
    written["html"] = folder / "report.html"
    written["html"].write_text(render_html(ctx, pngs, ctx["captions"]), encoding="utf-8")
    write_manifest(folder, written, {
        "bayescale_report": 1, "version": ctx["settings"]["version"], "created": ctx["created"],
        "diagnostics_ok": not ctx["problems"], "settings": ctx["settings"]})
    return written


def _check_law(runs: Runs, law, fits, unique_tokens):
    """The law of the report and its unique-token budget, checked before any work."""
    from bayescale._util import parse_flops
    from bayescale.laws.registry import get_law

    if fits is not None:
        fitted = fits["bayes"].law
        if law is not None and get_law(law) is not fitted:
            raise BayescaleError(f"the fits are of the {fitted.name} law, not of the "
                                 f"{get_law(law).name} law; refit or drop law=.")
        law_obj = fitted
    else:
        law_obj = get_law(law)
    if "U" not in law_obj.inputs:
        if unique_tokens is not None:
            raise BayescaleError(f"a unique-token budget applies to laws with unique tokens as "
                                 f"an input (data_constrained); the {law_obj.name} law has none.")
        return law_obj, None
    if unique_tokens is None:
        raise BayescaleError(
            f"the {law_obj.name} law's compute-optimal allocation depends on the unique-token "
            f"budget U: pass unique_tokens=U (--unique-tokens U on the command line, e.g. "
            f"--unique-tokens 1e11).")
    if getattr(runs, "U", None) is None:
        raise BayescaleError(f"the {law_obj.name} law needs the unique tokens of every run: "
                             f"add a 'U' (or 'unique_tokens') column to the data.")
    if isinstance(unique_tokens, str):
        U = parse_flops(unique_tokens, "unique_tokens")
    else:
        U = float(as_budgets(unique_tokens)[0])
    return law_obj, U


def _law_notes(law_name: str, chinchilla_data: bool) -> list[str]:
    """One line for each part of the report the law leaves out."""
    if law_name == "chinchilla":
        return []
    notes = [f"a_opt and b_opt are left out: they are the Chinchilla law's constant allocation "
             f"exponents (N_opt ~ C^a_opt), and the {law_name} law's allocation is not a power "
             f"of C; the frontier gives it budget by budget."]
    if chinchilla_data:
        notes.append(f"The published fits of these runs (Hoffmann et al. 2022, Besiroglu et "
                     f"al. 2024) are of the Chinchilla law's parameters, not the {law_name} "
                     f"law's: their columns and curves are left out.")
    return notes


def build_report(runs: Runs | Any, *, out_dir: str | os.PathLike,
                 budgets: Sequence[float] | None = None,
                 bayes_options: Mapping[str, Any] | None = None, resamples: int = 4000,
                 seed: int = 0, level: float = 0.9,
                 reference_budget: float = GOPHER_BUDGET, quiet: bool = False,
                 fits: Mapping[str, ScalingFit] | None = None, law: Any = None,
                 unique_tokens: float | None = None, structural: Any = None,
                 backtest: str | None = None) -> dict[str, Path]:
    """Fit, compare, decide and write a report folder.

    Parameters
    ----------
    runs : Runs, or anything :func:`bayescale.load_runs` takes.
    out_dir : the report folder (what a previous report wrote there is replaced; other
        files are kept).
    budgets : budgets (FLOPs) for the frontier and decision tables; default
        :func:`default_budgets` (the data's compute range and two decades beyond).
        The figures always span the data's compute range as well.
    bayes_options : NUTS settings (``chains``, ``warmup``, ``draws``, ``likelihood``,
        ``target_accept``, ...), see :func:`bayescale.estimators.nuts.sample_posterior`.
    resamples : bootstrap resamples.
    seed : seed of NUTS and the bootstrap.
    level : interval level throughout.
    reference_budget : budget of the method comparison (default Gopher's 5.76e23).
    quiet : no progress bars (they are also off when stderr is not a terminal).
    fits : reuse fits from :func:`fit_methods` instead of fitting.
    law : the law every method fits: a name (``"chinchilla"``, ``"kaplan"``,
        ``"data_constrained"``, or one registered with :func:`bayescale.laws.register`)
        or a :class:`~bayescale.laws.base.Law`; default Chinchilla's, or the law of
        ``fits``. The tables use the law's own parameters; what only makes sense for
        the Chinchilla law (the published fits, ``a_opt``, Approach 3) is left out of
        another law's report, with a line saying why.
    unique_tokens : the unique-token budget ``U`` of the frontier and the decision table,
        for a law that takes one (``data_constrained``: required); an error for the others.
    structural : two or more laws (``("chinchilla", "kaplan")`` or ``"chinchilla,kaplan"``):
        add the section "N_opt and D_opt with law-form uncertainty" and ``structural.csv``
        (:func:`bayescale.estimators.stacking.stack_laws`, bootstrap fits with
        ``resamples`` and ``seed``; the bands at ``budgets``).
    backtest : a hold-out, ``"top-budgets:K"`` or ``"above:C"``: add the section "Would
        this have told the truth?" and ``backtest.csv``
        (:func:`bayescale.validation.backtest.backtest` of the report's law, ``seed``).
        Runs that cannot support a section get one line saying why instead.

    Returns
    -------
    dict
        Name -> path of every file written (``html``, ``markdown``, ``json``,
        ``summary``, ``posterior``, ``frontier``, ``methods``, ``decisions``,
        ``figure_<name>``, ``manifest``, ...), inside ``out_dir``.

    Raises
    ------
    BayescaleError
        Bad budgets or level, an unknown law, a missing or needless ``unique_tokens``,
        runs without unique tokens for a law that needs them, ``fits`` of another law,
        an ``out_dir`` that is a non-empty folder not written by this function, or a
        user's file in the way of one being written.
    KeyboardInterrupt
        On Ctrl-C; ``out_dir`` is left as it was.
    """
    from bayescale import __version__
    from bayescale.planning.decisions import compare_plans

    if not isinstance(runs, Runs):
        runs = load_runs(runs)
    level = float(level)
    if not 0 < level < 1:
        raise BayescaleError(f"level must be between 0 and 1, got {level}.")
    budgets = default_budgets(runs) if budgets is None else np.sort(as_budgets(budgets))
    law_obj, unique_tokens = _check_law(runs, law, fits, unique_tokens)
    structural = _honest.check_structural(structural)
    backtest = _honest.check_backtest(backtest)
    out = check_destination(Path(out_dir).absolute(), marker=MARKER, what="report")
    chinchilla_data = is_chinchilla_data(runs)
    # The published fits and their story are the Chinchilla law's on the Chinchilla data.
    chinchilla = chinchilla_data and law_obj.name == "chinchilla"
    at_U = {} if unique_tokens is None else {"unique_tokens": unique_tokens}
    t0 = time.perf_counter()
    with InterruptGuard() as guard:
        extra_step = [] if structural is None and backtest is None else ["law forms, backtest"]
        steps = Steps(["NUTS sampling", "bootstrap", "frontier, decisions, approaches",
                       *extra_step, "figures", "writing"], show_progress(quiet),
                      check=guard.check)
        try:
            if fits is None:
                fits = fit_methods(runs, bayes_options=bayes_options, resamples=resamples,
                                   seed=seed, level=level, quiet=quiet, steps=steps,
                                   law=law_obj)
            else:
                steps.done()
                steps.done()
            steps.start("frontier, decisions, approaches")
            data_C_range = (float(runs.C.min()), float(runs.C.max()))
            frontiers = {m: fits[m].frontier(budgets, **at_U) for m in ("bayes", "bootstrap")}
            # The figures span the budgets and the data's range, whatever the budgets.
            lo = min(float(budgets.min()), data_C_range[0])
            hi = max(float(budgets.max()), data_C_range[1])
            dense = np.geomspace(lo, hi, 80)
            dense_frontiers = {m: fits[m].frontier(dense, **at_U) for m in ("bayes", "bootstrap")}
            methods = compare_methods(fits=fits, reference_budget=reference_budget,
                                      level=level, published=chinchilla, **at_U)
            law_notes = _law_notes(law_obj.name, chinchilla_data)
            decisions = compare_plans(fits["bayes"].params, budgets, level=level, **at_U)
            approaches, approaches_note = compare_approaches(runs, fits, budgets, level, seed,
                                                             resamples)
            steps.done()
            honest = {}
            if extra_step:
                steps.start(extra_step[0])
                if structural is not None:
                    honest["structural"] = _honest.compute_structural(
                        runs, structural, budgets, level, seed=seed, resamples=resamples,
                        unique_tokens=unique_tokens)
                if backtest is not None:
                    honest["backtest"] = _honest.compute_backtest(runs, backtest,
                                                                  law=law_obj.name, seed=seed)
                steps.done()
            steps.start("figures")
            figs, figure_notes = draw_figures(fits, dense_frontiers, data_C_range, level,
                                              chinchilla)
            if approaches is not None:
                figs["approaches"] = approaches_figure(approaches, lo, hi)
            steps.done()
            steps.start("writing")
            settings = {"version": __version__, "level": level, "seed": int(seed),
                        "resamples": int(resamples),
                        "reference_budget": float(reference_budget),
                        "law": law_obj.name, "unique_tokens": unique_tokens,
                        "structural": None if structural is None else list(structural),
                        "backtest": backtest,
                        "budgets": [float(c) for c in budgets],
                        "bayes": {k: fits["bayes"].info.get(k) for k in
                                  ("likelihood", "chains", "warmup", "draws", "target_accept")}}
            created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            ctx = context(runs, fits, frontiers, methods, decisions, budgets, level, settings,
                          chinchilla=chinchilla, created=created,
                          chinchilla_data=chinchilla_data, unique_tokens=unique_tokens,
                          law_notes=law_notes + figure_notes)
            ctx.update(approaches=approaches, approaches_note=approaches_note, honest=honest,
                       captions=figure_captions(law_obj.name))
            result = commit_report(out, lambda tmp: _write_folder(tmp, ctx, figs),
                                   guard=guard, steps=steps)
        finally:
            steps.close()
    tell_written(out, result, t0, quiet)
    return result
