"""Exports of generator output: ShareGPT conversations and Alpaca instruction rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from chat.formats import load_conversations, write_jsonl

_SHAREGPT_SPEAKER = {"system": "system", "user": "human", "assistant": "gpt"}


def sharegpt_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """`{id, conversations: [{from, value}]}` rows of a conversation file (meta dropped)."""
    for conversation in load_conversations(path):
        yield {"id": conversation.id, "conversations": [{"from": _SHAREGPT_SPEAKER[m.role], "value": m.content}
                                                        for m in conversation.messages]}


def alpaca_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """`{id, instruction, input, output}` rows of single-turn conversations (the first user/assistant pair)."""
    for conversation in load_conversations(path):
        messages = [m for m in conversation.messages if m.role != "system"]
        if len(messages) < 2:
            continue
        yield {"id": conversation.id, "instruction": messages[0].content, "input": "", "output": messages[1].content}


def export_file(path: str | Path, target: str | Path, format: str) -> int:
    """Write `path`'s conversations to `target` as `sharegpt` or `alpaca` JSONL; returns the row count."""
    rows = sharegpt_rows(path) if format == "sharegpt" else alpaca_rows(path)
    return write_jsonl(rows, target)
