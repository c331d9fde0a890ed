"""`turnwise list backends|formats|...|models`: print a registry's names and descriptions."""

from __future__ import annotations

import argparse
import importlib

from chat.registry import REGISTRIES

#: What fills each registry: modules that fill it when imported, or `module:function` called once imported.
REGISTRY_MODULES = {
    "backends": ("chat.backends",),
    "formats": ("chat.formats",),
    "judges": ("judge.llm", "judge.rm_judge"),
    "generators": ("generate.registry:load_generators",),
    "models": ("chat.embedded",),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="List registered backends, formats, judges, generators or models")
    parser.add_argument("what", choices=sorted(REGISTRY_MODULES), help="which registry to print")
    parser.set_defaults(func=list_registry)


def list_registry(args: argparse.Namespace) -> int:
    for loader in REGISTRY_MODULES[args.what]:
        module_name, _, function = loader.partition(":")
        module = importlib.import_module(module_name)
        if function:
            getattr(module, function)()
    if args.what == "models":
        return list_models()
    entries = list(REGISTRIES[args.what].describe())
    width = max(len(name) for name, _ in entries)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")
    return 0


def list_models() -> int:
    """Name, kind, size, installed / converted state and what each pip-shipped model is good for."""
    from chat.embedded import DEFAULT_INSTRUCT, EMBEDDED, model_states

    states = model_states()
    rows = [("name", "kind", "size", "installed", "converted", "good for")]
    for state in states:
        converted = "-" if state.converted is None else "yes" if state.converted else "no"
        rows.append((state.spec.name, state.spec.kind, f"{state.spec.wheels.size_bytes / 1e6:.0f} MB",
                     "yes" if state.installed else "no", converted, state.spec.good_for))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        print("  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  " + row[5])
    print(f"{EMBEDDED} = {DEFAULT_INSTRUCT}: the instruct model that fits the job on CPU")
    for state in states:
        if not state.installed and state.spec.wheels.extra:
            print(f"{state.spec.name}: pip install 'turnwise[{state.spec.wheels.extra}]'")
    return 0
