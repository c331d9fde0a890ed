"""MT-Bench questions `{question_id, category, turns: [q1, q2]}`: the first user turn, later turns scripted in meta."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, optional, require, row_id


def question_turns(row: dict[str, Any]) -> list[str]:
    """The user turns of an MT-Bench question: a non-empty list of non-empty strings."""
    turns = require(row, "turns", list)
    if not turns:
        raise ValidationError("turns", "no turns")
    for i, turn in enumerate(turns):
        if not isinstance(turn, str):
            raise ValidationError(f"turns[{i}]", f"expected a string, got {json_type(turn)}")
        if not turn.strip():
            raise ValidationError(f"turns[{i}]", "empty content")
    return turns


class MTBenchQuestionReader(RecordReader):
    """MT-Bench (Zheng et al. 2023) two-turn questions. The conversation is the prompt for the
    first turn; `meta["next_user_turns"]` holds the follow-up question(s), asked after a reply."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return "question_id" in row and isinstance(row.get("turns"), list) and "choices" not in row

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        turns = question_turns(row)
        question_id = row_id(row, "question_id")
        meta: dict[str, Any] = {
            "source": "mt_bench",
            "question_id": row.get("question_id"),
            "category": optional(row, "category", str, ""),
            "next_user_turns": turns[1:],
        }
        reference = optional(row, "reference", list)
        if reference is not None:
            meta["reference"] = reference
        yield Conversation.from_messages([{"role": "user", "content": turns[0]}], id=question_id, meta=meta)


FORMATS.add("mt-bench", MTBenchQuestionReader(),
            "MT-Bench questions {question_id, category, turns: [q1, q2]} -> prompt + next_user_turns")
