"""Shared plumbing of the generator agents: marked replies, bounded re-asks, per-role usage, derived seeds."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence, TypeVar

from chat.backends.base import ChatBackend, Completion, Usage
from chat.conversation import Message
from generate.prompts import render

T = TypeVar("T")


class ParseError(ValueError):
    """A reply that cannot be used as the step's output; triggers a bounded re-ask."""


class StepFailed(Exception):
    """A step still had no usable reply after its re-asks; `reason` names the drop counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def derive_seed(base: int | str, label: str) -> int:
    """A 31-bit seed from a base seed and a label (item id, or role/round/attempt)."""
    digest = hashlib.sha256(f"{base}/{label}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def normalized(text: str) -> str:
    """Text compared for sameness: case-folded, whitespace collapsed, trailing punctuation dropped."""
    return " ".join(text.split()).casefold().rstrip(" ?.!")


def word_count(text: str) -> int:
    return len(text.split())


def marked_section(text: str, marker: str, *, until: Sequence[str] = ()) -> str:
    """The visible part of a reply: the text after the LAST line starting with `marker` (e.g. "ANSWER:"),
    up to the first line starting with one of `until`; private reasoning before the marker is dropped.

    Raises ParseError when the marker is missing or nothing follows it.
    """
    pattern = re.compile(rf"^[ \t>*#_]*{re.escape(marker.rstrip(':'))}[*_ \t]*:[*_]*[ \t]*", re.IGNORECASE | re.MULTILINE)
    matches = list(pattern.finditer(text))
    if not matches:
        raise ParseError(f'no line starting with "{marker}"')
    body = text[matches[-1].end():]
    for stop in until:
        end = re.search(rf"^[ \t>*#_]*{re.escape(stop.rstrip(':'))}[*_ \t]*:", body, re.IGNORECASE | re.MULTILINE)
        if end:
            body = body[:end.start()]
    body = body.strip()
    if not body:
        raise ParseError(f'nothing after "{marker}"')
    return body


def format_reask(request: Sequence[Message], reply: str, error: ParseError, marker: str | None) -> list[Message]:
    """The same request, the unusable reply, and a note saying what was wrong and which format is required."""
    return [*request, Message("assistant", reply), Message("user", render("reask", error=str(error), marker=marker))]


@dataclass
class RoleUsage:
    """LLM calls and tokens spent on one item, by role (reviewer roles are `reviewer_1`.. for per-reviewer counts)."""

    by_role: dict[str, Usage] = field(default_factory=dict)

    def count(self, role: str, completion: Completion) -> None:
        self.by_role.setdefault(role, Usage()).count(completion)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_role.values():
            total.add(usage)
        return total

    def to_dict(self) -> dict[str, object]:
        keys = ("calls", "cache_hits", "prompt_tokens", "completion_tokens")
        total = self.total()
        return {**{key: getattr(total, key) for key in keys},
                "by_role": {role: {key: getattr(u, key) for key in keys} for role, u in sorted(self.by_role.items())}}


@dataclass
class StepCaller:
    """Calls backends for one item: fixed sampling parameters, a seed per call label, usage per role,
    and `ask`, which re-asks a step at most `max_reasks` times while its reply does not parse."""

    temperature: float
    max_tokens: int
    item_seed: int
    max_reasks: int = 2
    usage: RoleUsage = field(default_factory=RoleUsage)
    reasks: int = 0

    async def call(self, role: str, backend: ChatBackend, messages: Sequence[Message], label: str, *,
                   stop: Sequence[str] | None = None) -> Completion:
        completion = await backend.chat(list(messages), temperature=self.temperature, max_tokens=self.max_tokens,
                                        stop=list(stop) if stop else None, seed=derive_seed(self.item_seed, label))
        self.usage.count(role, completion)
        return completion

    async def ask(self, role: str, backend: ChatBackend, request: Sequence[Message], parse: Callable[[str], T],
                  label: str, *, marker: str | None = None) -> tuple[T, str]:
        """(parsed value, raw reply) of a step; StepFailed("parse_failure") after `max_reasks` re-asks."""
        messages = list(request)
        for attempt in range(self.max_reasks + 1):
            if attempt:
                self.reasks += 1
            completion = await self.call(role, backend, messages, f"{label}/{attempt}")
            try:
                return parse(completion.text), completion.text
            except ParseError as error:
                last_error = error
                messages = format_reask(request, completion.text, error, marker)
        raise StepFailed("parse_failure", f"{label}: {last_error} (after {self.max_reasks} re-asks)")
