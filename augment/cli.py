"""`turnwise augment`: command-line entry points."""

from __future__ import annotations

import argparse

from chat.cli import add_pending_group


def register(subparsers: argparse._SubParsersAction) -> None:
    add_pending_group(subparsers, "augment", "Synthesize multi-turn preference pairs (MUSIC) and mix datasets", issue=4)
