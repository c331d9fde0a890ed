"""Dataset summary for `turnwise data inspect`: rows, format, turns histogram, length stats, invalid rows."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.conversation import Conversation, Document, Message, PreferencePair
from chat.formats.base import PAIR
from chat.formats.reading import DatasetReader

#: How many invalid rows a summary quotes (all are counted).
INVALID_EXAMPLES = 5


def length_stats(values: list[int]) -> dict[str, float]:
    """min / mean / median / max of a list of lengths (zeros for an empty list)."""
    if not values:
        return {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}
    return {"min": min(values), "mean": round(statistics.fmean(values), 1),
            "median": float(statistics.median(values)), "max": max(values)}


def approx_words(text: str) -> int:
    """Whitespace-separated words: a tokenizer-free size measure."""
    return len(text.split())


@dataclass
class _Lengths:
    chars: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.chars.append(len(text))
        self.words.append(approx_words(text))

    def stats(self) -> dict[str, dict[str, float]]:
        return {"chars": length_stats(self.chars), "words": length_stats(self.words)}


@dataclass
class _Tally:
    rows: int = 0
    records: int = 0
    invalid: int = 0
    invalid_examples: list[str] = field(default_factory=list)
    turns: Counter = field(default_factory=Counter)
    by_role: dict[str, _Lengths] = field(default_factory=dict)
    chosen_response: _Lengths = field(default_factory=_Lengths)
    rejected_response: _Lengths = field(default_factory=_Lengths)
    final_turn_only: int = 0
    ties: int = 0

    def messages(self, messages: list[Message]) -> None:
        for message in messages:
            self.by_role.setdefault(message.role, _Lengths()).add(message.content)

    def record(self, record: Any) -> None:
        self.records += 1
        if isinstance(record, PreferencePair):
            self.turns[record.chosen.turns] += 1
            shared = record.shared_prefix_length
            self.messages(record.chosen.messages)
            self.messages(record.rejected.messages[shared:])
            self.chosen_response.add(record.chosen.messages[-1].content)
            self.rejected_response.add(record.rejected.messages[-1].content)
            if len(record.chosen.messages) == len(record.rejected.messages) == shared + 1:
                self.final_turn_only += 1
            self.ties += bool(record.meta.get("tie"))
        elif isinstance(record, Conversation):
            self.turns[record.turns] += 1
            self.messages(record.messages)
        elif isinstance(record, Document):
            self.by_role.setdefault("document", _Lengths()).add(record.text)


def summarize_dataset(source: str | Path, format: str | None = None, *, limit: int | None = None,
                      split: str = "train") -> dict[str, Any]:
    """Read up to `limit` rows (all by default) without stopping at invalid ones, and describe them.

    Keys: source, format, format_detected, kind, rows, records, invalid_rows, invalid_examples,
    turns (user turns per conversation, chosen side for pairs -> count), lengths (per role:
    chars and approximate words, min/mean/median/max), and for pairs final_turn_only (pairs
    whose chosen and rejected share every message but the last), ties, chosen_response and
    rejected_response lengths.
    """
    dataset = DatasetReader(source, format, split=split)
    tally = _Tally()
    for result in dataset:
        if limit is not None and tally.rows >= limit:
            break
        tally.rows += 1
        if result.error is not None:
            tally.invalid += 1
            if len(tally.invalid_examples) < INVALID_EXAMPLES:
                tally.invalid_examples.append(str(result.error))
            continue
        for record in result.records:
            tally.record(record)
    summary: dict[str, Any] = {
        "source": dataset.name,
        "format": dataset.format,
        "format_detected": format is None,
        "kind": dataset.kind,
        "rows": tally.rows,
        "records": tally.records,
        "invalid_rows": tally.invalid,
        "invalid_examples": tally.invalid_examples,
        "turns": {str(turns): count for turns, count in sorted(tally.turns.items())},
        "lengths": {role: lengths.stats() for role, lengths in sorted(tally.by_role.items())},
    }
    if dataset.kind == PAIR:
        summary.update(
            final_turn_only=tally.final_turn_only,
            final_turn_only_share=round(tally.final_turn_only / tally.records, 4) if tally.records else 0.0,
            ties=tally.ties,
            chosen_response=tally.chosen_response.stats(),
            rejected_response=tally.rejected_response.stats(),
        )
    return summary
