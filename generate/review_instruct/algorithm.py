"""Review-Instruct: a multi-turn conversation from one seed question by Ask-Respond-Review (docs/methods.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

from chat.agents import StepCaller, derive_seed
from chat.backends.base import ChatBackend
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from generate.agents import StepFailed, ask_step, check_degenerate
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.steps import (CHAIRMAN_FORMAT, NEGATIVE, POSITIVE, REVIEWER_FORMAT, Review,
                                            breadth_or_depth, format_candidate_input, format_chairman_input,
                                            format_reviewer_input, parse_candidate_output, parse_chairman_output,
                                            parse_reviewer_output)
from generate.seeds import SeedPrompt
from rm.scorer import LockedScorer

#: Why a conversation was dropped (each is a summary counter `dropped_<reason>`).
RM_FILTER = "rm_filter"


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


async def review_instruct_conversation(seed: SeedPrompt, backends: ReviewInstructBackends,
                                       config: ReviewInstructConfig,
                                       rm: LockedScorer | None = None) -> ConversationResult:
    """Grow a seed question into an R-turn conversation (docs/methods.md, Review-Instruct steps 2-6).

    Each round: the Candidate answers the current question; each Reviewer critiques the answer
    (usefulness, relevance, accuracy, depth, creativity) and votes, the RM too when it reviews; the
    Chairman reads question, answer and reviews and asks the next question: breadth when most votes
    are positive, depth otherwise. Only the visible part of each reply (after its marker) is passed
    on. Reviewer votes and the chairman's question are JSON objects of their schemas (constrained where the
    backend can). Every answer, review and question passes the shared degenerate-text filter, else the seed is
    dropped as `degenerate_text`. With an RM filter the conversation is kept only if its lowest per-turn
    reward passes.
    """
    words = config.max_words
    step = StepCaller(config.temperature, config.max_tokens, derive_seed(config.seed, seed.id), config.max_reasks)
    history: list[Message] = list(seed.messages)
    questions = [seed.question]
    rounds: list[dict[str, Any]] = []
    next_question: str | None = None
    try:
        for r in range(1, config.rounds + 1):
            answer = await ask_step(step, "candidate", backends.candidate, format_candidate_input(history, words),
                                    partial(parse_candidate_output, max_words=words), f"candidate/{r}")
            check_degenerate(f"candidate/{r}", answer)
            history.append(Message("assistant", answer))
            reviews: list[Review] = []
            if config.review:
                reviewer_request = format_reviewer_input(history[:-1], answer, words)
                reviews = list(await gather_or_cancel(*(
                    ask_step(step, f"reviewer_{i}", backend, reviewer_request,
                             partial(parse_reviewer_output, reviewer=f"reviewer_{i}"), f"reviewer_{i}/{r}",
                             response_format=REVIEWER_FORMAT)
                    for i, backend in enumerate(backends.reviewers, 1))))
                check_degenerate(f"reviewers/{r}", *(review.text for review in reviews))
                if rm is not None and config.rm_reviewer:
                    reviews.append(await rm_review(rm, history, config.rm_vote_threshold))
            decision = breadth_or_depth([review.vote for review in reviews])
            question, question_error = None, None
            if r < config.rounds or config.ask_after_last_round:
                try:
                    question = await ask_step(
                        step, "chairman", backends.chairman,
                        format_chairman_input(questions, answer, reviews, decision, words),
                        partial(parse_chairman_output, questions=questions, max_words=words), f"chairman/{r}",
                        response_format=CHAIRMAN_FORMAT)
                    check_degenerate(f"chairman/{r}", question)
                except StepFailed as failed:
                    if r < config.rounds:
                        raise
                    # the question after the last round only goes into meta: the finished conversation stays
                    question_error = f"{failed.reason}: {failed.detail}"
            rounds.append({"round": r, "reviews": [review.to_dict() for review in reviews],
                           "votes": [review.vote for review in reviews], "decision": decision,
                           "next_question": question,
                           **({"next_question_error": question_error} if question_error else {})})
            if r < config.rounds:
                history.append(Message("user", question))
                questions.append(question)
            else:
                next_question = question
    except StepFailed as failed:
        return ConversationResult(seed.id, step.usage.to_dict(), step.reasks, reason=failed.reason,
                                  detail=failed.detail, rounds=rounds)
    conversation = Conversation(history, id=review_conversation_id(seed.id))
    meta: dict[str, Any] = {"source_id": seed.id, "generator": "review-instruct", "rounds": rounds,
                            "next_question": next_question, "agents": backends.names(),
                            "reviewers": len(backends.reviewers) if config.review else 0,
                            "prompt_version": PROMPT_VERSION, "reasks": step.reasks, "usage": step.usage.to_dict()}
    if rm is not None:
        turn_scores = await rm.score_turns(conversation)
        meta["rm_turn_scores"] = turn_scores
        if config.rm_filter_threshold is not None and min(turn_scores) < config.rm_filter_threshold:
            return ConversationResult(seed.id, step.usage.to_dict(), step.reasks, reason=RM_FILTER, rounds=rounds,
                                      detail=f"lowest turn reward {min(turn_scores):.3f} < {config.rm_filter_threshold}")
    conversation.meta = meta
    return ConversationResult(seed.id, step.usage.to_dict(), step.reasks, conversation=conversation, rounds=rounds)


def calls_per_conversation(config: ReviewInstructConfig) -> int:
    """Calls per conversation: R x (candidate + N reviewers + chairman), docs/methods.md, Review-Instruct; the
    no-review ablation drops the reviewers; without `ask_after_last_round` the last chairman call is skipped."""
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
