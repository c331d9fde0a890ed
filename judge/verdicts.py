"""Verdict and grade records, and importers for recorded judgments (turnwise, AlpacaEval, FastChat, pair datasets).

One pairwise record type for every judge, recorded or live:

    {"id", "a", "b", "winner": "A" | "B" | "tie" | null, "judge", "category", "turn", "detail"}

`a` and `b` name what was compared (model names, "chosen"/"rejected"); `winner` is null when the
judge's output could not be parsed (counted, never guessed). LLM judges record `detail.verdict_mode`
("text" or "logprob"; logprob verdicts also `detail.probabilities` per order and averaged). `turn` is
the 1-based user turn the verdict is about, or null for the whole conversation. Graded judgments use
`{"id", "score", "judge", "category", "turn", "detail"}` with `score` null when unparseable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from chat.conversation import PreferencePair, ValidationError
from chat.errors import InputError
from chat.formats.alpaca_eval import TIE_PREFERENCE, AlpacaEvalReader
from chat.formats.base import PAIR
from chat.formats.fields import json_type
from chat.formats.sources import open_source
from chat.pairwise import SWAP


@dataclass
class VerdictRecord:
    """One pairwise judgment of `a` against `b` (see the module docstring)."""

    id: str
    a: str
    b: str
    winner: str | None
    judge: str = ""
    category: str = ""
    turn: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> tuple[str, int | None]:
        """What two judges' records are matched on."""
        return (self.id, self.turn)

    def flipped(self) -> "VerdictRecord":
        """The same judgment with a and b swapped (winner and per-order verdicts follow)."""
        detail = dict(self.detail)
        if isinstance(detail.get("orders"), dict):
            detail["orders"] = {"AB": SWAP[detail["orders"].get("BA")], "BA": SWAP[detail["orders"].get("AB")]}
        if isinstance(detail.get("probabilities"), dict):
            probabilities = detail["probabilities"]
            detail["probabilities"] = {"AB": _swap_outcomes(probabilities.get("BA")),
                                       "BA": _swap_outcomes(probabilities.get("AB")),
                                       "mean": _swap_outcomes(probabilities.get("mean"))}
        if isinstance(detail.get("candidate_mass"), dict):
            mass = detail["candidate_mass"]
            detail["candidate_mass"] = {"AB": mass.get("BA"), "BA": mass.get("AB")}
        if "len_a" in detail or "len_b" in detail:
            detail["len_a"], detail["len_b"] = detail.get("len_b"), detail.get("len_a")
        return VerdictRecord(self.id, self.b, self.a, SWAP[self.winner], self.judge, self.category, self.turn, detail)


def _swap_outcomes(probabilities: Any) -> Any:
    """A logprob verdict's {A, B, tie} probabilities with A and B swapped (None stays None)."""
    if not isinstance(probabilities, dict):
        return probabilities
    return {"A": probabilities.get("B"), "B": probabilities.get("A"), "tie": probabilities.get("tie")}


@dataclass
class GradeRecord:
    """One graded judgment (a 1-10 LLM grade, an RM reward) of the item `id`."""

    id: str
    score: float | None
    judge: str = ""
    category: str = ""
    turn: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.id, self.turn)


@dataclass
class JudgmentFile:
    """The records of one verdicts file, all of one kind ("pairwise" or "grade")."""

    path: str
    layout: str
    kind: str
    records: list[Any]


def pair_names(pair: PreferencePair) -> tuple[str, str]:
    """Names for the chosen and rejected sides of a pair: the models when the source records them."""
    chosen = pair.meta.get("chosen_model") or "chosen"
    rejected = pair.meta.get("rejected_model") or "rejected"
    return (chosen, rejected) if chosen != rejected else ("chosen", "rejected")


def pair_category(pair: PreferencePair) -> str:
    meta = pair.meta
    return str(meta.get("category") or meta.get("dataset") or meta.get("task") or meta.get("source") or "")


