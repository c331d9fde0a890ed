"""Anthropic HH-RLHF rows `{chosen, rejected}`, each a "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript."""

from __future__ import annotations

import re
from typing import Any, Iterator

from chat.conversation import PreferencePair, ValidationError
from chat.formats.base import FORMATS, PAIR, RecordReader
from chat.formats.fields import require, row_id, row_meta, scalar_extras

#: A speaker marker: at the very start of the transcript, or after a blank line.
_MARKER = re.compile(r"(?:\A\s*|\n\n)(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}
_KNOWN = frozenset({"id", "chosen", "rejected", "meta"})


def parse_transcript(text: str, field_name: str) -> tuple[list[dict[str, str]], int]:
    """Messages of one HH-RLHF transcript and how many same-speaker turns were merged.

    Only "Human:"/"Assistant:" at the start or after a blank line start a turn, so the words
    inside a turn ("...said Human: hi") stay content. Text before the first marker becomes a
    system message. Consecutive turns of one speaker (a few transcripts repeat "Assistant:")
    are joined with a blank line, since a transcript has no notion of two separate messages
    in a row. Contents are stripped; an empty turn stays empty so validation rejects it.
    """
    markers = list(_MARKER.finditer(text))
    if not markers:
        raise ValidationError(field_name, "no 'Human:' or 'Assistant:' turns found in the transcript")
    messages: list[dict[str, str]] = []
    preamble = text[:markers[0].start()].strip()
    if preamble:
        messages.append({"role": "system", "content": preamble})
    merged = 0
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        role, content = _ROLES[marker.group(1)], text[marker.end():end].strip()
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = "\n\n".join(part for part in (messages[-1]["content"], content) if part)
            merged += 1
        else:
            messages.append({"role": role, "content": content})
    return messages, merged


class HHRLHFReader(RecordReader):
    """Preference pairs from HH-RLHF transcripts (Bai et al. 2022); chosen/rejected usually share all but the last turn."""

    kind = PAIR

    def matches(self, row: dict[str, Any]) -> bool:
        chosen, rejected = row.get("chosen"), row.get("rejected")
        return (isinstance(chosen, str) and isinstance(rejected, str) and "prompt" not in row
                and _MARKER.search(chosen) is not None)

    def records(self, row: dict[str, Any]) -> Iterator[PreferencePair]:
        chosen, merged_chosen = parse_transcript(require(row, "chosen", str), "chosen")
        rejected, merged_rejected = parse_transcript(require(row, "rejected", str), "rejected")
        meta: dict[str, Any] = {"source": "hh-rlhf", **scalar_extras(row, _KNOWN), **row_meta(row)}
        if merged_chosen or merged_rejected:
            meta["merged_turns"] = merged_chosen + merged_rejected
        yield PreferencePair.from_messages(chosen, rejected, id=row_id(row, "id"), meta=meta)


FORMATS.add("hh-rlhf", HHRLHFReader(),
            'HH-RLHF transcripts {chosen, rejected} as "\\n\\nHuman: ...\\n\\nAssistant: ..." strings')
