"""MT-Bench-101 dialogues `{task, id, history: [{user, bot}]}` as multi-turn conversations."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, optional, require, require_text, row_id


class MTBench101Reader(RecordReader):
    """MT-Bench-101 (Bai et al. 2024): every history item is one user turn and the bot's reply."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        history = row.get("history")
        return isinstance(history, list) and bool(history) and isinstance(history[0], dict) and "user" in history[0]

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        history = require(row, "history", list)
        if not history:
            raise ValidationError("history", "no turns")
        messages = []
        for i, item in enumerate(history):
            where = f"history[{i}]"
            if not isinstance(item, dict):
                raise ValidationError(where, f"expected an object with user and bot, got {json_type(item)}")
            messages.append({"role": "user", "content": require_text(item, "user", where)})
            messages.append({"role": "assistant", "content": require_text(item, "bot", where)})
        meta = {"source": "mt_bench_101", "task": optional(row, "task", str, "")}
        yield Conversation.from_messages(messages, id=row_id(row, "id"), meta=meta)


FORMATS.add("mt-bench-101", MTBench101Reader(), "MT-Bench-101 dialogues {task, id, history: [{user, bot}]}")
