"""The report as text: tables formatted for people, and the HTML and Markdown pages.

The page puts the answer first (the decision table and the frontier), then the fit
(parameters by method, their joint distribution, the runs), then the checks
(diagnostics, residuals) and the details (data, model). Numbers read as people write
them (``71.3B [60.1B, 84.2B]``, ``1.33T``, ``19.4 [13.1, 27.2]``); the prose about
Hoffmann et al.'s Chinchilla and Epoch's refit appears only for the Chinchilla data. The
header names the law and says which N the answer is in (:func:`n_convention_line`).
:func:`page_markdown` and :func:`page_html` render any report page (this one, and the
groups side by side of :mod:`.group_report`).

HTML tables come from :meth:`pandas.DataFrame.to_html`; Markdown tables are written
here (``DataFrame.to_markdown`` needs the optional ``tabulate`` package).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bayescale.report._format import human, interval
from bayescale.report.compare import GOPHER_BUDGET
from bayescale.report.honest import sections as honest_sections
from bayescale.report.tables import (
    decisions_display,
    diagnostics_display,
    frontier_display,
    methods_display,
)

__all__ = ["methods_display", "frontier_display", "decisions_display", "sections",
           "render_markdown", "render_html", "CSS", "law_line", "n_convention_line",
           "page_markdown", "page_html", "banner"]


def _chinchilla_lines(table: pd.DataFrame) -> list[str]:
    C = table.attrs["reference_budget"]
    where = " (Gopher's budget)" if C == GOPHER_BUDGET else ""
    lines = [f"At C = {human(C)} FLOPs{where}:"]
    for name, label in (("hoffmann_2022", "Hoffmann et al. (2022), rounded published coefficients"),
                        ("hoffmann_2022_unrounded", "Hoffmann et al. (2022), unrounded coefficients"),
                        ("besiroglu_2024", "Epoch's refit (Besiroglu et al. 2024)")):
        if name in table:
            lines.append(f"{label}: N_opt = {human(table.at['N_opt', name])} parameters, "
                         f"D_opt = {human(table.at['D_opt', name])} tokens "
                         f"({human(table.at['tokens_per_param', name])} tokens per parameter).")
    lines.append(
        "Context: Hoffmann et al.'s Approach-3 coefficients imply ~40B parameters at ~59 tokens "
        "per parameter, inconsistent with Chinchilla itself (70B on 1.4T, ~20 tokens per "
        "parameter) and with their Approaches 1 and 2; Epoch's refit of the digitised data "
        "resolves this, and the posterior says how sure the data let us be.")
    return lines


def _answer_line(table: pd.DataFrame) -> str:
    C, level = table.attrs["reference_budget"], table.attrs["level"]

    def ci(q):
        return interval(table.at[q, "bayes"], table.at[q, "bayes_lower"],
                        table.at[q, "bayes_upper"])

    return (f"At C = {human(C)} FLOPs the posterior puts the compute-optimal model at "
            f"N_opt = {ci('N_opt')} parameters trained on D_opt = {ci('D_opt')} tokens, "
            f"{ci('tokens_per_param')} tokens per parameter (median [central "
            f"{100 * level:g}% interval]).")


def sections(ctx) -> list[tuple[str, str, list[str], list[tuple[str, pd.DataFrame]],
                                  tuple[str, ...]]]:
    """``(id, title, paragraphs, [(table id, table)], figures)`` in page order."""
    fits, level, methods = ctx["fits"], ctx["level"], ctx["methods"]
    bayes, boot = fits["bayes"], fits["bootstrap"]
    prov, info = ctx["provenance"], fits["bayes"].info
    chinchilla = ctx["chinchilla"]
    pct = f"{100 * level:g}%"
    out = []

    U = ctx.get("unique_tokens")
    where = "" if U is None else f" at a unique-token budget U = {human(U)} tokens"
    if ctx["decisions"] is None:
        answer = [_answer_line(methods) + (where and f" The allocation is{where}."),
                  ctx.get("decisions_note") or "No decision table."]
        tables = []
    else:
        answer = [
            _answer_line(methods),
            "For each budget: the Bayes-optimal plan (minimises the posterior expected loss), "
            "the plug-in plan (closed form at the median parameters), 20 tokens per parameter "
            "and Kaplan et al. (2020)'s allocation, evaluated under the posterior. Regret: "
            "expected loss minus that of the Bayes-optimal plan. Compute efficiency: the share "
            "of the budget an optimal plan would need for the same loss."]
        tables = [("decisions", decisions_display(ctx["decisions"]))]
    out.append(("answer", "Answer: compute-optimal plans", answer, tables, ()))

    out.append(("frontier", "Compute-optimal frontier", [
        f"Median and central {pct} posterior interval per budget (C = 6ND){where}. "
        "Extrapolation: decades of compute beyond the range the runs cover."],
        [("frontier", frontier_display(ctx["frontiers"]["bayes"].summary(level)))],
        ("frontier", "tokens_per_param")))
    out += honest_sections(ctx.get("honest"), level)

    paras = [f"Estimates (posterior or bootstrap median, or the Huber point estimate) with "
             f"central {pct} intervals; N_opt, D_opt and tokens per parameter at the reference "
             f"budget C = {human(methods.attrs['reference_budget'])} FLOPs."]
    if chinchilla:
        paras[0] += " The last columns are the published fits."
        paras += _chinchilla_lines(methods)
    paras += list(ctx.get("law_notes", ()))
    out.append(("fit", "The fit: parameters by method", paras,
                [("methods", methods_display(methods))], ("methods", "pair", "runs")))

    if ctx.get("approaches") is not None:
        out.append(_approaches_section(ctx["approaches"], pct, ctx["chinchilla_data"]))
    elif ctx.get("approaches_note"):
        out.append(("approaches", "The allocation three ways", [ctx["approaches_note"]], []))

    d = {k: (math.nan if v is None else v) for k, v in ctx["diagnostics"].items()}
    paras = [f"R-hat max {d.get('rhat_max', math.nan):.4f} (threshold 1.01), bulk ESS min "
             f"{d.get('ess_bulk_min', math.nan):.0f} (400), tail ESS min "
             f"{d.get('ess_tail_min', math.nan):.0f}, divergences {d.get('divergences', 0)} (0), "
             f"E-BFMI min {d.get('ebfmi_min', math.nan):.2f} (0.3)."]
    paras += [str(note) for note in (d.get("notes") or [])]
    out.append(("diagnostics", "Diagnostics", paras,
                [("diagnostics", diagnostics_display(bayes))], ("residuals",)))

    paras = [f"Source: {prov['source']}; {prov['n_runs']} runs used. "
             f"N from {human(prov['N_range'][0])} to {human(prov['N_range'][1])} parameters, "
             f"D from {human(prov['D_range'][0])} to {human(prov['D_range'][1])} tokens, "
             f"C from {human(prov['C_range'][0])} to {human(prov['C_range'][1])} FLOPs, "
             f"loss from {human(prov['loss_range'][0], 4)} to "
             f"{human(prov['loss_range'][1], 4)}."]
    if prov["dropped_rows"]:
        paras.append(f"Filters: {len(prov['dropped_rows'])} rows dropped "
                     f"({', '.join(prov['dropped_by'])}): rows {prov['dropped_rows']}.")
    else:
        paras.append("Filters: none (no rows dropped).")
    paras += [f"Note: {note}." for note in prov["notes"]]
    if "dataset" in prov:
        ds = prov["dataset"]
        paras += [ds["description"], f"Citation: {ds['citation']}",
                  f"Provenance: {ds['provenance']}"]
    out.append(("data", "Data", paras, []))

    grid = "a 4500-start grid" if ctx.get("law", "chinchilla") == "chinchilla" else \
        "the law's grid of starts"
    paras = [f"Likelihood of log loss: {info.get('likelihood', '?')}. NUTS with "
             f"{info.get('chains')} chains x {info.get('warmup')} warmup x "
             f"{info.get('draws')} draws (seed {info.get('seed')}, target acceptance "
             f"{info.get('target_accept')}, {info.get('dtype')} on {info.get('device')}). "
             f"Bootstrap: {boot.info.get('resamples')} resamples of the runs, each refitted by "
             f"L-BFGS. Huber: Huber loss (delta 1e-3) minimised from {grid}. "
             f"Intervals are central {pct} intervals for both the posterior and the bootstrap."]
    if chinchilla:
        paras.append("The Huber fit is Hoffmann et al.'s Approach 3; the bootstrap starts each "
                     "refit from their unrounded coefficients, as Besiroglu et al. (2024) did.")
    t = info.get("timing", {})
    if t:
        paras.append("Timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    prior_table = pd.DataFrame({"prior": info.get("priors", {})}).rename_axis("parameter")
    out.append(("model", "Model: priors and likelihood", paras, [("priors", prior_table)]))
    return [s if len(s) == 5 else s + ((),) for s in out]


def _human_text(text: str) -> str:
    """Numbers written by Python's ``%g`` in a message (``6.34e+20``) in the report's
    human format (``634E``... as :func:`human` writes them)."""
    return re.sub(r"\d+(?:\.\d+)?e[+-]\d+", lambda m: human(float(m.group(0))), text)


def _approaches_section(comp, pct: str, chinchilla: bool):
    """Hoffmann et al.'s three approaches: a, b and N_opt at the largest budget."""
    C = float(comp.budgets[-1])
    rows = []
    for k, row in comp.table.iterrows():
        key = f"N_opt@{C:.3g}"
        rows.append({"approach": f"{k}: {row['name']}", "method": row["method"],
                     "a": row["a"], "a lower": row["a_lower"], "a upper": row["a_upper"],
                     f"N_opt at {human(C)}": row[key + "_median"],
                     "lower": row[key + "_lower"], "upper": row[key + "_upper"]})
    paras = [f"The compute-optimal allocation N_opt ~ C^a estimated three ways: from the "
             f"envelope of training curves (Approach 1), parabolas through isoFLOP profiles "
             f"(Approach 2) and the parametric law (Approach 3, the bootstrap above), each "
             f"that these runs allow, with central {pct} bootstrap intervals. Approach 2 is "
             f"biased when isoFLOP grids are off-centre; Approach 1 depends on the runs' "
             f"schedules; Approach 3 on the law's form."]
    if chinchilla:
        paras.append("Hoffmann et al. (2022), Table 2, on their own runs: a = 0.50 (0.488, "
                     "0.502), 0.49 (0.462, 0.534) and 0.46 (0.454, 0.455) for Approaches 1, 2 "
                     "and 3.")
    paras += [_human_text(f"Approach {k} not fitted: {reason}")
              for k, reason in comp.skipped.items()]
    paras += [_human_text(f"Note: {note}") for note in comp.notes[:8]]
    return ("approaches", "The allocation three ways", paras,
            [("approaches", pd.DataFrame(rows))], ("approaches",))


