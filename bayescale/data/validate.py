"""Checks at the data boundary: reading a CSV, numeric columns, duplicates, plausibility.

Used by :func:`bayescale.data.runs.load_runs`. Every problem is reported in the user's
terms: the column as it is named in their data, the rows (for a file, the *line* of the
file, counting the header as line 1), and a fix written twice, for Python and for the
command line (see :class:`bayescale.errors.BayescaleError`).

Plausibility checks (:func:`check_plausible`) catch unit mistakes that would otherwise
fit without a word: tokens given in billions (D = 20 meaning 20B gives a frontier at
10^-6 tokens per parameter), losses given as perplexities, a FLOPs column that is not
``6 N D``. They warn (:class:`~bayescale.errors.DataWarning`) rather than raise, since
unusual data can be real; ``check_plausible=False`` silences them.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.errors import DataError, DataWarning

__all__ = ["PLAUSIBILITY_CHECKS", "PLAUSIBLE", "data_error", "rows_text", "read_csv",
           "sniff", "numeric", "duplicates", "filters", "identifiable", "plausibility_checks", "check_plausible"]

_MAX_ROWS_SHOWN = 8
_MIN_DISTINCT = 3  # distinct N and D values needed to separate A, alpha (B, beta) from E
_MIN_RUNS = 6  # more runs than the law's 5 parameters
_HEADER_LINES = 1  # a file's line of data row 0 is row + 1 + _HEADER_LINES

# The checks, by name, and their bounds. Values outside are possible (a 50k-parameter
# toy model, a tiny probe) but far more often a unit mistake.
PLAUSIBILITY_CHECKS = ("N", "D", "tokens_per_param", "loss", "C")
PLAUSIBLE = {
    "N_min": 1e5,               # parameters
    "D_min": 1e6,               # tokens
    "tokens_per_param": (1e-2, 1e5),
    "loss": (0.05, 15.0),       # nats per token; above ~15 is a perplexity (e^15 = 3.3e6)
    "C_ratio": 2.0,             # C / (6 N D) within a factor of 2
}


def data_error(text: str, python: str, cli: str) -> DataError:
    """A DataError whose ``{fix}`` placeholder reads ``python`` in Python, ``cli`` on the command line."""
    return DataError(text.replace("{fix}", python), cli=text.replace("{fix}", cli))


def _warn(text: str, python: str, cli: str, stacklevel: int) -> None:
    warnings.warn(DataWarning(text.replace("{fix}", python), cli=text.replace("{fix}", cli)),
                  stacklevel=stacklevel + 1)


def rows_text(labels, lines: bool = False) -> str:
    """``"rows 3, 7"``, or for a file (``lines=True``, labels = 0-based data rows) ``"lines 5, 9"``."""
    labels = list(labels)
    if lines:
        labels = [int(x) + 1 + _HEADER_LINES for x in labels]
    shown = ", ".join(str(x) for x in labels[:_MAX_ROWS_SHOWN])
    more = f" and {len(labels) - _MAX_ROWS_SHOWN} more" if len(labels) > _MAX_ROWS_SHOWN else ""
    word = ("line" if lines else "row") + ("" if len(labels) == 1 else "s")
    return f"{word} {shown}{more}"


def read_csv(path: Path, sep: str | None = None) -> pd.DataFrame:
    """Read a delimited text file; the delimiter is ``sep`` or detected (comma, semicolon, tab, bar)."""
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder, not a CSV file. Fix: give the path of "
                        "the CSV file inside it (or, for frontier/decide, a folder written by "
                        "`bayescale fit DATA --out DIR`).")
    if sep is None:
        sep = "\t" if path.suffix.lower() == ".tsv" else _sniff(path)
    try:
        return pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise data_error(f"could not read {str(path)!r} as CSV with separator {sep!r}: {exc}. "
                         "Fix: check the file, or give its separator with {fix}.",
                         "sep=';'", "--sep ';'") from None


def _sniff(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return sniff(fh.read(64 * 1024))
    except OSError:
        return ","


def sniff(text: str) -> str:
    """The delimiter of CSV ``text`` (comma unless a semicolon, tab or bar is clearly used)."""
    # Only the header and a few lines: a comma inside a quoted field must not win.
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def numeric(frame: pd.DataFrame, column: str, key: str, lines: bool = False) -> np.ndarray:
    """``frame[column]`` as finite positive floats, or a DataError naming the rows."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].head(3))
        raise data_error(
            f"column {column!r} ({key}) has non-numeric values at "
            f"{rows_text(frame.index[bad], lines)} (e.g. {examples}). Fix: {{fix}}.",
            "clean or delete those lines of the file" if lines else "clean or drop those rows",
            "clean or delete those lines of the file")
    values = values.to_numpy(dtype=float)
    missing = ~np.isfinite(values)
    if missing.any():
        raise data_error(
            f"column {column!r} ({key}) has missing, NaN or infinite values at "
            f"{rows_text(frame.index[missing], lines)}. Fix: {{fix}}.",
            # dropna() keeps inf: np.isfinite drops NaN and inf alike.
            ("delete or fill those lines of the file, or read it with pandas and drop them: "
             if lines else "drop those rows, or fill them: ")
            + f"df = df[np.isfinite(pd.to_numeric(df[{column!r}]))]",
            "delete or fill those lines of the file")
    nonpos = values <= 0
    if nonpos.any():
        raise data_error(
            f"column {column!r} ({key}) must be positive but is <= 0 at "
            f"{rows_text(frame.index[nonpos], lines)}. Fix: check the units and {{fix}}; "
            f"{key} enters the law through its logarithm.",
            "delete those lines of the file" if lines else "drop those rows",
            "delete those lines of the file")
    return values


