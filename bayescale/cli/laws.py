"""``bayescale laws``: the scaling laws bayescale can fit and the published coefficient
sets it can answer from."""

from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  bayescale laws
  bayescale laws --json
  bayescale frontier besiroglu2024 --budget 5.76e23
  bayescale frontier muennighoff2023 --budget 1e22 --unique-tokens 25e9 --json

A published coefficient set is a point estimate: it can be used wherever a fit can
(frontier, decide, and bayescale.published(NAME) in Python).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``laws`` subcommand."""
    p = sub.add_parser(
        "laws", help="list the scaling laws and the published coefficient sets",
        description="List the laws bayescale fits (with their parameters and citation) and "
                    "the published coefficient sets usable as sources.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON object on stdout")
    p.set_defaults(func=run)


def describe() -> dict:
    """``{"laws": [...], "published": [...]}``: what ``bayescale laws`` prints."""
    from bayescale._util import to_jsonable
    from bayescale.laws.published import PUBLISHED
    from bayescale.laws.registry import get_law, law_names

    laws = []
    for name in law_names():
        law = get_law(name)
        laws.append({"name": name, "form": law.description, "parameters": list(law.param_names),
                     "inputs": list(law.inputs), "closed_form_allocation": law.closed_form is not None,
                     "citation": law.citation})
    published = [{"name": p.name, "law": p.law,
                  "params": {k: float(v) for k, v in zip(p.params._fields, p.params)},
                  "citation": p.citation, "note": p.note} for p in PUBLISHED.values()]
    return to_jsonable({"laws": laws, "published": published})


def run(args) -> int:
    info = describe()
    if args.json:
        from bayescale.io import dumps_json

        print(dumps_json(info, indent=2))
        return 0
    print("Laws (fit with --law NAME / law=NAME):")
    for law in info["laws"]:
        print(f"  {law['name']:<17} {law['form']}")
        print(f"  {'':<17} parameters {', '.join(law['parameters'])}; inputs "
              f"{', '.join(law['inputs'])}; {law['citation']}")
    print("\nPublished coefficient sets (usable as a fit: bayescale frontier NAME ...):")
    for p in info["published"]:
        params = ", ".join(f"{k} {v:.6g}" for k, v in p["params"].items())
        print(f"  {p['name']:<23} [{p['law']}] {params}")
        print(f"  {'':<23} {p['citation']}; {p['note']}")
    return 0
