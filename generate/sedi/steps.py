"""SeDi (and Self-Instruct) steps as pure functions: prompts, parsers, filters (docs/methods.md, SeDi steps 2-5)."""

from __future__ import annotations

import re
from typing import Sequence

from chat.backends.base import ResponseFormat
from chat.conversation import Message
from generate.agents import ParseError, json_reply, json_schema_format, json_texts, object_schema
from generate.prompts import render

#: Self-Instruct's filter: tasks a text-only model cannot do (Wang et al. 2023, section 2.3).
UNSUITABLE_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                    "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
_UNSUITABLE = re.compile(r"\b(" + "|".join(re.escape(word) for word in UNSUITABLE_WORDS) + r")\b", re.IGNORECASE)
_TASK_LABEL = re.compile(r"(?:^|\n)[ \t*#]*Task[ \t]*\d+[ \t]*[:.][ \t]*", re.IGNORECASE)
_LEADING_LABEL = re.compile(r"^[ \t*#]*(?:Task[ \t]*\d+[ \t]*[:.]|\d+[.)](?=\s))[ \t]*", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*(.*)$")


def generation_format(per_call: int) -> ResponseFormat:
    """The generator's reply (docs/methods.md, SeDi step 2): `{"tasks": [...]}`, 1 to `per_call` tasks."""
    return json_schema_format("new_tasks", object_schema(
        tasks={"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": per_call}))


def format_generation_input(tasks: Sequence[str], count: int) -> list[Message]:
    """Self-Instruct's prompt: the sampled example tasks numbered 1..k, then the request for `count` new tasks
    as a JSON object of `generation_format(count)`."""
    return [Message("user", render("self_instruct", tasks=list(tasks), count=count))]


def _collapsed(texts: Sequence[str]) -> list[str]:
    """Each text without a leading task label, whitespace collapsed; empty ones dropped."""
    instructions = [" ".join(_LEADING_LABEL.sub("", text.strip()).split()) for text in texts]
    return [instruction for instruction in instructions if instruction]


def parse_generated_instructions(text: str, limit: int) -> list[str]:
    """The new tasks of a generator reply, at most `limit`, whitespace collapsed, a leading "Task N:" / "N." label
    removed, empties dropped: the "tasks" of `generation_format`'s JSON object, or (free-text fallback) the text
    after each "Task N:" label, else each numbered or bulleted line, else each line not ending in ":" (a
    preamble before the first label or list item is dropped). ParseError for a reply that starts as JSON but
    is not a complete object with a list of strings "tasks"."""
    data = json_reply(text, ("tasks",))
    if data is not None:
        return _collapsed(json_texts(data, "tasks"))[:limit]
    parts = _TASK_LABEL.split("\n" + text)
    if len(parts) > 1:
        return _collapsed(parts[1:])[:limit]
    lines = [line for line in text.splitlines() if line.strip()]
    items = [match.group(1) for line in lines if (match := _LIST_ITEM.match(line))]
    return _collapsed(items or [line for line in lines if not line.rstrip().endswith(":")])[:limit]


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
