"""Review-Instruct loop: exact prompts per role, call counts, the breadth/depth rule, RM votes and filter, re-asks."""

from __future__ import annotations

import asyncio
import json

import pytest
from generate_helpers import FakeAgents, FakeRM, agents_backend, role_of

from chat.backends.scripted import ScriptedBackend
from chat.conversation import Message
from generate.agents import ParseError
from generate.prompts import render
from generate.review_instruct.algorithm import ReviewInstructBackends, review_instruct_conversation
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.steps import (BREADTH, CHAIRMAN_FORMAT, DEPTH, REVIEWER_FORMAT, UNREVIEWED,
                                            breadth_or_depth, parse_candidate_output, parse_chairman_output,
                                            parse_reviewer_output)
from generate.seeds import SeedPrompt
from rm.scorer import LockedScorer

SEED = SeedPrompt("s1", (Message("user", "What is a prime number?"),))


def grow(agents=None, rm=None, backends=None, **values):
    backend, agents = agents_backend(agents)
    config = ReviewInstructConfig(**{"backends": {"default": {"kind": "scripted"}}, **values})
    roles = backends or ReviewInstructBackends(backend, [backend] * config.reviewers, backend)
    scorer = LockedScorer(rm) if rm is not None else None
    return asyncio.run(review_instruct_conversation(SEED, roles, config, scorer)), backend, agents


@pytest.mark.parametrize("rounds, reviewers", [(1, 1), (2, 3), (3, 2)])
def test_calls_per_conversation_are_rounds_times_candidate_reviewers_chairman(rounds, reviewers):
    result, backend, _ = grow(rounds=rounds, reviewers=reviewers)
    assert result.kept
    assert backend.calls == rounds * (1 + reviewers + 1) == result.usage["calls"]
    assert result.conversation.turns == rounds


def test_reasks_add_exactly_their_calls():
    too_long = "word " * 301
    replies = iter([too_long, "ANSWER: fixed"])
    agents = FakeAgents(candidate=lambda messages: next(replies, "later answer"))
    result, backend, _ = grow(agents, rounds=2, reviewers=3)
    assert result.kept and result.reasks == 1
    assert backend.calls == 2 * 5 + 1
    assert [m.content for m in result.conversation.messages if m.role == "assistant"] == ["fixed", "later answer"]
    reask = backend.requests[1].messages
    assert reask[-2] == {"role": "assistant", "content": too_long}
    assert reask[-1]["content"] == render("reask", error="the answer has 301 words, the limit is 300", fields=[])
    assert reask[-1]["content"].endswith("Reply again in the required format.")


def test_a_step_is_reasked_at_most_twice_then_the_seed_is_dropped():
    repeat = json.dumps({"question": "What is a prime number?"})
    result, backend, agents = grow(FakeAgents(chairman=repeat), rounds=2, reviewers=1)
    assert not result.kept and result.reason == "parse_failure"
    assert agents.calls["chairman"] == 3
    assert backend.calls == 1 + 1 + 3
    reask = backend.requests[3].messages
    assert reask[-2] == {"role": "assistant", "content": repeat}
    assert reask[-1]["content"] == render("reask", error="the question repeats an earlier question",
                                          fields=["question"])
    assert reask[-1]["content"].endswith('only a JSON object with the keys "question".')


def test_structured_steps_send_their_json_schema_and_the_answer_stays_free_text():
    _, _, agents = grow(rounds=2, reviewers=2)
    assert agents.formats["candidate"] == [None, None]
    assert agents.formats["reviewer"] == [REVIEWER_FORMAT] * 4
    assert agents.formats["chairman"] == [CHAIRMAN_FORMAT] * 2
    assert REVIEWER_FORMAT == {"type": "json_schema", "json_schema": {"name": "review_vote", "strict": True, "schema": {
        "type": "object", "properties": {"review": {"type": "string"},
                                         "vote": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["review", "vote"], "additionalProperties": False}}}
    assert CHAIRMAN_FORMAT == {"type": "json_schema", "json_schema": {
        "name": "next_question", "strict": True, "schema": {
            "type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"],
            "additionalProperties": False}}}


@pytest.mark.parametrize("role", ["candidate", "reviewer", "chairman"])
@pytest.mark.parametrize("degenerate", ["In the In the In the In the In the In the", "1 1 1 1 1 1 1 1",
                                        "I\nI\nI\nI\nI\nI\nI\nI\nI"])
