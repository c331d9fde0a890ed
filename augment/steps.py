"""The MUSIC agent steps as pure `format_input` / `parse_output` pairs (docs/methods.md, MUSIC steps 3-4; the simulated
user's MUSIC step 5 is `chat.user_simulator`, shared with best-of-N)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from augment.prompts import render
from chat.agents import ParseError, reask_messages
from chat.conversation import Message
from chat.filters import scaffolding_reason

#: A swapped instruction shorter than this many words is not a request ("2023"): re-asked like a parse failure.
MIN_SWAP_WORDS = 3
#: Stop sequences for the user and assistant turns: a base model that starts writing the other
#: speaker's turn is cut there (chat models never reach them).
TURN_STOPS = ("\nUser:", "\nAssistant:", "\nHuman:")

_LEADING_LABEL = re.compile(r"^\s*(?:\*\*)?(user|assistant|human|ai|system)(?:\*\*)?\s*:\s*", re.IGNORECASE)
_LABEL_LINE = re.compile(r"^\s*(?:\*\*)?(user|assistant|human)(?:\*\*)?\s*:", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_SWAP_LABEL = re.compile(r"swapped[ _]instruction\s*[\"']?\s*[:=]\s*(.+)", re.IGNORECASE)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_REASON_LABEL = re.compile(r"reason\s*[\"']?\s*[:=]\s*(.+)", re.IGNORECASE)


#: The contrastive step's reply shape, passed as `response_format` (servers and `local` enforce it while
#: decoding); `parse_contrast_output` still accepts prose, fences and label lines from backends that do not.
SWAP_FORMAT = {"type": "json_schema", "json_schema": {"name": "swapped_instruction", "strict": True, "schema": {
    "type": "object",
    "properties": {"swapped_instruction": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["swapped_instruction", "reason"], "additionalProperties": False}}}


class RoleBreak(ValueError):
    """A reply written as the wrong speaker (or as several turns): the pair breaks role alternation."""


@dataclass(frozen=True)
class Swap:
    """The contrastive step's output: the instruction the rejected branch answers instead."""

    swapped_instruction: str
    reason: str


# -- assistant, both branches (steps 3-4) -----------------------------------------------------------

def format_assistant_input(history: Sequence[Message]) -> list[Message]:
    """The assistant answers the branch's conversation as it is (a normal chat request)."""
    return list(history)


def parse_assistant_output(text: str) -> str:
    """The assistant's reply, a leading "Assistant:" label removed; RoleBreak if it speaks as the user."""
    return _speaker_text(text, own_label="assistant")


# -- contrastive step: the swapped instruction (step 4) ---------------------------------------------

def format_contrast_input(history: Sequence[Message]) -> list[Message]:
    """Ask for a related-but-different replacement of the branch's latest user instruction, as JSON."""
    *earlier, latest = list(history)
    return [Message("system", render("contrast_system")),
            Message("user", render("contrast", history=_transcript(earlier), instruction=latest.content))]


def format_contrast_reask(request: Sequence[Message], reply: str, error: ParseError) -> list[Message]:
    """The same request followed by the unusable reply and a note saying what was wrong with it."""
    return reask_messages(request, reply, render("contrast_reask", error=str(error)))


def parse_contrast_output(text: str, original_instruction: str) -> Swap:
    """`{"swapped_instruction": ..., "reason": ...}` from a reply: plain JSON, JSON inside a code fence
    or surrounding prose, or a `swapped instruction: ...` label line. ParseError if none is found, or the
    swapped instruction repeats the original, is shorter than MIN_SWAP_WORDS words or quotes the prompt's
    scaffolding ("Conversation so far:")."""
    swapped, reason = _find_swap(text)
    if swapped is None:
        raise ParseError('no "swapped_instruction" found (expected a JSON object)')
    swapped = swapped.strip().strip('"').strip()
    if not swapped:
        raise ParseError("swapped_instruction is empty")
    if normalized(swapped) == normalized(original_instruction):
        raise ParseError("swapped_instruction repeats the original instruction")
    if len(swapped.split()) < MIN_SWAP_WORDS:
        raise ParseError(f"swapped_instruction {swapped!r} is not a full request (fewer than {MIN_SWAP_WORDS} words)")
    if scaffolding_reason(swapped):
        raise ParseError(f"swapped_instruction {swapped[:60]!r} quotes the prompt's scaffolding, not a request")
    return Swap(swapped, (reason or "").strip())


# -- contrastive assistant (step 4) ----------------------------------------------------------------

def format_contrastive_assistant_input(history: Sequence[Message], swap: Swap) -> list[Message]:
    """The rejected branch's history with its latest user instruction silently replaced by the swapped one
    (step 4). The assistant simply answers the swapped request, so it writes a fluent answer to the wrong
    request and cannot reveal a swap it never sees (a small model told "answer X instead, do not mention it"
    often mentions it); the record keeps the user's original wording. docs/methods.md, MUSIC step 4."""
    *earlier, _latest = list(history)
    return [*earlier, Message("user", swap.swapped_instruction)]


parse_contrastive_assistant_output = parse_assistant_output


# -- helpers ----------------------------------------------------------------------------------------

def normalized(text: str) -> str:
    """Text compared for sameness: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def _transcript(history: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in history]


def _speaker_text(text: str, own_label: str) -> str:
    body = text.strip()
    label = _LEADING_LABEL.match(body)
    if label:
        if label.group(1).lower() not in (own_label, "human" if own_label == "user" else "ai"):
            raise RoleBreak(f"reply starts as {label.group(1)!r}, expected the {own_label}")
        body = body[label.end():].strip()
    if _LABEL_LINE.search(body):
        raise RoleBreak(f"reply contains another speaker's turn ({_LABEL_LINE.search(body).group(0).strip()!r})")
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'" and body.count(body[0]) == 2:
        body = body[1:-1].strip()
    return body


def _find_swap(text: str) -> tuple[str | None, str | None]:
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text)), *_json_objects(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("swapped_instruction"), str):
            reason = value.get("reason")
            return value["swapped_instruction"], reason if isinstance(reason, str) else None
    label = _SWAP_LABEL.search(text)
    if label:
        reason = _REASON_LABEL.search(text, label.start(1))
        return _label_value(label.group(1)), _label_value(reason.group(1)) if reason else None
    return None, None


def _label_value(value: str) -> str:
    """The text after a label: a quoted string's content, else the rest of the line."""
    quoted = _QUOTED.match(value.strip())
    return quoted.group(1).replace('\\"', '"') if quoted else value.strip().rstrip(",")


def _json_objects(text: str) -> list[str]:
    """Balanced `{...}` spans of `text`, outermost first (string-aware)."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start:i + 1])
    return spans
