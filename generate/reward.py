"""The reward model as the generators use it: async scoring in a worker thread, one call at a time."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol, Sequence

from chat.conversation import Conversation


class TurnScorer(Protocol):
    """What the generators need of a reward model (rm.model.RewardModel satisfies it)."""

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        ...

    def score_turns(self, conversation: Conversation) -> list[float]:
        ...


def load_reward_model(path: str, device: str | None = None) -> Any:
    """rm.model.RewardModel.load(path) (imported here: generate runs without torch until an RM is used)."""
    from rm.model import RewardModel

    return RewardModel.load(path, device=device)


class AsyncRewardScorer:
    """Runs the RM's synchronous CPU/GPU scoring via `asyncio.to_thread`, serialised by a lock."""

    def __init__(self, model: TurnScorer, name: str = "rm"):
        self.model = model
        self.name = name
        self._lock = threading.Lock()

    def _score(self, conversations: list[Conversation]) -> list[float]:
        with self._lock:
            return [float(value) for value in self.model.score(conversations)]

    def _score_turns(self, conversation: Conversation) -> list[float]:
        with self._lock:
            return [float(value) for value in self.model.score_turns(conversation)]

    async def score(self, conversations: Sequence[Conversation]) -> list[float]:
        """Reward of each whole conversation."""
        return await asyncio.to_thread(self._score, list(conversations))

    async def score_turns(self, conversation: Conversation) -> list[float]:
        """Reward after every assistant turn of one conversation."""
        return await asyncio.to_thread(self._score_turns, conversation)
