"""Training-run data: DataFrame / CSV / registered dataset -> validated :class:`Runs`.

All validation happens here, in NumPy and pandas, before anything reaches JAX, so
bad input gives a :class:`~bayescale.errors.DataError` naming the column, the
offending rows and the fix rather than a traceback from inside a traced function.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bayescale.data import loaders
from bayescale.data import registry as datasets
from bayescale.data.synthetic import simulate_frame
from bayescale.errors import DataError

__all__ = ["Runs", "load_runs", "COLUMN_ALIASES"]

# Recognised column names, compared after lower-casing and dropping spaces, '_' and '-'.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "params", "parameters", "num_params", "n_params", "Model Size", "model_size",
          "non_embedding_params"),
    "D": ("D", "tokens", "Training Tokens", "num_tokens", "n_tokens", "train_tokens", "data"),
    "C": ("C", "FLOP", "FLOPs", "Training FLOP", "Training FLOPs", "compute", "flops"),
    "loss": ("loss", "L", "final_loss", "train_loss", "eval_loss", "val_loss"),
    "U": ("U", "unique_tokens"),  # optional: unique tokens (data-constrained runs)
}

_MIN_DISTINCT = 3  # distinct N and D values needed to separate A, alpha (B, beta) from E
_MIN_RUNS = 6  # more runs than the law's 5 parameters
_MAX_ROWS_SHOWN = 8


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _rows(labels) -> str:
    labels = list(labels)
    shown = ", ".join(str(x) for x in labels[:_MAX_ROWS_SHOWN])
    more = f" and {len(labels) - _MAX_ROWS_SHOWN} more" if len(labels) > _MAX_ROWS_SHOWN else ""
    word = "row" if len(labels) == 1 else "rows"
    return f"{word} {shown}{more}"


@dataclasses.dataclass(frozen=True, eq=False)
class Runs:
    """Validated training runs, ready to fit.

    Attributes
    ----------
    N : model sizes (parameters), float64, shape (n,).
    D : training tokens, float64, shape (n,).
    loss : final losses (nats/token), float64, shape (n,).
    row : the row label of each run in the source (DataFrame index; for a CSV the
        0-based data row, i.e. file line minus 2).
    source : where the runs came from (dataset name, path or ``"DataFrame"``).
    dropped : the rows removed by ``exclude_top`` / ``mask`` / ``query``, with the
        reason in a ``dropped_by`` column.
    notes : how the data were derived (e.g. ``D = C / (6 N)``).
    U : unique training tokens, float64, shape (n,), or None when the data have no
        such column (data-constrained runs repeat U tokens for D / U epochs;
        Muennighoff et al. 2023).
    group : the group label of each run (e.g. the training corpus), shape (n,), or None.
    run : the training-run id of each row (rows of one run are checkpoints), shape (n,),
        or None.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    row: np.ndarray
    source: str = "DataFrame"
    dropped: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    U: np.ndarray | None = None
    group: np.ndarray | None = None
    run: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.N.shape[0])

    @property
    def C(self) -> np.ndarray:
        """Training compute ``6 N D`` (FLOPs)."""
        return 6.0 * self.N * self.D

    @property
    def log_N(self) -> np.ndarray:
        return np.log(self.N)

    @property
    def log_D(self) -> np.ndarray:
        return np.log(self.D)

    @property
    def log_loss(self) -> np.ndarray:
        return np.log(self.loss)

    def to_frame(self) -> pd.DataFrame:
        """The runs as a DataFrame with columns N, D, C, loss (and U, group, run where
        present), indexed by source row."""
        extra = {k: v for k, v in (("U", self.U), ("group", self.group), ("run", self.run))
                 if v is not None}
        return pd.DataFrame(
            {"N": self.N, "D": self.D, "C": self.C, "loss": self.loss, **extra},
            index=pd.Index(self.row, name="row"),
        )

    def resample(self, index: np.ndarray) -> "Runs":
        """The runs at positions ``index`` (with repetition), e.g. for a bootstrap."""
        index = np.asarray(index)
        extra = {k: getattr(self, k)[index] for k in ("U", "group", "run")
                 if getattr(self, k) is not None}
        return dataclasses.replace(self, N=self.N[index], D=self.D[index],
                                   loss=self.loss[index], row=self.row[index], **extra)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: size, ranges, what was dropped and why."""
        return {
            "source": self.source,
            "n_runs": len(self),
            "N_range": [float(self.N.min()), float(self.N.max())],
            "D_range": [float(self.D.min()), float(self.D.max())],
            "C_range": [float(self.C.min()), float(self.C.max())],
            "loss_range": [float(self.loss.min()), float(self.loss.max())],
            "dropped_rows": [int(r) if isinstance(r, (int, np.integer)) else str(r)
                             for r in self.dropped.index],
            "dropped_by": sorted(set(self.dropped.get("dropped_by", pd.Series([])))),
            "notes": list(self.notes),
        }


def _find_column(frame: pd.DataFrame, key: str, explicit: str | None, where: str) -> str | None:
    if explicit is not None:
        if explicit not in frame.columns:
            raise DataError(
                f"column {explicit!r} given for {key} is not in {where}; its columns are "
                f"{list(frame.columns)}. Fix: pass one of those as {key}=..."
            )
        return explicit
    wanted = {_norm(a) for a in COLUMN_ALIASES[key]}
    matches = [c for c in frame.columns if _norm(c) in wanted]
    if len(matches) > 1:
        raise DataError(
            f"several columns of {where} could be {key}: {matches}. Fix: name the one to use, "
            f"e.g. load_runs(..., {key}={matches[0]!r}) or --{key}-column on the command line."
        )
    return matches[0] if matches else None


def _numeric(frame: pd.DataFrame, column: str, key: str) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].head(3))
        raise DataError(
            f"column {column!r} ({key}) has non-numeric values at {_rows(frame.index[bad])} "
            f"(e.g. {examples}). Fix: clean or drop those rows."
        )
    values = values.to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    if missing.any():
        raise DataError(
            f"column {column!r} ({key}) has missing, NaN or infinite values at "
            f"{_rows(frame.index[missing])}. Fix: drop or fill those rows "
            f"(e.g. df.dropna(subset=[{column!r}]))."
        )
    nonpos = values <= 0
    if nonpos.any():
        raise DataError(
            f"column {column!r} ({key}) must be positive but is <= 0 at "
            f"{_rows(frame.index[nonpos])}. Fix: check the units and drop those rows; "
            f"{key} enters the law through its logarithm."
        )
    return values


def _read_source(source, columns: dict, options: dict | None = None
                 ) -> tuple[pd.DataFrame, str, dict]:
    if isinstance(source, pd.DataFrame):
        return source, "DataFrame", columns
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text == "-":  # standard input, as a CSV
            try:
                return pd.read_csv(sys.stdin), "stdin", columns
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise DataError(f"could not read standard input as CSV: {exc}") from None
        if text in datasets.DATASETS:
            ds = datasets.get_dataset(text)
            merged = {**ds.columns, **{k: v for k, v in columns.items() if v is not None}}
            options = {k: v for k, v in (options or {}).items() if v is not None}
            if ds.generated:
                if options:
                    raise DataError(f"dataset {text!r} has no options {sorted(options)}. "
                                    "Fix: leave them unset.")
                return simulate_frame(), text, merged
            frame, notes = loaders.read_table(text, **options)
            frame.attrs["notes"] = notes
            return frame, text, merged
        path = Path(text)
        if path.suffix.lower() in (".csv", ".tsv", ".txt") or path.exists():
            if not path.is_file():
                raise DataError(
                    f"no such file: {text!r}. DATA is a CSV path or a registered dataset "
                    f"({', '.join(sorted(datasets.DATASETS))})."
                )
            return _read_csv(path), str(path), columns
        if os.sep in text or (os.altsep and os.altsep in text):
            raise DataError(
                f"no such file or folder: {text!r}. DATA is a CSV path, a fit folder (for "
                f"frontier/decide) or a registered dataset ({', '.join(sorted(datasets.DATASETS))}).")
        datasets.get_dataset(text)  # raises the unknown-name error
    raise DataError(
        f"cannot load runs from a {type(source).__name__}; pass a pandas DataFrame, "
        "a CSV path or a registered dataset name."
    )


def _read_csv(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        return pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"could not read {str(path)!r} as CSV: {exc}") from None


def load_runs(
    source: pd.DataFrame | str | os.PathLike,
    *,
    N: str | None = None,
    D: str | None = None,
    C: str | None = None,
    loss: str | None = None,
    U: str | None = None,
    exclude_top: int = 0,
    mask: np.ndarray | Callable[[pd.DataFrame], Any] | None = None,
    query: str | None = None,
    group: str | None = None,
    split: str | None = None,
    best_per_cell: bool | None = None,
    group_column: str | None = None,
    run_column: str | None = None,
) -> Runs:
    """Load and validate training runs.

    Parameters
    ----------
    source : DataFrame, CSV path, ``"-"`` (a CSV on standard input) or registered dataset name
        Registered names (e.g. ``"chinchilla"``) are found through
        :func:`bayescale.data.registry.locate` (``BAYESCALE_DATA``, the user cache, then
        the network with a pinned sha256).
    N, D, C, loss : str, optional
        Column names, when the usual ones are not used. Recognised by default
        (case, spaces and underscores ignored): N as ``N``/``params``/``Model Size``;
        D as ``D``/``tokens``/``Training Tokens``; C as ``C``/``FLOP``/``Training FLOP``;
        loss as ``loss``/``final_loss``.
    U : str, optional
        Column of unique training tokens (optional; recognised as ``U``/``unique_tokens``).
        Must be positive and finite; kept as ``Runs.U`` (None when absent).
    exclude_top : int
        Drop the ``exclude_top`` runs with the highest loss (Besiroglu et al. 2024
        drop 5 of the 245 digitised Chinchilla runs). Applied after ``mask`` and
        ``query``, to the runs they keep.
    mask : boolean array or callable, optional
        Keep only rows where ``mask`` is true (a callable gets the DataFrame with
        columns ``N, D, C, loss`` and returns the mask).
    query : str, optional
        A :meth:`pandas.DataFrame.query` expression over ``N, D, C, loss``; rows for
        which it is false are dropped.
    group : str, optional
        Keep only the runs of this group (e.g. ``group="C4"`` for ``"gadre2024"``). A
        registered dataset whose groups are different corpora is never pooled silently:
        without ``group=`` it raises, listing the groups.
    split : str, optional
        For registered datasets with a held-out split (``data_constrained``, ``farseer``):
        ``"train"`` (the default) or ``"test"``.
    best_per_cell : bool, optional
        For the hyper-parameter grids ``misfitting`` and ``steplaw``: keep the best run per
        (N, D) cell (the default) or, with False, every run.
    group_column, run_column : str, optional
        Columns holding group labels and training-run ids (registered datasets name their
        own); kept as ``Runs.group`` and ``Runs.run``.

    Returns
    -------
    Runs
        With ``dropped`` recording the removed rows and why.

    Notes
    -----
    When only compute is given, tokens are derived as ``D = C / (6 N)`` (the
    ``C = 6 N D`` approximation of Kaplan et al. 2020 used by Hoffmann et al. 2022 and
    by Besiroglu et al. 2024 for the digitised Chinchilla runs). If both D and C are
    given, D is used and C is ignored.

    Raises
    ------
    DataError
        For missing or non-numeric columns, NaN/inf, non-positive values, duplicate
        rows, or too few distinct N or D to identify the law; the message names the
        column and rows and says how to fix it.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayescale import load_runs
    >>> df = pd.DataFrame({"params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
    ...                    "tokens": [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10],
    ...                    "loss": [3.4, 3.1, 3.1, 2.7, 2.8, 2.5]})
    >>> len(load_runs(df))
    6
    """
    columns = {"N": N, "D": D, "C": C, "loss": loss, "U": U, "group": group_column,
               "run": run_column}
    options = {"split": split, "best_per_cell": best_per_cell}
    if not (isinstance(source, str) and source in datasets.DATASETS):
        if split is not None or best_per_cell is not None:
            raise DataError("split= and best_per_cell= apply to registered datasets only. "
                            "Fix: filter your own data with query= or mask=.")
    frame, name, columns = _read_source(source, columns, options)
    where = f"the data from {name}"
    if frame.shape[0] == 0:
        raise DataError(f"{where} has no rows.")
    pre_notes = list(frame.attrs.get("notes", []))
    frame = loaders.select_group(frame, columns.get("group"), group, name, pre_notes)

    found = {key: _find_column(frame, key, columns.get(key), where) for key in COLUMN_ALIASES}
    for key in ("N", "loss"):
        if found[key] is None:
            close = difflib.get_close_matches(key, [str(c) for c in frame.columns], n=1,
                                              cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"no {key} column in {where}{hint}; its columns are {list(frame.columns)}. "
                f"Fix: rename one to {key!r}, or name it: {key}='your column' in Python, "
                f"--{key}-column NAME on the command line."
            )
    if found["D"] is None and found["C"] is None:
        raise DataError(
            f"neither a D (tokens) nor a C (FLOPs) column in {where}; its columns are "
            f"{list(frame.columns)}. Fix: add one, or pass D='your tokens column' or "
            "C='your FLOPs column'."
        )

    notes = pre_notes
    n_vals = _numeric(frame, found["N"], "N")
    loss_vals = _numeric(frame, found["loss"], "loss")
    if found["D"] is not None:
        d_vals = _numeric(frame, found["D"], "D")
    else:
        c_vals = _numeric(frame, found["C"], "C")
        d_vals = c_vals / (6.0 * n_vals)
        notes.append(f"D = C / (6 N) from column {found['C']!r}")

    tidy = pd.DataFrame({"N": n_vals, "D": d_vals, "C": 6.0 * n_vals * d_vals, "loss": loss_vals},
                        index=frame.index)
    if found["U"] is not None:
        tidy["U"] = _numeric(frame, found["U"], "U")
    for key in ("group", "run"):
        if columns.get(key) is not None:
            if columns[key] not in frame.columns:
                raise DataError(f"column {columns[key]!r} given for {key} is not in {where}; "
                                f"its columns are {list(frame.columns)}.")
            tidy[key] = frame[columns[key]].to_numpy()
    key_cols = ["N", "D", "loss"] + [k for k in ("U", "group", "run") if k in tidy]
    dup = tidy.duplicated(subset=key_cols, keep="first")
    if dup.any():
        firsts = tidy.duplicated(subset=key_cols, keep=False) & ~dup
        raise DataError(
            f"{_rows(tidy.index[dup])} of {where} duplicate earlier rows (same N, D and loss; "
            f"first copies at {_rows(tidy.index[firsts])}). Each run must appear once. Fix: "
            "drop them, e.g. df.drop_duplicates()."
        )

    try:
        bad_top = isinstance(exclude_top, (bool, np.bool_)) or int(exclude_top) != exclude_top
    except (TypeError, ValueError, OverflowError):
        bad_top = True
    if bad_top or exclude_top < 0:
        raise DataError(f"exclude_top must be a non-negative integer, got {exclude_top!r}. "
                        "Fix: pass e.g. exclude_top=5 (Besiroglu et al. 2024).")

    keep = np.ones(len(tidy), dtype=bool)
    reason = pd.Series("", index=tidy.index, dtype=object)
    if mask is not None:
        m = mask(tidy) if callable(mask) else mask
        m = np.asarray(m)
        if m.dtype != bool or m.shape != (len(tidy),):
            raise DataError(
                f"mask must be a boolean array with one entry per row ({len(tidy)}), got "
                f"dtype {m.dtype} and shape {m.shape}. Fix: pass e.g. mask=df['loss'] < 4 "
                "(same rows as the data), or a function of the columns N, D, C, loss."
            )
        reason[keep & ~m] = "mask"
        keep &= m
    if query is not None:
        try:
            q = tidy.eval(query)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise DataError(
                f"query {query!r} could not be evaluated over columns N, D, C, loss: {exc}. "
                "Fix: write a condition over those names, e.g. 'C > 1e18 and N < D'."
            ) from None
        q = np.asarray(q)
        if q.dtype != bool or q.shape != (len(tidy),):
            raise DataError(
                f"query {query!r} must give one True/False per row ({len(tidy)}), got dtype "
                f"{q.dtype} and shape {q.shape}. Fix: write a condition such as 'C > 1e18' or "
                "'N < D'."
            )
        reason[keep & ~q] = "query"
        keep &= q
    if exclude_top:
        order = np.argsort(-tidy["loss"].to_numpy(), kind="stable")
        kept_pos = [i for i in order if keep[i]][: int(exclude_top)]
        reason.iloc[kept_pos] = f"exclude_top={int(exclude_top)}"
        keep[kept_pos] = False

    dropped = tidy[~keep].assign(dropped_by=reason[~keep])
    kept = tidy[keep]
    for key in ("N", "D"):
        distinct = np.unique(kept[key].to_numpy()).size
        if distinct < _MIN_DISTINCT:
            raise DataError(
                f"only {distinct} distinct value(s) of {key} among the {len(kept)} runs left "
                f"of {where}; the law needs at least {_MIN_DISTINCT} to separate the {key} term "
                "from the irreducible loss E. Fix: add runs at more model sizes and token counts, "
                "or loosen the filters."
            )
    if len(kept) < _MIN_RUNS:
        raise DataError(
            f"only {len(kept)} runs left of {where}; the law has 5 parameters, so at least "
            f"{_MIN_RUNS} runs are needed for a fit that is not an exact interpolation. Fix: "
            "add runs or loosen the filters.")
    row = kept.index.to_numpy()
    return Runs(
        N=kept["N"].to_numpy(dtype=float),
        D=kept["D"].to_numpy(dtype=float),
        loss=kept["loss"].to_numpy(dtype=float),
        row=row,
        source=name,
        dropped=dropped,
        notes=tuple(notes),
        U=kept["U"].to_numpy(dtype=float) if "U" in kept else None,
        group=kept["group"].to_numpy() if "group" in kept else None,
        run=kept["run"].to_numpy() if "run" in kept else None,
    )
