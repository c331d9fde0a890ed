"""ShareGPT rows `{conversations: [{from, value}]}` and the `{messages: [{role, content}]}` variant (canonical conversations)."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, Message, ValidationError
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, require, row_id, row_meta, scalar_extras

#: Speaker names used by ShareGPT-style datasets, mapped onto the data model's roles.
ROLE_ALIASES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "bot": "assistant", "chatgpt": "assistant",
    "system": "system",
}
_KNOWN = frozenset({"id", "conversations", "messages", "meta"})


class ShareGPTReader(RecordReader):
    """Conversations from ShareGPT exports (`from`/`value`) or chat-message rows (`role`/`content`)."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        turns = row.get("conversations", row.get("messages"))
        return isinstance(turns, list) and "chosen" not in row

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        key = "conversations" if "conversations" in row else "messages"
        turns = require(row, key, list)
        messages = [_message(turn, f"{key}[{i}]") for i, turn in enumerate(turns)]
        conversation = Conversation(messages, id=row_id(row, "id"),
                                    meta={**scalar_extras(row, _KNOWN), **row_meta(row)})
        conversation.validate(key)
        yield conversation


def _message(turn: Any, where: str) -> Message:
    if not isinstance(turn, dict):
        raise ValidationError(where, f"expected an object with a speaker and text, got {json_type(turn)}")
    role_key = "from" if "from" in turn else "role"
    sharegpt_text = "value" in turn or (role_key == "from" and "content" not in turn)
    content_key = "value" if sharegpt_text else "content"
    role, content = require(turn, role_key, str, where), require(turn, content_key, str, where)
    return Message(ROLE_ALIASES.get(role.strip().lower(), role), content)


FORMATS.add("sharegpt", ShareGPTReader(),
            "ShareGPT {conversations: [{from, value}]} or {messages: [{role, content}]} (canonical conversations)")
