"""Tests of bayescale.data.runs: loading runs and validating them at the boundary.

Every validation error is a :class:`bayescale.errors.DataError` (a ``ValueError``)
whose message names the column, the offending rows and the fix.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from bayescale import load_runs
from bayescale.data.runs import Runs
from bayescale.errors import BayescaleError, DataError, DatasetNotFoundError

# Three model sizes x two token counts (plus two more), all distinct.
N6 = [1e8, 1e8, 4e8, 4e8, 1.6e9, 1.6e9]
D6 = [2e9, 8e9, 2e9, 3.2e10, 8e9, 3.2e10]
L6 = [3.4, 3.1, 3.1, 2.7, 2.8, 2.5]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"N": N6, "D": D6, "loss": L6})


def _fix_named(message: str) -> None:
    assert "Fix:" in message, message


# ---------------------------------------------------------------- sources


def test_from_dataframe(frame):
    runs = load_runs(frame)
    assert isinstance(runs, Runs) and len(runs) == 6
    assert runs.source == "DataFrame"
    np.testing.assert_array_equal(runs.N, N6)
    np.testing.assert_array_equal(runs.D, D6)
    np.testing.assert_array_equal(runs.loss, L6)
    np.testing.assert_array_equal(runs.row, np.arange(6))
    assert runs.N.dtype == np.float64 and runs.dropped.empty and runs.notes == ()
    np.testing.assert_allclose(runs.C, 6 * np.array(N6) * np.array(D6), rtol=1e-15)
    np.testing.assert_allclose(runs.log_loss, np.log(L6), rtol=1e-15)


def test_from_dataframe_keeps_its_index_as_row_labels(frame):
    runs = load_runs(frame.set_index(pd.Index([10, 11, 12, 13, 14, 15])))
    np.testing.assert_array_equal(runs.row, [10, 11, 12, 13, 14, 15])


def test_from_csv_path(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    for source in (path, str(path)):
        runs = load_runs(source)
        assert len(runs) == 6 and runs.source == str(path)
        np.testing.assert_array_equal(runs.loss, L6)


def test_from_tsv_path(tmp_path, frame):
    path = tmp_path / "runs.tsv"
    frame.to_csv(path, index=False, sep="\t")
    assert len(load_runs(path)) == 6


def test_from_registered_name(chinchilla_245):
    runs = chinchilla_245
    assert len(runs) == 245 and runs.source == "chinchilla"
    # Tokens are not stored in the file: D = C / (6 N), and the note says so.
    assert any("D = C / (6 N)" in note for note in runs.notes)
    raw = pd.read_csv(_chinchilla_path())
    np.testing.assert_allclose(runs.D, raw["Training FLOP"] / (6 * raw["Model Size"]), rtol=1e-15)
    np.testing.assert_allclose(runs.C, raw["Training FLOP"], rtol=1e-14)
    # Ranges stated in PROVENANCE-chinchilla_svg_extracted.md.
    assert 5.7e7 <= runs.N.min() < 5.8e7 and 1.6e10 <= runs.N.max() < 1.7e10
    assert 2.07 < runs.loss.min() < 2.09 and 5.00 < runs.loss.max() < 5.01


def _chinchilla_path():
    from bayescale.data.registry import locate

    return locate("chinchilla", download=False)


# ---------------------------------------------------------------- column names


@pytest.mark.parametrize("n_name", ["N", "params", "Model Size", "model_size", "num_params"])
@pytest.mark.parametrize("d_name", ["D", "tokens", "Training Tokens"])
def test_column_aliases_for_N_and_D(n_name, d_name):
    df = pd.DataFrame({n_name: N6, d_name: D6, "loss": L6})
    runs = load_runs(df)
    np.testing.assert_array_equal(runs.N, N6)
    np.testing.assert_array_equal(runs.D, D6)


@pytest.mark.parametrize("c_name", ["C", "FLOP", "Training FLOP", "FLOPs", "compute"])
def test_compute_only_gives_D_equal_C_over_6N(c_name):
    C = 6 * np.array(N6) * np.array(D6) * 1.01  # not exactly 6ND, to see the derivation
    runs = load_runs(pd.DataFrame({"params": N6, c_name: C, "loss": L6}))
    np.testing.assert_allclose(runs.D, C / (6 * np.array(N6)), rtol=1e-15)
    np.testing.assert_allclose(runs.C, C, rtol=1e-14)
    assert runs.notes == (f"D = C / (6 N) from column {c_name!r}",)


def test_D_wins_over_C_when_both_given():
    df = pd.DataFrame({"N": N6, "D": D6, "C": np.ones(6), "loss": L6})
    runs = load_runs(df, check_plausible={"C": False})  # C = 1 FLOP: see test_plausibility
    np.testing.assert_array_equal(runs.D, D6)
    assert runs.notes == ()


@pytest.mark.parametrize("loss_name", ["loss", "Loss", "final_loss", "eval_loss", "val loss"])
def test_loss_aliases(loss_name):
    runs = load_runs(pd.DataFrame({"N": N6, "D": D6, loss_name: L6}))
    np.testing.assert_array_equal(runs.loss, L6)


def test_explicit_column_names():
    df = pd.DataFrame({"size": N6, "toks": D6, "ppl_nats": L6, "other": np.ones(6)})
    runs = load_runs(df, N="size", D="toks", loss="ppl_nats")
    np.testing.assert_array_equal(runs.N, N6)
    np.testing.assert_array_equal(runs.D, D6)
    np.testing.assert_array_equal(runs.loss, L6)
    C = 6 * np.array(N6) * np.array(D6)
    runs = load_runs(df.drop(columns="toks").assign(budget=C), N="size", C="budget",
                     loss="ppl_nats")
    np.testing.assert_allclose(runs.D, D6, rtol=1e-15)


def test_explicit_name_resolves_an_ambiguity():
    df = pd.DataFrame({"N": N6, "params": np.array(N6) * 2, "D": D6, "loss": L6})
    np.testing.assert_array_equal(load_runs(df, N="params").N, np.array(N6) * 2)
    np.testing.assert_array_equal(load_runs(df, N="N").N, N6)


def test_registered_name_with_explicit_override(chinchilla_245):  # skips without the file
    # Overriding one column of a registered dataset keeps the registry's others.
    runs = load_runs("chinchilla", C="Training FLOP")
    assert len(runs) == 245


# ---------------------------------------------------------------- validation errors


def _raises(match_all, *args, **kwargs) -> str:
    """load_runs(*args, **kwargs) raises a DataError whose message has every fragment."""
    with pytest.raises(DataError) as info:
        load_runs(*args, **kwargs)
    message = str(info.value)
    for fragment in match_all:
        assert fragment in message, (fragment, message)
    return message


def test_errors_are_value_errors():
    assert issubclass(DataError, BayescaleError)
    assert issubclass(DataError, ValueError)
    assert issubclass(DatasetNotFoundError, DataError)
    with pytest.raises(ValueError):
        load_runs(pd.DataFrame({"N": N6, "D": D6}))


@pytest.mark.parametrize(
    "drop, fragments",
    [
        ("loss", ["no loss column", "['N', 'D']", "loss='your column'"]),
        ("N", ["no N column", "['D', 'loss']", "N='your column'"]),
        ("D", ["neither a D (tokens) nor a C (FLOPs) column", "['N', 'loss']",
               "D='your tokens column'"]),
    ],
)
def test_missing_column(frame, drop, fragments):
    _fix_named(_raises(fragments, frame.drop(columns=drop)))


def test_explicit_column_not_present(frame):
    message = _raises(["'tokens_seen'", "given for D", "['N', 'D', 'loss']"], frame,
                      D="tokens_seen")
    _fix_named(message)


def test_non_numeric_values(frame):
    df = frame.astype({"N": object})
    df.loc[1, "N"] = "1.2B"
    df.loc[4, "N"] = "n.a."
    message = _raises(["column 'N'", "non-numeric", "rows 1, 4", "'1.2B'"], df)
    _fix_named(message)


def test_non_numeric_values_in_a_csv(tmp_path, frame):
    df = frame.astype({"loss": object})
    df.loc[2, "loss"] = "diverged"
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    message = _raises(["column 'loss'", "non-numeric", "line 4", "'diverged'"], path)
    _fix_named(message)
    # A file's errors name its lines (header = line 1): line 4 is the one that says so.
    assert path.read_text().splitlines()[4 - 1].endswith(",diverged")


def test_nan(frame):
    df = frame.copy()
    df.loc[3, "loss"] = np.nan
    message = _raises(["column 'loss'", "NaN", "row 3"], df)
    _fix_named(message)
    _follow_the_python_fix(message, df)


def test_nan_in_a_csv(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ","  # empty loss at data row 1
    path.write_text("\n".join(lines) + "\n")
    _fix_named(_raises(["column 'loss'", "line 3"], path))


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_inf(frame, value):
    df = frame.copy()
    df.loc[[0, 5], "D"] = value
    message = _raises(["column 'D'", "infinite", "rows 0, 5"], df)
    _fix_named(message)
    assert "dropna" not in message  # dropna keeps inf
    _follow_the_python_fix(message, df)


def _follow_the_python_fix(message: str, df: pd.DataFrame) -> None:
    """Run the `df = ...` fix the message gives; the result must then load."""
    code = re.search(r"(df = df\[.*\])", message).group(1)
    scope = {"df": df, "np": np, "pd": pd}
    exec(code, scope)  # noqa: S102 - the message's own advice, run as a user would
    assert len(scope["df"]) < len(df)
    if len(scope["df"]) >= 6:
        load_runs(scope["df"], check_plausible=False)


@pytest.mark.parametrize("column", ["N", "D", "loss"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive(frame, column, value):
    df = frame.copy()
    df.loc[2, column] = value
    message = _raises([f"column {column!r}", "must be positive", "row 2", "logarithm"], df)
    _fix_named(message)


def test_non_positive_compute():
    C = 6 * np.array(N6) * np.array(D6)
    C[4] = 0.0
    _fix_named(_raises(["column 'C'", "must be positive", "row 4"],
                       pd.DataFrame({"N": N6, "C": C, "loss": L6})))


def test_many_bad_rows_are_listed_briefly():
    n = 20
    df = pd.DataFrame({"N": np.geomspace(1e8, 1e10, n), "D": np.geomspace(1e9, 1e11, n),
                       "loss": np.full(n, -1.0)})
    message = _raises(["rows 0, 1, 2, 3, 4, 5, 6, 7 and 12 more"], df)
    _fix_named(message)


@pytest.mark.parametrize("key", ["N", "D"])
def test_too_few_distinct_values(key):
    other = "D" if key == "N" else "N"
    df = pd.DataFrame({key: [1e8, 1e8, 1e8, 2e8, 2e8, 2e8],
                       other: np.geomspace(1e8, 1e11, 6), "loss": L6})
    message = _raises([f"only 2 distinct value(s) of {key}", "at least 3", "6 runs"], df)
    _fix_named(message)


def test_too_few_distinct_values_after_filters(frame):
    # The check runs on what is left, so a filter can trigger it.
    _raises(["only 2 distinct value(s) of N", "4 runs", "loosen the filters"], frame,
            query="N < 1e9")


def test_duplicate_rows(frame):
    df = pd.concat([frame, frame.iloc[[1, 3]]], ignore_index=True)
    message = _raises(["rows 6, 7", "duplicate", "first copies at rows 1, 3", "drop_duplicates"],
                      df)
    _fix_named(message)


def test_same_N_and_D_with_different_losses_is_allowed(frame):
    # Repeated runs (seeds) at one (N, D) are legitimate data, not duplicates.
    df = pd.concat([frame, frame.iloc[[1]].assign(loss=3.12)], ignore_index=True)
    assert len(load_runs(df)) == 7


def test_ambiguous_columns(frame):
    df = frame.assign(params=frame["N"])
    message = _raises(["several columns", "could be N", "['N', 'params']", "N='N'"], df)
    _fix_named(message)
    # The command line prints the same advice as a flag, not as Python.
    with pytest.raises(DataError) as info:
        load_runs(df)
    assert "--N-column N" in info.value.cli_message and "N='N'" not in info.value.cli_message
    df = frame.assign(FLOP=1.0, compute=2.0)
    _raises(["could be C", "['FLOP', 'compute']"], df)


def test_empty_frame():
    _raises(["no rows"], pd.DataFrame({"N": [], "D": [], "loss": []}))


def test_missing_file_and_unknown_name(tmp_path):
    _raises(["no such file", "nope.csv", "chinchilla"], tmp_path / "nope.csv")
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'no_such_dataset'.*chinchilla"):
        load_runs("no_such_dataset")


def test_unreadable_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("")
    _raises(["could not read", "as CSV"], path)


def test_unsupported_source_type():
    _raises(["cannot load runs from a list", "DataFrame"], [1, 2, 3])


@pytest.mark.parametrize(
    "mask",
    [np.ones(5, dtype=bool), np.ones(6, dtype=float), np.ones((6, 1), dtype=bool),
     lambda t: t["N"]],  # a callable that returns numbers, not booleans
)
def test_bad_mask(frame, mask):
    message = _raises(["mask must be a boolean array with one entry per row (6)"], frame,
                      mask=mask)
    _fix_named(message)


@pytest.mark.parametrize(
    "query, fragment",
    [("tokens > 1e9", "could not be evaluated"),   # unknown name
     ("N >", "could not be evaluated"),            # syntax error
     ("N + 1", "must give one True/False per row"),  # not a condition
     ("N = 5", "must give one True/False per row")],  # an assignment
)
def test_bad_query(frame, query, fragment):
    message = _raises([f"query {query!r}", fragment], frame, query=query)
    _fix_named(message)


@pytest.mark.parametrize("k", [-1, 2.5, "5", None, True, float("inf")])
def test_bad_exclude_top(frame, k):
    _fix_named(_raises(["exclude_top must be a non-negative integer", repr(k)], frame,
                       exclude_top=k))


def test_errors_are_raised_before_jax_is_needed(frame):
    # Validation is NumPy/pandas only: an error carries no JAX frames.
    df = frame.copy()
    df.loc[0, "loss"] = np.nan
    with pytest.raises(DataError) as info:
        load_runs(df)
    assert not any("jax" in str(entry.path) for entry in info.traceback)


# ---------------------------------------------------------------- filters


def test_exclude_top_5_on_chinchilla(chinchilla_240, chinchilla_245):
    runs = chinchilla_240
    assert len(runs) == 240
    dropped = runs.dropped
    assert len(dropped) == 5
    assert list(dropped.columns) == ["N", "D", "C", "loss", "dropped_by"]
    assert set(dropped["dropped_by"]) == {"exclude_top=5"}
    # PROVENANCE: losses 3.45-5.01, all at about 1e19 FLOPs, N = 2.0-6.8B, D < 1B tokens.
    assert dropped["loss"].min() == pytest.approx(3.45, abs=0.005)
    assert dropped["loss"].max() == pytest.approx(5.01, abs=0.005)
    assert np.all((dropped["C"] > 9e18) & (dropped["C"] < 1.1e19))
    assert np.all((dropped["N"] > 2.0e9) & (dropped["N"] < 6.9e9))
    assert np.all(dropped["D"] < 1e9)
    # They are exactly the five highest losses, and none of them is kept.
    top5 = np.sort(chinchilla_245.loss)[-5:]
    np.testing.assert_array_equal(np.sort(dropped["loss"].to_numpy()), top5)
    assert runs.loss.max() < top5.min()
    assert not set(runs.row) & set(dropped.index)
    assert sorted(set(runs.row) | set(dropped.index)) == list(range(245))
    # Epoch's own filter: losses[i] < sorted_losses[-5].
    epoch_keep = chinchilla_245.loss < np.sort(chinchilla_245.loss)[-5]
    np.testing.assert_array_equal(runs.loss, chinchilla_245.loss[epoch_keep])


def _seven(frame):
    # A 7th run, so that 6 (more than the law's 5 parameters) remain after dropping one.
    extra = pd.DataFrame({"N": [6.4e9], "D": [3.2e10], "loss": [2.4]})
    return pd.concat([frame, extra], ignore_index=True)


def test_exclude_top_on_a_frame(frame):
    runs = load_runs(_seven(frame), exclude_top=1)
    assert list(runs.dropped.index) == [0]  # loss 3.4 is the highest
    assert runs.dropped["dropped_by"].tolist() == ["exclude_top=1"]
    assert len(load_runs(frame, exclude_top=0)) == 6
    with pytest.raises(DataError, match="at least 6 runs"):
        load_runs(frame, exclude_top=1)


def test_mask_records_its_reason():
    n = 9
    df = pd.DataFrame({"N": np.repeat([1e8, 4e8, 1.6e9], 3),
                       "D": np.tile([2e9, 8e9, 3.2e10], 3),
                       "loss": np.linspace(3.5, 2.3, n)})
    mask = np.ones(n, dtype=bool)
    mask[[2, 6]] = False
    runs = load_runs(df, mask=mask)
    assert len(runs) == 7
    assert list(runs.dropped.index) == [2, 6]
    assert runs.dropped["dropped_by"].tolist() == ["mask", "mask"]
    # A callable gets the tidy columns N, D, C, loss.
    runs = load_runs(df, mask=lambda t: t["C"] < 6 * 1.6e9 * 3.2e10)
    assert list(runs.dropped.index) == [8]
    # A boolean Series works too.
    assert len(load_runs(df, mask=df["loss"] < 3.4)) == 8


def test_query_records_its_reason_and_filters_combine():
    n = 12
    df = pd.DataFrame({"N": np.repeat([1e8, 4e8, 1.6e9, 6.4e9], 3),
                       "D": np.tile([2e9, 8e9, 3.2e10], 4),
                       "loss": np.linspace(3.5, 2.2, n)})
    runs = load_runs(df, query="N < 5e9")
    assert len(runs) == 9 and set(runs.dropped["dropped_by"]) == {"query"}
    assert list(runs.dropped.index) == [9, 10, 11]

    mask = np.ones(n, dtype=bool)
    mask[0] = False
    runs = load_runs(df, mask=mask, query="N < 5e9", exclude_top=1)
    reasons = runs.dropped["dropped_by"].to_dict()
    # mask first, then query, then exclude_top among the rows still kept.
    assert reasons == {0: "mask", 1: "exclude_top=1", 9: "query", 10: "query", 11: "query"}
    assert len(runs) == 7
    desc = runs.describe()
    assert desc["dropped_rows"] == [0, 1, 9, 10, 11]
    assert desc["dropped_by"] == ["exclude_top=1", "mask", "query"]


# ---------------------------------------------------------------- Runs


def test_describe_is_json_serialisable(chinchilla_240):
    desc = chinchilla_240.describe()
    again = json.loads(json.dumps(desc))
    assert again == desc
    assert desc["source"] == "chinchilla" and desc["n_runs"] == 240
    assert desc["dropped_rows"] == [0, 1, 2, 3, 4]
    assert desc["dropped_by"] == ["exclude_top=5"]
    assert desc["notes"] == ["D = C / (6 N) from column 'Training FLOP'"]
    for key in ("N_range", "D_range", "C_range", "loss_range"):
        lo, hi = desc[key]
        assert isinstance(lo, float) and 0 < lo < hi
    assert desc["loss_range"][1] < 3.45


def test_describe_without_filters(frame):
    desc = load_runs(frame).describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["dropped_rows"] == [] and desc["dropped_by"] == [] and desc["notes"] == []
    assert desc["N_range"] == [1e8, 1.6e9]


def test_to_frame(frame):
    runs = load_runs(_seven(frame).set_index(pd.Index(range(100, 107))), exclude_top=1)
    out = runs.to_frame()
    assert list(out.columns) == ["N", "D", "C", "loss"]
    assert out.index.name == "row" and list(out.index) == [101, 102, 103, 104, 105, 106]
    np.testing.assert_array_equal(out["N"], list(N6[1:]) + [6.4e9])
    np.testing.assert_allclose(out["C"], 6 * out["N"] * out["D"], rtol=1e-15)
    # The frame loads back to the same runs.
    back = load_runs(out)
    np.testing.assert_array_equal(back.D, runs.D)
    np.testing.assert_array_equal(back.row, runs.row)


def test_resample(frame):
    runs = load_runs(frame)
    sub = runs.resample(np.array([5, 5, 0]))
    np.testing.assert_array_equal(sub.N, [1.6e9, 1.6e9, 1e8])
    np.testing.assert_array_equal(sub.row, [5, 5, 0])
    assert sub.source == runs.source


def test_csv_errors_name_the_file_line(tmp_path, frame):
    # Runs.row for a CSV is the 0-based data row, but messages name the line of the file
    # (data row 4 is line 6), as an editor shows it.
    path = tmp_path / "runs.csv"
    df = frame.copy()
    df.loc[4, "loss"] = -2.5
    df.to_csv(path, index=False)
    message = _raises(["line 6"], path)
    assert "row 4" not in message
    line = path.read_text().splitlines()[6 - 1]
    assert re.search(r",-2\.5$", line)
    assert list(load_runs(frame.to_csv(path, index=False) or path).row) == list(range(6))


# ---------------------------------------------------------------- plausibility (unit mistakes)

from bayescale.errors import DataWarning  # noqa: E402


def _warns(match_all, *args, **kwargs):
    """load_runs warns with one DataWarning whose message has every fragment; returns it."""
    with pytest.warns(DataWarning) as record:
        runs = load_runs(*args, **kwargs)
    messages = [str(w.message) for w in record if issubclass(w.category, DataWarning)]
    hits = [m for m in messages if all(f in m for f in match_all)]
    assert hits, (match_all, messages)
    return runs, hits[0], record


def test_tokens_in_billions_warn(frame):
    # The case: D = 20 meaning 20B tokens. D < 1e6 and D/N ~ 1e-8 both fire.
    df = frame.assign(D=np.array(D6) / 1e9)
    _, message, _ = _warns(["column 'D'", "below 1e+06", "rows 0, 1, 2, 3, 4, 5", "billions",
                            "check_plausible=False"], df)
    _fix_named(message)
    _warns(["tokens per parameter", "same units"], df)


def test_params_in_billions_warn(frame):
    df = frame.assign(N=np.array(N6) / 1e9)
    _warns(["column 'N'", "below 1e+05", "billions"], df)


def test_perplexity_and_tiny_losses_warn(frame):
    _, message, _ = _warns(["column 'loss'", "perplexities", "np.log"], frame.assign(loss=np.exp(L6) * 1.5))
    df = frame.copy()
    df.loc[[1, 4], "loss"] = 0.01
    _warns(["column 'loss'", "below 0.05", "rows 1, 4"], df)


def test_compute_that_is_not_6ND_warns_and_can_be_turned_off_alone(frame):
    df = frame.assign(C=2 * np.array(N6) * np.array(D6))  # 2ND (as Marin's column), a factor 3
    _, message, _ = _warns(["column 'C'", "6 N D", "factor of 2", "{'C': False}"], df)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(df, check_plausible={"C": False})
        load_runs(frame.assign(C=6 * np.array(N6) * np.array(D6) * 1.5))  # within a factor 2


def test_plausibility_warnings_can_be_silenced(frame):
    import warnings

    df = frame.assign(D=np.array(D6) / 1e9, loss=np.exp(L6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = load_runs(df, check_plausible=False)
    assert len(runs) == 6
    with pytest.raises(DataError, match="unknown plausibility checks"):
        load_runs(frame, check_plausible={"tokens": False})


def test_plausibility_names_file_lines_and_the_cli_flag(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.assign(loss=2 * np.exp(L6)).to_csv(path, index=False)  # perplexities, all > 24
    _, _, record = _warns(["perplexities", "lines 2, 3, 4, 5, 6, 7"], path)
    cli = [w.message.cli_message for w in record if issubclass(w.category, DataWarning)]
    assert any("--no-plausibility-checks" in m and "check_plausible" not in m for m in cli)


def test_registered_and_synthetic_data_are_plausible(chinchilla_245):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs("synthetic")
        load_runs("chinchilla")


# ---------------------------------------------------------------- messages that lead to the fix


def test_semicolon_separated_file_is_read(tmp_path, frame):
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False, sep=";")
    runs = load_runs(path)
    np.testing.assert_array_equal(runs.N, N6)
    # An explicit separator wins; a wrong one is named in the error, with the flag.
    with pytest.raises(DataError) as info:
        load_runs(path, sep=",")
    assert "separator" in str(info.value) and "sep=';'" in str(info.value)
    assert "--sep ';'" in info.value.cli_message


def test_semicolon_on_stdin(monkeypatch, frame):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(frame.to_csv(index=False, sep=";")))
    assert len(load_runs("-")) == 6


def test_a_folder_is_not_called_missing(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    message = _raises(["is a folder", "not a CSV file"], folder)
    assert "no such file" not in message


def test_duplicate_rows_can_be_dropped(frame):
    df = pd.concat([frame, frame.iloc[[1, 3]]], ignore_index=True)
    with pytest.raises(DataError) as info:
        load_runs(df)
    assert "drop_duplicates=True" in str(info.value)
    assert "--drop-duplicates" in info.value.cli_message
    runs = load_runs(df, drop_duplicates=True)
    assert len(runs) == 6 and list(runs.row) == [0, 1, 2, 3, 4, 5]
    assert any("dropped 2 duplicate rows" in n for n in runs.notes)


def test_the_misfitting_checkpoint_file_has_24_duplicates():
    import os
    from pathlib import Path

    path = Path(os.environ.get("BAYESCALE_DATA", "/nonexistent").split(os.pathsep)[0],
                "misfitting", "scaling_results.csv")
    if not path.is_file():
        pytest.skip("misfitting/scaling_results.csv not available")
    # The file has two token columns (D and train_tokens); the first is D.
    message = _raises(["24 lines", "duplicate", "drop_duplicates=True"], path, D="D")
    assert "line" in message
    # every checkpoint of each run, without a run column: the checkpoint warning says so
    with pytest.warns(DataWarning, match="checkpoints of the same training runs"):
        runs = load_runs(path, D="D", drop_duplicates=True)
    assert len(runs) == len(path.read_text().splitlines()) - 1 - 24
    assert any("dropped 24 duplicate rows" in n for n in runs.notes)


@pytest.mark.parametrize("orient", ["records_lines", "records", "columns_list"])
def test_json_on_stdin_gives_the_runs_the_csv_gives(monkeypatch, frame, orient):
    import io
    import json

    if orient == "records_lines":
        text = "\n".join(json.dumps(r) for r in frame.to_dict(orient="records"))
    elif orient == "records":
        text = json.dumps(frame.to_dict(orient="records"))
    else:
        text = json.dumps(frame.to_dict(orient="list"))
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    from_json = load_runs("-")
    monkeypatch.setattr("sys.stdin", io.StringIO(frame.to_csv(index=False)))
    from_csv = load_runs("-")
    np.testing.assert_array_equal(from_json.N, from_csv.N)
    np.testing.assert_array_equal(from_json.loss, from_csv.loss)
    assert from_json.source == "stdin"


def test_broken_json_on_stdin_is_a_clear_error(monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO('{"N": 1e9, "D": '))
    with pytest.raises(DataError, match="standard input as JSON"):
        load_runs("-")