def detect_layout(row: Any) -> str:
    """The layout of a verdicts file from its first row; ValidationError when none fits."""
    if not isinstance(row, dict):
        raise ValidationError("row", f"expected a JSON object, got {json_type(row)}")
    if "g1_winner" in row or ("model_a" in row and "winner" in row):
        return "fastchat-pairwise"
    if "question_id" in row and "model" in row and "score" in row:
        return "fastchat-single"
    if "winner" in row and "id" in row:
        return "verdicts"
    if "score" in row and "id" in row:
        return "grades"
    if all(key in row for key in ("instruction", "output_1", "output_2", "preference")):
        return "alpaca-eval"
    from chat.formats import FORMATS

    for name in FORMATS.names():
        reader = FORMATS.get(name)
        if reader.kind == PAIR and reader.matches(row):
            return "pairs"
    keys = ", ".join(sorted(map(str, row))[:12])
    raise ValidationError("row", f"not a verdicts file: cannot tell the layout from the keys ({keys}); expected "
                                 "{id, a, b, winner}, {id, score}, FastChat MT-Bench judgments, AlpacaEval "
                                 "annotations or preference pairs")


def read_judgments(path: str | Path, layout: str | None = None) -> JudgmentFile:
    """All records of a verdicts / grades file; the first bad row raises InputError (PATH:LINE: field: reason)."""
    source = open_source(path)
    name = source.info.name
    records: list[Any] = []
    parse = None
    for row in source.rows():
        where = row.prefix
        if row.error is not None:
            raise InputError(name, row.line, _joined(where, row.error[0]), row.error[1])
        try:
            if parse is None:
                layout = layout or detect_layout(row.value)
                parse = _PARSERS[layout]
            if not isinstance(row.value, dict):
                raise ValidationError("row", f"expected a JSON object, got {json_type(row.value)}")
            records.extend(parse(row.value))
        except ValidationError as exc:
            raise InputError(name, row.line, _joined(where, exc.field), exc.reason) from None
    if parse is None:
        raise InputError(name, 1, "file", "empty file: no rows")
    assert layout is not None
    kind = "grade" if layout in ("grades", "fastchat-single") else "pairwise"
    return JudgmentFile(name, layout, kind, records)


def _joined(prefix: str, field_name: str) -> str:
    if not prefix:
        return field_name
    return prefix if field_name in ("", "row") else f"{prefix}.{field_name}"


# ----------------------------------------------------------------------------- field helpers

def _text(row: dict[str, Any], key: str, default: str | None = None) -> str:
    if key not in row or row[key] is None:
        if default is not None:
            return default
        raise ValidationError(key, "missing field")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(key, f"expected a string, got {json_type(value)}")
    text = str(value)
    if not text.strip() and default is None:
        raise ValidationError(key, "empty")
    return text


def _turn(row: dict[str, Any]) -> int | None:
    value = row.get("turn")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("turn", f"expected a turn number >= 1 or null, got {value!r}")
    return value


def _winner(value: Any, key: str = "winner") -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        normal = {"a": "A", "b": "B", "tie": "tie", "c": "tie"}.get(value.strip().lower())
        if normal is not None:
            return normal
    raise ValidationError(key, f"expected \"A\", \"B\", \"tie\" or null, got {value!r}")


def _score(value: Any, key: str = "score") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValidationError(key, f"expected a number or null, got {value!r}")
    return float(value)


def _judge_name(value: Any) -> str:
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    return "" if value is None else str(value)


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    detail = row.get("detail", {})
    if detail is None:
        return {}
    if not isinstance(detail, dict):
        raise ValidationError("detail", f"expected an object, got {json_type(detail)}")
    return dict(detail)


# ----------------------------------------------------------------------------- layouts

def _parse_verdict_row(row: dict[str, Any]) -> Iterator[VerdictRecord]:
    """turnwise `{id, a, b, winner, judge?, category?, turn?, detail?}`."""
    if "winner" not in row:
        _missing("winner")
    yield VerdictRecord(id=_text(row, "id"), a=_text(row, "a", "A"), b=_text(row, "b", "B"),
                        winner=_winner(row["winner"]),
                        judge=_judge_name(row.get("judge")), category=_text(row, "category", ""),
                        turn=_turn(row), detail=_detail(row))


def _parse_grade_row(row: dict[str, Any]) -> Iterator[GradeRecord]:
    """turnwise `{id, score, judge?, category?, turn?, detail?}`."""
    if "score" not in row:
        _missing("score")
    yield GradeRecord(id=_text(row, "id"), score=_score(row["score"]), judge=_judge_name(row.get("judge")),
                      category=_text(row, "category", ""), turn=_turn(row), detail=_detail(row))


def _missing(key: str) -> Any:
    raise ValidationError(key, "missing field")


#: FastChat's winner names -> turnwise verdicts ("error" = the judge's output had no verdict).
_FASTCHAT_WINNERS = {"model_1": "A", "model_2": "B", "model_a": "A", "model_b": "B", "tie": "tie",
                     "tie (bothbad)": "tie", "error": None}


