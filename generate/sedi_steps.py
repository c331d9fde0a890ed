"""The Self-Instruct / SeDi-Instruct steps as pure functions: prompts, parsers and instruction filters (PAPERS.md 3)."""

from __future__ import annotations

import re
from typing import Sequence

from chat.conversation import Message
from generate.agents import ParseError
from generate.prompts import render

#: Self-Instruct's filter: tasks a text-only model cannot do (Wang et al. 2023, section 2.3).
UNSUITABLE_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
_UNSUITABLE = re.compile(r"\b(" + "|".join(re.escape(word) for word in UNSUITABLE_WORDS) + r")\b", re.IGNORECASE)
_TASK_LABEL = re.compile(r"(?:^|\n)[ \t*#]*Task[ \t]*\d+[ \t]*[:.][ \t]*", re.IGNORECASE)


def format_generation_input(tasks: Sequence[str]) -> list[Message]:
    """Self-Instruct's prompt: the sampled example tasks numbered 1..k, then "Task k+1:" to continue."""
    return [Message("user", render("self_instruct", tasks=list(tasks)))]


def generation_stop(examples: int, per_call: int) -> list[str]:
    """Stop after `per_call` new tasks: at the label of the task after them."""
    return [f"Task {examples + per_call + 1}:"]


def parse_generated_instructions(text: str, limit: int) -> list[str]:
    """The new tasks of a continuation: the text before the first "Task N:" label is task k+1 (a chat
    model may repeat that label), each later label starts another; whitespace collapsed, empties dropped."""
    parts = _TASK_LABEL.split("\n" + text)
    instructions = [" ".join(part.split()) for part in parts]
    return [instruction for instruction in instructions if instruction][:limit]


def instruction_filter_reason(instruction: str, min_words: int, max_words: int) -> str | None:
    """Why Self-Instruct's heuristics reject an instruction (too_short, too_long, unsuitable, bad_start), or None."""
    words = len(instruction.split())
    if words < min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    if _UNSUITABLE.search(instruction):
        return "unsuitable"
    first = instruction[0]
    if not first.isascii() or not (first.isalnum() or first in "\"'(["):
        return "bad_start"
    return None


def format_response_input(instruction: str) -> list[Message]:
    """The responder answers the instruction as a user's request."""
    return [Message("user", instruction)]


def parse_response(text: str) -> str:
    """The response text; ParseError when it is empty."""
    response = text.strip()
    if not response:
        raise ParseError("empty response")
    return response
