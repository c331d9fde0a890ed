"""Preference pairs for RM training: load through the chat/ readers, tokenize with turn-level left truncation."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from chat.conversation import Conversation, PreferencePair
from chat.errors import ConfigError
from rm.encoding import ConversationEncoder, EncodedConversation, TruncationStats

logger = logging.getLogger(__name__)


def load_preference_pairs(source: str, format: str | None = None, limit: int | None = None, *,
                          skip_invalid: bool = False, rejects: list | None = None,
                          split: str = "train") -> list[PreferencePair]:
    """Pairs from a file or hub id via `chat.formats` (canonical TRL JSONL, Skywork, hh-rlhf, RMB, ...).

    Bad rows raise InputError naming file, line and field, unless `skip_invalid`: then they are
    left out, collected in `rejects` and counted in a warning.
    """
    from chat.formats import load_pairs

    rejected: list = [] if rejects is None else rejects
    pairs = load_pairs(source, format, limit=limit, on_error="skip" if skip_invalid else "fail", rejects=rejected,
                       split=split)
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
                   margin_key: str | None = None, num_proc: int | None = None) -> TokenizedPairs:
    """`chosen_ids`, `rejected_ids`, `length` (longer side, for length grouping) and optionally `margin`.

    Every pair is kept: sequences longer than the encoder's max_length lose earlier turns from
    the left (counted in `truncation`). `num_proc` > 1 (RewardConfig's `dataset_num_proc`) encodes
    in that many processes with `datasets.map`; the result is the same, in the same order.
    """
    columns: dict[str, list[Any]] = {"chosen_ids": [], "rejected_ids": [], "length": []}
    if margin_key:
        columns["margin"] = [_margin(pair, margin_key) for pair in pairs]
    stats = TruncationStats()
    for pair, (chosen, rejected) in zip(pairs, _encode_pairs(pairs, encoder, num_proc)):
        stats.add(chosen, pair.id)
        stats.add(rejected, pair.id)
        columns["chosen_ids"].append(chosen.input_ids)
        columns["rejected_ids"].append(rejected.input_ids)
        columns["length"].append(max(len(chosen.input_ids), len(rejected.input_ids)))
    if stats.truncated_sequences:
        logger.warning("%d of %d sequences were longer than %s tokens and lost earlier turns (none dropped)",
                       stats.truncated_sequences, stats.sequences, encoder.max_length)
    return TokenizedPairs(columns, stats)


def _margin(pair: PreferencePair, margin_key: str) -> float:
    value = pair.meta.get(margin_key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"pair {pair.id}: meta.{margin_key}: expected a number for the margin, got {value!r}")
    return float(value)


_TRUNCATION_FIELDS = ("truncated_turns", "truncated_tokens", "dropped_system")


def _encode_row(row: dict[str, Any], encoder: ConversationEncoder) -> dict[str, Any]:
    """One pair row -> both sides' ids and truncation counts (a `datasets.map` function)."""
    encoded = {}
    for side in ("chosen", "rejected"):
        result = encoder.encode(Conversation.from_messages(row[side]))
        encoded[f"{side}_ids"] = result.input_ids
        encoded[f"{side}_truncation"] = [int(getattr(result, name)) for name in _TRUNCATION_FIELDS]
    return encoded


def _encode_pairs(pairs: Sequence[PreferencePair], encoder: ConversationEncoder, num_proc: int | None
                  ) -> list[tuple[EncodedConversation, EncodedConversation]]:
    if num_proc is None or num_proc <= 1 or len(pairs) < 2:
        return [(encoder.encode(pair.chosen), encoder.encode(pair.rejected)) for pair in pairs]
    from datasets import Dataset

    rows = Dataset.from_list([{"chosen": p.chosen.to_messages(), "rejected": p.rejected.to_messages()} for p in pairs])
    mapped = rows.map(_encode_row, fn_kwargs={"encoder": encoder}, num_proc=min(num_proc, len(pairs)),
                      remove_columns=["chosen", "rejected"], desc="tokenizing pairs")

    def rebuilt(ids: list[int], counts: list[int]) -> EncodedConversation:
        return EncodedConversation(list(ids), **{name: (bool(v) if name == "dropped_system" else v)
                                                 for name, v in zip(_TRUNCATION_FIELDS, counts)})

    return [(rebuilt(row["chosen_ids"], row["chosen_truncation"]), rebuilt(row["rejected_ids"], row["rejected_truncation"]))
            for row in mapped]
