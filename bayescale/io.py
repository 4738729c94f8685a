"""Saving and loading fits: a fit folder holds ``fit.json``, ``summary.csv``,
``draws.csv``, ``runs.csv`` and, for Bayesian fits, ``posterior.nc``.

Every file is written to a temporary name in the same folder and renamed into
place, and the folder is swapped into place as a whole, so an interrupted run never
leaves a half-written file posing as complete. The atomic writing itself
(:func:`atomic_write`, :func:`atomic_folder`, :class:`InterruptGuard`, ...) lives in
:mod:`bayescale._atomic` and is re-exported here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale._atomic import (InterruptGuard, atomic_folder, atomic_write, check_destination,
                               dumps_json, replace_folder, umask, write_text)
from bayescale.data.runs import Runs
from bayescale.errors import DataError
from bayescale.estimators.fit import ScalingFit
from bayescale.estimators.idata import save_idata
from bayescale.laws.registry import get_law

__all__ = ["atomic_write", "atomic_folder", "check_destination", "replace_folder",
           "InterruptGuard", "write_text", "dumps_json", "save_fit", "check_fit_destination",
           "load_fit", "FIT_FILES"]

#: The files :func:`save_fit` writes; anything else in a fit folder is the user's.
FIT_FILES = ("fit.json", "summary.csv", "draws.csv", "runs.csv", "posterior.nc")


def save_fit(fit: ScalingFit, out_dir: str | os.PathLike, *, level: float | None = None,
             payload: dict | None = None, atomic: bool = True) -> dict[str, Path]:
    """Write a fit folder; returns the paths written by name.

    The folder is built in a temporary sibling and swapped into place, so a re-run
    replaces a previous fit's files as a whole (no stale ``posterior.nc`` from an
    earlier Bayesian fit) and an interrupted one leaves them untouched; files the user
    added to the folder are kept. A non-empty folder that is not a fit folder is
    refused (check first with :func:`check_fit_destination`). ``atomic=False`` writes straight into
    ``out_dir`` (for callers that build their own folder atomically, as the report
    does). ``payload`` (the JSON object, default ``fit.to_dict(level)``) lets a caller
    add fields such as timing.
    """
    out = Path(out_dir)
    if atomic:
        with atomic_folder(out, marker="fit.json", what="fit folder",
                           owned=lambda _: set(FIT_FILES)) as tmp:
            written = _write_fit_files(fit, tmp, level, payload)
        return {k: out / p.name for k, p in written.items()}
    return _write_fit_files(fit, out, level, payload)


def _write_fit_files(fit: ScalingFit, out: Path, level, payload) -> dict[str, Path]:
    payload = fit.to_dict(level) if payload is None else payload
    written = {
        "summary": atomic_write(out / "summary.csv", lambda p: fit.summary(level).to_csv(p)),
        "draws": atomic_write(out / "draws.csv",
                              lambda p: fit.draws()[list(fit.param_names)].to_csv(p, index=False)),
        "runs": atomic_write(out / "runs.csv", lambda p: fit.runs.to_frame().to_csv(p)),
    }
    if fit.idata is not None:
        written["posterior"] = save_idata(fit.idata, out / "posterior.nc")
    # fit.json goes last: its presence marks a complete folder.
    written["json"] = write_text(out / "fit.json", dumps_json(payload, indent=2) + "\n")
    return written


def check_fit_destination(out_dir: str | os.PathLike) -> Path:
    """Refuse, before any fitting, an ``out_dir`` that :func:`save_fit` would refuse."""
    return check_destination(out_dir, marker="fit.json", what="fit folder")


def load_fit(path: str | os.PathLike) -> ScalingFit:
    """Load a fit folder written by :func:`save_fit` (``bayescale fit --out DIR``).

    The InferenceData is loaded when ``posterior.nc`` is present.
    """
    folder = Path(path)
    meta_path = folder / "fit.json"
    draws_path = folder / "draws.csv"
    if not meta_path.is_file() or not draws_path.is_file():
        raise DataError(
            f"{str(folder)!r} is not a complete fit folder (needs fit.json and draws.csv); "
            "write one with `bayescale fit DATA --out DIR`."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        draws = pd.read_csv(draws_path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{str(folder)!r} holds an unreadable fit.json or draws.csv ({exc}); "
                        "write the folder again with `bayescale fit DATA --out DIR`.") from None
    law = get_law(meta.get("law", "chinchilla"))  # folders from 0.1 hold Chinchilla fits
    missing = [c for c in law.param_names if c not in draws.columns]
    if missing:
        raise DataError(f"{str(draws_path)!r} lacks columns {missing} of the {law.name} law.")
    values = [draws[c].to_numpy(dtype=float) for c in law.param_names]
    if len(draws) == 1 and meta.get("num_draws") is None:
        values = [v[0] for v in values]
    params = law.params_type(*(np.asarray(v) for v in values))
    runs_path = folder / "runs.csv"
    if runs_path.is_file():
        try:
            frame = pd.read_csv(runs_path, index_col=0)
            extra = {k: frame[k].to_numpy() for k in ("U", "group", "run") if k in frame}
            if "U" in extra:
                extra["U"] = extra["U"].astype(float)
            data = meta.get("data", {})
            convention = data.get("n_convention")
            runs = Runs(N=frame["N"].to_numpy(float), D=frame["D"].to_numpy(float),
                        loss=frame["loss"].to_numpy(float), row=frame.index.to_numpy(),
                        source=str(data.get("source", folder)),
                        notes=tuple(data.get("notes", ())),
                        n_convention=None if convention in (None, "not stated") else convention,
                        **extra)
        except (KeyError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{str(runs_path)!r} is not a runs table written by bayescale "
                            f"({exc}); write the folder again.") from None
    else:
        raise DataError(f"{str(folder)!r} lacks runs.csv; re-run `bayescale fit ... --out DIR`.")
    idata = None
    if (folder / "posterior.nc").is_file():
        from bayescale.estimators.nuts import load_idata

        idata = load_idata(folder / "posterior.nc")
    info = {k: v for k, v in meta.items()
            if k not in ("method", "law", "n_runs", "params", "intervals", "data", "allocation",
                         "reference", "diagnostics")}
    reference = None
    if isinstance(meta.get("reference"), dict):
        reference = law.params_type(**{k: float(meta["reference"][k]) for k in law.param_names})
    return ScalingFit(method=meta.get("method", "unknown"), params=params, runs=runs,
                      level=float(meta.get("level", 0.9)), info=info, idata=idata,
                      reference=reference, diagnostics=_load_diagnostics(folder, meta, idata))


def _load_diagnostics(folder: Path, meta: dict, idata):
    """A Bayesian fit's Diagnostics: the scalars from fit.json, the per-parameter table
    recomputed from posterior.nc (every parameter, sigma and nu included) or, without it,
    read from summary.csv (the law's parameters)."""
    d = meta.get("diagnostics")
    if not isinstance(d, dict):
        return None
    from bayescale.estimators.diagnostics import (DIAGNOSED_PARAMS, Diagnostics,
                                                  compute_diagnostics, not_diagnosed)

    columns = ["r_hat", "ess_bulk", "ess_tail"]
    per_param = pd.DataFrame(columns=columns, dtype=float,
                             index=pd.Index([], name="parameter"))
    summary_path = folder / "summary.csv"
    if idata is not None and hasattr(idata, "sample_stats"):
        law = get_law(meta.get("law", "chinchilla"))
        per_param = compute_diagnostics(idata, exclude=not_diagnosed(law)).per_param
    elif summary_path.is_file():
        try:
            table = pd.read_csv(summary_path, index_col=0)
        except (ValueError, pd.errors.ParserError):
            table = pd.DataFrame()
        if set(columns) <= set(table.columns):
            rows = [n for n in DIAGNOSED_PARAMS if n in table.index]
            per_param = table.loc[rows, columns].astype(float).rename_axis("parameter")

    def num(key, default=math.nan):  # fit.json writes NaN and infinities as null
        value = d.get(key)
        return default if value is None else float(value)

    return Diagnostics(rhat_max=num("rhat_max"), ess_bulk_min=num("ess_bulk_min"),
                       ess_tail_min=num("ess_tail_min"), divergences=int(num("divergences", 0)),
                       ebfmi_min=num("ebfmi_min"), ok=bool(d.get("ok", False)),
                       per_param=per_param, chains=d.get("chains"),
                       notes=tuple(d.get("notes") or ()))
