"""Shared pieces of the rm benchmarks: the hh-rlhf pairs and 5-turn conversations built from real turns."""

from __future__ import annotations

import os
from pathlib import Path

from chat.conversation import Conversation, Message, PreferencePair

REPO_ROOT = Path(__file__).resolve().parents[1]
HH_RLHF = Path(os.environ.get("TURNWISE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / \
    "preference" / "hh-rlhf-harmless-base-test.first1800.jsonl.gz"


def hh_rlhf_pairs() -> list[PreferencePair]:
    """The 1,800 hh-rlhf harmless-base test rows as pairs (the 4 rows with an empty turn are skipped)."""
    from rm.data import load_preference_pairs

    return load_preference_pairs(str(HH_RLHF), skip_invalid=True)


def five_turn_conversations(pairs: list[PreferencePair], count: int, turns: int = 5) -> list[Conversation]:
    """`count` conversations of exactly `turns` user/assistant exchanges, stitched from consecutive real
    hh-rlhf exchanges (so turn lengths follow the real distribution)."""
    exchanges: list[tuple[Message, Message]] = []
    for pair in pairs:
        messages = pair.chosen.messages
        exchanges += [(messages[i], messages[i + 1]) for i in range(0, len(messages) - 1, 2)]
    conversations = []
    for start in range(0, count * turns, turns):
        chunk = exchanges[start:start + turns]
        conversations.append(Conversation([m for exchange in chunk for m in exchange]))
    return conversations
