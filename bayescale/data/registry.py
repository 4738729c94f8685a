"""Registry of published training-run datasets and where to find their files.

The catalogue (what each dataset is, its files, checksums and conventions) is
:mod:`bayescale.data.sources`. Each file of a named dataset is looked for, in order,

1. in the folders named by the ``BAYESCALE_DATA`` environment variable,
2. in the user cache folder (``$XDG_CACHE_HOME/bayescale`` or ``~/.cache/bayescale``),
3. on the network: the file is downloaded from its public source into the cache.

In a folder, a file may lie at its registry path (``misfitting/scaling_results.csv``), under
its bare name (``scaling_results.csv``) or under the name its source publishes it as
(Epoch's ``svg_extracted_data.csv``). Whichever way it is found, it must match the pinned
sha256: a named dataset always means the published bytes (an edited copy is fitted by its
path instead).

Nothing in this module imports JAX or pandas, so listing datasets is instant.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bayescale.data.sources import DATASETS, DataFile, Dataset
from bayescale.errors import DatasetNotFoundError

__all__ = ["Dataset", "DataFile", "DATASETS", "get_dataset", "locate", "locate_files",
           "find_local", "available", "cache_dir", "data_dirs", "download_command",
           "N_CONVENTION_COLUMNS", "n_convention_columns"]

# Datasets that publish N in both parameter-counting conventions: convention -> the column
# of the table bayescale.data.loaders.read_table builds (see each PROVENANCE.md).
N_CONVENTION_COLUMNS: dict[str, dict[str, str]] = {
    "gadre2024": {"total": "N", "non_embedding": "N_non_embedding"},  # params, params_no_embed
    "misfitting": {"total": "N", "non_embedding": "N_non_embedding"},  # N, N_no_emb
    "misfitting_checkpoints": {"total": "N", "non_embedding": "N_non_embedding"},
}


def get_dataset(name: str) -> Dataset:
    """Look up a registered dataset by name, with a helpful error for unknown names."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; registered datasets are: {known}. "
            "To fit your own runs pass a CSV path or a pandas DataFrame instead."
        ) from None


def n_convention_columns(name: str) -> dict[str, str]:
    """``{convention: column}`` for the parameter counts registered dataset ``name``
    publishes (``"total"``, ``"non_embedding"``); empty when its convention is not stated."""
    dataset = get_dataset(name)
    if name in N_CONVENTION_COLUMNS:
        return dict(N_CONVENTION_COLUMNS[name])
    if dataset.n_convention in ("total", "non_embedding"):
        return {dataset.n_convention: dataset.columns["N"]}
    return {}


