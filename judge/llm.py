"""LLM judges: pairwise (both orders, multi-turn and reference-guided variants) and 1-10 single grading.

docs/methods.md, Judge steps 1-5 (MT-Bench / FastChat, MT-Bench-101). Each agent step is a pair of
pure functions, `format_*_input(...) -> messages` and a `parse_*` function raising VerdictParseError,
wired by `ask_with_reasks`, which re-asks a bounded number of times (the re-ask constrained to a JSON
schema) and otherwise reports the verdict as unparseable (None): it is counted, never guessed.

Verdict modes: `text` reads the verdict out of the reply; `logprob` asks for one token and reads the
probabilities of the candidate tokens at that position (judge/logprob.py), both orders averaged.
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
from chat.pairwise import SWAP, combine_orders
from judge.base import JUDGES, Grade, Verdict, judged_reply_length, through_turn
from judge.config import VERDICT_MODES, JudgeConfig
from judge.logprob import (GRADE_TOKENS, PAIRWISE_TOKENS, TOP_LOGPROBS, average_orders, candidate_distribution,
                           expected_grade, first_position_top, pick_winner, swap_sides)
from judge.parsing import PAIRWISE_VERDICT_FORMAT, RATING_FORMAT, parse_pairwise_verdict, parse_rating
from judge.templates import DEFAULT_PROMPT_VERSION, numbered_messages, render
from judge.user_prompts import (JudgePrompt, load_judge_prompt, pairwise_values, render_messages, single_values,
                                verdict_parser)

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
                          version: str = DEFAULT_PROMPT_VERSION, verdict_mode: str = "text") -> list[Message]:
    """Messages asking which of a (shown as assistant A) and b (shown as B) is better.

    Single-turn pairs show the question and the two answers; anything else shows both whole
    conversations, judged on user turn `turn` or (None) on the whole conversation. `reference`
    switches on the reference-guided wording (math, reasoning, coding). `verdict_mode` "logprob"
    asks for the verdict as one letter (A, B, or C for a tie) with no explanation.
    """
    _require_answered(a, "A")
    _require_answered(b, "B")
    system = render(version, "pairwise_system", reference=reference, verdict_mode=verdict_mode)
    if is_single_turn_pair(a, b) and turn in (None, 1):
        user = render(version, "pairwise_single_turn", question=_first_user(a), answer_a=a.messages[-1].content,
                      answer_b=b.messages[-1].content, reference=reference, verdict_mode=verdict_mode)
    else:
        shown_a = through_turn(a, turn) if turn is not None else a
        shown_b = through_turn(b, turn) if turn is not None else b
        user = render(version, "pairwise_multi_turn", conversation_a=numbered_messages(shown_a),
                      conversation_b=numbered_messages(shown_b), turn=turn, reference=reference,
                      verdict_mode=verdict_mode)
    return [Message("system", system), Message("user", user)]


def format_grade_input(conversation: Conversation, turn: int | None = None, reference: str | None = None,
                       version: str = DEFAULT_PROMPT_VERSION, verdict_mode: str = "text") -> list[Message]:
    """Messages asking for a 1-10 rating of the reply in user turn `turn` (default: the last turn),
    with the history before it shown for multi-turn conversations (MT-Bench-101 style). `verdict_mode`
    "logprob" asks for one digit 0-9 instead (mapped to 1-10 by judge/logprob.py)."""
    _require_answered(conversation, "to grade")
    turn = turn or conversation.turns
    shown = through_turn(conversation, turn)
    system = render(version, "grade_system", reference=reference, verdict_mode=verdict_mode)
    if shown.turns == 1:
        user = render(version, "grade_single_turn", question=_first_user(shown), answer=shown.messages[-1].content,
                      reference=reference, verdict_mode=verdict_mode)
    else:
        user = render(version, "grade_turn", conversation=numbered_messages(shown), turn=turn, reference=reference,
                      verdict_mode=verdict_mode)
    return [Message("system", system), Message("user", user)]


def format_reask(kind: str, version: str = DEFAULT_PROMPT_VERSION) -> str:
    return render(version, f"{kind}_reask")


async def ask_with_reasks(backend: ChatBackend, messages: list[Message], parse: Callable[[str], Any], reask: str, *,
                          max_reasks: int = 1, max_tokens: int = 512, temperature: float = 0.0,
                          seed: int | None = 0, reask_format: dict[str, Any] | None = None) -> AskResult:
    """Ask, parse; on VerdictParseError show the judge the whole exchange so far, its reply and `reask`,
    at most `max_reasks` times, every attempt with the same seed. A re-ask asks for JSON and is sent with
    `reask_format` (a json_schema response_format). Unparseable stays None, never guessed."""
    async def send(conversation: list[Message], attempt: int) -> Completion:
        return await backend.chat(conversation, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                  response_format=reask_format if attempt > 0 else None)

    result = await ask_until_parsed(send, messages, parse,
                                    lambda sent, reply, error: reask_messages(sent, reply or "(no reply)", reask),
                                    max_reasks=max_reasks)
    if not result.parsed:
        logger.debug("unparseable after %d attempts: %s", len(result.replies), result.errors[-1])
    return result


# ----------------------------------------------------------------------------- judges

async def ask_first_token(backend: ChatBackend, messages: list[Message], seed: int | None) -> Completion:
    """One greedy token with its top alternatives (logprob verdicts, judge/logprob.py)."""
    return await backend.chat(messages, temperature=0.0, max_tokens=1, seed=seed, logprobs=TOP_LOGPROBS)


@dataclass
class LLMOptions:
    """Generation and verdict options shared by the LLM judges (see JudgeConfig for each field)."""

    prompt_version: str = DEFAULT_PROMPT_VERSION
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = 0
    max_reasks: int = 1
    verdict_mode: str = "text"
    tie_margin: float = 0.0
    prompt: JudgePrompt | None = None

    def __post_init__(self) -> None:
        if self.verdict_mode not in VERDICT_MODES:
            raise ConfigError(f"verdict_mode: expected one of {', '.join(VERDICT_MODES)}, got {self.verdict_mode!r}")
        if self.tie_margin < 0:
            raise ConfigError(f"tie_margin: expected >= 0, got {self.tie_margin}")
        if self.prompt is not None and self.verdict_mode != "text":
            raise ConfigError(f"verdict_mode: a prompt file ({self.prompt.name}) asks for its own output_format "
                              f"{self.prompt.output_format}: use --verdict-mode text")

    @classmethod
    def from_config(cls, config: JudgeConfig) -> "LLMOptions":
        if config.prompt_name and not config.prompt_file:
            raise ConfigError("prompt_name: needs --prompt-file (FastChat's judge_prompts.jsonl is not shipped)")
        prompt = load_judge_prompt(config.prompt_file, config.prompt_name) if config.prompt_file else None
        return cls(config.prompt_version, config.max_tokens, config.temperature, config.seed, config.max_reasks,
                   config.verdict_mode, config.tie_margin, prompt)

    @property
    def version_id(self) -> str:
        """Prompt version (or the user prompt's name) and verdict mode, e.g. `v1:logprob`, `pair-v2:text`:
        judges differing in either never share a name."""
        return f"{self.prompt.name if self.prompt else self.prompt_version}:{self.verdict_mode}"

    def require_prompt_type(self, judge_type: str, judge: str) -> None:
        if self.prompt is not None and self.prompt.type != judge_type:
            raise ConfigError(f"prompt_name: {self.prompt.name} is a {self.prompt.type} prompt; the {judge} judge needs "
                              f"a {judge_type} one")


def reference_list(reference: str | list[str] | None) -> list[str] | None:
    """A judge call's reference: one answer, or (MT-Bench) one per turn, as a list."""
    if reference is None:
        return None
    return [reference] if isinstance(reference, str) else list(reference)


def first_reference(reference: str | list[str] | None) -> str | None:
    references = reference_list(reference)
    return references[0] if references else None


def _backend_name(backend: ChatBackend) -> str:
    return getattr(backend, "name", "llm")


def _judge_backend(config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> ChatBackend:
    if config.backend_role not in backends:
        raise ConfigError(f"backends.{config.backend_role}: the {config.judge} judge needs a backend with this role "
                          f"(configured: {', '.join(backends) or 'none'})")
    return backends[config.backend_role]


@JUDGES.register("llm-pairwise", "LLM pairwise judge: A / B / tie, both orders (disagreement = tie), "
                                 "multi-turn and reference-guided variants")
class LLMPairwiseJudge:
    """Compares two conversations with an LLM in both presentation orders (docs/methods.md, Judge step 3)."""

    def __init__(self, backend: ChatBackend, options: LLMOptions | None = None):
        self.backend = backend
        self.options = options or LLMOptions()
        self.options.require_prompt_type("pairwise", "llm-pairwise")
        self.name = f"llm-pairwise:{_backend_name(backend)}:{self.options.version_id}"

    @classmethod
    def from_config(cls, config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> "LLMPairwiseJudge":
        return cls(_judge_backend(config, backends), LLMOptions.from_config(config))

    async def judge_order(self, first: Conversation, second: Conversation, turn: int | None,
                          reference: str | None) -> AskResult:
        """One presentation order: `first` shown as A. The value is in shown names. With a user prompt
        (judge/user_prompts.py) its template builds the messages and its output_format parses the reply."""
        o = self.options
        parse: Callable[[str], Any] = parse_pairwise_verdict
        if o.prompt is not None:
            messages = render_messages(o.prompt, pairwise_values(o.prompt, first, second, turn,
                                                                 reference_list(reference)))
            parse = verdict_parser(o.prompt)
        else:
            messages = format_pairwise_input(first, second, turn, first_reference(reference), o.prompt_version)
        return await ask_with_reasks(self.backend, messages, parse,
                                     format_reask("pairwise", o.prompt_version), max_reasks=o.max_reasks,
                                     max_tokens=o.max_tokens, temperature=o.temperature, seed=o.seed,
                                     reask_format=PAIRWISE_VERDICT_FORMAT)

    async def order_probabilities(self, first: Conversation, second: Conversation, turn: int | None,
                                  reference: str | None) -> tuple[dict[str, float] | None, float, str]:
        """One presentation order in logprob mode: (P(A), P(B), P(tie) in shown names or None when no
        candidate token is among the top alternatives, the candidates' raw probability mass, the token)."""
        messages = format_pairwise_input(first, second, turn, first_reference(reference), self.options.prompt_version,
                                         "logprob")
        completion = await ask_first_token(self.backend, messages, self.options.seed)
        probabilities, mass = candidate_distribution(first_position_top(completion, _backend_name(self.backend)),
                                                     PAIRWISE_TOKENS)
        return probabilities, mass, completion.text

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        if self.options.verdict_mode == "logprob":
            winner, detail = await self._logprob_verdict(a, b, turn, reference)
        else:
            winner, detail = await self._text_verdict(a, b, turn, reference)
        variant = f"prompt:{self.options.prompt.name}" if self.options.prompt is not None else (
            "single-turn" if is_single_turn_pair(a, b) and turn in (None, 1) else "multi-turn")
        detail.update({
            "variant": variant + ("+reference" if reference else ""),
            "prompt_version": self.options.prompt_version, "verdict_mode": self.options.verdict_mode,
            "len_a": judged_reply_length(a, turn), "len_b": judged_reply_length(b, turn),
        })
        return Verdict(winner, detail)

    async def _text_verdict(self, a: Conversation, b: Conversation, turn: int | None,
                            reference: str | None) -> tuple[str | None, dict[str, Any]]:
        forward, backward = await gather_or_cancel(self.judge_order(a, b, turn, reference),
                                                 self.judge_order(b, a, turn, reference))
        orders = {"AB": forward.value, "BA": SWAP[backward.value]}
        detail = {
            "orders": orders,
            "unparseable_orders": sum(1 for v in orders.values() if v is None),
            "reasks": forward.reasks + backward.reasks,
            "replies": {"AB": forward.replies, "BA": backward.replies},
            "parse_errors": {"AB": forward.errors, "BA": backward.errors},
        }
        return combine_orders(orders["AB"], orders["BA"]), detail

    async def _logprob_verdict(self, a: Conversation, b: Conversation, turn: int | None,
                               reference: str | None) -> tuple[str | None, dict[str, Any]]:
        """Both orders' distributions in the original names, their mean, and the mean's verdict (P(A) vs P(B),
        a tie within `tie_margin`: `pick_winner`); each order's own verdict goes into `orders` for position
        consistency. A pair with an order that produced no candidate token is unparseable: one order alone
        would keep its position bias."""
        (forward, mass_ab, token_ab), (backward, mass_ba, token_ba) = await gather_or_cancel(
            self.order_probabilities(a, b, turn, reference), self.order_probabilities(b, a, turn, reference))
        probabilities = {"AB": forward, "BA": swap_sides(backward) if backward is not None else None}
        margin = self.options.tie_margin
        orders = {key: pick_winner(p, margin) if p is not None else None for key, p in probabilities.items()}
        mean = None
        if probabilities["AB"] is not None and probabilities["BA"] is not None:
            mean = average_orders(probabilities["AB"], probabilities["BA"])
        detail = {
            "orders": orders,
            "unparseable_orders": sum(1 for v in orders.values() if v is None),
            "reasks": 0,
            "probabilities": {**probabilities, "mean": mean},
            "candidate_mass": {"AB": mass_ab, "BA": mass_ba},
            "replies": {"AB": [token_ab], "BA": [token_ba]},
            "tie_margin": margin,
        }
        return (pick_winner(mean, margin) if mean is not None else None), detail

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
        self.options.require_prompt_type("single", "llm-grade")
        self.name = f"llm-grade:{_backend_name(backend)}:{self.options.version_id}"

    @classmethod
    def from_config(cls, config: JudgeConfig, backends: Mapping[str, ChatBackend]) -> "LLMGradeJudge":
        return cls(_judge_backend(config, backends), LLMOptions.from_config(config), per_turn=config.per_turn)

    async def grade_turn(self, conversation: Conversation, turn: int,
                         reference: str | list[str] | None = None) -> AskResult:
        o = self.options
        parse: Callable[[str], Any] = parse_rating
        if o.prompt is not None:
            messages = render_messages(o.prompt, single_values(o.prompt, conversation, turn, reference_list(reference)))
            parse = verdict_parser(o.prompt)
        else:
            messages = format_grade_input(conversation, turn, first_reference(reference), o.prompt_version)
        return await ask_with_reasks(self.backend, messages, parse, format_reask("grade", o.prompt_version),
                                     max_reasks=o.max_reasks, max_tokens=o.max_tokens, temperature=o.temperature,
                                     seed=o.seed, reask_format=RATING_FORMAT)

    async def grade_turn_logprob(self, conversation: Conversation, turn: int,
                                 reference: str | None = None) -> dict[str, Any]:
        """Logprob mode: the expected grade over 1-10 from the first token's digit distribution (digits 0-9
        asked, grade = digit + 1); `value` None when no digit is among the top alternatives."""
        messages = format_grade_input(conversation, turn, first_reference(reference), self.options.prompt_version,
                                      "logprob")
        completion = await ask_first_token(self.backend, messages, self.options.seed)
        distribution, mass = candidate_distribution(
            first_position_top(completion, _backend_name(self.backend)), GRADE_TOKENS)
        return {"value": expected_grade(distribution) if distribution is not None else None,
                "distribution": {str(g): p for g, p in sorted(distribution.items())} if distribution else None,
                "mass": mass, "reply": completion.text}

    async def grade(self, conversation: Conversation, turn: int | None = None,
                    reference: str | None = None) -> Grade:
        """Grade of turn `turn`; for None, of the whole dialogue: the minimum over every turn's grade
        when `per_turn` (MT-Bench-101; unparseable if any turn is), else of the final turn."""
        _require_answered(conversation, "to grade")
        if self.options.prompt is not None and self.options.prompt.multi_turn:
            turns = [2]         # a two-turn prompt judges the second turn (FastChat's multi-turn judgment)
        elif turn is not None or not self.per_turn or conversation.turns == 1:
            turns = [turn or conversation.turns]
        else:
            turns = list(range(1, conversation.turns + 1))
        if self.options.verdict_mode == "logprob":
            found = await gather_or_cancel(*(self.grade_turn_logprob(conversation, t, reference) for t in turns))
            per_turn = [r["value"] for r in found]
            detail: dict[str, Any] = {"reasks": 0, "replies": [[r["reply"]] for r in found],
                                      "distributions": [r["distribution"] for r in found],
                                      "candidate_mass": [r["mass"] for r in found]}
        else:
            results = await gather_or_cancel(*(self.grade_turn(conversation, t, reference) for t in turns))
            per_turn = [r.value for r in results]
            detail = {"reasks": sum(r.reasks for r in results), "replies": [r.replies for r in results],
                      "parse_errors": [r.errors for r in results]}
        score = None if any(v is None for v in per_turn) else min(per_turn)
        detail.update({"turns": turns, "per_turn": per_turn, "unparseable_turns": sum(1 for v in per_turn if v is None),
                       "prompt_version": self.options.prompt_version, "verdict_mode": self.options.verdict_mode,
                       "aggregate": "min" if len(turns) > 1 else "single"})
        return Grade(score, detail)

    async def judge_pair(self, a: Conversation, b: Conversation, turn: int | None = None,
                         reference: str | None = None) -> Verdict:
        grade_a, grade_b = await gather_or_cancel(self.grade(a, turn, reference), self.grade(b, turn, reference))
        if grade_a.score is None or grade_b.score is None:
            winner = None
        elif abs(grade_a.score - grade_b.score) <= self.options.tie_margin:
            winner = "tie"
        else:
            winner = "A" if grade_a.score > grade_b.score else "B"
        return Verdict(winner, {"score_a": grade_a.score, "score_b": grade_b.score, "grade_a": grade_a.detail,
                                "grade_b": grade_b.detail, "verdict_mode": self.options.verdict_mode,
                                "tie_margin": self.options.tie_margin, "len_a": judged_reply_length(a, turn),
                                "len_b": judged_reply_length(b, turn)})