def law_line(ctx) -> str:
    """The law fitted, its form and its citation (the page's header)."""
    from bayescale.laws.registry import get_law

    law = get_law(ctx.get("law", "chinchilla"))
    text = f"Law: {law.name}"
    if law.description:
        text += f", {law.description}"
    if law.citation:
        text += f" ({law.citation.rstrip('.')})"
    return text + "."


def banner(ctx) -> tuple[str, str]:
    if ctx["problems"]:
        text = ("WARNING: the NUTS diagnostics failed (" + "; ".join(ctx["problems"]) + "). "
                "The posterior summaries below may be unreliable: re-run with more warmup and "
                "draws (e.g. --warmup 1000 --draws 1000 --chains 4) or a higher target "
                "acceptance.")
        return "warning", text
    return "ok", "Diagnostics passed: R-hat <= 1.01, bulk ESS >= 400, no divergences."


def _md_table(df: pd.DataFrame) -> str:
    # A default 0..n-1 index carries no information: leave it out.
    frame = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(human(v, 4, si=False).replace("|", "\\|")
                                       if not isinstance(v, str) else v.replace("|", "\\|")
                                       for v in row) + " |")
    return "\n".join(lines)


def _html_table(df: pd.DataFrame, table_id: str) -> str:
    frame = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    frame = frame.map(lambda v: v if isinstance(v, str) else human(v, 4, si=False))
    return frame.to_html(table_id=table_id, classes="data", index=False, border=0,
                         escape=True, na_rep="")


