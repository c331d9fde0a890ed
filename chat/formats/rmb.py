"""RMB pairwise rows `{pair_uid, conversation_input, chosen: {llm_name, answer}, reject: {llm_name, answer}, category_path}`."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, PreferencePair, ValidationError
from chat.formats.base import FORMATS, PAIR, RecordReader
from chat.formats.fields import optional, require, require_text, row_id


class RMBPairwiseReader(RecordReader):
    """RMB reward-model benchmark pairs (Zhou et al. 2024): a shared prompt conversation plus two answers."""

    kind = PAIR

    def matches(self, row: dict[str, Any]) -> bool:
        return (isinstance(row.get("conversation_input"), list) and isinstance(row.get("chosen"), dict)
                and isinstance(row.get("reject", row.get("rejected")), dict))

    def records(self, row: dict[str, Any]) -> Iterator[PreferencePair]:
        turns = require(row, "conversation_input", list)
        prompt = Conversation.from_messages(turns, field_name="conversation_input")
        if prompt.messages[-1].role != "user":
            raise ValidationError("conversation_input", "the prompt must end with a user message")
        rejected_key = "reject" if "reject" in row else "rejected"
        chosen = require(row, "chosen", dict)
        rejected = require(row, rejected_key, dict)
        chosen_answer = require_text(chosen, "answer", "chosen")
        rejected_answer = require_text(rejected, "answer", rejected_key)
        languages = [turn.get("language") for turn in turns if isinstance(turn, dict) and turn.get("role") == "user"]
        meta = {
            "source": "rmb",
            "category": optional(row, "category_path", str, ""),
            "pair_uid": row_id(row, "pair_uid"),
            "chosen_model": optional(chosen, "llm_name", str, "", "chosen"),
            "rejected_model": optional(rejected, "llm_name", str, "", rejected_key),
            "language": next((lang for lang in reversed(languages) if isinstance(lang, str)), ""),
        }
        messages = prompt.to_messages()
        yield PreferencePair.from_messages(
            [*messages, {"role": "assistant", "content": chosen_answer}],
            [*messages, {"role": "assistant", "content": rejected_answer}],
            id=meta["pair_uid"], meta=meta)


FORMATS.add("rmb", RMBPairwiseReader(),
            "RMB pairwise {pair_uid, conversation_input, chosen: {llm_name, answer}, reject: {...}, category_path}")
