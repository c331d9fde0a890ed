"""CoEvol: responses refined by debate, advice, edit and judgement, kept only when better (docs/methods.md, CoEvol)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Mapping, Sequence, TypeVar

from chat.agents import StepCaller, derive_seed
from chat.backends.base import ChatBackend
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.filters import PARSE_FAILURE
from generate.agents import DEGENERATE_TEXT, StepFailed, ask_step, check_degenerate, format_reask, word_count
from generate.coevol.config import CoevolConfig
from generate.coevol.steps import (CRITICAL, JUDGE_FORMAT, NEW, OLD, POSITIVE, TIE, DebateTurn, advisor_format,
                                   context_window, format_advisor_input, format_debater_input, format_editor_input,
                                   format_free_debate_input, format_judge_input, merge_verdicts, order_preferences,
                                   parse_advisor_output, parse_editor_output, parse_judge_output, parse_review_output)
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls
from rm.scorer import LockedScorer

T = TypeVar("T")

#: Why the refinement of a turn stopped (`degenerate_text`: a generated text failed the shared filter;
#: `truncated`: the edit was cut at max_tokens or is over the word budget).
NOT_BETTER, NO_SUGGESTIONS, TRUNCATED, MAX_ITERATIONS = "not_better", "no_suggestions", "truncated", "max_iterations"
STOP_REASONS = (NOT_BETTER, NO_SUGGESTIONS, TRUNCATED, PARSE_FAILURE, DEGENERATE_TEXT, MAX_ITERATIONS)


@dataclass
class CoevolBackends:
    """The backend of each agent."""

    positive: ChatBackend
    critical: ChatBackend
    advisor: ChatBackend
    editor: ChatBackend
    judge: ChatBackend | None

    @classmethod
    def from_roles(cls, backends: Mapping[str, ChatBackend], llm_judge: bool = True) -> "CoevolBackends":
        def pick(*roles: str) -> ChatBackend:
            for role in (*roles, "default"):
                if role in backends:
                    return backends[role]
            raise ConfigError(f"backends: no entry for {' or '.join(roles)}")

        return cls(pick("positive", "debater"), pick("critical", "debater"), pick("advisor"), pick("editor"),
                   pick("judge") if llm_judge else None)

    def names(self) -> dict[str, Any]:
        return {role: getattr(self, role).name for role in ("positive", "critical", "advisor", "editor", "judge")
                if getattr(self, role) is not None}


@dataclass
class TurnRefinement:
    """One assistant turn's refinement: every iteration's debate, suggestions, edit and verdict."""

    turn: int
    original: str
    final: str
    stop_reason: str
    iterations: list[dict[str, Any]] = field(default_factory=list)
    rm_before: float | None = None
    rm_after: float | None = None

    @property
    def accepted(self) -> int:
        return sum(bool(iteration.get("accepted")) for iteration in self.iterations)

    def accepted_iterations(self) -> list[dict[str, Any]]:
        return [iteration for iteration in self.iterations if iteration.get("accepted")]

    def accepted_responses(self) -> list[str]:
        """The original, then the response after each accepted edit (the last one is `final`)."""
        return [self.original, *(iteration["edited"] for iteration in self.accepted_iterations())]

    def add_rm_scores(self, scores: Sequence[float]) -> None:
        """`scores` of `accepted_responses()`: the turn's scores before and after, and on each accepted
        iteration the score before and after its edit (docs/methods.md, CoEvol step 6)."""
        self.rm_before, self.rm_after = scores[0], scores[-1]
        for iteration, before, after in zip(self.accepted_iterations(), scores, scores[1:]):
            iteration.update(rm_before=before, rm_after=after, rm_delta=after - before)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"turn": self.turn, "changed": self.final != self.original, "accepted": self.accepted,
                               "stop_reason": self.stop_reason, "original": self.original,
                               "iterations": self.iterations}
        if self.rm_before is not None:
            row.update(rm_before=self.rm_before, rm_after=self.rm_after, rm_delta=self.rm_after - self.rm_before)
        return row


async def both(first: Awaitable[T], second: Awaitable[T]) -> tuple[T, T]:
    """Two steps at once; both finish (none is left running) before the first failure, if any, is raised."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]


def _scored_conversation(context: Sequence[Message], instruction: str, response: str) -> Conversation:
    return Conversation([*context, Message("user", instruction), Message("assistant", response)])


async def ask_editor(step: StepCaller, backend: ChatBackend, request: Sequence[Message],
                     label: str) -> tuple[str, str]:
    """docs/methods.md, CoEvol step 4: the rewritten response and the finish_reason of the reply it came from;
    StepFailed("parse_failure") after `step.max_reasks` re-asks."""
    result = await step.ask("editor", backend, request, parse_editor_output, label,
                            lambda _sent, reply, error: format_reask(request, reply, error))
    if not result.parsed:
        raise StepFailed(PARSE_FAILURE, f"{label}: {result.errors[-1]} (after {step.max_reasks} re-asks)")
    return result.value, result.completions[-1].finish_reason