def n_convention_line(runs) -> str:
    """Which N the answer is in: what the runs' N counts (total or non-embedding
    parameters), and where that came from; or that it is not stated, and why it matters."""
    from bayescale.data.registry import DATASETS

    convention = getattr(runs, "n_convention", None)
    if convention in ("total", "non_embedding"):
        what = "total parameters, embeddings included" if convention == "total" else \
            "non-embedding parameters"
        if any("n_convention" in str(note) for note in getattr(runs, "notes", ())):
            where = "as stated by n_convention (--n-convention)"
        elif str(getattr(runs, "source", "")) in DATASETS:
            where = "the dataset's convention"
        else:
            where = "as recorded with the runs"
        return f"N counts {what} ({where}); N_opt and the exponents are in that convention."
    return ("N convention: not stated. The data do not say whether N counts total or "
            "non-embedding parameters, and the exponents and N_opt depend on which (Pearce & "
            "Song 2024, arXiv:2406.12907); state it with --n-convention total|non_embedding "
            "(n_convention= in Python).")


def page_markdown(page: Mapping[str, Any], figures: Mapping[str, str],
                  captions: Mapping[str, str]) -> str:
    """A report page in Markdown: ``page`` has ``title``, ``created``, ``version``,
    ``header`` (``[(id, line)]``), ``banner`` (``(kind, text)``) and ``sections`` (as
    :func:`sections` gives them); ``figures`` maps a figure name to its relative path."""
    kind, text = page["banner"]
    out = [f"# {page['title']}", "",
           f"_Created {page['created']} by bayescale {page['version']}._", ""]
    for _, line in page["header"]:
        out += [line, ""]
    out += [f"> **{text}**" if kind == "warning" else f"> {text}", ""]
    for _, title, paras, tables, figs in page["sections"]:
        out += [f"## {title}", ""]
        for p in paras:
            out += [p, ""]
        for _, table in tables:
            if len(table):
                out += [_md_table(table), ""]
        for name in figs:
            if name in figures:
                out += [f"![{captions[name]}]({figures[name]})", "", f"*{captions[name]}*", ""]
    return "\n".join(out)


