"""File formats and the parameter-counting convention of the runs.

**Formats.** :func:`read_file` reads a table of runs by its extension, with pandas' own
readers, so that column names arrive exactly as the file writes them:

==================================  ==============================================
extension                           reader
==================================  ==============================================
``.csv``, ``.txt``, anything else   CSV, delimiter ``sep`` or detected (``, ; tab |``)
``.tsv``                            tab-separated
``.jsonl``, ``.ndjson``             JSON lines (one record per line)
``.json``                           a JSON array of records (or JSON lines)
``.parquet``, ``.pq``               Parquet (needs pyarrow: ``pip install "bayescale[parquet]"``)
==================================  ==============================================

A compression suffix (``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.zip``) after any of these is
handled by pandas: ``runs.csv.gz`` and ``runs.jsonl.gz`` read as their inner format.

**Parameter counting.** N is counted in two ways in the literature: *total* parameters
(embedding matrices included; Hoffmann et al. 2022, most sweeps here) and *non-embedding*
parameters (Kaplan et al. 2020; StepLaw). The two differ by ``vocab x d_model`` per
embedding matrix (twice that with untied input and output embeddings), a large share of N
for small models and a negligible one for large models. Because the gap shrinks with
scale, fitting the same runs in the two conventions gives different exponents and a
different compute-optimal allocation: Pearce & Song (2024, "Reconciling Kaplan and
Chinchilla Scaling Laws", arXiv:2406.12907) show that counting non-embedding parameters
at small scale is most of why Kaplan et al. found ``N_opt ~ C^0.73`` where Hoffmann et al.
found ``C^0.50``. An answer (N_opt, the exponents) is therefore only meaningful with its
convention, which :class:`~bayescale.data.runs.Runs` records (``Runs.n_convention``, its
notes and ``describe()["n_convention"]``).

``load_runs(NAME, n_convention="non_embedding")`` picks the N column that a registered
dataset publishes for the convention (:func:`bayescale.data.registry.n_convention_columns`);
asking for one it does not publish is an error listing those it does. For a user's file,
``n_convention`` picks between a total and a non-embedding column when the file has both
(e.g. ``N`` and ``N_no_emb``) and otherwise records what ``N`` means.

The non-embedding count is not derived from ``vocab_size`` and ``d_model`` columns: the
published sweeps disagree on what "non-embedding" leaves out (Gadre et al. 2024 subtract
the input embedding only, ``params - params_no_embed = 50432 d_model`` with untied
weights; Li et al. 2025's ``N - N_no_emb = 2 x 50432 d_model`` subtracts the output
projection too), and no registered dataset carries both a width column and both counts
to test a derivation against. Compute the column you mean and name it with ``N=``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import zipfile
from pathlib import Path

import pandas as pd

from bayescale.data import registry
from bayescale.data import validate
from bayescale.errors import DataError

__all__ = ["FORMATS", "N_CONVENTIONS", "file_format", "read_file", "n_column",
           "file_n_column", "resolve_n", "SUFFIXES"]

# Extension (after any compression suffix) -> format name.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".parquet": "parquet", ".pq": "parquet",
}
COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
N_CONVENTIONS = ("total", "non_embedding")
# Extensions that mark DATA as a file path (a missing one is "no such file", not a dataset).
SUFFIXES = frozenset(FORMATS) | frozenset(COMPRESSION)

PARQUET_FIX = ('pip install "bayescale[parquet]" (or pip install pyarrow), or save the '
               "table as CSV")


def file_format(path: str | Path) -> str:
    """``"csv"``, ``"tsv"``, ``"jsonl"``, ``"json"`` or ``"parquet"`` from the extension of
    ``path`` (a compression suffix skipped); ``"csv"`` for an unknown extension."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes = suffixes[:-1]
    return FORMATS.get(suffixes[-1], "csv") if suffixes else "csv"


