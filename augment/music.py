"""MUSIC: one multi-turn contrastive preference pair from one seed (docs/methods.md, MUSIC)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from augment.config import MusicConfig
from augment.prompts import PROMPT_VERSION
from augment.seeds import Seed
from augment.turns import MusicBackends, TurnWriter, build_pair, check_length
from chat.agents import StepFailed, derive_seed
from chat.conversation import Message, PreferencePair
from chat.gather import gather_or_cancel
from chat.user_simulator import USER_SIMULATOR_VERSION


@dataclass
class PairResult:
    """The outcome of one seed: a kept pair, or the filter that dropped it (with its reason)."""

    seed_id: str
    divergence_turn: int
    usage: dict[str, Any]
    pair: PreferencePair | None = None
    reason: str | None = None
    detail: str = ""
    swaps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.pair is not None


def music_pair_id(seed_id: str) -> str:
    """The id of the pair grown from a seed (distinct from the seed's own id, so both can be mixed)."""
    return f"music-{seed_id}"


def draw_divergence_turn(config: MusicConfig, first_turn: int, rng: random.Random) -> int:
    """d: uniform in first_turn..T, fixed, or T (the final-turn-only ablation). docs/methods.md, MUSIC step 2."""
    if config.divergence == "fixed":
        return max(int(config.divergence_turn or first_turn), first_turn)
    if config.divergence == "final":
        return config.turns
    return rng.randint(first_turn, config.turns)


async def synthesize_pair(seed: Seed, backends: MusicBackends, config: MusicConfig) -> PairResult:
    """Grow a seed into a chosen and a rejected conversation of `config.turns` user turns.

    docs/methods.md, MUSIC steps 2-6.

    Both branches share one history until the divergence turn d. From d on, the chosen assistant
    answers normally while the rejected one answers a silently swapped, related instruction (at every
    turn >= d, or only at d); each branch's simulated user continues from that branch's own history,
    so user turns differ after d too. Any filter failure returns a dropped result with its reason.
    """
    item_seed = derive_seed(config.seed, seed.id)
    d = draw_divergence_turn(config, seed.turns, random.Random(item_seed))
    write = TurnWriter(backends, config, item_seed)
    chosen: list[Message] = list(seed.messages)
    rejected = chosen                                    # one shared history until the branches diverge
    shared_messages = len(seed.messages)                 # messages both branches hold before d's answers
    swaps: list[dict[str, Any]] = []
    try:
        for turn in range(seed.turns, config.turns + 1):
            if turn > seed.turns:                        # step 5: the simulated user writes the next turn
                if turn <= d:
                    chosen = rejected = [*chosen, await write.user_turn(chosen, turn, "shared")]
                else:                                    # ... from each branch's own history after d
                    chosen_user, rejected_user = await gather_or_cancel(
                        write.user_turn(chosen, turn, "chosen"), write.user_turn(rejected, turn, "rejected"))
                    chosen, rejected = [*chosen, chosen_user], [*rejected, rejected_user]
            if turn < d:                                 # before d: one normal answer for both branches
                chosen = rejected = [*chosen, await write.assistant_turn(chosen, turn, "shared")]
            elif turn == d and config.reuse_seed_rejected and seed.rejected_answer and d == seed.turns:
                shared_messages = len(chosen)            # d is the seed's own contrast: reuse its responses
                swaps.append({"turn": d, "original": chosen[-1].content, "swapped": None})
                chosen = [*chosen, Message("assistant", seed.chosen_answer or "")]
                rejected = [*rejected, Message("assistant", seed.rejected_answer)]
            else:                                        # steps 3-4: normal answer vs swapped instruction
                if turn == d:
                    shared_messages = len(chosen)
                contrast_now = turn == d or config.contrast_scope == "from_divergence"
                if contrast_now:
                    chosen_answer, (rejected_answer, swap) = await gather_or_cancel(
                        write.assistant_turn(chosen, turn, "chosen"), write.contrastive_turn(rejected, turn))
                    swaps.append({"turn": turn, "original": rejected[-1].content,
                                  "swapped": swap.swapped_instruction})
                else:
                    chosen_answer, rejected_answer = await gather_or_cancel(
                        write.assistant_turn(chosen, turn, "chosen"), write.assistant_turn(rejected, turn, "rejected"))
                chosen, rejected = [*chosen, chosen_answer], [*rejected, rejected_answer]
            check_length(chosen, rejected, config.max_conversation_tokens)
        meta = {"source_id": seed.id, "divergence_turn": d, "turns": config.turns, "swaps": swaps,
                "simulator": backends.names(), "prompt_version": PROMPT_VERSION, "user_simulator_version": USER_SIMULATOR_VERSION,
                "usage": write.usage.to_dict()}
        pair = build_pair(chosen, rejected, shared_messages, music_pair_id(seed.id), meta)
    except StepFailed as dropped:  # PairDropped, or a step that never parsed
        return PairResult(seed.id, d, write.usage.to_dict(), reason=dropped.reason, detail=dropped.detail, swaps=swaps)
    return PairResult(seed.id, d, write.usage.to_dict(), pair=pair, swaps=swaps)
