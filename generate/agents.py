"""Generator agent helpers: JSON-schema reply formats and their parsing, the visible part of free-text replies
(marked sections), format-naming re-asks, the parse-failure and degenerate-text drops."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Sequence, TypeVar

from chat.agents import ParseError, StepCaller, StepFailed, reask_messages
from chat.backends.base import ChatBackend, ResponseFormat
from chat.conversation import Message
from chat.filters import DEGENERATE, degenerate_reason
from generate.prompts import render

T = TypeVar("T")

#: The drop reason of a generated text that fails the shared degenerate-text filter (chat.filters).
DEGENERATE_TEXT = DEGENERATE


def normalized(text: str) -> str:
    """Text compared for sameness: case-folded, whitespace collapsed, trailing punctuation dropped."""
    return " ".join(text.split()).casefold().rstrip(" ?.!")


def word_count(text: str) -> int:
    return len(text.split())


def _marker_pattern(marker: str) -> re.Pattern[str]:
    """A line starting with `marker` ("ANSWER:"), markdown emphasis and quoting around it allowed."""
    return re.compile(rf"^[ \t>*#_]*{re.escape(marker.rstrip(':'))}[*_ \t]*:[*_]*[ \t]*",
                      re.IGNORECASE | re.MULTILINE)


def visible_text(text: str, marker: str) -> str:
    """The visible part of a free-text reply: the text after the last `marker` line when the model labelled its
    reply (notes before the label are dropped), else the whole reply (a chat model answering directly).
    Raises ParseError when nothing is left."""
    if _marker_pattern(marker).search(text):
        return marked_section(text, marker)
    if not text.strip():
        raise ParseError("the reply is empty")
    return text.strip()


def marked_section(text: str, marker: str, *, until: Sequence[str] = ()) -> str:
    """The visible part of a reply: the text after the LAST line starting with `marker` (e.g. "ANSWER:"),
    up to the first line starting with one of `until`; private reasoning before the marker is dropped.

    Raises ParseError when the marker is missing or nothing follows it.
    """
    matches = list(_marker_pattern(marker).finditer(text))
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


# -- JSON replies of structured steps ------------------------------------------------------------------

def object_schema(**properties: dict[str, Any]) -> dict[str, Any]:
    """A flat JSON Schema object whose every property is required and nothing else allowed (OpenAI strict form),
    properties in the order given (the order a constrained decoder writes them)."""
    return {"type": "object", "properties": dict(properties), "required": list(properties),
            "additionalProperties": False}


def json_schema_format(name: str, schema: dict[str, Any]) -> ResponseFormat:
    """OpenAI's `response_format` asking for a reply that matches `schema`."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def format_fields(response_format: ResponseFormat | None) -> list[str]:
    """The top-level keys a `json_schema` response format asks for ([] for none or json_object)."""
    if not response_format or response_format.get("type") != "json_schema":
        return []
    return list(response_format["json_schema"]["schema"].get("properties", {}))


_FENCE = re.compile(r"^```[a-zA-Z]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)


def json_reply(text: str, keys: Sequence[str]) -> dict[str, Any] | None:
    """The JSON object of a structured step's reply: the whole reply (inside a code fence or not), else the first
    `{...}` in it that decodes to an object holding one of `keys` (the step's fields); None when the reply holds
    no such object (free text, parsed by the step's marker fallback). A reply that starts as a JSON object but
    does not decode (cut off at max_tokens, say) raises ParseError."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    decoder = json.JSONDecoder()
    if body.startswith("{"):
        try:
            value, _ = decoder.raw_decode(body)
        except json.JSONDecodeError as error:
            raise ParseError(f"the reply is not a complete JSON object ({error.msg} at character "
                             f"{error.pos})") from None
        if not isinstance(value, dict):
            raise ParseError("the reply is not a JSON object")
        return value
    for start in (match.start() for match in re.finditer(r"\{", body)):
        try:
            value, _ = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and any(key in value for key in keys):
            return value
    return None


def json_text(data: dict[str, Any], key: str) -> str:
    """The non-empty string `data[key]`, stripped; ParseError naming the key otherwise."""
    value = data.get(key)
    if not isinstance(value, str):
        raise ParseError(f'the JSON object needs a string "{key}"')
    if not value.strip():
        raise ParseError(f'"{key}" is empty')
    return value.strip()


def json_texts(data: dict[str, Any], key: str) -> list[str]:
    """The non-empty strings of the list `data[key]`, stripped (empty entries skipped); ParseError naming the
    key when it is not a list of strings."""
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ParseError(f'the JSON object needs a list of strings "{key}"')
    return [item.strip() for item in value if item.strip()]


# -- asking a step, re-asking, dropping ---------------------------------------------------------------

def format_reask(request: Sequence[Message], reply: str, error: ParseError,
                 fields: Sequence[str] = ()) -> list[Message]:
    """The same request, the unusable reply, and a note saying what was wrong (and, for a structured step,
    the JSON keys required)."""
    return reask_messages(request, reply, render("reask", error=str(error), fields=list(fields)))


async def ask_step(step: StepCaller, role: str, backend: ChatBackend, request: Sequence[Message],
                   parse: Callable[[str], T], label: str, *, response_format: ResponseFormat | None = None) -> T:
    """The parsed value of a step, sent with `response_format` (a structured step's JSON schema; None for a
    free-text step); its re-asks name that format. StepFailed("parse_failure") after `step.max_reasks` re-asks."""
    fields = format_fields(response_format)
    return await step.ask_parsed(role, backend, request, parse, label,
                                 lambda _sent, reply, error: format_reask(request, reply, error, fields),
                                 response_format=response_format)


def first_degenerate(texts: Iterable[str]) -> str | None:
    """The first of `texts` that fails the shared degenerate-text filter (chat.filters), or None."""
    return next((text for text in texts if degenerate_reason(text) is not None), None)


def check_degenerate(label: str, *texts: str) -> None:
    """StepFailed("degenerate_text") when a generated text of step `label` is degenerate (repetition loops,
    low distinct-n, broken charset), so the item is dropped before later steps build on it."""
    text = first_degenerate(texts)
    if text is not None:
        raise StepFailed(DEGENERATE_TEXT, f"{label}: {' '.join(text.split())[:80]!r}")