def test_a_degenerate_answer_review_or_question_drops_the_seed(role, degenerate):
    reply = {"candidate": f"ANSWER: {degenerate}", "reviewer": json.dumps({"review": degenerate, "vote": "positive"}),
             "chairman": json.dumps({"question": degenerate})}[role]
    result, backend, _ = grow(FakeAgents(**{role: reply}), rounds=2, reviewers=1)
    assert not result.kept and result.reason == "degenerate_text" and result.conversation is None
    assert backend.calls == {"candidate": 1, "reviewer": 2, "chairman": 3}[role]   # nothing built on it
    assert result.detail.startswith({"candidate": "candidate/1", "reviewer": "reviewers/1",
                                     "chairman": "chairman/1"}[role])


def test_exact_prompts_of_each_role():
    result, backend, _ = grow(rounds=2, reviewers=1)
    candidate, reviewer, chairman, candidate_2 = (r.messages for r in backend.requests[:4])
    assert candidate == [{"role": "system", "content": render("candidate_system", max_words=300)},
                         {"role": "user", "content": "What is a prime number?"}]
    assert reviewer[0] == {"role": "system", "content": render("reviewer_system", max_words=300)}
    assert reviewer[1]["content"] == render("reviewer", history=[], question="What is a prime number?",
                                            answer="answer to: What is a prime number?")
    assert "Latest question:\nWhat is a prime number?\n\nAnswer to review:\nanswer to: What is a prime number?" \
        in reviewer[1]["content"]
    assert chairman[1]["content"] == render(
        "chairman", questions=["What is a prime number?"], answer="answer to: What is a prime number?",
        reviews=[{"reviewer": "reviewer_1", "vote": "positive", "text": "fine on all five criteria"}],
        decision=BREADTH)
    assert "hidden thoughts" not in chairman[1]["content"] and "I should think" not in chairman[1]["content"]
    question_2 = result.conversation.messages[2].content
    assert candidate_2[1:] == [{"role": "user", "content": "What is a prime number?"},
                               {"role": "assistant", "content": "answer to: What is a prime number?"},
                               {"role": "user", "content": question_2}]
    assert all(r.params["temperature"] == 0.1 for r in backend.requests)


def test_private_reasoning_is_stripped_from_the_conversation():
    result, _, _ = grow(rounds=2, reviewers=1)
    texts = [m.content for m in result.conversation.messages]
    assert texts[1] == "answer to: What is a prime number?"
    assert not any("think" in text or "Private plan" in text for text in texts)
    assert result.conversation.meta["rounds"][0]["reviews"][0]["text"] == "fine on all five criteria"


def test_breadth_when_most_votes_positive_depth_when_most_negative_and_on_ties():
    assert breadth_or_depth(["positive", "positive", "negative"]) == BREADTH
    assert breadth_or_depth(["negative", "negative", "positive"]) == DEPTH
    assert breadth_or_depth(["positive", "negative"]) == DEPTH
    assert breadth_or_depth([]) == UNREVIEWED


def test_the_chairman_is_told_the_direction_the_votes_chose():
    _, backend, _ = grow(FakeAgents(votes=lambda call: "negative" if call % 3 else "positive"), rounds=1, reviewers=3)
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "(depth)" in chairman[1]["content"] and "(breadth)" not in chairman[1]["content"]
    _, backend, _ = grow(FakeAgents(votes=lambda call: "negative" if call % 3 == 2 else "positive"), rounds=1,
                         reviewers=3)
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "(breadth)" in chairman[1]["content"]


def test_rm_reviewer_votes_with_its_score_and_the_score_is_recorded():
    # every LLM reviewer votes positive; with 1 reviewer + RM negative the tie goes to depth
    result, _, _ = grow(rm=FakeRM(good="never"), rounds=1, reviewers=1)
    review = result.conversation.meta["rounds"][0]["reviews"][-1]
    assert review["reviewer"] == "rm" and review["score"] == -1.0 and review["vote"] == "negative"
    assert result.conversation.meta["rounds"][0]["decision"] == DEPTH
    result, _, _ = grow(rm=FakeRM(good="answer"), rounds=1, reviewers=1, rm_vote_threshold=0.5)
    assert result.conversation.meta["rounds"][0]["reviews"][-1]["vote"] == "positive"
    assert result.conversation.meta["rm_turn_scores"] == [1.0]


def test_rm_filter_drops_conversations_whose_lowest_turn_reward_is_below_threshold():
    answers = iter(["ANSWER: a good answer", "ANSWER: bad reply"])
    result, backend, _ = grow(FakeAgents(candidate=lambda m: next(answers)), rm=FakeRM(good="good"), rounds=2,
                              reviewers=1, rm_filter_threshold=0.0)
    assert not result.kept and result.reason == "rm_filter"
    result, _, _ = grow(rm=FakeRM(good="answer"), rounds=2, reviewers=1, rm_filter_threshold=0.0)
    assert result.kept and result.conversation.meta["rm_turn_scores"] == [1.0, 1.0]


