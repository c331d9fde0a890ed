"""The one judge interface (DESIGN.md "Judge"): `judge_pair(a, b, turn) -> Verdict`, `grade(conversation, turn) -> Grade`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from chat.conversation import Conversation
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from chat.registry import registry

#: judge name -> judge class with `from_config(config, backends)` (`turnwise list judges`).
JUDGES = registry("judges", "judge")


@dataclass
class Verdict:
    """Outcome of comparing a with b: `winner` "A" (a), "B" (b), "tie", or None when unparseable."""

    winner: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grade:
    """Outcome of grading one conversation: `score` (None when unparseable) and how it was reached."""

    score: float | None
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Judge(Protocol):
    """Every judge compares pairs and grades conversations; both are async (they call backends or models)."""

    name: str

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        ...

    async def grade(self, conversation: Conversation, turn: int | None = None,
                    reference: str | None = None) -> Grade:
        ...


async def judge_pairs(judge: Judge, pairs: Sequence[tuple[Conversation, Conversation]], turn: int | None = None,
                      references: Sequence[str | None] | None = None) -> list[Verdict]:
    """Verdicts for many pairs: the judge's own batched `judge_pairs` when it has one, else concurrent calls."""
    references = list(references) if references is not None else [None] * len(pairs)
    batched = getattr(judge, "judge_pairs", None)
    if batched is not None:
        return await batched(pairs, turn=turn, references=references)
    return list(await gather_or_cancel(*(judge.judge_pair(a, b, turn, ref) for (a, b), ref in zip(pairs, references))))


def through_turn(conversation: Conversation, turn: int | None) -> Conversation:
    """The conversation up to and including the assistant's reply in user turn `turn` (1-based); all of it for None."""
    if turn is None:
        return conversation
    if turn < 1:
        raise ConfigError(f"turn: expected a turn number >= 1, got {turn}")
    seen = 0
    for index, message in enumerate(conversation.messages):
        if message.role == "user":
            seen += 1
        if seen == turn and message.role == "assistant":
            return Conversation(conversation.messages[: index + 1], id=conversation.id, meta=dict(conversation.meta))
    raise ValueError(f"conversation {conversation.id!r} has no assistant reply in turn {turn}")


def judged_reply_length(conversation: Conversation, turn: int | None) -> int:
    """Characters of what is judged: the reply of turn `turn`, or every assistant reply for None."""
    if turn is not None:
        return len(through_turn(conversation, turn).messages[-1].content)
    return sum(len(m.content) for m in conversation.messages if m.role == "assistant")