def duplicates(tidy: pd.DataFrame, key_cols: list[str], where: str, *, drop: bool,
               lines: bool = False) -> tuple[pd.DataFrame, str | None]:
    """Refuse duplicate rows, or with ``drop`` keep the first of each; returns (tidy, note)."""
    dup = tidy.duplicated(subset=key_cols, keep="first")
    if not dup.any():
        return tidy, None
    if drop:
        note = (f"dropped {int(dup.sum())} duplicate rows (same {', '.join(key_cols)} as an "
                f"earlier row): {rows_text(tidy.index[dup], lines)}")
        return tidy[~dup], note
    firsts = tidy.duplicated(subset=key_cols, keep=False) & ~dup
    raise data_error(
        f"{int(dup.sum())} {rows_text(tidy.index[dup], lines)} of {where} duplicate earlier "
        f"rows (same {', '.join(key_cols)}; first copies at "
        f"{rows_text(tidy.index[firsts], lines)}). Each run must appear once. Fix: {{fix}}.",
        "load_runs(..., drop_duplicates=True) keeps the first of each",
        "--drop-duplicates keeps the first of each")


def filters(tidy: pd.DataFrame, *, mask, query, exclude_top) -> tuple[np.ndarray, pd.Series]:
    """``load_runs``'s ``mask``, ``query`` and ``exclude_top``: (rows kept, why each was dropped)."""
    try:
        bad_top = isinstance(exclude_top, (bool, np.bool_)) or int(exclude_top) != exclude_top
    except (TypeError, ValueError, OverflowError):
        bad_top = True
    if bad_top or exclude_top < 0:
        raise data_error(f"exclude_top must be a non-negative integer, got {exclude_top!r}. "
                         "Fix: pass e.g. {fix} (Besiroglu et al. 2024).",
                         "exclude_top=5", "--exclude-top 5")

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
    return keep, reason


def identifiable(kept: pd.DataFrame, where: str) -> None:
    """Raise unless ``kept`` has enough runs and distinct N and D to identify the law."""
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


def plausibility_checks(option: bool | Mapping[str, bool]) -> set[str]:
    """The checks to run: all (True), none (False), or a mapping turning some off (``{"C": False}``)."""
    if isinstance(option, Mapping):
        unknown = set(option) - set(PLAUSIBILITY_CHECKS)
        if unknown:
            raise DataError(f"unknown plausibility checks {sorted(unknown)}; the checks are "
                            f"{list(PLAUSIBILITY_CHECKS)}.")
        return {k for k in PLAUSIBILITY_CHECKS if option.get(k, True)}
    if option is True or option is False:
        return set(PLAUSIBILITY_CHECKS) if option else set()
    raise DataError(f"check_plausible must be True, False or a mapping such as {{'C': False}}, "
                    f"got {option!r}.")


_SILENCE = ("if these values are right, load_runs(..., check_plausible=False) silences "
            "this check", "if these values are right, --no-plausibility-checks silences this check")


