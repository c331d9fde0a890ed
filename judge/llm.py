"""LLM judges: pairwise (both orders, multi-turn and reference-guided variants) and 1-10 single grading.

PAPERS.md "Judging conventions" (MT-Bench / FastChat, MT-Bench-101). Each agent step is a pair of
pure functions, `format_*_input(...) -> messages` and a `parse_*` function raising VerdictParseError,
wired by `ask_with_reasks`, which re-asks a bounded number of times and otherwise reports the
verdict as unparseable (None): it is counted, never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from chat.agents import AskResult, ask_until_parsed, reask_messages
from chat.backends.base import ChatBackend, Completion
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from judge.base import JUDGES, SWAP, Grade, Verdict, combine_orders, judged_reply_length, through_turn
from judge.config import JudgeConfig
from judge.parsing import parse_pairwise_verdict, parse_rating
from judge.templates import DEFAULT_PROMPT_VERSION, numbered_messages, render

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- pure steps

def _require_answered(conversation: Conversation, name: str) -> None:
    if conversation.messages[-1].role != "assistant":
        raise ValueError(f"conversation {name} ({conversation.id!r}) ends with a user turn: nothing to judge")


def _first_user(conversation: Conversation) -> str:
    return next(m.content for m in conversation.messages if m.role == "user")


def is_single_turn_pair(a: Conversation, b: Conversation) -> bool:
    """Both are one user turn with the same question: the classic single-answer comparison."""
    return a.turns == 1 and b.turns == 1 and _first_user(a) == _first_user(b)


def format_pairwise_input(a: Conversation, b: Conversation, turn: int | None = None, reference: str | None = None,
                          version: str = DEFAULT_PROMPT_VERSION) -> list[Message]:
    """Messages asking which of a (shown as assistant A) and b (shown as B) is better.

    Single-turn pairs show the question and the two answers; anything else shows both whole
    conversations, judged on user turn `turn` or (None) on the whole conversation. `reference`
    switches on the reference-guided wording (math, reasoning, coding).
    """
    _require_answered(a, "A")
    _require_answered(b, "B")
    system = render(version, "pairwise_system", reference=reference)
    if is_single_turn_pair(a, b) and turn in (None, 1):
        user = render(version, "pairwise_single_turn", question=_first_user(a), answer_a=a.messages[-1].content,
                      answer_b=b.messages[-1].content, reference=reference)
    else:
        shown_a = through_turn(a, turn) if turn is not None else a
        shown_b = through_turn(b, turn) if turn is not None else b
        user = render(version, "pairwise_multi_turn", conversation_a=numbered_messages(shown_a),
                      conversation_b=numbered_messages(shown_b), turn=turn, reference=reference)
    return [Message("system", system), Message("user", user)]


def format_grade_input(conversation: Conversation, turn: int | None = None, reference: str | None = None,
                       version: str = DEFAULT_PROMPT_VERSION) -> list[Message]:
    """Messages asking for a 1-10 rating of the reply in user turn `turn` (default: the last turn),
    with the history before it shown for multi-turn conversations (MT-Bench-101 style)."""
    _require_answered(conversation, "to grade")
    turn = turn or conversation.turns
    shown = through_turn(conversation, turn)
    system = render(version, "grade_system", reference=reference)
    if shown.turns == 1:
        user = render(version, "grade_single_turn", question=_first_user(shown), answer=shown.messages[-1].content,
                      reference=reference)
    else:
        user = render(version, "grade_turn", conversation=numbered_messages(shown), turn=turn, reference=reference)
    return [Message("system", system), Message("user", user)]


def format_reask(kind: str, version: str = DEFAULT_PROMPT_VERSION) -> str:
    return render(version, f"{kind}_reask")


async def ask_with_reasks(backend: ChatBackend, messages: list[Message], parse: Callable[[str], Any], reask: str, *,
                          max_reasks: int = 1, max_tokens: int = 512, temperature: float = 0.0,
                          seed: int | None = 0) -> AskResult:
    """Ask, parse; on VerdictParseError show the judge the whole exchange so far, its reply and `reask`,
    at most `max_reasks` times, every attempt with the same seed. Unparseable stays None, never guessed."""
    async def send(conversation: list[Message], attempt: int) -> Completion:
        return await backend.chat(conversation, temperature=temperature, max_tokens=max_tokens, seed=seed)

    result = await ask_until_parsed(send, messages, parse,
                                    lambda sent, reply, error: reask_messages(sent, reply or "(no reply)", reask),
                                    max_reasks=max_reasks)
    if not result.parsed:
        logger.debug("unparseable after %d attempts: %s", len(result.replies), result.errors[-1])
    return result


# ----------------------------------------------------------------------------- judges

@dataclass
class LLMOptions:
    prompt_version: str = DEFAULT_PROMPT_VERSION
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = 0
    max_reasks: int = 1

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "LLMOptions":
        return cls(config.prompt_version, config.max_tokens, config.temperature, config.seed, config.max_reasks)


def _judge_backend(config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> ChatBackend:
    if config.backend_role not in backends:
        raise ConfigError(f"backends.{config.backend_role}: the {config.judge} judge needs a backend with this role "
                          f"(configured: {', '.join(backends) or 'none'})")
    return backends[config.backend_role]


@JUDGES.register("llm-pairwise", "LLM pairwise judge: A / B / tie, both orders (disagreement = tie), "
                                 "multi-turn and reference-guided variants")
class LLMPairwiseJudge:
    """Compares two conversations with an LLM in both presentation orders (PAPERS.md "Judging conventions")."""

    def __init__(self, backend: ChatBackend, options: LLMOptions | None = None):
        self.backend = backend
        self.options = options or LLMOptions()
        self.name = f"llm-pairwise:{getattr(backend, 'name', 'llm')}:{self.options.prompt_version}"

    @classmethod
    def from_config(cls, config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> "LLMPairwiseJudge":
        return cls(_judge_backend(config, backends), LLMOptions.from_config(config))

    async def judge_order(self, first: Conversation, second: Conversation, turn: int | None,
                          reference: str | None) -> AskResult:
        """One presentation order: `first` shown as A. The value is in shown names."""
        o = self.options
        messages = format_pairwise_input(first, second, turn, reference, o.prompt_version)
        return await ask_with_reasks(self.backend, messages, parse_pairwise_verdict,
                                     format_reask("pairwise", o.prompt_version), max_reasks=o.max_reasks,
                                     max_tokens=o.max_tokens, temperature=o.temperature, seed=o.seed)

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        forward, backward = await gather_or_cancel(self.judge_order(a, b, turn, reference),
                                                 self.judge_order(b, a, turn, reference))
        orders = {"AB": forward.value, "BA": SWAP[backward.value]}
        detail = {
            "orders": orders,
            "unparseable_orders": sum(1 for v in orders.values() if v is None),
            "reasks": forward.reasks + backward.reasks,
            "replies": {"AB": forward.replies, "BA": backward.replies},
            "parse_errors": {"AB": forward.errors, "BA": backward.errors},
            "variant": ("single-turn" if is_single_turn_pair(a, b) and turn in (None, 1) else "multi-turn")
                       + ("+reference" if reference else ""),
            "prompt_version": self.options.prompt_version,
            "len_a": judged_reply_length(a, turn), "len_b": judged_reply_length(b, turn),
        }
        return Verdict(combine_orders(orders["AB"], orders["BA"]), detail)

    async def grade(self, conversation: Conversation, turn: int | None = None,
                    reference: str | None = None) -> Grade:
        raise ConfigError("the llm-pairwise judge compares pairs; use the llm-grade judge to grade conversations")


@JUDGES.register("llm-grade", "LLM single-answer grade 1-10; multi-turn dialogues graded per turn, "
                              "score = minimum over turns (MT-Bench-101)")
class LLMGradeJudge:
    """Rates replies 1-10 with an LLM; compares a pair by grading both sides."""

    def __init__(self, backend: ChatBackend, options: LLMOptions | None = None, per_turn: bool = True):
        self.backend = backend
        self.options = options or LLMOptions()
        self.per_turn = per_turn
        self.name = f"llm-grade:{getattr(backend, 'name', 'llm')}:{self.options.prompt_version}"

    @classmethod
    def from_config(cls, config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> "LLMGradeJudge":
        return cls(_judge_backend(config, backends), LLMOptions.from_config(config), per_turn=config.per_turn)

    async def grade_turn(self, conversation: Conversation, turn: int, reference: str | None = None) -> AskResult:
        o = self.options
        messages = format_grade_input(conversation, turn, reference, o.prompt_version)
        return await ask_with_reasks(self.backend, messages, parse_rating, format_reask("grade", o.prompt_version),
                                     max_reasks=o.max_reasks, max_tokens=o.max_tokens, temperature=o.temperature,
                                     seed=o.seed)

    async def grade(self, conversation: Conversation, turn: int | None = None,
                    reference: str | None = None) -> Grade:
        """Grade of turn `turn`; for None, of the whole dialogue: the minimum over every turn's grade
        when `per_turn` (MT-Bench-101; unparseable if any turn is), else of the final turn."""
        _require_answered(conversation, "to grade")
        if turn is not None or not self.per_turn or conversation.turns == 1:
            turns = [turn or conversation.turns]
        else:
            turns = list(range(1, conversation.turns + 1))
        results = await gather_or_cancel(*(self.grade_turn(conversation, t, reference) for t in turns))
        per_turn = [r.value for r in results]
        score = None if any(v is None for v in per_turn) else min(per_turn)
        detail = {"turns": turns, "per_turn": per_turn, "unparseable_turns": sum(1 for v in per_turn if v is None),
                  "reasks": sum(r.reasks for r in results), "replies": [r.replies for r in results],
                  "parse_errors": [r.errors for r in results], "prompt_version": self.options.prompt_version,
                  "aggregate": "min" if len(turns) > 1 else "single"}
        return Grade(score, detail)

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        grade_a, grade_b = await gather_or_cancel(self.grade(a, turn, reference), self.grade(b, turn, reference))
        if grade_a.score is None or grade_b.score is None:
            winner = None
        else:
            winner = "A" if grade_a.score > grade_b.score else "B" if grade_b.score > grade_a.score else "tie"
        return Verdict(winner, {"score_a": grade_a.score, "score_b": grade_b.score, "grade_a": grade_a.detail,
                                "grade_b": grade_b.detail, "len_a": judged_reply_length(a, turn),
                                "len_b": judged_reply_length(b, turn)})
