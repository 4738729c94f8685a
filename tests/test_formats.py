"""File formats by extension and the parameter-counting convention (issue 9).

Oracles: every format must give exactly the Runs the CSV gives (same doubles, same rows);
the N of a dataset in a convention must equal the column its source publishes for it
(misfitting's ``N`` / ``N_no_emb``, gadre2024's ``params`` / ``params_no_embed``), read here
straight from the published files.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import load_runs
from bayescale.cli import main
from bayescale.data import formats, registry
from bayescale.errors import BayescaleError, DataError

DATA = Path(os.environ["BAYESCALE_DATA"].split(os.pathsep)[0])
needs_data = pytest.mark.skipif(
    not (DATA / "misfitting").is_dir() and not os.environ.get("CI"),
    reason="../shared/data not found; set BAYESCALE_DATA")
MISFITTING = DATA / "misfitting" / "scaling_results_last_ckpt_only.csv"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Runs on a 4 x 3 grid with full-precision losses and names a CSV reader would keep
    but a wrong reader would mangle (spaces, parentheses)."""
    rng = np.random.default_rng(7)
    N = np.repeat([1.1e8, 3.3e8, 1.0e9, 2.9e9], 3)
    D = np.tile([2.0e9, 8.0e9, 3.2e10], 4)
    loss = 1.7 + 400 * N ** -0.34 + 410 * D ** -0.28 + rng.normal(0, 0.01, N.size)
    return pd.DataFrame({"Model Size": N, "Training Tokens": D, "loss": loss,
                         "corpus (name)": ["c4"] * N.size})


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.N, b.N)
    np.testing.assert_array_equal(a.D, b.D)
    np.testing.assert_array_equal(a.loss, b.loss)  # bit for bit: precise float parsing
    np.testing.assert_array_equal(a.row, b.row)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    name = path.name.lower()
    records = frame.to_dict(orient="records")  # the stdlib writes floats that round-trip
    if ".jsonl" in name or ".ndjson" in name:
        text = "".join(json.dumps(r) + "\n" for r in records)
    elif ".json" in name:
        text = json.dumps(records)
    if ".json" in name or ".ndjson" in name:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    elif ".tsv" in name:
        frame.to_csv(path, sep="\t", index=False, float_format="%.17g")
    elif name.endswith(".dat"):
        frame.to_csv(path, sep=";", index=False, float_format="%.17g")
    else:
        frame.to_csv(path, index=False, float_format="%.17g")
    return path


@pytest.mark.parametrize("name", ["runs.tsv", "runs.jsonl", "runs.ndjson", "runs.json",
                                  "runs.csv.gz", "runs.jsonl.gz", "runs.tsv.gz", "runs.csv.bz2",
                                  "runs.dat", "runs.JSONL"])
def test_every_format_gives_the_runs_the_csv_gives(frame, tmp_path, name):
    expected = load_runs(_write(frame, tmp_path / "runs.csv"))
    got = load_runs(_write(frame, tmp_path / name))
    _same(got, expected)
    assert got.source == str(tmp_path / name)
    # the columns arrive as written, not mangled
    table = formats.read_file(tmp_path / name)
    assert list(table.columns) == list(frame.columns)


def test_formats_by_extension():
    assert formats.file_format("a.jsonl.gz") == "jsonl"
    assert formats.file_format("a.NDJSON") == "jsonl"
    assert formats.file_format("a.tsv.xz") == "tsv"
    assert formats.file_format("a.parquet") == "parquet"
    assert formats.file_format("runs.v2.dat") == "csv"
    assert formats.file_format("runs") == "csv"


def test_json_lines_error_names_the_columns_as_written(frame, tmp_path):
    path = tmp_path / "runs.jsonl"
    frame.rename(columns={"loss": "val loss (nats)"}).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError) as err:
        load_runs(path)
    assert "'val loss (nats)'" in str(err.value)
    assert "'corpus (name)'" in str(err.value)


def test_json_lines_in_a_json_file_are_read(frame, tmp_path):
    path = tmp_path / "runs.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")))
    _same(load_runs(path), load_runs(_write(frame, tmp_path / "runs.csv")))


