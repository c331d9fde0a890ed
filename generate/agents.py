"""Generator agent helpers: marked reply sections, marker-naming re-asks, the parse-failure drop."""

from __future__ import annotations

import re
from typing import Callable, Sequence, TypeVar

from chat.agents import ParseError, StepCaller, reask_messages
from chat.backends.base import ChatBackend
from chat.conversation import Message
from generate.prompts import render

T = TypeVar("T")

#: The drop reason of a step that never parsed.
PARSE_FAILURE = "parse_failure"


class StepFailed(Exception):
    """A step still had no usable reply after its re-asks; `reason` names the drop counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
    return reask_messages(request, reply, render("reask", error=str(error), marker=marker))


async def ask_marked(step: StepCaller, role: str, backend: ChatBackend, request: Sequence[Message],
                     parse: Callable[[str], T], label: str, *, marker: str | None = None) -> T:
    """The parsed value of a step whose re-asks name the required `marker`; StepFailed("parse_failure")
    after `step.max_reasks` re-asks."""
    result = await step.ask(role, backend, request, parse, label,
                            lambda _sent, reply, error: format_reask(request, reply, error, marker))
    if not result.parsed:
        raise StepFailed(PARSE_FAILURE, f"{label}: {result.errors[-1]} (after {step.max_reasks} re-asks)")
    return result.value
