"""`turnwise generate`: command-line entry points."""

from __future__ import annotations

import argparse

from chat.cli import add_pending_group


def register(subparsers: argparse._SubParsersAction) -> None:
    add_pending_group(subparsers, "generate", "RM-guided data generation: Review-Instruct, SeDi-Instruct, CoEvol, MIMG", issue=7)
