"""Saving and loading fits: a fit folder holds ``fit.json``, ``summary.csv``,
``draws.csv`` and, for Bayesian fits, ``posterior.nc``.

Every file is written to a temporary name in the same folder and renamed into
place, so an interrupted run never leaves a half-written file posing as complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bayescale.data import Runs
from bayescale.errors import DataError
from bayescale.fitting import PARAM_NAMES, ScalingFit
from bayescale.law import LawParams

__all__ = ["atomic_write", "write_text", "save_fit", "load_fit"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    def _write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return atomic_write(path, _write)


def save_fit(fit: ScalingFit, out_dir: str | os.PathLike, *, level: float | None = None,
             payload: dict | None = None) -> dict[str, Path]:
    """Write a fit folder; returns the paths written by name.

    ``payload`` (the JSON object, default ``fit.to_dict(level)``) lets a caller add
    fields such as timing before it is written.
    """
    out = Path(out_dir)
    payload = fit.to_dict(level) if payload is None else payload
    written = {
        "summary": atomic_write(out / "summary.csv", lambda p: fit.summary(level).to_csv(p)),
        "draws": atomic_write(out / "draws.csv",
                              lambda p: fit.draws()[list(PARAM_NAMES)].to_csv(p, index=False)),
        "runs": atomic_write(out / "runs.csv", lambda p: fit.runs.to_frame().to_csv(p)),
    }
    if fit.idata is not None:
        from bayescale.inference import save_idata

        written["posterior"] = save_idata(fit.idata, out / "posterior.nc")
    # fit.json goes last: its presence marks a complete folder.
    written["json"] = write_text(out / "fit.json", json.dumps(payload, indent=2) + "\n")
    return written


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
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    draws = pd.read_csv(draws_path)
    missing = [c for c in PARAM_NAMES if c not in draws.columns]
    if missing:
        raise DataError(f"{str(draws_path)!r} lacks columns {missing}.")
    values = [draws[c].to_numpy(dtype=float) for c in PARAM_NAMES]
    if len(draws) == 1 and meta.get("num_draws") is None:
        values = [v[0] for v in values]
    params = LawParams(*(np.asarray(v) for v in values))
    runs_path = folder / "runs.csv"
    if runs_path.is_file():
        frame = pd.read_csv(runs_path, index_col=0)
        runs = Runs(N=frame["N"].to_numpy(float), D=frame["D"].to_numpy(float),
                    loss=frame["loss"].to_numpy(float), row=frame.index.to_numpy(),
                    source=str(meta.get("data", {}).get("source", folder)))
    else:
        raise DataError(f"{str(folder)!r} lacks runs.csv; re-run `bayescale fit ... --out DIR`.")
    idata = None
    if (folder / "posterior.nc").is_file():
        from bayescale.inference import load_idata

        idata = load_idata(folder / "posterior.nc")
    info = {k: v for k, v in meta.items()
            if k not in ("method", "n_runs", "params", "intervals", "data", "allocation")}
    return ScalingFit(method=meta.get("method", "unknown"), params=params, runs=runs,
                      level=float(meta.get("level", 0.9)), info=info, idata=idata)
