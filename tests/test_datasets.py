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
            name="tiny", files=(datasets.DataFile(
                "tiny.csv", "https://example.invalid/tiny.csv",
                hashlib.sha256(payload).hexdigest()),), columns={}, num_runs=1,
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


# ---------------------------------------------------------------- issue 13: the advice works

PUBLISHED_NAME = "svg_extracted_data.csv"  # the name in Epoch's repository


@needs_file
def test_the_file_under_its_published_name_is_found(isolated):
    from bayescale import load_runs

    cached = cache_dir() / PUBLISHED_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(SHARED_FILE.read_bytes())
    assert locate("chinchilla") == cached
    assert len(load_runs("chinchilla")) == 245
    assert isolated == []


@needs_file
def test_following_the_not_found_advice_works(monkeypatch, isolated):
    """Do what the message says (its curl command, with the copy standing in for curl)."""
    import re
    import shlex

    from bayescale import load_runs

    monkeypatch.setenv("BAYESCALE_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as info:
        load_runs("chinchilla")
    command = re.search(r"this command: (mkdir -p '[^']*' && curl -fL -o '[^']*' '[^']*')",
                        str(info.value)).group(1)
    mkdir, curl = command.split(" && ")
    words = shlex.split(curl)
    assert words[:2] == ["curl", "-fL"] and words[2] == "-o"
    assert words[4] == DATASETS["chinchilla"].url
    Path(shlex.split(mkdir)[-1]).mkdir(parents=True)
    Path(words[3]).write_bytes(SHARED_FILE.read_bytes())  # what curl would write
    assert len(load_runs("chinchilla")) == 245


# ---------------------------------------------------------------- every registered dataset

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATA = Path(os.environ.get("BAYESCALE_DATA", "").split(os.pathsep)[0] or
            Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "steplaw").is_dir() and not os.environ.get("CI"),
                                reason=f"{DATA} has no shared datasets; set BAYESCALE_DATA")


def test_every_shared_file_is_registered_with_its_checksum():
    from bayescale.data.sources import checksums

    sums = checksums()
    registered = {f.path for ds in DATASETS.values() for f in ds.files}
    assert registered == {p for p in sums if not p.endswith(".parquet")}
    assert len([p for p in registered if p.startswith("gadre_overtraining/models/")]) == 104
    for ds in DATASETS.values():
        for f in ds.files:
            assert len(f.sha256) == 64 and "raw.githubusercontent.com" in f.url
            # pinned to a commit: a 40-hex-digit path component
            assert any(len(p) == 40 and int(p, 16) >= 0 for p in f.url.split("/")
                       if all(c in "0123456789abcdef" for c in p))
        if not ds.generated:
            assert ds.licence and ds.citation and ds.loss_definition


@needs_data
def test_shared_files_match_the_registered_checksums():
    for ds in DATASETS.values():
        for f in ds.files:
            got = hashlib.sha256((DATA / f.path).read_bytes()).hexdigest()
            assert got == f.sha256, f.path


def _gadre_raw() -> pd.DataFrame:
    import json

    rows = []
    for path in sorted((DATA / "gadre_overtraining" / "models").glob("*.json")):
        m = json.loads(path.read_text())
        c4 = [r["loss"] for r in m["results"] if "c4_val" in r["val_data"][0]]
        ptb = [r["loss"] for r in m["results"] if "paloma_ptb" in r["val_data"][0]]
        rows.append({"run": m["name"], "corpus": m["dataset_name"],
                     "N": m["hyperparameters"]["params"],
                     "N_ne": m["hyperparameters"]["params_no_embed"],
                     "D": m["hyperparameters"]["tokens"], "c4": c4[0], "ptb": ptb[0]})
    return pd.DataFrame(rows).set_index("run")


@needs_data
@pytest.mark.parametrize("group, corpus, count", [
    ("C4", "c4_original", 34), ("RedPajama", "rpj", 35), ("RefinedWeb", "rw_original", 35)])
def test_gadre2024_groups(group, corpus, count):
    from bayescale import load_runs

    raw = _gadre_raw()
    runs = load_runs("gadre2024", group=group)
    assert len(runs) == count == DATASETS["gadre2024"].groups[group]  # PROVENANCE.md: 34/35/35
    assert set(runs.group) == {group}
    want = raw.loc[runs.run]
    assert (want["corpus"] == corpus).all()
    np.testing.assert_array_equal(runs.N, want["N"])
    np.testing.assert_array_equal(runs.D, want["D"])
    np.testing.assert_array_equal(runs.loss, want["c4"])  # C4-val loss by default
    other = load_runs("gadre2024", group=group.lower(), loss="loss_paloma_ptb",
                      N="N_non_embedding")
    want = raw.loc[other.run]
    np.testing.assert_array_equal(other.loss, want["ptb"])
    np.testing.assert_array_equal(other.N, want["N_ne"])
    # PROVENANCE.md: params - params_no_embed = 50432 * d_model; d=96 -> 4,841,472.
    assert 10_569_312 - 5_727_840 == 50432 * 96


