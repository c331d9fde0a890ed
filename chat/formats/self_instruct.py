"""Self-Instruct seed tasks and user-oriented instructions `{id, instruction, instances: [{input, output}]}`."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.formats.alpaca import instruction_messages
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, optional, require, require_text, row_id

_KNOWN_META = ("name", "motivation_app", "is_classification")


class SelfInstructReader(RecordReader):
    """Self-Instruct tasks (Wang et al. 2023): the instruction with its first instance as one turn
    (user = instruction + input, assistant = output); the instance count goes into meta."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return isinstance(row.get("instruction"), str) and isinstance(row.get("instances"), list)

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        instruction = require_text(row, "instruction")
        instances = require(row, "instances", list)
        task_input, output = "", ""
        if instances:
            first = instances[0]
            if not isinstance(first, dict):
                raise ValidationError("instances[0]", f"expected an object with input and output, got {json_type(first)}")
            task_input = optional(first, "input", str, "", "instances[0]")
            output = optional(first, "output", str, "", "instances[0]")
        meta: dict[str, Any] = {"source": "user_oriented" if "motivation_app" in row else "self_instruct",
                                "instances": len(instances)}
        meta.update({key: row[key] for key in _KNOWN_META if key in row})
        yield Conversation.from_messages(instruction_messages(instruction, task_input, output),
                                         id=row_id(row, "id"), meta=meta)


FORMATS.add("self-instruct", SelfInstructReader(),
            "Self-Instruct seed tasks / user-oriented instructions {id, instruction, instances: [{input, output}]}")
