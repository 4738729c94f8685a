"""``bayescale.io``: fit folders that keep the user's files, normal file modes, Ctrl-C safety."""

from __future__ import annotations

import os
import signal
import stat

import pytest
from _report_fits import small_fits

from bayescale import io
from bayescale.errors import DataError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_fit_folder_files_have_normal_modes(tmp_path):
    # posterior.nc was written 0600 (a private temporary file renamed into place).
    out = tmp_path / "fit"
    paths = io.save_fit(small_fits()["bayes"], out)
    assert "posterior" in paths
    expected = 0o666 & ~io.umask()
    assert {p.name: _mode(p) for p in paths.values()} == \
        {p.name: expected for p in paths.values()}


def test_rerun_keeps_user_files_in_fit_folder(tmp_path):
    out = tmp_path / "fit"
    fit = small_fits()["huber"]
    io.save_fit(fit, out)
    (out / "MY_NOTES.md").write_text("mine")
    (out / "extra").mkdir()
    (out / "extra" / "keep.txt").write_text("also mine")
    (out / "empty").mkdir()
    io.save_fit(fit, out)
    assert (out / "MY_NOTES.md").read_text() == "mine"
    assert (out / "extra" / "keep.txt").read_text() == "also mine"
    assert (out / "empty").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


def test_user_file_in_the_way_is_refused_and_kept(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "manifest.json").write_text('{"files": ["a.txt"]}')
    (out / "a.txt").write_text("bayescale's")
    (out / "b.txt").write_text("the user's")
    with pytest.raises(DataError, match="b.txt"):
        with io.atomic_folder(out, marker="manifest.json", what="report",
                              owned=lambda o: {"a.txt"}) as tmp:
            (tmp / "a.txt").write_text("new")
            (tmp / "b.txt").write_text("new")
    assert (out / "b.txt").read_text() == "the user's"
    assert (out / "a.txt").read_text() == "bayescale's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_check_destination_refuses_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a bayescale fit folder"):
        io.check_fit_destination(tmp_path)
    io.check_fit_destination(tmp_path / "new")  # missing: fine


def test_cli_fit_out_refused_before_fitting(tmp_path, monkeypatch, capsys):
    import bayescale.estimators.fit as fit_module
    from bayescale.cli import main

    def no_fit(*args, **kwargs):  # the old code ran the whole fit, then refused
        raise AssertionError("fitted before checking --out")

    monkeypatch.setattr(fit_module, "fit", no_fit)
    (tmp_path / "notes.txt").write_text("mine")
    status = main(["fit", "synthetic", "--method", "huber", "--out", str(tmp_path)])
    assert status == 2
    assert "not a bayescale fit folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_interrupt_guard_survives_a_swallowed_interrupt(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    with io.InterruptGuard() as guard:
        try:  # a callback that drops the exception (as JAX's GC hook did)
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        assert guard.interrupted
        with pytest.raises(KeyboardInterrupt):
            with io.atomic_folder(out, marker="manifest.json", what="report",
                                  guard=guard) as tmp:
                (tmp / "manifest.json").write_text('{"new": 1}')
    assert (out / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_during_commit_puts_previous_folder_back(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    tmp = tmp_path / "new"
    tmp.mkdir()
    (tmp / "manifest.json").write_text("new")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.replace_folder(tmp, out, before_commit=interrupted)
    assert (out / "manifest.json").read_text() == "old"
    assert (tmp / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "rep"]


def test_nested_guards_share_one_flag_and_restore_the_handler():
    with io.InterruptGuard() as outer:  # the command line's
        with io.InterruptGuard() as inner:  # build_report's
            assert inner is outer
        assert signal.getsignal(signal.SIGINT) == outer._handle
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
