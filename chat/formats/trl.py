"""TRL / Skywork preference rows `{chosen: [messages], rejected: [messages], source?, id?, meta?}` (also the canonical output)."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import PreferencePair, ValidationError
from chat.formats.base import FORMATS, PAIR, RecordReader
from chat.formats.fields import json_type, optional, require, row_id, row_meta, scalar_extras

_KNOWN = frozenset({"id", "chosen", "rejected", "prompt", "meta"})


class TRLPreferenceReader(RecordReader):
    """TRL's preference formats.

    - conversational, implicit prompt: `chosen`/`rejected` are full message lists (Skywork,
      the canonical turnwise row);
    - conversational, explicit prompt: `prompt` is a message list prefixed to both sides;
    - standard: `prompt`, `chosen`, `rejected` are strings (one user turn, one assistant turn).
    Extra scalar columns (Skywork's `source`, UltraFeedback's scores) are kept in `meta`.
    """

    kind = PAIR

    def matches(self, row: dict[str, Any]) -> bool:
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if isinstance(chosen, list) and isinstance(rejected, list):
            return True
        return isinstance(chosen, str) and isinstance(rejected, str) and isinstance(row.get("prompt"), str)

    def records(self, row: dict[str, Any]) -> Iterator[PreferencePair]:
        chosen = require(row, "chosen", (list, str))
        rejected = require(row, "rejected", (list, str))
        if isinstance(chosen, str) != isinstance(rejected, str):
            raise ValidationError("rejected", f"expected {json_type(chosen)} like chosen, got {json_type(rejected)}")
        prompt = optional(row, "prompt", (list, str))
        if isinstance(chosen, str):
            if not isinstance(prompt, str):
                raise ValidationError("prompt", "missing field (string chosen/rejected need a string prompt)")
            chosen = [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}]
            rejected = [{"role": "user", "content": prompt}, {"role": "assistant", "content": rejected}]
        elif isinstance(prompt, list):
            chosen, rejected = prompt + chosen, prompt + rejected
        elif isinstance(prompt, str) and not _starts_with_user(chosen):
            # A string prompt beside message lists that lack it (otherwise the lists already hold it).
            turn = {"role": "user", "content": prompt}
            chosen, rejected = [turn, *chosen], [turn, *rejected]
        meta = {**scalar_extras(row, _KNOWN), **row_meta(row)}
        yield PreferencePair.from_messages(chosen, rejected, id=row_id(row, "id"), meta=meta)


def _starts_with_user(messages: list[Any]) -> bool:
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") != "system"), None)
    return first is not None and first.get("role") == "user"


FORMATS.add("trl", TRLPreferenceReader(),
            "TRL/Skywork preference rows {chosen: [messages], rejected: [messages]} (canonical turnwise pairs)")