def _fastchat_winner(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value not in _FASTCHAT_WINNERS:
        raise ValidationError(key, f"expected one of {', '.join(_FASTCHAT_WINNERS)}, got {value!r}")
    return _FASTCHAT_WINNERS[value]


def _parse_fastchat_pairwise(row: dict[str, Any]) -> Iterator[VerdictRecord]:
    """FastChat llm_judge pairwise judgments `{question_id, model_1, model_2, g1_winner, g2_winner, judge, turn}`
    (g2 is the swapped order, already mapped back to model names), or MT-Bench human judgments
    `{question_id, model_a, model_b, winner, judge, turn}`. Orders that disagree are a tie; an
    "error" in either order leaves the verdict unparseable."""
    question = _text(row, "question_id")
    if "g1_winner" in row:
        a, b = _text(row, "model_1"), _text(row, "model_2")
        first, second = _fastchat_winner(row, "g1_winner"), _fastchat_winner(row, "g2_winner")
        if first is None or second is None:
            winner = None
        else:
            winner = first if first == second else "tie"
        detail = {"orders": {"AB": first, "BA": second}}
    else:
        a, b = _text(row, "model_a"), _text(row, "model_b")
        winner = _fastchat_winner(row, "winner")
        detail = {}
    yield VerdictRecord(id=question, a=a, b=b, winner=winner, judge=_judge_name(row.get("judge")),
                        category=_text(row, "category", ""), turn=_turn(row), detail=detail)


def _parse_fastchat_single(row: dict[str, Any]) -> Iterator[GradeRecord]:
    """FastChat single-answer grades `{question_id, model, judge, score, turn}`; score -1 = judge output unparseable."""
    question, model = _text(row, "question_id"), _text(row, "model")
    score = _score(row.get("score"))
    yield GradeRecord(id=f"{question}/{model}", score=None if score == -1 else score,
                      judge=_judge_name(row.get("judge")), category=_text(row, "category", ""), turn=_turn(row),
                      detail={"question_id": question, "model": model})


_ALPACA_READER = AlpacaEvalReader()


def alpaca_eval_winner(preference: float) -> str:
    """AlpacaEval preference -> verdict: 1 (or < 1.5) output_1 = A, 2 (or > 1.5) output_2 = B, 1.5 tie."""
    if preference == TIE_PREFERENCE:
        return "tie"
    return "A" if preference < TIE_PREFERENCE else "B"


def _parse_alpaca_eval(row: dict[str, Any]) -> Iterator[VerdictRecord]:
    """AlpacaEval annotations: a = generator_1 (output_1), b = generator_2. The id is the one the
    `alpaca-eval` pair reader gives the same row, so `judge pairs` output on that file matches it."""
    (pair,) = list(_ALPACA_READER.records(row))
    preference = float(row["preference"])
    a = pair.meta["generator_1"] or "output_1"
    b = pair.meta["generator_2"] or "output_2"
    yield VerdictRecord(id=pair.id, a=a, b=b, winner=alpaca_eval_winner(preference),
                        judge=pair.meta["annotator"], category=pair.meta["dataset"], turn=None,
                        detail={"preference": row["preference"], "len_a": len(row["output_1"]),
                                "len_b": len(row["output_2"])})


def _parse_pairs(row: dict[str, Any]) -> Iterator[VerdictRecord]:
    """A preference dataset read as a reference judge: its `chosen` side wins every pair."""
    from chat.formats import FORMATS

    for name in FORMATS.names():
        reader = FORMATS.get(name)
        if reader.kind == PAIR and reader.matches(row):
            for pair in reader.records(row):
                a, b = pair_names(pair)
                yield VerdictRecord(id=pair.id, a=a, b=b, winner="A", judge=f"{name}:labels",
                                    category=pair_category(pair), turn=None,
                                    detail={"len_a": len(pair.chosen.messages[-1].content),
                                            "len_b": len(pair.rejected.messages[-1].content)})
            return
    raise ValidationError("row", "not a preference pair in any known format")


_PARSERS = {
    "verdicts": _parse_verdict_row,
    "grades": _parse_grade_row,
    "fastchat-pairwise": _parse_fastchat_pairwise,
    "fastchat-single": _parse_fastchat_single,
    "alpaca-eval": _parse_alpaca_eval,
    "pairs": _parse_pairs,
}