def test_integers_beyond_64_bits_are_read_exactly(tmp_path):
    # FLOP counts written as JSON integers: 3.6e19 does not fit in 64 bits, and pandas'
    # own JSON reader wraps it around to 1.76e19 without a word.
    N = [10**8, 10**8, 10**8, 4 * 10**8, 4 * 10**8, 4 * 10**8, 16 * 10**8, 16 * 10**8,
         16 * 10**8]
    D = [2 * 10**9, 8 * 10**9, 32 * 10**9] * 3
    records = [{"N": n, "C": 6 * n * d * 10, "loss": 2.0 + 1e-3 * i}
               for i, (n, d) in enumerate(zip(N, D))]
    assert max(r["C"] for r in records) > 2**64
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    runs = load_runs(path, check_plausible=False)
    np.testing.assert_allclose(runs.D, np.array(D, float) * 10, rtol=1e-15)
    (tmp_path / "runs.csv").write_text(pd.DataFrame(records).to_csv(index=False))
    _same(runs, load_runs(tmp_path / "runs.csv", check_plausible=False))


def test_json_columns_object_and_zip(frame, tmp_path):
    expected = load_runs(_write(frame, tmp_path / "runs.csv"))
    path = tmp_path / "columns.json"  # pandas' default orient: {column: {row: value}}
    path.write_text(json.dumps({c: {str(i): v for i, v in enumerate(frame[c])}
                                for c in frame.columns}))
    _same(load_runs(path), expected)
    with zipfile.ZipFile(tmp_path / "runs.jsonl.zip", "w") as archive:
        archive.write(_write(frame, tmp_path / "inner.jsonl"), "inner.jsonl")
    _same(load_runs(tmp_path / "runs.jsonl.zip"), expected)
    path = tmp_path / "scalar.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match="not a list of objects"):
        load_runs(path)