def _sniff_compressed(path: Path) -> str | None:
    """The delimiter of a compressed CSV (None for a plain file: read_csv sniffs it)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower())
    if opener is None or not path.is_file():
        return None if path.suffix.lower() not in COMPRESSION else ","
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            return validate.sniff(fh.read(64 * 1024))
    except (OSError, EOFError, lzma.LZMAError):
        return ","


def _open_text(path: Path):
    """``path`` opened as text, decompressing by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        archive = zipfile.ZipFile(path)
        return io.TextIOWrapper(archive.open(archive.namelist()[0]), encoding="utf-8")
    if suffix == ".zst":
        raise DataError(f"{str(path)!r} is zstd-compressed JSON, which bayescale reads only "
                        "decompressed. Fix: unzstd it, or use gzip (.jsonl.gz).")
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
    return opener(path, "rt", encoding="utf-8")


def _read_json(path: Path, lines: bool) -> pd.DataFrame:
    # The standard library's parser, not pandas' ujson: it reads every double exactly as the
    # CSV reader does, and integers beyond 64 bits (FLOP counts as 36000000000000000000)
    # exactly, where pandas' reader wraps them around silently.
    what = "JSON lines (one object per line)" if lines else "JSON (an array of records)"
    try:
        with _open_text(path) as fh:
            text = fh.read()
        return _json_frame(text, lines)
    except (ValueError, OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise DataError(f"could not read {str(path)!r} as {what}: {exc}. Fix: check the "
                        "file, or save it as CSV.") from None


def _json_frame(text: str, lines: bool) -> pd.DataFrame:
    if lines:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            if not exc.msg.startswith("Extra data"):
                raise
            return _json_frame(text, True)  # JSON lines in a .json file
    if isinstance(records, dict):  # {column: [values]} or {column: {row: value}}
        return pd.DataFrame(records).reset_index(drop=True)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("it is not a list of objects, one per run")
    return pd.DataFrame.from_records(records)


def read_text(text: str, sep: str | None = None) -> pd.DataFrame:
    """The table in ``text`` (standard input): JSON or JSON lines when it starts with
    ``{`` or ``[``, otherwise CSV (delimiter sniffed unless ``sep`` is given)."""
    if text.lstrip()[:1] in ("{", "["):
        if sep is not None:
            raise DataError(f"sep={sep!r} was given but standard input is JSON, which has no "
                            "delimiter. Fix: leave sep unset.",
                            cli="--sep was given but standard input is JSON. Fix: drop --sep.")
        try:
            frame = _json_frame(text, lines=False)
        except ValueError as exc:
            raise DataError(f"could not read standard input as JSON or JSON lines: {exc}. "
                            "Fix: one JSON object per run (e.g. N, D, loss), or a CSV.") from None
        if frame.shape[1] == 0:
            raise DataError("standard input holds no table of records. Fix: one JSON object "
                            "per run, with the same keys (e.g. N, D, loss).")
        return frame
    try:
        return pd.read_csv(io.StringIO(text), sep=sep or validate.sniff(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"could not read standard input as CSV: {exc}") from None


def read_file(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """The table in the file ``path``, read by its extension (see the module docstring).

    Raises
    ------
    DataError
        When the file cannot be parsed in its format, ``sep`` is given for a format
        without delimiters, or a Parquet file is read without pyarrow installed.
    """
    path = Path(path)
    fmt = file_format(path)
    if path.is_dir() or fmt in ("csv", "tsv"):
        if sep is None:
            sep = "\t" if fmt == "tsv" else _sniff_compressed(path)
        return validate.read_csv(path, sep)
    if sep is not None:
        raise DataError(f"sep={sep!r} was given but {str(path)!r} is {fmt}, which has no "
                        "delimiter. Fix: leave sep unset.", cli="--sep was given but "
                        f"{str(path)!r} is {fmt}, which has no delimiter. Fix: drop --sep.")
    if fmt == "parquet":
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise DataError(f"{str(path)!r} is a Parquet file, and reading Parquet needs the "
                            f"optional dependency pyarrow, which is not installed. Fix: "
                            f"{PARQUET_FIX}.") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"could not read {str(path)!r} as Parquet: {exc}.") from None
    frame = _read_json(path, lines=fmt == "jsonl")
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] == 0:
        raise DataError(f"{str(path)!r} holds no table of records. Fix: write one JSON "
                        "object per run, with the same keys (e.g. N, D, loss).")
    return frame


def _check(convention: str) -> None:
    if convention not in N_CONVENTIONS:
        raise DataError(f"unknown n_convention {convention!r}; it is one of "
                        f"{', '.join(N_CONVENTIONS)}.",
                        cli=f"unknown --n-convention {convention!r}; it is one of "
                            f"{', '.join(N_CONVENTIONS)}.")


def n_column(name: str, convention: str) -> str:
    """The column of registered dataset ``name``'s table that holds N counted by
    ``convention``, or a DataError listing the conventions the dataset publishes."""
    _check(convention)
    have = registry.n_convention_columns(name)
    if convention not in have:
        stated = registry.get_dataset(name).n_convention
        can = (f"it publishes N only as {', '.join(sorted(have))}" if have
               else f"its convention is {stated!r}, so neither can be promised")
        fix = (f"n_convention={next(iter(sorted(have)))!r} or leave it unset" if have
               else "leave n_convention unset")
        cli_fix = (f"--n-convention {next(iter(sorted(have)))} or leave it out" if have
                   else "leave --n-convention out")
        msg = f"dataset {name!r} cannot give N as {convention!r}: {can}. Fix: "
        raise DataError(msg + fix + ".", cli=msg + cli_fix + ".")
    return have[convention]


_NON_EMBEDDING = re.compile(r"[\s_\-]*(?:non|no|ex|excl|excluding|without)[\s_\-]*"
                            r"emb(?:ed(?:ding)?s?)?", re.IGNORECASE)


def _norm(name) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def file_n_column(columns, aliases, convention: str) -> str | None:
    """Among ``columns`` of a user's table, the N column counted by ``convention`` when the
    table has exactly one total count (a name in ``aliases``, e.g. ``N``, ``params``) and
    exactly one non-embedding count (such a name with ``no_emb``, ``non_embedding``,
    ``no_embed`` ... before or after it, e.g. ``N_no_emb``); else None."""
    _check(convention)
    wanted = {_norm(a) for a in aliases}
    non = [c for c in columns if _NON_EMBEDDING.search(str(c))
           and _norm(_NON_EMBEDDING.sub("", str(c))) in wanted]
    tot = [c for c in columns if _norm(c) in wanted and c not in non]
    if len(non) != 1 or len(tot) != 1:
        return None
    return non[0] if convention == "non_embedding" else tot[0]


def resolve_n(dataset: str | None, frame_columns, columns: dict, convention: str | None,
              explicit: dict, aliases: dict) -> tuple[dict, str | None, str | None]:
    """``(columns, recorded convention, note)``: the column map with N chosen by
    ``convention`` for registered ``dataset`` (None for a user's table), what N counts, and
    a note for ``Runs.notes`` (None when nothing was chosen or stated).

    ``explicit`` holds the columns the caller named (``{"N": ..., "C": ...}``), which are
    kept; ``aliases`` is ``COLUMN_ALIASES``. A C column in the same convention
    (``C_no_emb`` beside ``C``) is taken with N, so that C is still about 6 N D.
    """
    if convention is None:
        stated = registry.get_dataset(dataset).n_convention if dataset else None
        return columns, stated, None
    _check(convention)
    frame_columns = list(frame_columns)
    if explicit.get("N") is not None:
        if dataset is not None:
            n_column(dataset, convention)  # the dataset must publish it
        return columns, convention, (f"N (column {explicit['N']!r}) counts {convention} "
                                     "parameters, as stated by n_convention")
    column = (n_column(dataset, convention) if dataset is not None
              else file_n_column(frame_columns, aliases["N"], convention))
    if column is None:
        return columns, convention, f"N counts {convention} parameters, as stated by n_convention"
    columns = {**columns, "N": column}
    c_column = file_n_column(frame_columns, aliases["C"], convention)
    if explicit.get("C") is None and c_column is not None:
        columns["C"] = c_column
    return columns, convention, (f"N counts {convention} parameters (column {column!r}, "
                                 f"n_convention={convention!r})")
