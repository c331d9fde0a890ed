"""MUSIC seeds: the conversation prefix each synthesized pair starts from (docs/methods.md, MUSIC step 1)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from chat.conversation import Conversation, Message, PreferencePair
from chat.formats import read_records_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seed:
    """A prefix ending with a user turn, plus the seed pair's own final responses when it has them.

    `chosen_answer` / `rejected_answer` are set only when the seed is a preference pair whose
    responses answer exactly the prefix's last user turn (for `reuse_seed_rejected`).
    """

    id: str
    messages: tuple[Message, ...]
    chosen_answer: str | None = None
    rejected_answer: str | None = None

    @property
    def turns(self) -> int:
        """User turns in the prefix (k)."""
        return sum(1 for m in self.messages if m.role == "user")


def seed_from_record(record: Conversation | PreferencePair, seed_turns: int) -> Seed | None:
    """The first `seed_turns` user turns of a record (fewer if it has fewer), with the assistant
    answers between them; for a pair, taken from the chosen side. None if it has no user turn."""
    conversation = record.chosen if isinstance(record, PreferencePair) else record
    prefix: list[Message] = []
    users = 0
    for message in conversation.messages:
        if message.role == "user":
            if users == seed_turns:
                break
            users += 1
        prefix.append(message)
    while prefix and prefix[-1].role != "user":
        prefix.pop()
    if not any(m.role == "user" for m in prefix):
        return None
    chosen_answer = rejected_answer = None
    if isinstance(record, PreferencePair):
        chosen, rejected = record.chosen.messages, record.rejected.messages
        if list(chosen[:-1]) == prefix and list(rejected[:-1]) == prefix:
            chosen_answer, rejected_answer = chosen[-1].content, rejected[-1].content
    return Seed(str(record.id), tuple(prefix), chosen_answer, rejected_answer)


def seeds_from_records(records: Iterable[Conversation | PreferencePair], seed_turns: int,
                       counters: Counter | None = None) -> Iterator[Seed]:
    """One seed per record; records without a user turn and repeated ids are skipped (and counted)."""
    seen: set[str] = set()
    for record in records:
        seed = seed_from_record(record, seed_turns)
        if seed is None:
            _count(counters, "seeds_without_user_turn")
            continue
        if seed.id in seen:
            logger.debug("skipping seed %r: its id repeats an earlier row", seed.id)
            _count(counters, "seeds_duplicate_id")
            continue
        seen.add(seed.id)
        yield seed


def read_seeds(path: str | Path, seed_turns: int, *, format: str | None = None, on_error: str = "skip",
               counters: Counter | None = None) -> Iterator[Seed]:
    """Seeds from any preference or conversation file the chat.formats readers load.

    With `on_error="skip"` invalid rows (an empty final reply, say: the seed may not even need it)
    are left out, counted as `input_rows_rejected` and the first one is logged; "fail" stops at it.
    """
    records = read_records_of(path, (Conversation, PreferencePair), "preference pairs or conversations", format,
                              on_error=on_error, counters=counters)
    return seeds_from_records(records, seed_turns, counters)


def _count(counters: Counter | None, key: str) -> None:
    if counters is not None:
        counters[key] += 1
