"""``bayescale datasets``: the registered datasets, where they come from, and whether they
are here."""

from __future__ import annotations

import argparse
import json
import os

EXAMPLES = """\
examples:
  bayescale datasets
  bayescale datasets --json
  BAYESCALE_DATA=../shared/data bayescale datasets

A dataset is looked for in $BAYESCALE_DATA (folders separated by ':'), then in the user
cache; 'synthetic' is generated inside bayescale and always available.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` subcommand."""
    p = sub.add_parser(
        "datasets", help="list the registered datasets, their provenance and availability",
        description="List the datasets bayescale knows by name, with their size, provenance "
                    "and citation, and whether each is available without the network.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    p.set_defaults(func=run)


def _entry(ds) -> dict:
    from bayescale.data.registry import download_command, find_local

    generated = bool(getattr(ds, "generated", False))
    found = [find_local(f) for f in ds.files]
    missing = [f for f, p in zip(ds.files, found) if p is None]
    path = None
    if found and not missing:
        path = str(found[0]) if len(found) == 1 else str(found[0].parent)
    return {"name": ds.name, "num_runs": ds.num_runs, "groups": dict(ds.groups),
            "splits": dict(ds.splits), "generated": generated,
            "available": generated or (bool(ds.files) and not missing), "path": path,
            "num_files": len(ds.files), "num_missing": len(missing),
            "filename": ds.filename or None, "url": ds.url or None,
            "fetch": download_command(missing[0]) if missing else None,
            "n_convention": ds.n_convention, "loss": ds.loss_definition,
            "licence": ds.licence, "options": ds.options or None,
            "description": ds.description, "citation": ds.citation,
            "provenance": ds.provenance}


def _counts(e: dict) -> str:
    text = f"{e['num_runs']} runs"
    if e["groups"]:
        text += " in groups " + ", ".join(f"{g} {n}" for g, n in e["groups"].items())
    if e["splits"]:
        text += "; splits " + ", ".join(f"{s} {n}" for s, n in e["splits"].items())
    return text


def run(args: argparse.Namespace) -> int:
    from bayescale.data.registry import DATASETS, data_dirs

    entries = [_entry(ds) for ds in DATASETS.values()]
    if args.json:
        print(json.dumps({"datasets": entries,
                          "searched": [str(d) for d in data_dirs()]}, indent=2))
        return 0
    lines = []
    for e in entries:
        if e["generated"]:
            where = "available (generated in the package)"
        elif e["available"]:
            where = f"available at {e['path']}"
        else:
            where = (f"NOT available locally ({e['num_missing']} of {e['num_files']} files "
                     f"missing): set BAYESCALE_DATA to the folder holding {e['filename']}, "
                     f"or it is downloaded when online; by hand: {e['fetch']}")
        lines += [f"{e['name']}: {_counts(e)}; {where}",
                  f"  {e['description']}",
                  f"  N: {e['n_convention']}; loss: {e['loss']}"]
        if e["options"]:
            lines.append(f"  options: {e['options']}")
        lines += [f"  licence: {e['licence']}",
                  f"  provenance: {e['provenance']}",
                  f"  cite: {e['citation']}", ""]
    lines.append("searched: " + os.pathsep.join(str(d) for d in data_dirs()))
    print(os.linesep.join(lines))
    return 0
