"""Reading verdicts out of judge replies: [[A]] / [[B]] / [[C]] / [[tie]], "Rating: [[7]]", or JSON; never guessing."""

from __future__ import annotations

import json
import re
from typing import Any

from chat.agents import ParseError

#: Bracketed pairwise verdicts; [[C]] is FastChat's tie.
_PAIRWISE_TAG = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
#: Bracketed ratings, optionally preceded by "Rating:".
_RATING_TAG = re.compile(r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_WINNER_NAMES = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}


#: `response_format` of a re-ask (the prompt asks for exactly this JSON): a constrained backend cannot answer
#: anything unparseable; the tolerant parsers below still read replies of backends that do not constrain.
PAIRWISE_VERDICT_FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {
    "name": "pairwise_verdict", "strict": True,
    "schema": {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "C"]}},
               "required": ["verdict"], "additionalProperties": False}}}
RATING_FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {
    "name": "rating", "strict": True,
    "schema": {"type": "object", "properties": {"rating": {"type": "integer", "enum": list(range(1, 11))}},
               "required": ["rating"], "additionalProperties": False}}}


class VerdictParseError(ParseError):
    """The reply holds no readable verdict (or contradictory ones): triggers a bounded re-ask."""


def _json_values(text: str, keys: tuple[str, ...]) -> list[object]:
    values = []
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            values.extend(obj[key] for key in keys if key in obj)
    return values


def parse_pairwise_verdict(text: str) -> str:
    """"A", "B" or "tie" from a judge reply; VerdictParseError when there is none or they conflict.

    Accepted: bracketed tags anywhere ([[A]], [[B]], [[C]] or [[tie]], case-insensitive; repeated
    identical tags are fine), else a JSON object with "winner" or "verdict" = "A" / "B" / "tie" / "C".
    """
    found = {_WINNER_NAMES[tag.lower()] for tag in _PAIRWISE_TAG.findall(text)}
    if not found:
        found = {_WINNER_NAMES[v.strip().lower()] for v in _json_values(text, ("winner", "verdict"))
                 if isinstance(v, str) and v.strip().lower() in _WINNER_NAMES}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise VerdictParseError("no verdict: expected [[A]], [[B]] or [[C]]")
    raise VerdictParseError(f"conflicting verdicts: {', '.join(sorted(found))}")


def parse_rating(text: str, low: float = 1.0, high: float = 10.0) -> float:
    """A rating in [low, high] from "Rating: [[7]]" / "[[7.5]]" or JSON {"rating": 7} / {"score": 7}.

    Several different ratings, none, or one out of range raise VerdictParseError.
    """
    found = {float(value) for value in _RATING_TAG.findall(text)}
    if not found:
        found = {float(v) for v in _json_values(text, ("rating", "score"))
                 if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not found:
        raise VerdictParseError("no rating: expected Rating: [[N]]")
    if len(found) > 1:
        raise VerdictParseError(f"conflicting ratings: {', '.join(f'{v:g}' for v in sorted(found))}")
    rating = found.pop()
    if not low <= rating <= high:
        raise VerdictParseError(f"rating {rating:g} outside [{low:g}, {high:g}]")
    return rating
