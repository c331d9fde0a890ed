"""`turnwise rm`: command-line entry points."""

from __future__ import annotations

import argparse

from chat.cli import add_pending_group


def register(subparsers: argparse._SubParsersAction) -> None:
    add_pending_group(subparsers, "rm", "Train, evaluate, score, quantize and serve reward models", issue=3)
