"""Readers for the registered datasets: each dataset's files -> one flat table.

:func:`read_table` returns a DataFrame whose columns the registry's ``columns`` name
(``N``, ``D``, ``loss``, ``U``, ``group``, ``run`` ...), with the dataset's own conventions
applied as its ``PROVENANCE.md`` describes (best hyper-parameters per cell, duplicates
dropped, held-out splits) and each step recorded in the returned notes. Validation of the
values is :func:`bayescale.data.runs.load_runs`'s job.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bayescale.data import registry
from bayescale.errors import DataError, DataWarning

__all__ = ["read_table", "select_group", "ALL_GROUPS", "checkpoint_stretch",
           "warn_checkpoints", "CHECKPOINT_STRETCH"]

# group="all" (any case) keeps every group of a multi-group dataset, with its labels.
ALL_GROUPS = "all"
# Rows look like checkpoints of one run when some N (within a group) has this many
# distinct D values in one arithmetic progression (checkpoints every k steps). Ordinary
# sweeps of run lengths stay below it: the registered datasets have at most 6 (misfitting).
CHECKPOINT_STRETCH = 8

_GADRE_CORPORA = {"c4_original": "C4", "rpj": "RedPajama", "rw_original": "RefinedWeb"}


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise DataError(
                f"{path} is Parquet (as its source publishes it) and reading it needs pyarrow. "
                "Fix: pip install pyarrow, or put the CSV copy from ../shared/data in a folder "
                "named by BAYESCALE_DATA.") from None
    return pd.read_csv(path)


def _best_per_cell(frame: pd.DataFrame, keys: list[str], loss: str, notes: list, what: str):
    best = frame.loc[frame.groupby(keys, sort=False)[loss].idxmin()].sort_index()
    notes.append(f"kept the best {what} per ({', '.join(keys)}) cell: {len(best)} of "
                 f"{len(frame)} runs (best_per_cell=False keeps them all)")
    return best


def _drop_repeats(frame: pd.DataFrame, keys: list[str], notes: list) -> pd.DataFrame:
    dup = frame.duplicated(subset=keys, keep="first")
    if dup.any():
        notes.append(f"dropped {int(dup.sum())} rows that repeat an earlier row's "
                     f"{', '.join(keys)}")
    return frame[~dup]


def _chinchilla(files, notes, split, best):
    return pd.read_csv(next(iter(files.values())))


def _gadre(files, notes, split, best):
    rows = []
    for path in files.values():
        model = json.loads(Path(path).read_text())
        hp = model["hyperparameters"]
        row = {"run": model["name"], "group": _GADRE_CORPORA.get(model["dataset_name"],
                                                               model["dataset_name"]),
               "N": float(hp["params"]), "N_non_embedding": float(hp["params_no_embed"]),
               "D": float(hp["tokens"]), "tokens_per_param_multiplier":
               float(hp["chinchilla_multiplier"])}
        for result in model["results"]:
            name = result["val_data"][0].split("/")[-2]  # .../<eval set>/<shard>.tar
            key = "loss_" + re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
            row[key] = float(result["loss"])
        rows.append(row)
    return pd.DataFrame(rows)


def _misfitting_run(frame: pd.DataFrame) -> pd.Series:
    return (frame["sweep"].astype(str) + "/" + frame["model"].astype(str) + "/lr="
            + frame["peak_lr"].astype(str) + "/steps=" + frame["total_steps"].astype(str))


def _misfitting(files, notes, split, best):
    frame = pd.read_csv(next(iter(files.values())))
    frame = frame.assign(run=_misfitting_run(frame), N_non_embedding=frame["N_no_emb"])
    if best is None or best:
        return _best_per_cell(frame, ["N", "D"], "loss", notes, "peak learning rate")
    return _drop_repeats(frame, ["N", "D", "loss"], notes)


def _misfitting_checkpoints(files, notes, split, best):
    frame = pd.read_csv(next(iter(files.values())))
    frame = frame.assign(run=_misfitting_run(frame), N_non_embedding=frame["N_no_emb"])
    return _drop_repeats(frame, ["run", "N", "D", "loss"], notes)


def _marin(files, notes, split, best):
    parts, dropped = [], {}
    for path in files.values():
        frame = pd.read_csv(path)
        group = re.sub(r"^isoflop-|\.\w+$", "", Path(path).name)
        optimal = frame["Name"].str.contains("validation-optimal")
        dropped[group] = int(optimal.sum())
        frame = frame[~optimal]
        budget = frame["Name"].str.extract(r"isoflop-([0-9.eE+\-]+?)-d", expand=False)
        parts.append(pd.DataFrame({
            "run": frame["Name"], "group": group,
            "N": frame["parameter_count"].astype(float),
            "D": frame["throughput/total_tokens"].astype(float),
            "loss": frame["eval/paloma/macro_loss"].astype(float),
            "C_logged": frame["throughput/total_gflops"].astype(float) * 1e9,
            "C_name": pd.to_numeric(budget, errors="coerce"),
        }))
    notes.append("dropped the 'validation-optimal' runs ("
                 + ", ".join(f"{n} {g}" for g, n in dropped.items() if n)
                 + "): their name budget is ~6ND, duplicates of the sweep, as Open-Athena drop")
    notes.append("C_name (the budget in the run names) is about 2ND, a forward-only count; "
                 "C_logged (total_gflops x 1e9) is about 6ND")
    return pd.concat(parts, ignore_index=True)


def _steplaw(files, notes, split, best):
    frame = pd.read_csv(next(iter(files.values())))
    frame = frame.rename(columns={"loss": "loss_last", "smooth loss": "loss", "N":
                                  "N_non_embedding", "exp_name": "run"})
    notes.append("loss is the smoothed final training loss ('smooth loss'); N is non-embedding")
    if best is None or best:
        return _best_per_cell(frame, ["N_non_embedding", "D"], "loss", notes,
                              "(learning rate, batch size)")
    return frame


def _active_sl(files, notes, split, best):
    split = split or "train"
    chosen = [p for key, p in files.items() if key.rsplit(".", 1)[0].endswith("_" + split)]
    notes.append(f"split {split!r}")
    frame = _read(chosen[0]).drop(columns=["group"], errors="ignore")
    return _drop_repeats(frame, list(frame.columns), notes)


_READERS: dict[str, Callable] = {
    "chinchilla": _chinchilla, "gadre2024": _gadre, "misfitting": _misfitting,
    "misfitting_checkpoints": _misfitting_checkpoints, "marin_isoflop": _marin,
    "steplaw": _steplaw, "data_constrained": _active_sl, "farseer": _active_sl,
}


def read_table(name: str, *, split: str | None = None, best_per_cell: bool | None = None,
               download: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """A registered dataset (not ``synthetic``) as one table, with notes on how it was built.

    Parameters
    ----------
    name : registered dataset name.
    split : ``"train"`` (default) or ``"test"`` for datasets with a held-out split.
    best_per_cell : keep the best hyper-parameters per (N, D) cell (the default for
        ``misfitting`` and ``steplaw``); False keeps every run of the grid.
    download : whether missing files may be downloaded.

    Raises
    ------
    DataError
        For a split or option the dataset does not have, or a file that cannot be found.
    """
    ds = registry.get_dataset(name)
    if split is not None and split not in ds.splits:
        have = f"its splits are {sorted(ds.splits)}" if ds.splits else "it has no splits"
        raise DataError(f"dataset {name!r} has no split {split!r}: {have}. Fix: "
                        + (f"pass split={sorted(ds.splits)[0]!r}." if ds.splits
                           else "leave split unset."))
    if best_per_cell is not None and name not in ("misfitting", "steplaw"):
        raise DataError(f"best_per_cell applies to the hyper-parameter grids misfitting and "
                        f"steplaw, not to {name!r}. Fix: leave it unset.")
    prefix = ""
    if ds.splits:
        prefix = ds.files[0].path.rsplit("_", 1)[0] + "_" + (split or "train")
    files = registry.locate_files(name, download=download, prefix=prefix)
    notes: list[str] = []
    frame = _READERS[name](files, notes, split, best_per_cell)
    return frame, notes


def select_group(frame: pd.DataFrame, column: str | None, group, name: str,
                 notes: list) -> pd.DataFrame:
    """The rows of ``frame`` whose group ``column`` equals ``group`` (case-insensitively).

    ``group="all"`` (or True) keeps every group, with its labels, to be fitted side by side
    (:func:`bayescale.estimators.groups.fit_groups`). With ``group=None``, a registered
    dataset whose groups are different corpora raises (listing the groups and how to pick
    one or fit them all): it is never pooled into one law silently.
    """
    where = f"the data from {name}"
    if group is None:
        groups = registry.DATASETS[name].groups if name in registry.DATASETS else {}
        if len(groups) > 1:
            listed = ", ".join(f"{g} ({n} runs)" for g, n in groups.items())
            first = next(iter(groups))
            raise DataError(
                f"dataset {name!r} has {len(groups)} groups trained on different corpora: "
                f"{listed}; they are not pooled into one law. Fix: pick one, "
                f"load_runs({name!r}, group={first!r}) in Python or --select group={first} "
                f"on the command line; or fit each group on its own, side by side, with "
                f"fit_groups(load_runs({name!r}, group='all')) in Python or --group all on "
                "the command line.")
        return frame
    column = column or "group"
    every = group is True or str(group).lower() == ALL_GROUPS
    if every and column not in frame.columns:
        raise DataError(f"{where} has no group column {column!r}, so there are no groups to "
                        f"fit side by side; its columns are {list(frame.columns)}. Fix: name "
                        "the column that holds the groups, group_column='corpus'.",
                        cli=f"{where} has no group column {column!r}, so there are no groups "
                            f"to fit side by side; its columns are {list(frame.columns)}. "
                            "Fix: --group COLUMN names the column of a file that holds them.")
    if column not in frame.columns:
        raise DataError(f"group={group!r} was given but {where} has no group column "
                        f"{column!r}; its columns are {list(frame.columns)}. Fix: name the "
                        "column with group_column=...")
    values = frame[column]
    if every:
        if values.isna().any():
            raise DataError(f"group column {column!r} of {where} has no value in "
                            f"{int(values.isna().sum())} rows. Fix: fill them in, or drop "
                            "those rows.")
        notes.append(f"every group of column {column!r}, fitted on its own: "
                     + ", ".join(f"{g} ({n} rows)" for g, n in
                                 values.astype(str).value_counts(sort=False).items()))
        return frame
    keep = values.astype(str).str.lower() == str(group).lower()
    if not keep.any():
        raise DataError(f"no group {group!r} in column {column!r} of {where}; its groups are "
                        f"{sorted(values.astype(str).unique())}. Fix: pass one of those, or "
                        "group='all' for every group.")
    notes.append(f"group {group!r}: {int(keep.sum())} of {len(frame)} rows")
    return frame[keep]


def checkpoint_stretch(D: np.ndarray) -> int:
    """The most distinct values of ``D`` that lie, consecutive once sorted, on one
    arithmetic progression (equal gaps to 0.1%), e.g. checkpoints every k steps."""
    d = np.unique(np.asarray(D, dtype=float))
    if d.size < 3:
        return int(d.size)
    gaps = np.diff(d)
    same = np.abs(np.diff(gaps)) <= 1e-3 * np.maximum(gaps[1:], gaps[:-1])
    best = cur = 0
    for s in same:
        cur = cur + 1 if s else 0
        best = max(best, cur)
    return best + 2


def warn_checkpoints(tidy: pd.DataFrame, where: str, *, stacklevel: int = 2) -> None:
    """Warn (:class:`DataWarning`) when rows without a run column look like checkpoints.

    The rule: some model size N (within a group, when there are groups) has at least
    :data:`CHECKPOINT_STRETCH` distinct D values on one arithmetic progression (checkpoints
    every k steps). A sweep of run lengths (doubling D, or a handful of lengths per size)
    does not trigger it.
    """
    keys = ["group", "N"] if "group" in tidy else ["N"]
    worst, at = 0, None
    for key, sub in tidy.groupby(keys, sort=False)["D"]:
        k = checkpoint_stretch(sub.to_numpy())
        if k > worst:
            worst, at = k, key
    if worst < CHECKPOINT_STRETCH:
        return
    N = at[-1] if isinstance(at, tuple) else at
    head = (f"{where}: rows may be checkpoints of the same training runs, not independent "
            f"runs: N = {N:.4g} has {worst} values of D evenly spaced (as checkpoints every k "
            "steps are). Treating checkpoints as independent runs makes the intervals too "
            "narrow. Fix: ")
    warnings.warn(DataWarning(
        head + "name the column that identifies the run, load_runs(..., run_column='run'), "
        "or keep only the final checkpoint of each run (e.g. query=). If these are "
        "separate runs, check_plausible=False silences this check.",
        cli=head + "name the column that identifies the run with --run-column NAME, or keep "
        "only the final checkpoint of each run (e.g. --query). If these are separate runs, "
        "--no-plausibility-checks silences this check."), stacklevel=stacklevel + 1)
