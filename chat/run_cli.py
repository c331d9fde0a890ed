"""`turnwise run`: the end-to-end pipeline (augment -> mix -> rm train -> eval/judge -> generate -> report)."""

from __future__ import annotations

import argparse

from chat.cli import add_pending_group


def register(subparsers: argparse._SubParsersAction) -> None:
    add_pending_group(subparsers, "run", "Run a pipeline config end to end, resumable stage by stage", issue=8)