def truncation(edited: str, finish_reason: str, config: CoevolConfig) -> str | None:
    """Why an edit is over the rewrite budget (docs/methods.md, CoEvol step 4): cut at max_tokens (finish_reason
    "length") or longer than `max_edit_words`; None when it is within it."""
    if finish_reason == "length":
        return f"cut at max_tokens ({config.max_tokens})"
    if config.max_edit_words is not None and word_count(edited) > config.max_edit_words:
        return f"{word_count(edited)} words, over the budget of {config.max_edit_words}"
    return None


async def judge_edit(context: Sequence[Message], instruction: str, old: str, new: str, backends: CoevolBackends,
                     config: CoevolConfig, step: StepCaller, rm: LockedScorer | None, label: str) -> dict[str, Any]:
    """docs/methods.md, CoEvol step 5: is `new` better than `old`? LLM judge: both orders, each order's verdict
    and preference recorded, merged by `config.accept_rule` (`merge_verdicts`). RM judge (turnwise addition):
    NEW when its reward beats the old one by more than the margin."""
    if config.judge == "rm":
        old_score, new_score = await rm.score([_scored_conversation(context, instruction, old),
                                               _scored_conversation(context, instruction, new)])
        difference = new_score - old_score
        merged = NEW if difference > config.rm_margin else OLD if difference < -config.rm_margin else TIE
        return {"judge": "rm", "old": old_score, "new": new_score, "difference": difference,
                "margin": config.rm_margin, "merged": merged}
    old_first, new_first = await both(
        ask_step(step, "judge", backends.judge, format_judge_input(context, instruction, old, new),
                 parse_judge_output, f"{label}/judge/old-first", response_format=JUDGE_FORMAT),
        ask_step(step, "judge", backends.judge, format_judge_input(context, instruction, new, old),
                 parse_judge_output, f"{label}/judge/new-first", response_format=JUDGE_FORMAT))
    prefers = order_preferences(old_first, new_first)
    return {"judge": "llm", "old_first": old_first, "new_first": new_first,
            "prefers": {"old_first": prefers[0], "new_first": prefers[1]}, "accept_rule": config.accept_rule,
            "merged": merge_verdicts(old_first, new_first, config.accept_rule)}


async def refine_response(context: Sequence[Message], instruction: str, response: str, backends: CoevolBackends,
                          config: CoevolConfig, step: StepCaller, rm: LockedScorer | None = None, *,
                          turn: int = 1) -> TurnRefinement:
    """CoEvol on one response (docs/methods.md, CoEvol steps 1-5), at most `config.iterations` times:
    1. debate stage 1: the positive and the critical debater review the response from fixed positions;
    2. debate stage 2: each sees the other's stage-1 review and gives an updated one (free debate);
    3. advisor: at most `max_suggestions` editing suggestions from the 4-review transcript;
    4. editor: rewrites the response with the suggestions it can act on; an edit over the rewrite budget
       (`truncation`) is never judged nor accepted (stop reason `truncated`);
    5. judge: old vs new; the edit is kept when the merged verdict prefers it, else stop with the previous
       response.
    Every agent sees the conversation window `context`. The advisor's suggestions and the judge's verdicts are
    JSON objects of their schemas. A step that never parses (after its re-asks) also stops, keeping the previous
    response, and so does a review, suggestion or edit that fails the shared degenerate-text filter (stop reason
    `degenerate_text`)."""
    words = config.max_words
    current, iterations, stop_reason = response, [], MAX_ITERATIONS
    for k in range(1, config.iterations + 1):
        label = f"turn{turn}/iter{k}"
        record: dict[str, Any] = {"iteration": k, "accepted": False}
        iterations.append(record)
        try:
            positive_1, critical_1 = await both(*(
                ask_step(step, position, getattr(backends, position),
                         format_debater_input(context, instruction, current, position, words),
                         parse_review_output, f"{label}/{position}/1")
                for position in (POSITIVE, CRITICAL)))
            record["debate"] = [DebateTurn(POSITIVE, 1, positive_1).to_dict(),
                                DebateTurn(CRITICAL, 1, critical_1).to_dict()]
            check_degenerate(f"{label}/debate/1", positive_1, critical_1)
            positive_2, critical_2 = await both(*(
                ask_step(step, position, getattr(backends, position),
                         format_free_debate_input(context, instruction, current, position, own, other, words),
                         parse_review_output, f"{label}/{position}/2")
                for position, own, other in ((POSITIVE, positive_1, critical_1), (CRITICAL, critical_1, positive_1))))
            debate = [DebateTurn(POSITIVE, 1, positive_1), DebateTurn(CRITICAL, 1, critical_1),
                      DebateTurn(POSITIVE, 2, positive_2), DebateTurn(CRITICAL, 2, critical_2)]
            record["debate"] = [turn_.to_dict() for turn_ in debate]
            check_degenerate(f"{label}/debate/2", positive_2, critical_2)
            suggestions = await ask_step(
                step, "advisor", backends.advisor, format_advisor_input(context, instruction, current, debate,
                                                                        config.max_suggestions),
                partial(parse_advisor_output, max_suggestions=config.max_suggestions), f"{label}/advisor",
                response_format=advisor_format(config.max_suggestions))
            check_degenerate(f"{label}/advisor", *suggestions)
            record["suggestions"] = suggestions
            if not suggestions:
                stop_reason = NO_SUGGESTIONS
                break
            edited, finish_reason = await ask_editor(
                step, backends.editor,
                format_editor_input(context, instruction, current, suggestions, config.max_edit_words),
                f"{label}/editor")
            record.update(edited=edited, edit_finish_reason=finish_reason)
            over_budget = truncation(edited, finish_reason, config)
            if over_budget is not None:
                record[TRUNCATED] = over_budget
                stop_reason = TRUNCATED
                break
            check_degenerate(f"{label}/editor", edited)
            verdict = await judge_edit(context, instruction, current, edited, backends, config, step, rm, label)
        except StepFailed as failed:
            record[failed.reason] = failed.detail
            stop_reason = failed.reason
            break
        record["verdict"] = verdict
        if verdict["merged"] != NEW:
            stop_reason = NOT_BETTER
            break
        record["accepted"] = True
        current = edited
    return TurnRefinement(turn, response, current, stop_reason, iterations)