def cache_dir() -> Path:
    """The user cache folder where downloaded datasets are kept."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "bayescale"


def data_dirs() -> list[Path]:
    """Folders searched for dataset files, in order."""
    dirs = []
    env = os.environ.get("BAYESCALE_DATA")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(cache_dir())
    return dirs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidates(folder: Path, f: DataFile) -> list[tuple[Path, str]]:
    """(path, expected sha256) that may hold ``f`` in ``folder``, in order."""
    names = [f.path, f.path.rsplit("/", 1)[-1]]
    if f.published_as:
        names.append(f.published_as)
    found = [(folder / n, f.sha256) for n in dict.fromkeys(names)]
    if f.source_path:
        found.append((folder / f.source_path, f.source_sha256))
    return found


def find_local(f: DataFile) -> Path | None:
    """The first local copy of ``f`` (no checksum check), or None."""
    for folder in data_dirs():
        for candidate, _ in _candidates(folder, f):
            if candidate.is_file():
                return candidate
    return None


def available(dataset: Dataset) -> bool:
    """Whether every file of ``dataset`` can be read without the network."""
    return dataset.generated or all(find_local(f) is not None for f in dataset.files)


def download_command(f: DataFile) -> str:
    """A shell command that puts ``f`` where the lookup finds it (in the user cache)."""
    dest = cache_dir() / (f.source_path or f.path)
    return f"mkdir -p '{dest.parent}' && curl -fL -o '{dest}' '{f.url}'"


def _download(f: DataFile, name: str, timeout: float) -> Path:
    """Download to a temporary file in the cache, check the hash, then rename."""
    dest = cache_dir() / (f.source_path or f.path)
    expected = f.source_sha256 or f.sha256
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f.url, timeout=timeout) as response:
        payload = response.read()
    got = hashlib.sha256(payload).hexdigest()
    if got != expected:
        raise DatasetNotFoundError(
            f"the file downloaded for dataset {name!r} from {f.url} has "
            f"sha256 {got}, expected {expected}; it was not used. Download it by "
            f"hand, check it, and put it in a folder named by BAYESCALE_DATA.")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _locate_file(name: str, f: DataFile, download: bool, timeout: float,
                 num_files: int) -> Path:
    searched = []
    for folder in data_dirs():
        for candidate, expected in _candidates(folder, f):
            searched.append(str(candidate))
            if candidate.is_file():
                got = _sha256(candidate)
                if got != expected:
                    raise DatasetNotFoundError(
                        f"{candidate} has sha256 {got}, not the published file's {expected}: "
                        f"it is not dataset {name!r} as registered. Fix: restore the original "
                        f"file, or fit your edited copy by passing its path instead of the "
                        f"name {name!r}.")
                return candidate
    if download and os.environ.get("BAYESCALE_OFFLINE", "") not in ("1", "true", "yes"):
        try:
            return _download(f, name, timeout)
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            reason = f"download from {f.url} failed ({exc})"
    else:
        reason = "downloading was switched off"
    shown = searched if len(searched) <= 12 else searched[:12] + ["..."]
    many = (f" This dataset has {num_files} files: each is listed, with its checksum, in "
            f"bayescale/data/SHA256SUMS; fetch them the same way." if num_files > 1 else "")
    raise DatasetNotFoundError(
        f"dataset {name!r} ({f.path}) was not found; looked in: {'; '.join(shown)}; "
        f"{reason}. Fix: set BAYESCALE_DATA to the folder that holds {f.path} (for example "
        f"`export BAYESCALE_DATA=../shared/data`), or download the published file into the "
        f"cache with this command: {download_command(f)}{many} To try bayescale with no data "
        f"file at all, use the 'synthetic' dataset (runs from a known law).")


def locate_files(name: str, *, download: bool = True, timeout: float = 20.0,
                 prefix: str = "") -> dict[str, Path]:
    """``{registry path: local path}`` for every file of a registered dataset (or those whose
    registry path starts with ``prefix``), downloading missing files into the cache.

    Raises
    ------
    DatasetNotFoundError
        If a file is in none of the folders and cannot be downloaded, or a local copy has
        the wrong checksum; the message lists the folders searched and how to fix it.
    """
    dataset = get_dataset(name)
    if dataset.generated:
        raise DatasetNotFoundError(
            f"dataset {name!r} is generated in memory and has no file; load it with "
            f"load_runs({name!r}).")
    files = [f for f in dataset.files if f.path.startswith(prefix)]
    return {f.path: _locate_file(name, f, download, timeout, len(dataset.files))
            for f in files}


def locate(name: str, *, download: bool = True, timeout: float = 20.0) -> Path:
    """Path of a registered dataset's (first) file, downloading it into the cache if needed.

    Parameters
    ----------
    name : registered dataset name (see :data:`DATASETS`).
    download : whether to try the network when no local copy is found.
    timeout : seconds to wait for the download.

    Raises
    ------
    DatasetNotFoundError
        If the file is in none of the folders and cannot be downloaded; the message
        lists the folders searched and gives a command that fetches it.
    """
    dataset = get_dataset(name)
    if dataset.generated:
        return locate_files(name)  # raises: no file
    return _locate_file(name, dataset.files[0], download, timeout, 1)
