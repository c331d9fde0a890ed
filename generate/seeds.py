"""Seeds of the generators from any chat.formats source: prompts for Review-Instruct, tasks for SeDi."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from chat.conversation import Conversation, Document, Message, PreferencePair
from chat.formats import read_records_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedPrompt:
    """A Review-Instruct seed: a leading system message (if any) and the first user question."""

    id: str
    messages: tuple[Message, ...]

    @property
    def question(self) -> str:
        return self.messages[-1].content


@dataclass(frozen=True)
class SeedTask:
    """A SeDi / Self-Instruct seed task: its instruction (with its input) and, when known, a response."""

    id: str
    instruction: str
    response: str = ""


def _first_user_prefix(conversation: Conversation) -> tuple[Message, ...] | None:
    prefix: list[Message] = []
    for message in conversation.messages:
        prefix.append(message)
        if message.role == "user":
            return tuple(prefix)
    return None


def read_seed_records(path: str | Path, *, format: str | None = None, on_error: str = "skip",
                      counters: Counter | None = None) -> Iterator[Conversation | PreferencePair | Document]:
    """Records of a seed file (Alpaca, Self-Instruct seed tasks, MT-Bench questions, ShareGPT, preference
    pairs, plain text); invalid rows are skipped and counted as `input_rows_rejected` unless on_error=fail."""
    return read_records_of(path, (Conversation, PreferencePair, Document), "prompts, conversations or text", format,
                           on_error=on_error, counters=counters)


def _conversations(records: Iterable[Conversation | PreferencePair | Document]) -> Iterator[Conversation]:
    """Conversations of the records; a pair gives its chosen side, a document one prompt per non-blank line."""
    for record in records:
        if isinstance(record, PreferencePair):
            yield record.chosen
        elif isinstance(record, Document):
            lines = [line.strip() for line in record.text.splitlines() if line.strip()]
            for number, line in enumerate(lines, 1):
                yield Conversation([Message("user", line)], id=f"{record.id}-{number}" if len(lines) > 1 else record.id)
        else:
            yield record


def seed_prompts(records: Iterable[Conversation | PreferencePair | Document],
                 counters: Counter | None = None) -> Iterator[SeedPrompt]:
    """One seed per record: its first user turn (after a system message); repeated ids skipped and counted."""
    seen: set[str] = set()
    for conversation in _conversations(records):
        prefix = _first_user_prefix(conversation)
        if prefix is None or conversation.id in seen:
            if counters is not None:
                counters["seeds_skipped"] += 1
            continue
        seen.add(conversation.id)
        yield SeedPrompt(str(conversation.id), prefix)


def seed_tasks(records: Iterable[Conversation | PreferencePair | Document],
               counters: Counter | None = None) -> list[SeedTask]:
    """One task per record: the first user turn as instruction, the assistant reply after it as response."""
    tasks: dict[str, SeedTask] = {}
    for conversation in _conversations(records):
        prefix = _first_user_prefix(conversation)
        if prefix is None or conversation.id in tasks:
            if counters is not None:
                counters["seeds_skipped"] += 1
            continue
        following = conversation.messages[len(prefix)] if len(conversation.messages) > len(prefix) else None
        response = following.content if following is not None and following.role == "assistant" else ""
        tasks[str(conversation.id)] = SeedTask(str(conversation.id), prefix[-1].content, response)
    return list(tasks.values())