@dataclass
class CoevolResult:
    """The refined conversation of one input and its per-turn records."""

    conversation: Conversation
    turns: list[TurnRefinement]
    usage: dict[str, Any]
    reasks: int


def refinable_turns(conversation: Conversation) -> list[int]:
    """Indices of the assistant messages that answer a user message."""
    return [i for i in conversation.assistant_indices() if i > 0 and conversation.messages[i - 1].role == "user"]


async def refine_conversation(conversation: Conversation, backends: CoevolBackends, config: CoevolConfig,
                              rm: LockedScorer | None = None) -> CoevolResult:
    """Refine every assistant turn in order (docs/methods.md, CoEvol step 6): each turn sees a window of
    `context_turns` turns, itself and the exchanges before it, already refined, and its refined response
    replaces the original before the next turn. With an RM, the original and every accepted edit are scored in
    the same context window: the turn's scores before and after, and each accepted edit's."""
    step = StepCaller(config.temperature, config.max_tokens, derive_seed(config.seed, conversation.id),
                      config.max_reasks)
    messages = list(conversation.messages)
    turns: list[TurnRefinement] = []
    for number, index in enumerate(refinable_turns(conversation), 1):
        context = context_window(messages[:index - 1], config.context_turns)
        instruction = messages[index - 1].content
        refinement = await refine_response(context, instruction, messages[index].content, backends, config, step,
                                           rm, turn=number)
        if rm is not None:
            refinement.add_rm_scores(await rm.score([_scored_conversation(context, instruction, response)
                                                     for response in refinement.accepted_responses()]))
        messages[index] = Message("assistant", refinement.final)
        turns.append(refinement)
    usage = step.usage.to_dict()
    meta = {**conversation.meta, "generator": "coevol", "source_id": conversation.id,
            "coevol": {"turns": [turn.to_dict() for turn in turns], "judge": config.judge,
                       "agents": backends.names()},
            "prompt_version": PROMPT_VERSION, "reasks": step.reasks, "usage": usage}
    return CoevolResult(Conversation(messages, id=conversation.id, meta=meta), turns, usage, step.reasks)


def calls_per_iteration(config: CoevolConfig) -> int:
    """docs/methods.md, CoEvol steps 1-5: 2 debaters x 2 stages, the advisor, the editor and the judge's 2 orders
    (none with the RM judge)."""
    return 2 + 2 + 1 + 1 + (2 if config.judge == "llm" else 0)


def expected_calls(config: CoevolConfig, conversations: int | None, input_tokens: float) -> ExpectedCalls | None:
    """One iteration per input's first assistant turn (a refinement stops at the first edit it does not accept;
    a truncated edit skips the judge, so fewer); at most `iterations` per turn, each step allowed `max_reasks`
    re-asks. Multi-turn inputs refine every turn, so their real counts are higher. None when the inputs are
    unknown."""
    if conversations is None:
        return None
    per = calls_per_iteration(config)
    return ExpectedCalls(conversations * per, conversations * per * config.iterations * (1 + config.max_reasks),
                         config.max_tokens, input_tokens + 4 * config.max_words,
                         f"coevol {conversations} conversations x {per} calls per turn and iteration "
                         f"(<= {config.iterations} iterations)")