def _page(ctx) -> dict[str, Any]:
    """The single-fit report's page (for :func:`page_markdown` and :func:`page_html`)."""
    return {"title": f"bayescale report: {ctx['provenance']['source']}",
            "created": ctx["created"], "version": ctx["settings"]["version"],
            "header": [("law", law_line(ctx)), ("n-convention", n_convention_line(ctx["runs"]))],
            "banner": banner(ctx), "sections": sections(ctx)}


def render_markdown(ctx, figures: Mapping[str, str], captions: Mapping[str, str]) -> str:
    """The report in Markdown; ``figures`` maps a figure name to its relative path."""
    return page_markdown(_page(ctx), figures, captions)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table.data{border-collapse:collapse;font-size:.85em;margin:.6em 0}
table.data th,table.data td{border:1px solid #ccc;padding:3px 7px;text-align:right}
table.data th{background:#f3f3f3}table.data td:first-child{text-align:left}
.banner{padding:.8em 1em;border-radius:6px;margin:1em 0}
.warning{background:#fdecea;border:2px solid #d93025;color:#5f1410}
.ok{background:#e6f4ea;border:1px solid #188038;color:#0d3d1d}
nav.toc{background:#f7f7f7;border:1px solid #e3e3e3;border-radius:6px;padding:.4em 1em;
display:inline-block}nav.toc ol{margin:.3em 0;padding-left:1.4em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555}code{background:#f5f5f5;padding:0 3px}
.small{font-size:.85em;color:#555}
"""


def page_html(page: Mapping[str, Any], pngs: Mapping[str, bytes],
              captions: Mapping[str, str]) -> str:
    """A self-contained HTML report page (figures embedded as base64 PNG, inline CSS);
    ``page`` as for :func:`page_markdown`."""
    kind, text = page["banner"]
    title, parts = page["title"], page["sections"]
    toc = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>'
                  for sid, t, *_ in parts)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="small">Created {page["created"]} by bayescale '
           f'{html.escape(page["version"])}.</p>']
    out += [f'<p id="{hid}">{html.escape(line)}</p>' for hid, line in page["header"]]
    out += [f'<div id="diagnostics-banner" class="banner {kind}">{html.escape(text)}</div>',
            f'<nav class="toc" id="contents"><strong>Contents</strong><ol>{toc}</ol></nav>']
    for sid, title_, paras, tables, figs in parts:
        out.append(f'<h2 id="{sid}">{html.escape(title_)}</h2>')
        out += [f"<p>{html.escape(p)}</p>" for p in paras]
        for tid, table in tables:
            if len(table):
                out.append(_html_table(table, f"table-{tid}"))
        for name in figs:
            if name not in pngs:
                continue
            b64 = base64.b64encode(pngs[name]).decode("ascii")
            out.append(f'<figure><img id="fig-{name}" class="figure" alt="{html.escape(name)}" '
                       f'src="data:image/png;base64,{b64}"><figcaption>'
                       f"{html.escape(captions[name])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def render_html(ctx, pngs: Mapping[str, bytes], captions: Mapping[str, str]) -> str:
    """The self-contained HTML report (figures embedded as base64 PNG, inline CSS)."""
    return page_html(_page(ctx), pngs, captions)


def context(runs, fits, frontiers, methods, decisions, budgets, level, settings, *,
            chinchilla: bool, created: str, chinchilla_data: bool | None = None,
            unique_tokens: float | None = None, law_notes=(),
            decisions_note: str | None = None) -> dict[str, Any]:
    """Everything the renderers read, in one mapping.

    ``chinchilla``: the Chinchilla law fitted to the Chinchilla data (the published fits
    and their story apply); ``chinchilla_data``: the Chinchilla data, whatever the law
    (default ``chinchilla``); ``law_notes``: lines on what the law leaves out;
    ``decisions_note``: why there is no decision table when ``decisions`` is None."""
    from bayescale.data import registry as datasets

    bayes = fits["bayes"]
    diag = bayes.diagnostics
    prov = runs.describe()
    ds = datasets.DATASETS.get(str(runs.source))
    if ds is not None:
        prov["dataset"] = {"name": ds.name, "description": ds.description,
                           "citation": ds.citation, "provenance": ds.provenance}
    return {
        "runs": runs, "fits": fits, "frontiers": frontiers, "methods": methods,
        "decisions": decisions, "budgets": budgets, "level": level, "settings": settings,
        "problems": diag.problems() if diag is not None else [],
        "diagnostics": diag.to_dict() if diag is not None else {},
        "provenance": prov, "chinchilla": chinchilla, "created": created,
        "chinchilla_data": chinchilla if chinchilla_data is None else chinchilla_data,
        "law": bayes.law.name, "unique_tokens": unique_tokens, "law_notes": list(law_notes),
        "decisions_note": decisions_note,
    }
