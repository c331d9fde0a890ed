"""Review-Instruct: a multi-turn conversation from one seed question by Ask-Respond-Review (docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Mapping

from chat.agents import StepCaller, derive_seed
from chat.backends.base import ChatBackend
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.filters import PARSE_FAILURE
from chat.gather import gather_or_cancel
from generate.agents import StepFailed, ask_step, check_degenerate, format_reask
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls
from generate.review_instruct.config import CHAIRMAN_DECIDES, DIVERSE, ReviewInstructConfig
from generate.review_instruct.steps import (CHAIRMAN_DECISION_FORMAT, CHAIRMAN_FORMAT, NEGATIVE, POSITIVE,
                                            REVIEWER_FORMAT, Review, breadth_or_depth, format_candidate_input,
                                            format_chairman_input, format_reviewer_input, parse_candidate_output,
                                            parse_chairman_decision, parse_chairman_output, parse_reviewer_output)
from generate.seeds import SeedPrompt
from rm.scorer import LockedScorer

#: Why a conversation was dropped (each is a summary counter `dropped_<reason>`), besides the shared
#: parse_failure and degenerate_text.
RM_FILTER = "rm_filter"
TRUNCATED_TURN = "truncated_turn"


@dataclass
class ReviewInstructBackends:
    """The backend of each agent: the candidate, one per reviewer, the chairman."""

    candidate: ChatBackend
    reviewers: list[ChatBackend]
    chairman: ChatBackend

    @classmethod
    def from_roles(cls, backends: Mapping[str, ChatBackend], reviewers: int) -> "ReviewInstructBackends":
        """candidate / reviewer_i (else reviewer) / chairman from a role mapping, each falling back to `default`."""
        def pick(*roles: str) -> ChatBackend:
            for role in roles:
                if role in backends:
                    return backends[role]
            raise ConfigError(f"backends: no entry for {' or '.join(roles)}")

        return cls(pick("candidate", "default"),
                   [pick(f"reviewer_{i}", "reviewer", "default") for i in range(1, reviewers + 1)],
                   pick("chairman", "default"))

    def names(self) -> dict[str, Any]:
        return {"candidate": self.candidate.name, "reviewers": [r.name for r in self.reviewers],
                "chairman": self.chairman.name}


@dataclass(frozen=True)
class ReviewerSeat:
    """One reviewer of the panel: its name, persona (None: the generic reviewer) and sampling temperature."""

    name: str
    persona: str | None
    temperature: float


def reviewer_panel(config: ReviewInstructConfig, backends: ReviewInstructBackends) -> list[ReviewerSeat]:
    """The N reviewers (docs/methods.md, Review-Instruct step 3). A diverse panel gives reviewer i the i-th
    persona and temperature of the config's lists (cycled); when the reviewers run on several distinct backends,
    the backends make them differ and each samples at `temperature`. An identical panel: N generic reviewers at
    `temperature`."""
    several_backends = len({reviewer.cache_identity for reviewer in backends.reviewers}) > 1
    seats = []
    for i in range(len(backends.reviewers)):
        if config.reviewer_panel == DIVERSE:
            persona = config.reviewer_personas[i % len(config.reviewer_personas)]
            temperature = (config.temperature if several_backends
                           else config.reviewer_temperatures[i % len(config.reviewer_temperatures)])
        else:
            persona, temperature = None, config.temperature
        seats.append(ReviewerSeat(f"reviewer_{i + 1}", persona, temperature))
    return seats


@dataclass
class ConversationResult:
    """The outcome of one seed: a kept conversation, or the reason it was dropped."""

    seed_id: str
    usage: dict[str, Any]
    reasks: int
    conversation: Conversation | None = None
    reason: str | None = None
    detail: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.conversation is not None


def review_conversation_id(seed_id: str) -> str:
    """The id of the conversation grown from a seed."""
    return f"review-{seed_id}"


async def rm_review(rm: LockedScorer, history: list[Message], threshold: float) -> Review:
    """The RM as a reviewer: its reward for the latest answer, positive at or above `threshold` (turnwise addition)."""
    score = (await rm.score_turns(Conversation(list(history))))[-1]
    vote = POSITIVE if score >= threshold else NEGATIVE
    return Review("rm", f"reward model score {score:.3f} (threshold {threshold:g})", vote, score)


async def candidate_answer(step: StepCaller, backend: ChatBackend, history: list[Message], max_words: int,
                           label: str) -> str:
    """The Candidate's visible answer to the last question of `history` (docs/methods.md, Review-Instruct step 2);
    StepFailed(parse_failure) after the re-asks, StepFailed(truncated_turn) when the answer that parsed was cut off
    at max_tokens (finish_reason "length")."""
    request = format_candidate_input(history, max_words)
    result = await step.ask("candidate", backend, request, partial(parse_candidate_output, max_words=max_words), label,
                            lambda _sent, reply, error: format_reask(request, reply, error))
    if not result.parsed:
        raise StepFailed(PARSE_FAILURE, f"{label}: {result.errors[-1]} (after {step.max_reasks} re-asks)")
    if result.completions[-1].finish_reason == "length":
        raise StepFailed(TRUNCATED_TURN, f"{label}: the answer was cut off at max_tokens={step.max_tokens}")
    return result.value


async def chairman_question(step: StepCaller, backend: ChatBackend, questions: list[str], answer: str,
                            reviews: list[Review], decision: str | None, max_words: int,
                            label: str) -> tuple[str, str]:
    """(decision, next question) of the Chairman (docs/methods.md, Review-Instruct steps 4-5): with `decision`
    None it reads the reviews and decides breadth or depth itself (CHAIRMAN_DECISION_FORMAT), else it is told
    the direction and asks only (CHAIRMAN_FORMAT)."""
    request = format_chairman_input(questions, answer, reviews, decision, max_words)
    if decision is None:
        return await ask_step(step, "chairman", backend, request,
                              partial(parse_chairman_decision, questions=questions, max_words=max_words), label,
                              response_format=CHAIRMAN_DECISION_FORMAT)
    question = await ask_step(step, "chairman", backend, request,
                              partial(parse_chairman_output, questions=questions, max_words=max_words), label,
                              response_format=CHAIRMAN_FORMAT)
    return decision, question


async def review_instruct_conversation(seed: SeedPrompt, backends: ReviewInstructBackends,
                                       config: ReviewInstructConfig,
                                       rm: LockedScorer | None = None) -> ConversationResult:
    """Grow a seed question into an R-turn conversation (docs/methods.md, Review-Instruct steps 2-6).

    Each round: the Candidate answers the current question (an answer cut off at max_tokens drops the seed as
    `truncated_turn`); each Reviewer of the panel (its own persona and temperature) critiques the answer
    (usefulness, relevance, accuracy, depth, creativity) and votes, the RM too when it reviews; the Chairman
    reads question, answer and reviews, decides breadth or depth itself and asks the next question
    (direction=majority_vote: the votes decide, breadth when most are positive, and the chairman is told).
    Only the visible part of each reply (after its marker) is passed on. Reviews and the chairman's reply are
    JSON objects of their schemas (constrained where the backend can). Every answer, review and question passes
    the shared degenerate-text filter, else the seed is dropped as `degenerate_text`. With an RM filter the
    conversation is kept only if its lowest per-turn reward passes. Per round, meta records the reviews, the
    votes, their majority (`vote_majority`), the `decision` and who made it (`decided_by`).
    """
    words = config.max_words
    step = StepCaller(config.temperature, config.max_tokens, derive_seed(config.seed, seed.id), config.max_reasks)
    panel = reviewer_panel(config, backends) if config.review else []
    # the reviewers share the item's seed and usage; each samples at its own temperature
    reviewer_steps = [replace(step, temperature=seat.temperature) for seat in panel]
    history: list[Message] = list(seed.messages)
    questions = [seed.question]
    rounds: list[dict[str, Any]] = []
    next_question: str | None = None

    def total_reasks() -> int:
        return step.reasks + sum(reviewer_step.reasks for reviewer_step in reviewer_steps)

    try:
        for r in range(1, config.rounds + 1):
            answer = await candidate_answer(step, backends.candidate, history, words, f"candidate/{r}")
            check_degenerate(f"candidate/{r}", answer)
            history.append(Message("assistant", answer))
            reviews: list[Review] = []
            if config.review:
                reviews = list(await gather_or_cancel(*(
                    ask_step(reviewer_step, seat.name, backend,
                             format_reviewer_input(history[:-1], answer, words, seat.persona),
                             partial(parse_reviewer_output, reviewer=seat.name), f"{seat.name}/{r}",
                             response_format=REVIEWER_FORMAT)
                    for seat, reviewer_step, backend in zip(panel, reviewer_steps, backends.reviewers))))
                check_degenerate(f"reviewers/{r}", *(review.text for review in reviews))
                if rm is not None and config.rm_reviewer:
                    reviews.append(await rm_review(rm, history, config.rm_vote_threshold))
            vote_majority = breadth_or_depth([review.vote for review in reviews])
            chairman_decides = config.direction == CHAIRMAN_DECIDES and bool(reviews)
            decision: str | None = None if chairman_decides else vote_majority
            question, question_error = None, None
            if r < config.rounds or config.ask_after_last_round:
                try:
                    decided, asked = await chairman_question(step, backends.chairman, questions, answer, reviews,
                                                             decision, words, f"chairman/{r}")
                    check_degenerate(f"chairman/{r}", asked)
                    decision, question = decided, asked
                except StepFailed as failed:
                    if r < config.rounds:
                        raise
                    # the question after the last round only goes into meta: the finished conversation stays
                    question_error = f"{failed.reason}: {failed.detail}"
            decided_by = None if decision is None or not reviews else config.direction
            rounds.append({"round": r, "reviews": [review.to_dict() for review in reviews],
                           "votes": [review.vote for review in reviews], "vote_majority": vote_majority,
                           "decision": decision, "decided_by": decided_by, "next_question": question,
                           **({"next_question_error": question_error} if question_error else {})})
            if r < config.rounds:
                history.append(Message("user", question))
                questions.append(question)
            else:
                next_question = question
    except StepFailed as failed:
        return ConversationResult(seed.id, step.usage.to_dict(), total_reasks(), reason=failed.reason,
                                  detail=failed.detail, rounds=rounds)
    conversation = Conversation(history, id=review_conversation_id(seed.id))
    meta: dict[str, Any] = {"source_id": seed.id, "generator": "review-instruct", "rounds": rounds,
                            "next_question": next_question, "agents": backends.names(),
                            "reviewers": len(panel), "direction": config.direction,
                            "reviewer_panel": [{"reviewer": seat.name, "persona": seat.persona,
                                                "temperature": seat.temperature, "backend": backend.name}
                                               for seat, backend in zip(panel, backends.reviewers)],
                            "prompt_version": PROMPT_VERSION, "reasks": total_reasks(), "usage": step.usage.to_dict()}
    if rm is not None:
        turn_scores = await rm.score_turns(conversation)
        meta["rm_turn_scores"] = turn_scores
        if config.rm_filter_threshold is not None and min(turn_scores) < config.rm_filter_threshold:
            return ConversationResult(seed.id, step.usage.to_dict(), total_reasks(), reason=RM_FILTER, rounds=rounds,
                                      detail=f"lowest turn reward {min(turn_scores):.3f} < {config.rm_filter_threshold}")
    conversation.meta = meta
    return ConversationResult(seed.id, step.usage.to_dict(), total_reasks(), conversation=conversation, rounds=rounds)


def calls_per_conversation(config: ReviewInstructConfig) -> int:
    """Calls per conversation: R x (candidate + N reviewers + chairman), docs/methods.md, Review-Instruct step 6,
    whoever decides the direction (the chairman decides in the call that asks); the no-review ablation drops the
    reviewers; without `ask_after_last_round` the last chairman call is skipped. A seed dropped early (a truncated
    answer, say) spends fewer."""
    reviewers = config.reviewers if config.review else 0
    return config.rounds * (1 + reviewers + 1) - (0 if config.ask_after_last_round else 1)


def expected_calls(config: ReviewInstructConfig, seeds: int | None, input_tokens: float) -> ExpectedCalls | None:
    """The calls of `seeds` conversations, each step allowed `max_reasks` re-asks; None when the seeds are unknown."""
    if seeds is None:
        return None
    per = calls_per_conversation(config)
    return ExpectedCalls(seeds * per, seeds * per * (1 + config.max_reasks), config.max_tokens,
                         input_tokens + config.rounds * config.max_tokens,
                         f"review-instruct {seeds} seeds x {per} calls")
