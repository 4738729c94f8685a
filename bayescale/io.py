"""Saving and loading fits: a fit folder holds ``fit.json``, ``summary.csv``,
``draws.csv`` and, for Bayesian fits, ``posterior.nc``.

Every file is written to a temporary name in the same folder and renamed into
place, so an interrupted run never leaves a half-written file posing as complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from bayescale._util import to_jsonable
from bayescale.data.runs import Runs
from bayescale.errors import DataError
from bayescale.estimators.fit import ScalingFit
from bayescale.laws.registry import get_law

__all__ = ["atomic_write", "atomic_folder", "check_destination", "replace_folder",
           "InterruptGuard", "write_text", "dumps_json", "save_fit", "check_fit_destination",
           "load_fit", "FIT_FILES"]

#: The files :func:`save_fit` writes; anything else in a fit folder is the user's.
FIT_FILES = ("fit.json", "summary.csv", "draws.csv", "runs.csv", "posterior.nc")


def umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    The file gets the usual permissions (``0o666`` less the umask), not the private
    ones of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class InterruptGuard:
    """Ctrl-C that cannot be lost: SIGINT sets a flag, then raises ``KeyboardInterrupt``.

    Python delivers ``KeyboardInterrupt`` wherever the main thread happens to be; when
    that is a callback whose exceptions are printed and dropped (JAX's garbage
    collection hook: ``Exception ignored in ... KeyboardInterrupt``), the run would go
    on. The flag survives: :meth:`check`, called between stages and right before a
    folder is swapped into place, raises it again. Inside :meth:`deferred` (the renames
    of a commit) the handler only sets the flag, so a commit is never cut in half.

    Nested uses share the active guard. Outside the main thread (where signal handlers
    cannot be set) the guard does nothing.
    """

    _active: "InterruptGuard | None" = None

    def __init__(self) -> None:
        self.hits = 0
        self._defer = False
        self._depth = 0
        self._previous = None
        self._outer: InterruptGuard | None = None

    def __enter__(self) -> "InterruptGuard":
        import signal
        import threading

        active = InterruptGuard._active
        if active is not None:  # nested: share the outer guard (and its flag)
            self._outer = active
            active._depth += 1
            return active
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            InterruptGuard._active = self
        self._depth = 1
        return self

    def __exit__(self, *exc) -> None:
        import signal

        guard = self._outer or self  # ``with`` calls __exit__ on this object
        guard._depth -= 1
        if guard._depth == 0 and InterruptGuard._active is guard:
            InterruptGuard._active = None
            signal.signal(signal.SIGINT, guard._previous)

    def _handle(self, signum, frame) -> None:
        self.hits += 1
        if not self._defer:
            raise KeyboardInterrupt

    @property
    def interrupted(self) -> bool:
        return self.hits > 0

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the guard began."""
        if self.hits:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block, SIGINT only sets the flag."""
        previous, self._defer = self._defer, True
        try:
            yield
        finally:
            self._defer = previous


def replace_folder(tmp: Path, out: Path, *, before_commit: Callable[[], None] | None = None
                   ) -> None:
    """Replace folder ``out`` by ``tmp``: each step a rename; ``out`` is never half-written.

    ``before_commit`` is called once ``tmp`` is in place and the previous folder is
    still kept aside; if it raises, the previous folder is put back (and ``tmp`` is
    moved back to where it was), so the caller's exception leaves ``out`` as it was.
    """
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)  # move aside (same filesystem: a rename)
    try:
        os.replace(tmp, out)
        try:
            if before_commit is not None:
                before_commit()
        except BaseException:
            os.replace(out, tmp)
            raise
    except BaseException:
        if old is not None:  # put the previous folder back
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:  # the previous folder (if committed) or the empty holder
            shutil.rmtree(old, ignore_errors=True)


def _relative_files(folder: Path) -> tuple[set[str], set[str]]:
    """Files (and folders) under ``folder`` as POSIX paths relative to it."""
    files, dirs = set(), set()
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if p.is_dir() and not p.is_symlink():
            dirs.add(rel)
        else:
            files.add(rel)
    return files, dirs


def _carry_over(src: Path, dst: Path, files: set[str], dirs: set[str]) -> None:
    """Hard-link (or copy) ``files`` and create ``dirs`` of ``src`` inside ``dst``.

    Links keep the user's file alive when the previous folder is deleted, without
    copying its bytes; where links are not supported, the file is copied.
    """
    for rel in sorted(dirs):
        (dst / rel).mkdir(parents=True, exist_ok=True)
    for rel in sorted(files):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = src / rel
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def check_destination(out: str | os.PathLike, *, marker: str, what: str) -> Path:
    """Refuse an output folder that cannot be written: call before any long work.

    ``out`` may be missing, empty, or a previous folder of the same kind (one holding
    ``marker``). A file, or a non-empty folder without ``marker``, raises
    :class:`~bayescale.errors.DataError` naming the folder and the fix.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{str(out)!r} exists and is not a folder; choose another output folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise DataError(
            f"{str(out)!r} exists, is not empty and is not a bayescale {what} (no {marker}); "
            "refusing to replace it. Choose another output folder or empty it.")
    return out


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, *, marker: str, what: str,
                  owned: Callable[[Path], set[str]] | None = None,
                  guard: InterruptGuard | None = None) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it into place at the end.

    ``out`` may be missing, empty, or a previous folder of the same kind (one holding
    ``marker``); anything else is refused rather than deleted. If the block raises,
    ``out`` is left as it was.

    Only what bayescale wrote is replaced: ``owned(out)`` returns the paths (relative,
    POSIX) that the previous run wrote (for a report, its manifest's list); every
    other file and folder under ``out`` (the user's notes, say) is carried into the
    new folder unchanged. If a user's file has the name of a file being written now,
    nothing is replaced and :class:`~bayescale.errors.DataError` lists the files in
    the way. Without ``owned``, only ``marker`` counts as bayescale's.

    ``guard`` (an :class:`InterruptGuard`) is checked right before the swap and the
    swap itself runs deferred, so Ctrl-C leaves ``out`` as it was.
    """
    out = check_destination(out, marker=marker, what=what)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise DataError(f"cannot create the output folder {str(out)!r}: {exc}") from None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the output is not
        yield tmp
        if guard is not None:
            guard.check()
        check_destination(out, marker=marker, what=what)  # nothing moved in meanwhile
        if out.is_dir():
            ours = (owned(out) if owned is not None else set()) | {marker}
            files, dirs = _relative_files(out)
            new_files, new_dirs = _relative_files(tmp)
            theirs = {f for f in files if f not in ours}
            in_the_way = sorted(f for f in theirs if f in new_files or f in new_dirs)
            in_the_way += sorted(d for d in dirs if d in new_files)
            if in_the_way:
                raise DataError(
                    f"{str(out)!r} holds files that bayescale did not write but would now "
                    f"overwrite: {', '.join(in_the_way)}. Move them away and run again, or "
                    "choose another output folder.")
            _carry_over(out, tmp, theirs, dirs - new_dirs)
        if guard is not None:
            with guard.deferred():
                replace_folder(tmp, out, before_commit=guard.check)
        else:
            replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def dumps_json(payload: dict, **kwargs) -> str:
    """Strict JSON: NaN and infinities become ``null`` (``json.dumps`` would write
    ``NaN``/``Infinity``, which JSON parsers reject)."""
    return json.dumps(to_jsonable(payload), allow_nan=False, **kwargs)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    def _write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return atomic_write(path, _write)


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
        idata = fit.idata
        written["posterior"] = atomic_write(
            out / "posterior.nc", lambda p: idata.to_netcdf(p, engine="h5netcdf"))
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
            runs = Runs(N=frame["N"].to_numpy(float), D=frame["D"].to_numpy(float),
                        loss=frame["loss"].to_numpy(float), row=frame.index.to_numpy(),
                        source=str(meta.get("data", {}).get("source", folder)), **extra)
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
    from bayescale.estimators.diagnostics import DIAGNOSED_PARAMS, Diagnostics, compute_diagnostics

    columns = ["r_hat", "ess_bulk", "ess_tail"]
    per_param = pd.DataFrame(columns=columns, dtype=float,
                             index=pd.Index([], name="parameter"))
    summary_path = folder / "summary.csv"
    if idata is not None and hasattr(idata, "sample_stats"):
        law = get_law(meta.get("law", "chinchilla"))
        per_param = compute_diagnostics(
            idata, exclude=tuple(f"{coord}_c" for coord, _, _ in law.shears)).per_param
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
