"""The CoEvol agent steps as pure `format_*_input` / `parse_*_output` pairs (docs/methods.md, CoEvol steps 1-5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from chat.agents import ParseError
from chat.backends.base import ResponseFormat
from chat.conversation import Message
from generate.agents import (json_reply, json_schema_format, json_text, json_texts, marked_section, object_schema,
                             visible_text)
from generate.prompts import render

#: Markers a free-text reply may put before its visible part; the JSON steps' fallback parses them too.
REVIEW_MARKER = "REVIEW:"
SUGGESTIONS_MARKER = "SUGGESTIONS:"
RESPONSE_MARKER = "RESPONSE:"
VERDICT_MARKER = "VERDICT:"
#: The fixed debate positions of stage 1.
POSITIVE, CRITICAL = "positive", "critical"
#: Merged verdicts of the judge: the edit is better, the original is better, or neither.
NEW, OLD, TIE = "new", "old", "tie"
#: How the two judge orders are merged (docs/methods.md, CoEvol step 5): `lenient` (public code) sums the orders'
#: preferences, so (edit better, tie) accepts the edit; `strict` needs both orders to prefer it.
LENIENT, STRICT = "lenient", "strict"
ACCEPT_RULES = (LENIENT, STRICT)

#: The judge's reply (docs/methods.md, CoEvol step 5): which of the two responses is better, or a tie.
JUDGE_SCHEMA = object_schema(verdict={"type": "string", "enum": ["A", "B", "tie"]})
JUDGE_FORMAT = json_schema_format("verdict", JUDGE_SCHEMA)

_LIST_ITEM = re.compile(r"^\s*(?:\d+\s*[.):]|[-*\u2022])\s*(.*)$")
_NO_SUGGESTIONS = {"none", "no suggestions", "n/a", "nothing"}


@dataclass(frozen=True)
class DebateTurn:
    """One debater's visible review in one debate stage."""

    position: str
    stage: int
    review: str

    @property
    def speaker(self) -> str:
        return f"{self.position.title()} debater (stage {self.stage})"

    def to_dict(self) -> dict[str, object]:
        return {"position": self.position, "stage": self.stage, "review": self.review}


def context_window(before: Sequence[Message], window_turns: int) -> list[Message]:
    """The context of a refined turn (docs/methods.md, CoEvol step 6): the system message, if any, and the
    (user, assistant) exchanges before the current instruction that fit a window of `window_turns` turns, the
    current one included (the public code's `conv_wind_size`: 3 = the current turn and 2 earlier ones)."""
    earlier = window_turns - 1
    system = [m for m in before[:1] if m.role == "system"]
    dialogue = [m for m in before if m.role != "system"]
    return [*system, *(dialogue[-2 * earlier:] if earlier > 0 else [])]


def _context_dicts(context: Sequence[Message]) -> list[dict[str, str]]:
    return [message.to_dict() for message in context]


# -- debaters: stage 1 with fixed positions, stage 2 free debate --------------------------------------

def format_debater_input(context: Sequence[Message], instruction: str, response: str, position: str,
                         max_words: int) -> list[Message]:
    """Debate stage 1 (docs/methods.md, CoEvol step 1): the debater argues its fixed position about `response`."""
    return [Message("system", render("coevol_debater_system", position=position, max_words=max_words)),
            Message("user", render("coevol_debate", context=_context_dicts(context), instruction=instruction,
                                   response=response, own_review=None, other_review=None, other_position=None))]


def format_free_debate_input(context: Sequence[Message], instruction: str, response: str, position: str,
                             own_review: str, other_review: str, max_words: int) -> list[Message]:
    """Debate stage 2 (docs/methods.md, CoEvol step 2): the debater sees its own and the other debater's stage-1 review
    and weighs them in an updated review."""
    other = CRITICAL if position == POSITIVE else POSITIVE
    return [Message("system", render("coevol_debater_system", position=position, max_words=max_words)),
            Message("user", render("coevol_debate", context=_context_dicts(context), instruction=instruction,
                                   response=response, own_review=own_review, other_review=other_review,
                                   other_position=other))]


def parse_review_output(text: str) -> str:
    """The visible review: the reply, or the text after a "REVIEW:" line if the debater wrote one; ParseError if
    empty."""
    return visible_text(text, REVIEW_MARKER)


# -- advisor: at most N editing suggestions from the 4-message transcript ---------------------------

def format_advisor_input(context: Sequence[Message], instruction: str, response: str, debate: Sequence[DebateTurn],
                         max_suggestions: int) -> list[Message]:
    """The advisor (docs/methods.md, CoEvol step 3) reads the conversation window, the response and the debate
    transcript and proposes editing suggestions."""
    return [Message("system", render("coevol_advisor_system", max_suggestions=max_suggestions)),
            Message("user", render("coevol_advisor", context=_context_dicts(context), instruction=instruction,
                                   response=response,
                                   debate=[{"speaker": turn.speaker, "review": turn.review} for turn in debate]))]


