"""Building blocks for the subcommands each package's `cli.py` registers on the one `turnwise` parser."""

from __future__ import annotations

import argparse


def add_group(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """A command with subcommands (`turnwise data inspect`); returns the group's subparsers."""
    group = subparsers.add_parser(name, help=help_text, description=help_text)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