@needs_data
def test_a_multi_corpus_dataset_is_not_pooled_silently():
    from bayescale import load_runs

    for name, first in (("gadre2024", "C4"), ("marin_isoflop", "comma")):
        with pytest.raises(DataError) as info:
            load_runs(name)
        message = str(info.value)
        assert "not pooled" in message and f"group={first!r}" in message
        assert f"--select group={first}" in message
        for g in DATASETS[name].groups:
            assert g in message
    with pytest.raises(DataError, match="its groups are"):
        load_runs("gadre2024", group="Pile")


@needs_data
def test_misfitting_best_learning_rate_per_cell():
    from bayescale import load_runs

    raw = pd.read_csv(DATA / "misfitting" / "scaling_results_last_ckpt_only.csv")
    assert len(raw) == 261
    runs = load_runs("misfitting")
    assert len(runs) == 81  # PROVENANCE.md: 81 distinct (N, D) cells
    best = raw.groupby(["N", "D"])["loss"].min()
    got = pd.Series(runs.loss, index=pd.MultiIndex.from_arrays([runs.N, runs.D]))
    pd.testing.assert_series_equal(got.sort_index(), best.sort_index(), check_names=False,
                                  check_index_type=False)
    every = load_runs("misfitting", best_per_cell=False)
    assert len(every) == len(raw.drop_duplicates(["N", "D", "loss"])) == 240
    assert every.run is not None and len(set(every.run)) > 81
    # the C column counts 6 x total N x D: with the non-embedding N it is 2-5x 6ND, which
    # the plausibility check rightly flags; the user who chooses this N silences it
    ne = load_runs("misfitting", N="N_non_embedding", check_plausible={"C": False})
    np.testing.assert_array_equal(ne.N, raw.loc[ne.row, "N_no_emb"])


@needs_data
def test_misfitting_checkpoints_keep_run_ids():
    from bayescale import load_runs

    raw = pd.read_csv(DATA / "misfitting" / "scaling_results.csv")
    runs = load_runs("misfitting_checkpoints")
    assert len(raw) == 4852 and len(runs) == DATASETS["misfitting_checkpoints"].num_runs
    np.testing.assert_array_equal(runs.loss, raw.loc[runs.row, "loss"])
    np.testing.assert_array_equal(runs.D, raw.loc[runs.row, "current_steps"] * 1_048_576)
    first = raw.loc[runs.row[0]]
    assert runs.run[0] == (f"{first['sweep']}/{first['model']}/lr={first['peak_lr']}"
                           f"/steps={first['total_steps']}")
    assert 200 < len(set(runs.run)) < len(runs)  # many checkpoints per run


@needs_data
@pytest.mark.parametrize("group, rows, optimal", [
    ("comma", 92, 7), ("dclm", 85, 0), ("nemotron", 96, 8)])
def test_marin_isoflop_groups(group, rows, optimal):
    from bayescale import load_runs

    raw = pd.read_csv(DATA / "marin_isoflop" / f"isoflop-{group}.csv")
    assert len(raw) == rows and raw["Name"].str.contains("validation-optimal").sum() == optimal
    kept = raw[~raw["Name"].str.contains("validation-optimal")].set_index("Name")
    runs = load_runs("marin_isoflop", group=group)
    assert len(runs) == rows - optimal == DATASETS["marin_isoflop"].groups[group]
    want = kept.loc[runs.run]
    np.testing.assert_array_equal(runs.N, want["parameter_count"])
    np.testing.assert_array_equal(runs.D, want["throughput/total_tokens"])
    np.testing.assert_array_equal(runs.loss, want["eval/paloma/macro_loss"])
    # PROVENANCE.md: logged FLOPs = 3 x the budget in the name (to the logged rounding,
    # within 1e-4), so the name is about 2ND.
    from bayescale.data.loaders import read_table

    frame, _ = read_table("marin_isoflop")
    frame = frame[frame["group"] == group]
    np.testing.assert_allclose(frame["C_logged"] / frame["C_name"], 3.0, rtol=1e-4)
    assert 0.8 < np.median(frame["C_logged"] / (6 * frame["N"] * frame["D"])) < 1.2