def test_broken_json_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"N": 1e8, "D": 2e9, "loss": 3.1}\n{"N": 1e8, "D":\n')
    with pytest.raises(DataError, match="could not read .* as JSON lines"):
        load_runs(path)


def test_sep_is_refused_for_json(frame, tmp_path):
    path = _write(frame, tmp_path / "runs.jsonl")
    with pytest.raises(DataError, match="no delimiter") as err:
        load_runs(path, sep=";")
    assert "--sep" in err.value.cli_message


def test_missing_file_with_a_known_extension(tmp_path):
    with pytest.raises(DataError, match="no such file.*JSON lines"):
        load_runs(str(tmp_path / "nope.jsonl.gz"))


def test_parquet_without_pyarrow_names_the_extra(frame, tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow'")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    path = tmp_path / "runs.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DataError) as err:
        load_runs(path)
    assert 'pip install "bayescale[parquet]"' in str(err.value)
    assert "pyarrow" in str(err.value)


def test_parquet_round_trips(frame, tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "runs.parquet"
    frame.to_parquet(path)
    _same(load_runs(path), load_runs(_write(frame, tmp_path / "runs.csv")))


# ------------------------------------------------------------------ n_convention


def _best_cells(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.loc[raw.groupby(["N", "D"], sort=False)["loss"].idxmin()]


@needs_data
@pytest.mark.parametrize("convention,column", [("total", "N"), ("non_embedding", "N_no_emb")])
def test_misfitting_conventions_are_the_published_columns(convention, column):
    raw = pd.read_csv(MISFITTING)
    runs = load_runs("misfitting", n_convention=convention)
    np.testing.assert_array_equal(runs.N, raw.loc[runs.row, column].to_numpy(float))
    assert sorted(runs.row) == sorted(_best_cells(raw).index)
    assert runs.n_convention == convention
    assert runs.describe()["n_convention"] == convention
    assert any(convention in note for note in runs.notes)


@needs_data
def test_gadre_conventions_are_the_published_counts():
    published = {}
    for path in (DATA / "gadre_overtraining" / "models").glob("*.json"):
        model = json.loads(path.read_text())
        published[model["name"]] = model["hyperparameters"]
    for convention, key in (("total", "params"), ("non_embedding", "params_no_embed")):
        runs = load_runs("gadre2024", group="C4", n_convention=convention)
        assert len(runs) == 34
        np.testing.assert_array_equal(runs.N, [float(published[r][key]) for r in runs.run])
        assert runs.describe()["n_convention"] == convention
    total = load_runs("gadre2024", group="C4")
    assert total.n_convention == "total"
    np.testing.assert_array_equal(total.N, [float(published[r]["params"]) for r in total.run])


@needs_data
@pytest.mark.parametrize("name,asked,offered", [
    ("steplaw", "total", "--n-convention non_embedding"),
    ("chinchilla", "non_embedding", "--n-convention total"),
    ("farseer", "total", "leave --n-convention out"),
])
def test_a_convention_the_dataset_lacks_is_refused(name, asked, offered):
    with pytest.raises(DataError, match=f"cannot give N as '{asked}'") as err:
        load_runs(name, n_convention=asked)
    assert offered in err.value.cli_message


def test_unknown_convention_and_the_registry_table():
    with pytest.raises(BayescaleError, match="one of total, non_embedding"):
        load_runs("synthetic", n_convention="embedding")
    assert registry.n_convention_columns("steplaw") == {"non_embedding": "N_non_embedding"}
    assert registry.n_convention_columns("misfitting") == {"total": "N",
                                                           "non_embedding": "N_non_embedding"}
    assert registry.n_convention_columns("farseer") == {}
    assert load_runs("synthetic").describe()["n_convention"] == "total"


def test_user_table_with_both_counts(frame):
    table = frame.assign(**{"N_no_emb": frame["Model Size"] * 0.8,
                            "C": 6 * frame["Model Size"] * frame["Training Tokens"],
                            "C_no_emb": 6 * 0.8 * frame["Model Size"] * frame["Training Tokens"]})
    non = load_runs(table, n_convention="non_embedding")  # C_no_emb with it: no C warning
    np.testing.assert_array_equal(non.N, table["N_no_emb"].to_numpy())
    assert non.n_convention == "non_embedding"
    tot = load_runs(table, n_convention="total")
    np.testing.assert_array_equal(tot.N, table["Model Size"].to_numpy())
    named = load_runs(table, N="N_no_emb", n_convention="non_embedding")
    assert "column 'N_no_emb'" in named.notes[0] and named.n_convention == "non_embedding"
    plain = load_runs(frame)
    assert plain.n_convention is None and plain.describe()["n_convention"] == "not stated"
    stated = load_runs(frame, n_convention="non_embedding")  # one count: a statement only
    np.testing.assert_array_equal(stated.N, frame["Model Size"].to_numpy())
    assert stated.describe()["n_convention"] == "non_embedding"


# ------------------------------------------------------------------ command line


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@needs_data
def test_cli_n_convention_in_the_json(monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    code, stdout, stderr = _run(["fit", "misfitting", "--method", "envelope",
                                 "--n-convention", "non_embedding", "--json"])
    assert code == 0, stderr
    data = json.loads(stdout)["data"]
    assert data["n_convention"] == "non_embedding"
    best = _best_cells(pd.read_csv(MISFITTING))
    assert data["N_range"] == [float(best["N_no_emb"].min()), float(best["N_no_emb"].max())]


@needs_data
def test_cli_refuses_a_convention_the_dataset_lacks(monkeypatch):
    monkeypatch.setenv("BAYESCALE_NO_CACHE", "1")
    code, stdout, stderr = _run(["fit", "steplaw", "--method", "envelope",
                                 "--n-convention", "total", "--json"])
    assert code == 2 and stdout == ""
    assert "--n-convention non_embedding" in stderr and "Traceback" not in stderr


def test_json_errors_name_records_not_csv_lines(tmp_path):
    records = [{"N": 1e8, "D": 2e9, "loss": 3.1}, {"N": 1e8, "D": 8e9, "loss": 2.9},
               {"N": 4e8, "D": 2e9, "loss": None}]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(DataError, match="at row 2") as err:  # the third record, 0-based
        load_runs(path)
    assert "line" not in str(err.value)  # no header line: CSV line numbers would be wrong
    tsv = tmp_path / "runs.tsv"
    pd.DataFrame(records).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(DataError, match="at line 4"):  # header = line 1
        load_runs(tsv)


def test_a_saved_fit_keeps_what_N_counts(tmp_path):
    # load_fit used to drop the convention: a re-loaded fit said "not stated".
    from bayescale import fit
    from bayescale.io import load_fit, save_fit

    runs = load_runs("misfitting", n_convention="non_embedding")
    save_fit(fit(runs, method="huber"), tmp_path / "fit")
    loaded = load_fit(tmp_path / "fit")
    assert loaded.runs.n_convention == "non_embedding"
    assert loaded.runs.describe()["n_convention"] == "non_embedding"
    assert loaded.runs.notes == runs.notes
