"""`turnwise list backends|formats|...`: print a registry's names and descriptions."""

from __future__ import annotations

import argparse
import importlib

from chat.registry import REGISTRIES

#: Modules that fill each registry when imported.
REGISTRY_MODULES = {
    "backends": ("chat.backends",),
    "formats": ("chat.formats",),
    "judges": ("judge.llm", "judge.rm_judge"),
    "generators": ("generate.review_run", "generate.sedi", "generate.coevol_run", "generate.mimg_run"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="List registered backends, formats, judges or generators")
    parser.add_argument("what", choices=sorted(REGISTRY_MODULES), help="which registry to print")
    parser.set_defaults(func=list_registry)


def list_registry(args: argparse.Namespace) -> int:
    for module_name in REGISTRY_MODULES[args.what]:
        importlib.import_module(module_name)
    entries = list(REGISTRIES[args.what].describe())
    width = max(len(name) for name, _ in entries)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")
    return 0