def check_plausible(tidy: pd.DataFrame, columns: dict[str, str], *, checks: set[str],
                    C_given: np.ndarray | None = None, lines: bool = False,
                    stacklevel: int = 2) -> None:
    """Warn (:class:`DataWarning`) for values that look like a unit mistake.

    ``tidy`` has columns N, D, loss (index: source rows); ``columns`` maps N, D, C, loss
    to the user's column names; ``C_given`` is the user's compute column when both D and
    C were given (then D is used, and C is compared with ``6 N D``).
    """
    stacklevel += 1
    N, D, loss = (tidy[k].to_numpy(float) for k in ("N", "D", "loss"))
    idx = tidy.index

    def where(mask):
        return rows_text(idx[mask], lines)

    def col(key):
        return repr(columns.get(key) or key)

    if "N" in checks and (bad := N < PLAUSIBLE["N_min"]).any():
        _warn(f"column {col('N')} (N, parameters) is below {PLAUSIBLE['N_min']:.0e} at "
              f"{where(bad)} (smallest {N[bad].min():.4g}): is N in millions or billions? The "
              "law needs a count of parameters (70B = 7e10). Fix: convert the column, "
              "{fix}.", "e.g. df['N'] *= 1e9 for billions; " + _SILENCE[0],
              "e.g. 70 -> 7e10 for billions; " + _SILENCE[1], stacklevel)
    if "D" in checks and (bad := D < PLAUSIBLE["D_min"]).any():
        _warn(f"column {col('D' if columns.get('D') else 'C')} gives D (training tokens) below "
              f"{PLAUSIBLE['D_min']:.0e} at {where(bad)} (smallest {D[bad].min():.4g}): are "
              "tokens in millions or billions? The law needs a count of tokens (1.4T = 1.4e12). "
              "Fix: convert the column, {fix}.", "e.g. df['D'] *= 1e9 for billions; "
              + _SILENCE[0], "e.g. 20 -> 2e10 for billions; " + _SILENCE[1], stacklevel)
    lo, hi = PLAUSIBLE["tokens_per_param"]
    ratio = D / N
    if "tokens_per_param" in checks and (bad := (ratio < lo) | (ratio > hi)).any():
        _warn(f"tokens per parameter D/N is outside {lo:g}-{hi:.0e} at {where(bad)} (from "
              f"{ratio[bad].min():.3g} to {ratio[bad].max():.3g}; Chinchilla-optimal is about "
              f"20): are N ({col('N')}) and D ({col('D' if columns.get('D') else 'C')}) in the "
              "same units (plain counts, not millions or billions)? Fix: convert them; {fix}.",
              _SILENCE[0], _SILENCE[1], stacklevel)
    lo, hi = PLAUSIBLE["loss"]
    if "loss" in checks and (bad := loss > hi).any():
        _warn(f"column {col('loss')} (loss) is above {hi:g} at {where(bad)} (largest "
              f"{loss[bad].max():.4g}): these look like perplexities. The law needs the loss "
              "in nats per token, the log of the perplexity. Fix: {fix}.",
              "df['loss'] = np.log(df['loss']); " + _SILENCE[0],
              "replace the column by its natural log; " + _SILENCE[1], stacklevel)
    if "loss" in checks and (bad := loss < lo).any():
        _warn(f"column {col('loss')} (loss) is below {lo:g} at {where(bad)} (smallest "
              f"{loss[bad].min():.4g}): a language model's loss in nats per token is rarely "
              "this low; is it an accuracy, an error rate or a scaled loss? Fix: give the "
              "cross-entropy in nats, {fix}.", _SILENCE[0], _SILENCE[1], stacklevel)
    if "C" in checks and C_given is not None:
        r = np.asarray(C_given, float) / (6.0 * N * D)
        f = PLAUSIBLE["C_ratio"]
        r = np.where(np.isfinite(r) & (r > 0), r, 1.0)  # missing C: nothing to compare
        if (bad := (r > f) | (r < 1 / f)).any():
            _warn(f"column {col('C')} (C, FLOPs) disagrees with 6 N D by more than a factor "
                  f"of {f:g} at {where(bad)} (C / 6ND from {r[bad].min():.3g} to "
                  f"{r[bad].max():.3g}). D is used and C is ignored, so check the units of "
                  f"{col('D')} and {col('N')}. Fix: {{fix}}.",
                  "if C counts differently (e.g. 2ND, or in GFLOPs), load_runs(..., "
                  "check_plausible={'C': False}) silences this check",
                  _SILENCE[1], stacklevel)
