"""`turnwise judge`: command-line entry points."""

from __future__ import annotations

import argparse

from chat.cli import add_pending_group


def register(subparsers: argparse._SubParsersAction) -> None:
    add_pending_group(subparsers, "judge", "LLM and RM judges, agreement statistics, multi-turn best-of-N", issue=5)
