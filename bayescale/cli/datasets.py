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
    from bayescale.data.registry import data_dirs

    generated = bool(getattr(ds, "generated", False))
    path = None
    if not generated and ds.filename:
        for folder in data_dirs():
            if (folder / ds.filename).is_file():
                path = str(folder / ds.filename)
                break
    return {"name": ds.name, "num_runs": ds.num_runs, "generated": generated,
            "available": generated or path is not None, "path": path,
            "filename": ds.filename or None, "url": ds.url or None,
            "description": ds.description, "citation": ds.citation,
            "provenance": ds.provenance}


def run(args: argparse.Namespace) -> int:
    from bayescale.data.registry import DATASETS, data_dirs

    entries = [_entry(ds) for ds in DATASETS.values()]
    if args.json:
        print(json.dumps({"datasets": entries,
                          "searched": [str(d) for d in data_dirs()]}, indent=2))
        return 0
    lines = []
    for e in entries:
        where = "generated in the package" if e["generated"] else (
            f"found at {e['path']}" if e["available"] else
            f"NOT available locally: set BAYESCALE_DATA to the folder holding {e['filename']}, "
            f"or it is downloaded from {e['url']} when online")
        lines += [f"{e['name']}: {e['num_runs']} runs; {where}",
                  f"  {e['description']}",
                  f"  provenance: {e['provenance']}",
                  f"  cite: {e['citation']}", ""]
    lines.append("searched: " + os.pathsep.join(str(d) for d in data_dirs()))
    print(os.linesep.join(lines))
    return 0
