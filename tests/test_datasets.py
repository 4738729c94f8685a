"""Tests of bayescale.data.registry: the registry and where a named dataset is found.

Order: ``BAYESCALE_DATA``, then the user cache (``$XDG_CACHE_HOME/bayescale``), then
a download checked against the pinned sha256. ``urllib.request.urlopen`` is replaced
in every test that could reach it: these tests never touch the network.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bayescale.data import registry as datasets
from bayescale.data.registry import DATASETS, cache_dir, data_dirs, get_dataset, locate
from bayescale.errors import DataError, DatasetNotFoundError

FILENAME = "chinchilla_svg_extracted.csv"


def _shared_file() -> Path:
    # The real file, from BAYESCALE_DATA (conftest points it at ../shared/data).
    for folder in os.environ.get("BAYESCALE_DATA", "").split(os.pathsep):
        if folder and (Path(folder) / FILENAME).is_file():
            return Path(folder) / FILENAME
    return Path(__file__).resolve().parents[2] / "shared" / "data" / FILENAME


SHARED_FILE = _shared_file()
# As in conftest: in CI a missing file is a failure, elsewhere a skip.
needs_file = pytest.mark.skipif(not SHARED_FILE.is_file() and not os.environ.get("CI"),
                                reason=f"{SHARED_FILE} not found; set BAYESCALE_DATA")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No BAYESCALE_DATA, downloads allowed, cache under tmp_path, network forbidden."""
    monkeypatch.delenv("BAYESCALE_DATA", raising=False)
    monkeypatch.delenv("BAYESCALE_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    calls = []

    def forbidden(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    return calls


def _serve(monkeypatch, payload: bytes) -> list:
    """Make urlopen answer ``payload``; returns the list of requested URLs."""
    calls = []

    def fake_urlopen(url, *args, timeout=None, **kwargs):
        calls.append((url, timeout))
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return calls


# ---------------------------------------------------------------- registry


def test_registry_has_chinchilla():
    ds = get_dataset("chinchilla")
    assert ds is DATASETS["chinchilla"]
    assert ds.filename == FILENAME and ds.num_runs == 245
    assert ds.columns == {"N": "Model Size", "C": "Training FLOP", "loss": "loss"}
    # Pinned to a commit of epoch-research/analyzing-chinchilla.
    assert ds.url.startswith(
        "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/")
    assert "92258837425e1b5f2851d624287f0120583a3d0e" in ds.url
    assert len(ds.sha256) == 64 and int(ds.sha256, 16) >= 0
    assert "Besiroglu" in ds.citation and "Hoffmann" in ds.citation


@needs_file
def test_pinned_sha256_matches_the_shared_file():
    assert hashlib.sha256(SHARED_FILE.read_bytes()).hexdigest() == DATASETS["chinchilla"].sha256


def test_unknown_name_lists_registered_names():
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataset("chinchila")
    message = str(info.value)
    assert "unknown dataset 'chinchila'" in message
    for name in DATASETS:
        assert name in message
    assert "CSV path or a pandas DataFrame" in message
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    with pytest.raises(DatasetNotFoundError, match="registered datasets are: chinchilla"):
        locate("not-a-dataset")


# ---------------------------------------------------------------- search order


def test_data_dirs_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("BAYESCALE_DATA", os.pathsep.join([str(a), str(b)]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "bayescale"
    assert data_dirs() == [a, b, tmp_path / "xdg" / "bayescale"]
    monkeypatch.delenv("BAYESCALE_DATA")
    assert data_dirs() == [tmp_path / "xdg" / "bayescale"]


def test_cache_dir_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "bayescale"


def test_locate_prefers_BAYESCALE_DATA_over_the_cache(tmp_path, monkeypatch, isolated):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / FILENAME).write_bytes(SHARED_FILE.read_bytes())
    cached = cache_dir() / FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(SHARED_FILE.read_bytes())

    monkeypatch.setenv("BAYESCALE_DATA", str(env_dir))
    assert locate("chinchilla") == env_dir / FILENAME
    # The first folder of a path list that has the file wins.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("BAYESCALE_DATA", os.pathsep.join([str(empty), str(env_dir)]))
    assert locate("chinchilla") == env_dir / FILENAME
    # Without the file in BAYESCALE_DATA, the cache is next.
    monkeypatch.setenv("BAYESCALE_DATA", str(empty))
    assert locate("chinchilla") == cached
    monkeypatch.delenv("BAYESCALE_DATA")
    assert locate("chinchilla") == cached
    assert isolated == []  # never went to the network


@needs_file
def test_load_runs_uses_the_located_file(tmp_path, monkeypatch, isolated):
    from bayescale import load_runs

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / FILENAME).write_bytes(SHARED_FILE.read_bytes())
    monkeypatch.setenv("BAYESCALE_DATA", str(env_dir))
    assert len(load_runs("chinchilla")) == 245
    assert isolated == []


# ---------------------------------------------------------------- download


@needs_file
def test_download_into_the_cache(monkeypatch, isolated):
    payload = SHARED_FILE.read_bytes()
    calls = _serve(monkeypatch, payload)
    path = locate("chinchilla", timeout=3.0)
    assert path == cache_dir() / FILENAME
    assert path.read_bytes() == payload
    assert calls == [(DATASETS["chinchilla"].url, 3.0)]
    # Written atomically: no temporary file is left beside it.
    assert sorted(p.name for p in cache_dir().iterdir()) == [FILENAME]
    # The next call finds the cached copy and does not download again.
    assert locate("chinchilla") == path
    assert len(calls) == 1


@needs_file
def test_downloaded_file_loads(monkeypatch, isolated):
    from bayescale import load_runs

    _serve(monkeypatch, SHARED_FILE.read_bytes())
    runs = load_runs("chinchilla", exclude_top=5)
    assert len(runs) == 240 and (cache_dir() / FILENAME).is_file()


def test_download_uses_a_temporary_name_then_renames(monkeypatch, isolated):
    """The file appears under its final name only through os.replace of a .part file."""
    payload = b"x,y\n1,2\n"
    monkeypatch.setattr(datasets, "DATASETS", {
        "tiny": datasets.Dataset(
            name="tiny", filename="tiny.csv", url="https://example.invalid/tiny.csv",
            sha256=hashlib.sha256(payload).hexdigest(), columns={}, num_runs=1,
            description="", citation="", provenance="")})
    _serve(monkeypatch, payload)
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst)))
        assert Path(src).parent == Path(dst).parent  # same folder: an atomic rename
        assert Path(src).name.endswith(".part") and Path(src).read_bytes() == payload
        assert not Path(dst).exists()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    path = locate("tiny")
    assert replaced == [(replaced[0][0], cache_dir() / "tiny.csv")]
    assert path.read_bytes() == payload


