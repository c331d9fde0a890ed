"""The reward model as one locked, thread-safe async scorer, shared by judge/ and generate/."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from chat.compute_thread import compute, run_compute
from chat.conversation import Conversation


class ConversationScorer(Protocol):
    """What a judge or a filter needs of a reward model (rm.model.RewardModel satisfies it)."""

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        ...


class TurnScorer(ConversationScorer, Protocol):
    """A reward model that also scores after every assistant turn (rm.model.RewardModel satisfies it)."""

    def score_turns(self, conversation: Conversation) -> list[float]:
        ...


def load_reward_model(path: str, device: str | None = None) -> Any:
    """rm.model.RewardModel.load(path) on the compute thread (chat/compute_thread.py; imported here: judge and
    generate run without torch until an RM is used)."""
    from rm.model import RewardModel

    return run_compute(RewardModel.load, path, device=device)


class LockedScorer:
    """Runs the RM's synchronous CPU/GPU scoring on the compute thread (chat/compute_thread.py), serialised by a
    lock."""

    def __init__(self, model: ConversationScorer, name: str = "rm"):
        self.model = model
        self.name = name
        self._lock = threading.Lock()

    def _score(self, conversations: list[Conversation]) -> list[float]:
        with self._lock:
            return [float(value) for value in self.model.score(conversations)]

    def _score_turns(self, conversation: Conversation) -> list[float]:
        with self._lock:
            return [float(value) for value in self.model.score_turns(conversation)]  # type: ignore[attr-defined]

    async def score(self, conversations: Sequence[Conversation]) -> list[float]:
        """Reward of each whole conversation."""
        return await compute(self._score, list(conversations))

    async def score_turns(self, conversation: Conversation) -> list[float]:
        """Reward after every assistant turn of one conversation (the model must be a TurnScorer)."""
        return await compute(self._score_turns, conversation)


def optional_scorer(model: ConversationScorer | None, path: str | None,
                    device: str | None = None) -> LockedScorer | None:
    """`model` behind the lock if given, else the RM loaded from `path` (named by it), else None (no RM)."""
    if model is not None:
        return LockedScorer(model)
    return LockedScorer(load_reward_model(path, device), name=path) if path else None
