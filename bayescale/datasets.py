"""Registry of published training-run datasets and where to find their files.

A named dataset is looked for, in order,

1. in the folder named by the ``BAYESCALE_DATA`` environment variable,
2. in the user cache folder (``$XDG_CACHE_HOME/bayescale`` or ``~/.cache/bayescale``),
3. on the network: the file is downloaded from its public source into the cache
   and checked against a pinned sha256 before it is used.

Nothing in this module imports JAX or pandas, so listing datasets is instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from bayescale.errors import DatasetNotFoundError

__all__ = ["Dataset", "DATASETS", "get_dataset", "locate", "cache_dir", "data_dirs"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A published dataset of final losses of training runs.

    Attributes
    ----------
    name : registry key, e.g. ``"chinchilla"``.
    filename : file name looked for in the data folders.
    url : public source, pinned to a commit.
    sha256 : checksum of the file's bytes.
    columns : mapping from bayescale's names (``N``, ``D``, ``C``, ``loss``) to the
        file's column names.
    num_runs : rows in the file.
    description, citation, provenance : human-readable notes.
    """

    name: str
    filename: str
    url: str
    sha256: str
    columns: dict
    num_runs: int
    description: str
    citation: str
    provenance: str


DATASETS: dict[str, Dataset] = {
    "chinchilla": Dataset(
        name="chinchilla",
        filename="chinchilla_svg_extracted.csv",
        url=(
            "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/"
            "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
        ),
        sha256="193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30",
        columns={"N": "Model Size", "C": "Training FLOP", "loss": "loss"},
        num_runs=245,
        description=(
            "245 Chinchilla training runs digitised from Hoffmann et al. (2022) Fig. 4 by "
            "Besiroglu et al. (2024). N counts all parameters (embeddings included); "
            "C is training FLOPs; D = C / (6 N); loss in nats/token on MassiveText. "
            "Epoch exclude the 5 highest-loss runs (exclude_top=5)."
        ),
        citation=(
            "T. Besiroglu, E. Erdil, M. Barnett, J. You, 'Chinchilla Scaling: A replication "
            "attempt', arXiv:2404.10102 (2024); data from J. Hoffmann et al., 'Training "
            "Compute-Optimal Large Language Models', arXiv:2203.15556 (2022), Figure 4."
        ),
        provenance=(
            "epoch-research/analyzing-chinchilla@9225883, data/svg_extracted_data.csv "
            "(no licence file: credit Epoch AI and Hoffmann et al.)"
        ),
    ),
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


def _download(dataset: Dataset, dest: Path, timeout: float) -> None:
    """Download to a temporary file beside ``dest``, check the hash, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(dataset.url, timeout=timeout) as response:
        payload = response.read()
    got = hashlib.sha256(payload).hexdigest()
    if got != dataset.sha256:
        raise DatasetNotFoundError(
            f"the file downloaded for dataset {dataset.name!r} from {dataset.url} has "
            f"sha256 {got}, expected {dataset.sha256}; it was not used. Download it by "
            f"hand, check it, and put it in a folder named by BAYESCALE_DATA."
        )
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def locate(name: str, *, download: bool = True, timeout: float = 20.0) -> Path:
    """Path of a registered dataset's file, downloading it into the cache if needed.

    Parameters
    ----------
    name : registered dataset name (see :data:`DATASETS`).
    download : whether to try the network when no local copy is found.
    timeout : seconds to wait for the download.

    Raises
    ------
    DatasetNotFoundError
        If the file is in none of the folders and cannot be downloaded; the message
        lists the folders searched and how to fix it.
    """
    dataset = get_dataset(name)
    searched = []
    for folder in data_dirs():
        candidate = folder / dataset.filename
        searched.append(str(candidate))
        if candidate.is_file():
            return candidate
    dest = cache_dir() / dataset.filename
    if download and os.environ.get("BAYESCALE_OFFLINE", "") not in ("1", "true", "yes"):
        try:
            _download(dataset, dest, timeout)
            return dest
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = f"download from {dataset.url} failed ({exc})"
        else:  # pragma: no cover - _download either returns or raises
            reason = "download failed"
    else:
        reason = "downloading was switched off"
    raise DatasetNotFoundError(
        f"dataset {name!r} ({dataset.filename}) was not found; looked in: "
        f"{'; '.join(searched)}; {reason}. Fix: set BAYESCALE_DATA to the folder that "
        f"holds {dataset.filename} (for example `export BAYESCALE_DATA=../shared/data`), "
        f"or download {dataset.url} into {cache_dir()}."
    )
