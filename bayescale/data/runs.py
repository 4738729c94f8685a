"""Training-run data: DataFrame / CSV / registered dataset -> validated :class:`Runs`.

All validation happens here, in NumPy and pandas, before anything reaches JAX, so
bad input gives a :class:`~bayescale.errors.DataError` naming the column, the
offending rows and the fix rather than a traceback from inside a traced function.
Which columns are N, D, C, loss and U is decided in :mod:`bayescale.data.columns`
(:data:`COLUMN_ALIASES` is re-exported here).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bayescale.data import formats
from bayescale.data import loaders
from bayescale.data import registry as datasets
from bayescale.data import validate
from bayescale.data.columns import COLUMN_ALIASES, find_columns
from bayescale.data.synthetic import simulate_frame
from bayescale.errors import DataError

__all__ = ["Runs", "load_runs", "COLUMN_ALIASES"]


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
    n_convention : what N counts (``"total"``, ``"non_embedding"``), or None: not stated.
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
    n_convention: str | None = None

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
            "n_convention": self.n_convention or "not stated",
        }


def _read_source(source, columns: dict, options: dict | None = None, sep: str | None = None
                 ) -> tuple[pd.DataFrame, str, dict]:
    if isinstance(source, pd.DataFrame):
        return source, "DataFrame", columns
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text == "-":  # standard input: CSV, JSON or JSON lines
            try:
                text = sys.stdin.read()
            except UnicodeDecodeError as exc:
                raise DataError(f"could not read standard input as text: {exc}") from None
            return formats.read_text(text, sep), "stdin", columns
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
        if path.suffix.lower() in formats.SUFFIXES or path.exists():
            if not path.exists():
                raise DataError(
                    f"no such file: {text!r}. DATA is a file (CSV, TSV, JSON lines, JSON, "
                    f"Parquet) or a registered dataset ({', '.join(sorted(datasets.DATASETS))})."
                )
            return formats.read_file(path, sep), str(path), columns  # a folder raises
        if os.sep in text or (os.altsep and os.altsep in text):
            raise DataError(
                f"no such file or folder: {text!r}. DATA is a CSV path, a fit folder (for "
                f"frontier/decide) or a registered dataset ({', '.join(sorted(datasets.DATASETS))}).")
        datasets.get_dataset(text)  # raises the unknown-name error
    raise DataError(
        f"cannot load runs from a {type(source).__name__}; pass a pandas DataFrame, "
        "a CSV path or a registered dataset name."
    )


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
    group: str | bool | None = None,
    split: str | None = None,
    best_per_cell: bool | None = None,
    group_column: str | None = None,
    run_column: str | None = None,
    sep: str | None = None,
    drop_duplicates: bool = False,
    check_plausible: bool | dict[str, bool] = True,
    n_convention: str | None = None,
) -> Runs:
    """Load and validate training runs.

    Parameters
    ----------
    source : DataFrame, file path, ``"-"`` (standard input: CSV, JSON or JSON lines) or registered dataset name
        Files are read by extension: CSV, TSV, JSON lines, JSON, Parquet, and these
        compressed (``.csv.gz``); see :mod:`bayescale.data.formats`.
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
        Keep only the runs of this group (e.g. ``group="C4"`` for ``"gadre2024"``), or with
        ``group="all"`` every group, labelled in ``Runs.group``, to fit side by side with
        :func:`bayescale.estimators.groups.fit_groups`. A registered dataset whose groups
        are different corpora is never pooled silently: without ``group=`` it raises.
    split : str, optional
        For registered datasets with a held-out split (``data_constrained``, ``farseer``):
        ``"train"`` (the default) or ``"test"``.
    best_per_cell : bool, optional
        For the hyper-parameter grids ``misfitting`` and ``steplaw``: keep the best run per
        (N, D) cell (the default) or, with False, every run.
    group_column, run_column : str, optional
        Columns holding group labels and training-run ids (registered datasets name their
        own); kept as ``Runs.group`` and ``Runs.run``.
    sep : str, optional
        The delimiter of a CSV file or standard input (default: detected; comma,
        semicolon, tab or bar).
    drop_duplicates : bool
        Keep the first of rows that repeat an earlier row (same N, D, loss, ...) instead
        of refusing them; ``Runs.notes`` says how many were dropped.
    check_plausible : bool or dict
        Warn (:class:`~bayescale.errors.DataWarning`) for values that look like a unit
        mistake: N below 1e5 or D below 1e6 (counts given in millions or billions?),
        tokens per parameter outside 0.01-1e5, losses above 15 (perplexities?) or below
        0.05, a C column more than a factor 2 from ``6 N D``, and (without a run column)
        rows that look like checkpoints of one run (some N with 8 or more D values evenly
        spaced, :func:`bayescale.data.loaders.warn_checkpoints`). ``False`` silences
        them all; a dict turns some off by name (``{"C": False}``; the names are
        ``N, D, tokens_per_param, loss, C``).
    n_convention : ``"total"`` or ``"non_embedding"``, optional
        What N counts (exponents and N_opt depend on it: Pearce & Song 2024; see
        :mod:`bayescale.data.formats`). A dataset gives that N column or raises, listing
        those it has; a table with ``N`` and ``N_no_emb`` gets the one asked for.

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
    registered = isinstance(source, str) and source in datasets.DATASETS
    checks = validate.plausibility_checks(check_plausible)
    if registered and checks:  # a dataset may turn checks off (e.g. {"C": False})
        checks &= validate.plausibility_checks(
            getattr(datasets.DATASETS[source], "check_plausible", True))
    frame, name, columns = _read_source(source, columns, options, sep)
    columns, n_conv, n_note = formats.resolve_n(source if registered else None, frame.columns,
                                                columns, n_convention, {"N": N, "C": C},
                                                COLUMN_ALIASES)
    # For a CSV file, name lines of the file (header = line 1); else 0-based data rows.
    lines = (not registered and name != "DataFrame"
             and formats.file_format(name) in ("csv", "tsv"))
    where = f"the data from {name}"
    if frame.shape[0] == 0:
        raise DataError(f"{where} has no rows.")
    pre_notes = list(frame.attrs.get("notes", [])) + ([n_note] if n_note else [])
    if group is True or str(group).lower() == loaders.ALL_GROUPS:  # keep the labels
        columns["group"] = columns.get("group") or "group"
    frame = loaders.select_group(frame, columns.get("group"), group, name, pre_notes)

    found = find_columns(frame, columns, where)

    notes = pre_notes
    n_vals = validate.numeric(frame, found["N"], "N", lines)
    loss_vals = validate.numeric(frame, found["loss"], "loss", lines)
    c_given = None
    if found["D"] is not None:
        d_vals = validate.numeric(frame, found["D"], "D", lines)
        if found["C"] is not None:  # ignored, but compared with 6ND (a unit check)
            c_given = pd.to_numeric(frame[found["C"]], errors="coerce").to_numpy(float)
    else:
        c_vals = validate.numeric(frame, found["C"], "C", lines)
        d_vals = c_vals / (6.0 * n_vals)
        notes.append(f"D = C / (6 N) from column {found['C']!r}")

    tidy = pd.DataFrame({"N": n_vals, "D": d_vals, "C": 6.0 * n_vals * d_vals, "loss": loss_vals},
                        index=frame.index)
    if found["U"] is not None:
        tidy["U"] = validate.numeric(frame, found["U"], "U", lines)
    for key in ("group", "run"):
        if columns.get(key) is not None:
            if columns[key] not in frame.columns:
                raise DataError(f"column {columns[key]!r} given for {key} is not in {where}; "
                                f"its columns are {list(frame.columns)}.")
            tidy[key] = frame[columns[key]].to_numpy()
    key_cols = ["N", "D", "loss"] + [k for k in ("U", "group", "run") if k in tidy]
    if c_given is not None:
        tidy["_C_given"] = c_given
    tidy, note = validate.duplicates(tidy, key_cols, where, drop=drop_duplicates, lines=lines)
    if note:
        notes.append(note)
    c_given = tidy.pop("_C_given").to_numpy() if "_C_given" in tidy else None

    keep, reason = validate.filters(tidy, mask=mask, query=query, exclude_top=exclude_top)
    dropped = tidy[~keep].assign(dropped_by=reason[~keep])
    kept = tidy[keep]
    validate.identifiable(kept, where)
    if checks:
        validate.check_plausible(kept, found, checks=checks, lines=lines, stacklevel=2,
                                 C_given=None if c_given is None else c_given[keep])
        if "run" not in kept:
            loaders.warn_checkpoints(kept, where, stacklevel=2)
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
        n_convention=n_conv,
    )
