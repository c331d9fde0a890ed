"""RM judge: prefer the conversation with the higher reward-model score; a difference within `tie_margin` is a tie."""

from __future__ import annotations

from typing import Mapping, Sequence

from chat.backends.base import ChatBackend
from chat.conversation import Conversation
from chat.errors import ConfigError
from judge.base import JUDGES, Grade, Verdict, judged_reply_length, through_turn
from judge.config import JudgeConfig
from rm.scorer import ConversationScorer, LockedScorer, load_reward_model


@JUDGES.register("rm", "reward model judge: the higher RM score wins, |difference| <= tie_margin is a tie")
class RMJudge:
    """Judges with a reward model. Scoring runs in a worker thread, one batch at a time."""

    def __init__(self, model: ConversationScorer, tie_margin: float = 0.0, name: str = "rm"):
        if tie_margin < 0:
            raise ConfigError(f"tie_margin: expected >= 0, got {tie_margin}")
        self.scorer = LockedScorer(model, name)
        self.tie_margin = tie_margin
        self.name = name

    @classmethod
    def from_config(cls, config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> "RMJudge":
        if not config.rm:
            raise ConfigError("rm: the rm judge needs a reward model path (--rm PATH or `rm:` in the config)")
        return cls(load_reward_model(config.rm, config.device), config.tie_margin, name=f"rm:{config.rm}")

    def verdict(self, score_a: float, score_b: float, length_a: int, length_b: int) -> Verdict:
        margin = score_a - score_b
        winner = "tie" if abs(margin) <= self.tie_margin else ("A" if margin > 0 else "B")
        return Verdict(winner, {"score_a": score_a, "score_b": score_b, "margin": margin,
                                "tie_margin": self.tie_margin, "len_a": length_a, "len_b": length_b})

    async def judge_pairs(self, pairs: Sequence[tuple[Conversation, Conversation]], turn: int | None = None,
                          references: Sequence[str | None] | None = None) -> list[Verdict]:
        """All pairs scored in one batch (the RM sorts by length inside)."""
        shown = [through_turn(c, turn) for pair in pairs for c in pair]
        scores = await self.scorer.score(shown)
        return [self.verdict(scores[2 * i], scores[2 * i + 1], judged_reply_length(a, turn), judged_reply_length(b, turn))
                for i, (a, b) in enumerate(pairs)]

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        (verdict,) = await self.judge_pairs([(a, b)], turn)
        return verdict

    async def grade(self, conversation: Conversation, turn: int | None = None,
                    reference: str | None = None) -> Grade:
        (score,) = await self.scorer.score([through_turn(conversation, turn)])
        return Grade(score, {"scale": "reward"})