@needs_data
def test_steplaw_best_cell_and_full_grid():
    from bayescale import load_runs

    raw = pd.read_csv(DATA / "steplaw" / "dense_lr_bs_loss.csv")
    runs = load_runs("steplaw")
    assert len(runs) == 17 and len(raw) == 1911  # PROVENANCE.md: 17 (N, D) cells
    best = raw.groupby(["N", "D"])["smooth loss"].min()
    got = pd.Series(runs.loss, index=pd.MultiIndex.from_arrays([runs.N, runs.D]))
    pd.testing.assert_series_equal(got.sort_index(), best.sort_index(), check_names=False,
                                  check_index_type=False)
    # N is non-embedding: numl (4 h^2 + 3 h ffnh) (PROVENANCE.md).
    rows = raw.loc[runs.row]
    np.testing.assert_array_equal(
        runs.N, rows["numl"] * (4 * rows["h"] ** 2 + 3 * rows["h"] * rows["ffnh"]))
    assert DATASETS["steplaw"].n_convention == "non_embedding"
    grid = load_runs("steplaw", best_per_cell=False)
    assert len(grid) == 1911 and set(grid.run) == set(raw["exp_name"])


@needs_data
@pytest.mark.parametrize("name, split, rows, kept", [
    ("data_constrained", "train", 161, 161), ("data_constrained", "test", 21, 21),
    ("farseer", "train", 404, 400), ("farseer", "test", 7, 7)])
def test_active_sl_splits(name, split, rows, kept):
    from bayescale import load_runs

    raw = pd.read_csv(DATA / "active_sl" / f"{name}_{split}.csv")
    assert len(raw) == rows
    runs = load_runs(name, split=split) if split == "test" else load_runs(name)
    assert len(runs) == kept == DATASETS[name].splits[split]
    assert kept == len(raw.drop_duplicates())  # farseer train repeats 4 rows exactly
    n, d = ("params", "tokens") if name == "data_constrained" else ("N", "D")
    np.testing.assert_array_equal(runs.N, raw.loc[runs.row, n])
    np.testing.assert_array_equal(runs.D, raw.loc[runs.row, d])
    np.testing.assert_array_equal(runs.loss, raw.loc[runs.row, "loss"])
    if name == "data_constrained":
        np.testing.assert_array_equal(runs.U, raw.loc[runs.row, "unique_tokens"])
        assert (runs.D >= runs.U).any() and (runs.D > runs.U).any()
    else:
        assert runs.U is None


def test_options_that_do_not_apply_are_refused():
    from bayescale import load_runs

    with pytest.raises(DataError, match="no split 'valid'"):
        load_runs("data_constrained", split="valid")
    with pytest.raises(DataError, match="registered datasets only"):
        load_runs(pd.DataFrame({"N": [1.0]}), split="test")
    with pytest.raises(DataError, match="no options"):
        load_runs("synthetic", split="test")


@needs_data
def test_datasets_command_lists_every_dataset(capsys):
    import json

    from bayescale.cli import main

    assert main(["datasets", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["datasets"]}
    assert set(entries) == set(DATASETS) >= {
        "chinchilla", "synthetic", "gadre2024", "misfitting", "misfitting_checkpoints",
        "marin_isoflop", "steplaw", "data_constrained", "farseer"}
    assert all(e["available"] for e in entries.values())
    assert entries["gadre2024"]["groups"] == {"C4": 34, "RedPajama": 35, "RefinedWeb": 35}
    assert entries["data_constrained"]["splits"] == {"train": 161, "test": 21}
    assert entries["gadre2024"]["licence"].startswith("MIT")
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    for name in DATASETS:
        assert f"\n{name}: " in "\n" + text
    assert "licence: CC-BY-4.0" in text


@needs_data
def test_datasets_command_says_how_to_fetch_a_missing_dataset(capsys, isolated):
    import json

    from bayescale.cli import main

    assert main(["datasets", "--json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)["datasets"]}
    assert not entries["steplaw"]["available"]
    assert entries["steplaw"]["fetch"].endswith(f"'{DATASETS['steplaw'].url}'")
    assert entries["synthetic"]["available"]


@needs_data
@pytest.mark.parametrize("name", ["steplaw", "data_constrained"])
def test_fit_a_registered_dataset_from_the_command_line(name, capsys):
    import json

    from bayescale.cli import main

    assert main(["fit", name, "--method", "huber", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_runs"] == DATASETS[name].num_runs
    assert all(np.isfinite(v) for v in out["params"].values())
