"""Writing a report folder: the figures' PNG bytes, the manifest, the atomic swap.

Shared by the single-fit report (:mod:`.build`) and the groups report
(:mod:`.group_report`). A report folder is built in a hidden temporary sibling and
swapped into place (:func:`commit_report`, by :func:`bayescale.io.atomic_folder`);
``manifest.json`` (:data:`MARKER`), written last (:func:`write_manifest`), marks the
folder as a report and lists the files it wrote, which a re-run replaces
(:func:`owned_files`) while keeping every other file.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayescale._atomic import atomic_folder, dumps_json

__all__ = ["MARKER", "png_bytes", "plain", "owned_files", "write_manifest", "commit_report",
           "tell_written"]

MARKER = "manifest.json"


def png_bytes(fig) -> bytes:
    """A figure as the PNG bytes a report embeds and writes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def plain(o):
    """The ``default=`` of :func:`json.dumps` for a report: numpy scalars and arrays as
    Python numbers and lists, anything else as its ``str``."""
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def owned_files(out: Path) -> set[str]:
    """The files a previous report wrote, from its manifest (none if unreadable): the
    ``owned`` of :func:`bayescale.io.atomic_folder` for a report folder."""
    try:
        files = json.loads((out / MARKER).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {str(f) for f in files if isinstance(f, str)}


def write_manifest(folder: Path, written: dict[str, Path], fields: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` into ``folder``, last: ``fields`` and the sorted list of the
    files in ``written`` (relative paths); adds it to ``written`` as ``"manifest"``."""
    manifest = {**fields,
                "files": sorted(p.relative_to(folder).as_posix() for p in written.values())}
    written["manifest"] = folder / MARKER
    as_plain = json.loads(json.dumps(manifest, default=plain))
    written["manifest"].write_text(dumps_json(as_plain, indent=2) + "\n", encoding="utf-8")
    return written["manifest"]


def commit_report(out: Path, write, *, guard, steps) -> dict[str, Path]:
    """Write a report folder atomically: ``write(tmp)`` fills a temporary sibling (returning
    ``{key: path}``, the manifest last) and :func:`bayescale.io.atomic_folder` swaps it into
    ``out``; then the run counts as committed (a late Ctrl-C no longer undoes it). Returns
    the paths under ``out``."""
    with atomic_folder(out, marker=MARKER, what="report", owned=owned_files,
                       guard=guard) as tmp:
        written = write(tmp)
    steps.check = lambda: None  # committed: a late Ctrl-C no longer undoes it
    steps.done()
    return {k: out / p.relative_to(tmp) for k, p in written.items()}


def tell_written(out: Path, paths: dict, t0: float, quiet: bool) -> None:
    """The line on stderr saying what a report run wrote and how long it took."""
    if not quiet:
        print(f"bayescale report: wrote {out} ({len(paths)} files, "
              f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)