def advisor_format(max_suggestions: int) -> ResponseFormat:
    """The advisor's reply (docs/methods.md, CoEvol step 3): `{"suggestions": [...]}`, at most `max_suggestions`,
    [] for no edit."""
    return json_schema_format("suggestions", object_schema(
        suggestions={"type": "array", "items": {"type": "string"}, "maxItems": max_suggestions}))


def parse_advisor_output(text: str, max_suggestions: int) -> list[str]:
    """The "suggestions" of `advisor_format`'s JSON object, or (free-text fallback) the suggestions after
    "SUGGESTIONS:" as a list (numbered or bulleted lines; a line without a list mark continues the previous
    item); [] or "none" means no edit. Only the first `max_suggestions` are kept. ParseError if neither the
    JSON object nor the marker is there."""
    data = json_reply(text, ("suggestions",))
    if data is not None:
        items = json_texts(data, "suggestions")
        return [] if [item.strip(".").casefold() for item in items] in ([], ["none"]) else items[:max_suggestions]
    body = marked_section(text, SUGGESTIONS_MARKER)
    if body.strip().strip(".").casefold() in _NO_SUGGESTIONS:
        return []
    suggestions: list[str] = []
    numbered = any(_LIST_ITEM.match(line) for line in body.splitlines())
    for line in body.splitlines():
        if not line.strip():
            continue
        item = _LIST_ITEM.match(line)
        if item or not numbered or not suggestions:
            text_of = (item.group(1) if item else line).strip()
            if text_of:
                suggestions.append(text_of)
        else:
            suggestions[-1] = f"{suggestions[-1]} {line.strip()}"
    if not suggestions:
        raise ParseError("no suggestions after SUGGESTIONS: (write 'none' if no edit is needed)")
    return suggestions[:max_suggestions]


# -- editor: rewrites the response ---------------------------------------------------------------

def format_editor_input(context: Sequence[Message], instruction: str, response: str, suggestions: Sequence[str],
                        max_words: int | None = None) -> list[Message]:
    """The editor (docs/methods.md, CoEvol step 4) rewrites `response` using the suggestions it can act on, told
    the word budget of the rewrite when there is one."""
    return [Message("system", render("coevol_editor_system", max_words=max_words)),
            Message("user", render("coevol_editor", context=_context_dicts(context), instruction=instruction,
                                   response=response, suggestions=list(suggestions)))]


def parse_editor_output(text: str) -> str:
    """The rewritten response: the reply, or the text after a "RESPONSE:" line if the editor wrote one;
    ParseError if empty."""
    return visible_text(text, RESPONSE_MARKER)


# -- judge: old vs new in both orders, merged -------------------------------------------------------

def format_judge_input(context: Sequence[Message], instruction: str, response_a: str,
                       response_b: str) -> list[Message]:
    """One order of the pairwise comparison (docs/methods.md, CoEvol step 5 and Judge step 3)."""
    return [Message("system", render("coevol_judge_system")),
            Message("user", render("coevol_judge", context=_context_dicts(context), instruction=instruction,
                                   response_a=response_a, response_b=response_b))]


def parse_judge_output(text: str) -> str:
    """"A", "B" or "tie": the "verdict" of JUDGE_SCHEMA's JSON object, or (free-text fallback) the "VERDICT:"
    line; ParseError for anything else."""
    data = json_reply(text, tuple(JUDGE_SCHEMA["properties"]))
    verdict = json_text(data, "verdict") if data is not None else marked_section(text, VERDICT_MARKER)
    words = verdict.split()
    first = words[0].strip(".,;:!*_\"'[]()").casefold() if words else ""
    if first in ("a", "b"):
        return first.upper()
    if first in ("tie", "draw", "equal"):
        return "tie"
    raise ParseError(f'the verdict must be A, B or tie, got {verdict[:40]!r}')


def order_preferences(old_first: str, new_first: str) -> tuple[str, str]:
    """What each order's verdict prefers, NEW, OLD or TIE (old as A in the first order, new as A in the second)."""
    return {"A": OLD, "B": NEW, "tie": TIE}[old_first], {"A": NEW, "B": OLD, "tie": TIE}[new_first]


def merge_verdicts(old_first: str, new_first: str, rule: str = LENIENT) -> str:
    """The merged verdict of both orders (docs/methods.md, CoEvol step 5). `lenient`, the public code's merge of
    the two orders' score pairs: +1 for each order preferring the edit, -1 for each preferring the original,
    NEW above 0, OLD below, TIE at 0, so (new, tie) is NEW and (new, old) a TIE. `strict`: NEW or OLD only when
    both orders agree, TIE otherwise (a disagreement across orders is a tie, as in Judge step 3)."""
    preferences = order_preferences(old_first, new_first)
    if rule == STRICT:
        return preferences[0] if preferences[0] == preferences[1] else TIE
    balance = sum({NEW: 1, OLD: -1, TIE: 0}[preference] for preference in preferences)
    return NEW if balance > 0 else OLD if balance < 0 else TIE
