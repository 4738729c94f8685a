"""Which columns of a table are N, D, C, loss and U: the usual names, or the ones given.

:func:`bayescale.data.runs.load_runs` resolves its columns here: a name given for a key
(``load_runs(..., N="n_params")``, ``--N-column n_params`` on the command line) is used as
it is; otherwise a column whose name is one of :data:`COLUMN_ALIASES` (compared after
lower-casing and dropping spaces, ``_`` and ``-``) is. A missing or ambiguous column is a
:class:`~bayescale.errors.DataError` that names the columns there are and the fix, in both
its Python and its command-line form.
"""

from __future__ import annotations

import difflib
import re

import pandas as pd

from bayescale.data.validate import data_error

__all__ = ["COLUMN_ALIASES", "normalize_name", "shell_quote", "find_column", "find_columns"]

# Recognised column names, compared after lower-casing and dropping spaces, '_' and '-'.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "params", "parameters", "num_params", "n_params", "Model Size", "model_size",
          "non_embedding_params"),
    "D": ("D", "tokens", "Training Tokens", "num_tokens", "n_tokens", "train_tokens", "data"),
    "C": ("C", "FLOP", "FLOPs", "Training FLOP", "Training FLOPs", "compute", "flops"),
    "loss": ("loss", "L", "final_loss", "train_loss", "eval_loss", "val_loss"),
    "U": ("U", "unique_tokens"),  # optional: unique tokens (data-constrained runs)
}


def normalize_name(name) -> str:
    """``name`` lower-cased, without spaces, ``_`` and ``-`` (``"Model Size"`` -> ``"modelsize"``)."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def shell_quote(name: str) -> str:
    """``name`` quoted for a shell command line when it needs to be."""
    return name if re.fullmatch(r"[\w.\-/]+", name) else "'" + name.replace("'", "'\\''") + "'"


def find_column(frame: pd.DataFrame, key: str, explicit: str | None, where: str) -> str | None:
    """The column of ``frame`` holding ``key`` (one of :data:`COLUMN_ALIASES`), or None.

    Parameters
    ----------
    frame : the table as read.
    key : ``"N"``, ``"D"``, ``"C"``, ``"loss"`` or ``"U"``.
    explicit : the column named for ``key`` by the caller, or None to look for the usual names.
    where : the data's description for messages (``"the data from runs.csv"``).

    Raises
    ------
    DataError
        If ``explicit`` is not a column, or several columns could be ``key``.
    """
    if explicit is not None:
        if explicit not in frame.columns:
            raise data_error(
                f"column {explicit!r} given for {key} is not in {where}; its columns are "
                f"{list(frame.columns)}. Fix: name one of those, {{fix}}.",
                f"{key}='...'", f"--{key}-column NAME")
        return explicit
    wanted = {normalize_name(a) for a in COLUMN_ALIASES[key]}
    matches = [c for c in frame.columns if normalize_name(c) in wanted]
    if len(matches) > 1:
        raise data_error(
            f"several columns of {where} could be {key}: {matches}. Fix: name the one to use, "
            "e.g. {fix}.", f"load_runs(..., {key}={matches[0]!r})",
            f"--{key}-column {shell_quote(matches[0])}")
    return matches[0] if matches else None


def find_columns(frame: pd.DataFrame, columns: dict, where: str) -> dict[str, str | None]:
    """The column of ``frame`` for every key of :data:`COLUMN_ALIASES` (None where absent).

    Parameters
    ----------
    frame : the table as read.
    columns : the names given for some keys (``{"N": "n_params", "D": None, ...}``).
    where : the data's description for messages.

    Returns
    -------
    dict
        Key -> column name or None; N and loss are always found, and D or C.

    Raises
    ------
    DataError
        For a missing N or loss column (with the nearest column name, and the separator
        where the table was read as one column), neither D nor C, or an ambiguous column.
    """
    found = {key: find_column(frame, key, columns.get(key), where) for key in COLUMN_ALIASES}
    for key in ("N", "loss"):
        if found[key] is None:
            close = difflib.get_close_matches(key, [str(c) for c in frame.columns], n=1,
                                              cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if frame.shape[1] == 1 and any(c in str(frame.columns[0]) for c in ",;\t|"):
                raise data_error(
                    f"{where} was read as one column {str(frame.columns[0])!r}: the separator "
                    "is not the one used in the file. Fix: give it, e.g. {fix}.",
                    "load_runs(..., sep=';')", "--sep ';'")
            raise data_error(
                f"no {key} column in {where}{hint}; its columns are {list(frame.columns)}. "
                f"Fix: rename one to {key!r}, or name it: {{fix}}.",
                f"load_runs(..., {key}='your column')", f"--{key}-column NAME")
    if found["D"] is None and found["C"] is None:
        raise data_error(
            f"neither a D (tokens) nor a C (FLOPs) column in {where}; its columns are "
            f"{list(frame.columns)}. Fix: add one, or name it: {{fix}}.",
            "load_runs(..., D='your tokens column') or C='your FLOPs column'",
            "--D-column NAME or --C-column NAME")
    return found
