"""Pairs whose divergence turn the RM's left truncation cuts away, counted with the trainer's own encoder.

A MUSIC pair differs from the divergence turn d on (docs/methods.md, MUSIC step 2); the rejected branch's later
turns are fluent answers to its own user turns, so once truncation removes turn d the pair no longer shows the
error and teaches nothing. The trainer (rm/encoding.py `ConversationEncoder`) removes whole earlier
user/assistant exchanges from the left, then the system message, then cuts tokens inside the final exchange.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from chat.conversation import Conversation, PreferencePair

logger = logging.getLogger(__name__)

#: Pair ids listed per count in the report data.
EXAMPLES = 5


def divergence_exchange(pair: PreferencePair) -> int | None:
    """Index of the user/assistant exchange (0-based, after a system message) where chosen and rejected first
    differ, -1 when they differ in the system message, None when they are identical."""
    chosen, rejected = list(pair.chosen.messages), list(pair.rejected.messages)
    if chosen == rejected:
        return None
    system = int(bool(chosen) and chosen[0].role == "system")
    if system != int(bool(rejected) and rejected[0].role == "system") or (system and chosen[0] != rejected[0]):
        return -1
    index = system
    while index < min(len(chosen), len(rejected)) and chosen[index] == rejected[index]:
        index += 1
    return (index - system) // 2


def exchange_count(conversation: Conversation) -> int:
    """User/assistant exchanges after a system message, grouped as the encoder groups them."""
    body = len(conversation.messages) - int(bool(conversation.messages) and conversation.messages[0].role == "system")
    return (body + 1) // 2


@dataclass
class SideCut:
    """What truncation did to the divergence turn in one side: `lost` (its exchange or the differing system
    message is gone) or `cut` (tokens cut inside it: the final exchange alone was too long)."""

    lost: bool = False
    cut: bool = False


def side_cut(encoded: Any, exchange: int, exchanges: int) -> SideCut:
    """`encoded`: the `EncodedConversation` of one side; `exchange`: the divergence exchange (-1: system)."""
    if exchange < 0:
        return SideCut(lost=bool(encoded.dropped_system))
    if exchange < encoded.truncated_turns:
        return SideCut(lost=True)
    return SideCut(cut=encoded.truncated_tokens > 0 and exchange == exchanges - 1)


@dataclass
class DivergenceCounts:
    """Per origin (original / music) of the training pairs: how many, how many truncated on either side, how
    many lost the divergence turn (on either side; `lost_both`: on both), how many had it cut inside."""

    pairs: int = 0
    truncated: int = 0
    lost: int = 0
    lost_both: int = 0
    cut_inside: int = 0
    identical: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def count_divergence_truncation(pairs: Sequence[PreferencePair], encoder: Any) -> dict[str, DivergenceCounts]:
    """Counts per `meta.origin` (pairs without one: `original`) and `all`, encoding both sides of every pair
    with `encoder` (a `ConversationEncoder` with the RM's tokenizer and max_length)."""
    counts: dict[str, DivergenceCounts] = {"all": DivergenceCounts()}
    for pair in pairs:
        origin = str(pair.meta.get("origin") or "original")
        entries = (counts["all"], counts.setdefault(origin, DivergenceCounts()))
        exchange = divergence_exchange(pair)
        sides = (encoder.encode(pair.chosen), encoder.encode(pair.rejected))
        cuts = ([side_cut(encoded, exchange, exchange_count(conversation))
                 for encoded, conversation in zip(sides, (pair.chosen, pair.rejected))] if exchange is not None
                else [])
        for entry in entries:
            entry.pairs += 1
            entry.truncated += any(encoded.truncated for encoded in sides)
            entry.identical += exchange is None
            if cuts and any(cut.lost for cut in cuts):
                entry.lost += 1
                entry.lost_both += all(cut.lost for cut in cuts)
                if len(entry.examples) < EXAMPLES:
                    entry.examples.append(pair.id)
            elif cuts and any(cut.cut for cut in cuts):
                entry.cut_inside += 1
    return counts


def conversation_budget(music: Any) -> int:
    """The longest conversation MUSIC may write beyond its seed turns, in simulator tokens: T answers of
    max_tokens and a user turn of user_max_tokens per turn after the seed's k; capped by max_conversation_tokens
    (augment/config.py; that cap counts the seed too)."""
    generated = music.turns * music.max_tokens + max(music.turns - music.seed_turns, 0) * music.user_max_tokens
    return min(generated, music.max_conversation_tokens)


def budget_warning(music: Any, rm_max_length: int | None) -> str | None:
    """A line when MUSIC's conversations may be longer than the RM reads (None when they fit)."""
    if rm_max_length is None:
        return None
    budget = conversation_budget(music)
    if budget <= rm_max_length:
        return None
    return (f"MUSIC conversations may reach ~{budget} tokens besides their seed turns (T={music.turns} answers of "
            f"max_tokens {music.max_tokens}, user turns of {music.user_max_tokens}, max_conversation_tokens "
            f"{music.max_conversation_tokens}) but the RMs read max_length {rm_max_length} tokens: longer pairs "
            "lose their earliest turns, the divergence turn among them (rm_train counts those pairs with the RM's "
            "tokenizer; lower max_conversation_tokens or raise max_length)")
