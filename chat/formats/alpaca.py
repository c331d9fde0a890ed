"""Alpaca instruction rows `{instruction, input, output}` as one-turn conversations (or prompts when output is empty)."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import optional, require_text, row_id, row_meta, scalar_extras

_KNOWN = frozenset({"id", "instruction", "input", "output", "meta"})


def instruction_messages(instruction: str, task_input: str, output: str) -> list[dict[str, str]]:
    """user = instruction (+ blank line + input when there is one); assistant = output unless it is empty."""
    user = f"{instruction}\n\n{task_input}" if task_input.strip() else instruction
    messages = [{"role": "user", "content": user}]
    if output.strip():
        messages.append({"role": "assistant", "content": output})
    return messages


class AlpacaReader(RecordReader):
    """Stanford Alpaca-style instruction data (Taori et al. 2023)."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return isinstance(row.get("instruction"), str) and not {"instances", "output_1", "output_2"} & row.keys()

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        messages = instruction_messages(require_text(row, "instruction"), optional(row, "input", str, ""),
                                        optional(row, "output", str, ""))
        meta = {"source": "alpaca", **scalar_extras(row, _KNOWN), **row_meta(row)}
        yield Conversation.from_messages(messages, id=row_id(row, "id"), meta=meta)


FORMATS.add("alpaca", AlpacaReader(), "Alpaca {instruction, input, output} (no output: a prompt awaiting a reply)")