def test_no_review_ablation_calls_only_candidate_and_chairman():
    result, backend, agents = grow(rounds=2, reviewers=3, review=False, rm=FakeRM())
    assert backend.calls == 2 * 2 and agents.calls["reviewer"] == 0
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "Reviews of the latest answer" not in chairman[1]["content"]
    assert result.conversation.meta["rounds"][0]["decision"] == UNREVIEWED


def test_separate_backends_per_role_get_their_own_requests():
    agents = FakeAgents()
    candidate, chairman = ScriptedBackend(agents), ScriptedBackend(agents)
    reviewers = [ScriptedBackend(agents) for _ in range(3)]
    grow(rounds=2, reviewers=3, backends=ReviewInstructBackends(candidate, reviewers, chairman))
    assert candidate.calls == 2 and chairman.calls == 2 and [r.calls for r in reviewers] == [2, 2, 2]
    assert {role_of(r.messages) for r in candidate.requests} == {"candidate"}
    assert {role_of(r.messages) for r in chairman.requests} == {"chairman"}


def test_last_round_question_is_kept_in_meta_or_not_asked():
    result, backend, _ = grow(rounds=2, reviewers=1)
    assert result.conversation.meta["next_question"].startswith("Question")
    result, backend, _ = grow(rounds=2, reviewers=1, ask_after_last_round=False)
    assert backend.calls == 2 * 3 - 1 and result.conversation.meta["next_question"] is None


def test_a_failed_question_after_the_last_round_keeps_the_conversation():
    repeat = json.dumps({"question": "What is a prime number?"})
    questions = iter([json.dumps({"question": "Why is 2 prime?"})])
    result, backend, agents = grow(FakeAgents(chairman=lambda messages: next(questions, repeat)), rounds=2,
                                   reviewers=1)
    assert result.kept and result.conversation.turns == 2
    assert result.conversation.meta["next_question"] is None and agents.calls["chairman"] == 1 + 3
    last = result.conversation.meta["rounds"][-1]
    assert last["next_question"] is None
    assert last["next_question_error"].startswith("parse_failure: chairman/2: the question repeats an earlier")


def test_parsers_read_the_json_objects_of_their_schemas():
    review = parse_reviewer_output('{"review": "weak depth", "vote": "negative"}', "r")
    assert (review.reviewer, review.text, review.vote) == ("r", "weak depth", "negative")
    assert parse_reviewer_output('```json\n{"review": "ok", "vote": "Positive"}\n```', "r").vote == "positive"
    assert parse_chairman_output('{"question": " Why is 2 prime? "}', ["What is a prime?"], 50) == "Why is 2 prime?"
    assert parse_chairman_output('Sure: {"question": "Why is 2 prime?"}', [], 50) == "Why is 2 prime?"
    with pytest.raises(ParseError, match="not a complete JSON object"):
        parse_reviewer_output('{"review": "cut off at max_tok', "r")
    with pytest.raises(ParseError, match='"vote"'):
        parse_reviewer_output('{"review": "fine"}', "r")
    with pytest.raises(ParseError, match="repeats"):
        parse_chairman_output('{"question": "What is a prime number?"}', ["What is a prime number?"], 50)
    with pytest.raises(ParseError, match="words"):
        parse_chairman_output(json.dumps({"question": "why " * 51}), [], 50)


def test_parsers_require_their_parts():
    assert parse_candidate_output("thinking\n**ANSWER:** Paris", 10) == "Paris"
    assert parse_candidate_output(" The capital is Canberra.\n", 10) == "The capital is Canberra."
    with pytest.raises(ParseError, match="empty"):
        parse_candidate_output("  \n", 10)
    with pytest.raises(ParseError, match='nothing after "ANSWER:"'):
        parse_candidate_output("notes\nANSWER:", 10)
    with pytest.raises(ParseError):
        parse_candidate_output("ANSWER: " + "word " * 11, 10)
    review = parse_reviewer_output("x\nREVIEW: weak depth\nVOTE: Negative.", "r")
    assert (review.text, review.vote) == ("weak depth", "negative")
    with pytest.raises(ParseError):
        parse_reviewer_output("REVIEW: fine\nVOTE: maybe", "r")
    with pytest.raises(ParseError):
        parse_reviewer_output("VOTE: positive", "r")
    with pytest.raises(ParseError):
        parse_chairman_output("QUESTION: What is a prime number", ["What is a prime number?"], 50)


def test_config_rejects_missing_roles():
    from chat.errors import ConfigError

    with pytest.raises(ConfigError, match="chairman"):
        ReviewInstructConfig(backends={"candidate": "scripted", "reviewer": "scripted"})
    with pytest.raises(ConfigError, match="unknown role"):
        ReviewInstructConfig(backends={"default": "scripted", "judge": "scripted"})