@pytest.mark.parametrize("payload", [b"", b"<html>rate limited</html>", b"x,y\n1,2\n"])
def test_wrong_payload_is_rejected_and_nothing_is_cached(monkeypatch, isolated, payload):
    _serve(monkeypatch, payload)
    with pytest.raises(DatasetNotFoundError) as info:
        locate("chinchilla")
    message = str(info.value)
    expected = DATASETS["chinchilla"].sha256
    assert hashlib.sha256(payload).hexdigest() in message and expected in message
    assert "it was not used" in message and "BAYESCALE_DATA" in message
    folder = cache_dir()
    assert not folder.exists() or list(folder.iterdir()) == []
    # Nothing was cached, so the next call tries again rather than using a bad file.
    with pytest.raises(DatasetNotFoundError):
        locate("chinchilla")


@needs_file
def test_truncated_payload_is_rejected(monkeypatch, isolated):
    _serve(monkeypatch, SHARED_FILE.read_bytes()[:-10])
    with pytest.raises(DatasetNotFoundError, match="sha256"):
        locate("chinchilla")
    assert not (cache_dir() / FILENAME).exists()


@pytest.mark.parametrize("error", [
    urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    TimeoutError("timed out"),
    ConnectionResetError("reset by peer"),
    http.client.IncompleteRead(b"partial"),  # connection dropped mid-body
])
def test_offline_error_says_where_it_looked(tmp_path, monkeypatch, isolated, error):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv("BAYESCALE_DATA", str(env_dir))

    def offline(url, *args, **kwargs):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        locate("chinchilla")
    message = str(info.value)
    assert "dataset 'chinchilla'" in message and "was not found" in message
    assert str(env_dir / FILENAME) in message  # BAYESCALE_DATA folder
    assert str(cache_dir() / FILENAME) in message  # cache folder
    assert message.index(str(env_dir)) < message.index(str(cache_dir()))  # in search order
    assert "download from" in message and str(error) in message
    assert "BAYESCALE_DATA" in message and "export BAYESCALE_DATA=" in message
    assert DATASETS["chinchilla"].url in message
    assert not (cache_dir() / FILENAME).exists()


def test_offline_switch_and_download_false_skip_the_network(monkeypatch, isolated):
    monkeypatch.setenv("BAYESCALE_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="downloading was switched off.*BAYESCALE_DATA"):
        locate("chinchilla")
    monkeypatch.delenv("BAYESCALE_OFFLINE")
    with pytest.raises(DatasetNotFoundError, match="downloading was switched off"):
        locate("chinchilla", download=False)
    assert isolated == []


def test_load_runs_reports_the_offline_error(monkeypatch, isolated):
    from bayescale import load_runs

    with pytest.raises(DataError, match="was not found; looked in: .*BAYESCALE_DATA"):
        load_runs("chinchilla")
    assert len(isolated) == 1


def test_an_edited_local_copy_is_refused(tmp_path, monkeypatch, isolated):
    # A named dataset means the published bytes; an edited copy is fitted by its path.
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / FILENAME).write_bytes(SHARED_FILE.read_bytes().replace(b"5.005", b"5.006", 1))
    monkeypatch.setenv("BAYESCALE_DATA", str(env_dir))
    with pytest.raises(DatasetNotFoundError, match="not the published file.*passing its path"):
        locate("chinchilla")


# ---------------------------------------------------------------- unique tokens U


def test_unique_tokens_column_becomes_runs_U():
    import numpy as np
    import pandas as pd

    from bayescale import load_runs

    frame = pd.DataFrame({"params": [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9],
                          "tokens": [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10],
                          "unique_tokens": [1e9, 2e9, 2e9, 4e9, 8e9, 8e9],
                          "loss": [3.4, 3.1, 3.1, 2.7, 2.8, 2.5]})
    runs = load_runs(frame)
    np.testing.assert_array_equal(runs.U, frame["unique_tokens"].to_numpy())
    np.testing.assert_array_equal(runs.resample(np.array([5, 0])).U, [8e9, 1e9])
    assert list(runs.to_frame().columns) == ["N", "D", "C", "loss", "U"]
    assert load_runs(frame.rename(columns={"unique_tokens": "U"})).U[0] == 1e9
    assert load_runs(frame.drop(columns="unique_tokens")).U is None
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(DataError, match="unique_tokens"):
            load_runs(frame.assign(unique_tokens=[1e9, bad, 2e9, 4e9, 8e9, 8e9]))
