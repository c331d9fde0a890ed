"""Preference pairs for RM training: load through the chat/ readers, tokenize with turn-level left truncation."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from chat.conversation import PreferencePair
from chat.errors import ConfigError
from rm.encoding import ConversationEncoder, TruncationStats

logger = logging.getLogger(__name__)


def load_preference_pairs(source: str, format: str | None = None, limit: int | None = None, *,
                          skip_invalid: bool = False, rejects: list | None = None) -> list[PreferencePair]:
    """Pairs from a file or hub id via `chat.formats` (canonical TRL JSONL, Skywork, hh-rlhf, RMB, ...).

    Bad rows raise InputError naming file, line and field, unless `skip_invalid`: then they are
    left out, collected in `rejects` and counted in a warning.
    """
    from chat.formats import load_pairs

    rejected: list = [] if rejects is None else rejects
    pairs = load_pairs(source, format, limit=limit, on_error="skip" if skip_invalid else "fail", rejects=rejected)
    if rejected:
        first = rejected[0]
        logger.warning("%s: skipped %d invalid row(s); first: line %s: %s: %s", source, len(rejected),
                       first["line"], first["field"], first["reason"])
    if not pairs:
        raise ConfigError(f"{source}: no preference pairs found")
    return pairs


def split_pairs(pairs: Sequence[PreferencePair], eval_fraction: float, seed: int
                ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """A seeded random hold-out of `eval_fraction` of the pairs (at least one each side when > 0)."""
    if eval_fraction <= 0:
        return list(pairs), []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(pairs) * eval_fraction)), len(pairs) - 1)
    held_out = set(order[:n_eval])
    return ([p for i, p in enumerate(pairs) if i not in held_out], [p for i, p in enumerate(pairs) if i in held_out])


@dataclass
class TokenizedPairs:
    """Columns for the trainer plus how many sequences were truncated to fit."""

    columns: dict[str, list[Any]]
    truncation: TruncationStats = field(default_factory=TruncationStats)

    def __len__(self) -> int:
        return len(self.columns["chosen_ids"])

    def real_tokens(self) -> int:
        return sum(map(len, self.columns["chosen_ids"])) + sum(map(len, self.columns["rejected_ids"]))

    def to_dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict(self.columns)


def tokenize_pairs(pairs: Sequence[PreferencePair], encoder: ConversationEncoder,
                   margin_key: str | None = None) -> TokenizedPairs:
    """`chosen_ids`, `rejected_ids`, `length` (longer side, for length grouping) and optionally `margin`.

    Every pair is kept: sequences longer than the encoder's max_length lose earlier turns from
    the left (counted in `truncation`).
    """
    columns: dict[str, list[Any]] = {"chosen_ids": [], "rejected_ids": [], "length": []}
    if margin_key:
        columns["margin"] = []
    stats = TruncationStats()
    for pair in pairs:
        chosen = encoder.encode(pair.chosen)
        rejected = encoder.encode(pair.rejected)
        stats.add(chosen, pair.id)
        stats.add(rejected, pair.id)
        columns["chosen_ids"].append(chosen.input_ids)
        columns["rejected_ids"].append(rejected.input_ids)
        columns["length"].append(max(len(chosen.input_ids), len(rejected.input_ids)))
        if margin_key:
            value = pair.meta.get(margin_key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"pair {pair.id}: meta.{margin_key}: expected a number for the margin, got {value!r}")
            columns["margin"].append(float(value))
    if stats.truncated_sequences:
        logger.warning("%d of %d sequences were longer than %s tokens and lost earlier turns (none dropped)",
                       stats.truncated_sequences, stats.sequences, encoder.max_length)
    return TokenizedPairs(columns, stats)
