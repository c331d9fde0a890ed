"""The `turnwise` command: one parser; each subpackage registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Sequence

from chat.errors import InputError, TurnwiseError

#: Modules whose `register(subparsers)` adds a top-level command, in `--help` order.
COMMAND_MODULES = (
    "chat.data_cli",      # data inspect | convert
    "augment.cli",        # augment music | mix | inspect
    "rm.cli",             # rm train | eval | score | quantize | serve
    "judge.cli",          # judge pairs | grade | agree | bon
    "generate.cli",       # generate review-instruct | sedi | coevol | mimg | stats
    "chat.serve_cli",     # serve
    "chat.list_cli",      # list backends | formats | ...
    "chat.demo",          # demo
    "pipeline.cli",       # run
)

#: Exit code for bad input or configuration.
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnwise",
        description="Multi-turn reward models: synthesize pairs (MUSIC), train and score RMs, judge, generate data.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def add_group(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """A command with subcommands (`turnwise data inspect`); returns the group's subparsers."""
    group = subparsers.add_parser(name, help=help_text, description=help_text)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra_args = parser.parse_known_args(argv)
    if extra_args and not getattr(args, "takes_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra_args)}")
    args.extra_args = extra_args
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(func(args) or 0)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except TurnwiseError as exc:
        print(f"turnwise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("turnwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
