"""Writing files and folders safely: atomic writes, atomic folders and Ctrl-C that cannot be lost.

Every file is written to a temporary name in the same folder and renamed into
place (:func:`atomic_write`), so an interrupted run never leaves a half-written file
posing as complete. A folder (a fit folder, a report) is built in a temporary
sibling and swapped into place with renames (:func:`atomic_folder`), keeping the
files the user added; :class:`InterruptGuard` makes sure Ctrl-C is neither lost nor
lands in the middle of the swap. :func:`dumps_json` writes strict JSON.

:mod:`bayescale.io` (fit folders) re-exports these names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from bayescale._util import to_jsonable
from bayescale.errors import DataError

__all__ = ["umask", "atomic_write", "InterruptGuard", "replace_folder", "check_destination",
           "atomic_folder", "dumps_json", "write_text"]


def umask() -> int:
    """The process umask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    The file gets the usual permissions (``0o666`` less the umask), not the private
    ones of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class InterruptGuard:
    """Ctrl-C that cannot be lost: SIGINT sets a flag, then raises ``KeyboardInterrupt``.

    Python delivers ``KeyboardInterrupt`` wherever the main thread happens to be; when
    that is a callback whose exceptions are printed and dropped (JAX's garbage
    collection hook: ``Exception ignored in ... KeyboardInterrupt``), the run would go
    on. The flag survives: :meth:`check`, called between stages and right before a
    folder is swapped into place, raises it again. Inside :meth:`deferred` (the renames
    of a commit) the handler only sets the flag, so a commit is never cut in half.

    Nested uses share the active guard. Outside the main thread (where signal handlers
    cannot be set) the guard does nothing.
    """

    _active: "InterruptGuard | None" = None

    def __init__(self) -> None:
        self.hits = 0
        self._defer = False
        self._depth = 0
        self._previous = None
        self._outer: InterruptGuard | None = None

    def __enter__(self) -> "InterruptGuard":
        import signal
        import threading

        active = InterruptGuard._active
        if active is not None:  # nested: share the outer guard (and its flag)
            self._outer = active
            active._depth += 1
            return active
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            InterruptGuard._active = self
        self._depth = 1
        return self

    def __exit__(self, *exc) -> None:
        import signal

        guard = self._outer or self  # ``with`` calls __exit__ on this object
        guard._depth -= 1
        if guard._depth == 0 and InterruptGuard._active is guard:
            InterruptGuard._active = None
            signal.signal(signal.SIGINT, guard._previous)

    def _handle(self, signum, frame) -> None:
        self.hits += 1
        if not self._defer:
            raise KeyboardInterrupt

    @property
    def interrupted(self) -> bool:
        return self.hits > 0

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the guard began."""
        if self.hits:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block, SIGINT only sets the flag."""
        previous, self._defer = self._defer, True
        try:
            yield
        finally:
            self._defer = previous


def replace_folder(tmp: Path, out: Path, *, before_commit: Callable[[], None] | None = None
                   ) -> None:
    """Replace folder ``out`` by ``tmp``: each step a rename; ``out`` is never half-written.

    ``before_commit`` is called once ``tmp`` is in place and the previous folder is
    still kept aside; if it raises, the previous folder is put back (and ``tmp`` is
    moved back to where it was), so the caller's exception leaves ``out`` as it was.
    """
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)  # move aside (same filesystem: a rename)
    try:
        os.replace(tmp, out)
        try:
            if before_commit is not None:
                before_commit()
        except BaseException:
            os.replace(out, tmp)
            raise
    except BaseException:
        if old is not None:  # put the previous folder back
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:  # the previous folder (if committed) or the empty holder
            shutil.rmtree(old, ignore_errors=True)


def _relative_files(folder: Path) -> tuple[set[str], set[str]]:
    """Files (and folders) under ``folder`` as POSIX paths relative to it."""
    files, dirs = set(), set()
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if p.is_dir() and not p.is_symlink():
            dirs.add(rel)
        else:
            files.add(rel)
    return files, dirs


def _carry_over(src: Path, dst: Path, files: set[str], dirs: set[str]) -> None:
    """Hard-link (or copy) ``files`` and create ``dirs`` of ``src`` inside ``dst``.

    Links keep the user's file alive when the previous folder is deleted, without
    copying its bytes; where links are not supported, the file is copied.
    """
    for rel in sorted(dirs):
        (dst / rel).mkdir(parents=True, exist_ok=True)
    for rel in sorted(files):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = src / rel
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


def check_destination(out: str | os.PathLike, *, marker: str, what: str) -> Path:
    """Refuse an output folder that cannot be written: call before any long work.

    ``out`` may be missing, empty, or a previous folder of the same kind (one holding
    ``marker``). A file, or a non-empty folder without ``marker``, raises
    :class:`~bayescale.errors.DataError` naming the folder and the fix.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{str(out)!r} exists and is not a folder; choose another output folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise DataError(
            f"{str(out)!r} exists, is not empty and is not a bayescale {what} (no {marker}); "
            "refusing to replace it. Choose another output folder or empty it.")
    return out


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, *, marker: str, what: str,
                  owned: Callable[[Path], set[str]] | None = None,
                  guard: InterruptGuard | None = None) -> Iterator[Path]:
    """Build a folder in a temporary sibling and swap it into place at the end.

    ``out`` may be missing, empty, or a previous folder of the same kind (one holding
    ``marker``); anything else is refused rather than deleted. If the block raises,
    ``out`` is left as it was.

    Only what bayescale wrote is replaced: ``owned(out)`` returns the paths (relative,
    POSIX) that the previous run wrote (for a report, its manifest's list); every
    other file and folder under ``out`` (the user's notes, say) is carried into the
    new folder unchanged. If a user's file has the name of a file being written now,
    nothing is replaced and :class:`~bayescale.errors.DataError` lists the files in
    the way. Without ``owned``, only ``marker`` counts as bayescale's.

    ``guard`` (an :class:`InterruptGuard`) is checked right before the swap and the
    swap itself runs deferred, so Ctrl-C leaves ``out`` as it was.
    """
    out = check_destination(out, marker=marker, what=what)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise DataError(f"cannot create the output folder {str(out)!r}: {exc}") from None
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the output is not
        yield tmp
        if guard is not None:
            guard.check()
        check_destination(out, marker=marker, what=what)  # nothing moved in meanwhile
        if out.is_dir():
            ours = (owned(out) if owned is not None else set()) | {marker}
            files, dirs = _relative_files(out)
            new_files, new_dirs = _relative_files(tmp)
            theirs = {f for f in files if f not in ours}
            in_the_way = sorted(f for f in theirs if f in new_files or f in new_dirs)
            in_the_way += sorted(d for d in dirs if d in new_files)
            if in_the_way:
                raise DataError(
                    f"{str(out)!r} holds files that bayescale did not write but would now "
                    f"overwrite: {', '.join(in_the_way)}. Move them away and run again, or "
                    "choose another output folder.")
            _carry_over(out, tmp, theirs, dirs - new_dirs)
        if guard is not None:
            with guard.deferred():
                replace_folder(tmp, out, before_commit=guard.check)
        else:
            replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def dumps_json(payload: dict, **kwargs) -> str:
    """Strict JSON: NaN and infinities become ``null`` (``json.dumps`` would write
    ``NaN``/``Infinity``, which JSON parsers reject)."""
    return json.dumps(to_jsonable(payload), allow_nan=False, **kwargs)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    def _write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return atomic_write(path, _write)
