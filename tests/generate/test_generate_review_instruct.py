"""Review-Instruct loop: exact prompts per role, call counts, the chairman's breadth/depth decision and the majority-vote
ablation, the reviewer panel, truncated answers, RM votes and filter, re-asks."""

from __future__ import annotations

import asyncio
import json

import pytest
from generate_helpers import FakeAgents, FakeRM, agents_backend, role_of

from chat.backends.base import Completion
from chat.backends.scripted import ScriptedBackend
from chat.conversation import Message
from generate.agents import ParseError
from generate.prompts import render
from generate.review_instruct.algorithm import ReviewInstructBackends, review_instruct_conversation
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.steps import (BREADTH, CHAIRMAN_DECISION_FORMAT, CHAIRMAN_FORMAT, DEPTH,
                                            REVIEWER_FORMAT, UNREVIEWED, breadth_or_depth, parse_candidate_output,
                                            parse_chairman_decision, parse_chairman_output, parse_reviewer_output)
from generate.seeds import SeedPrompt
from rm.scorer import LockedScorer

SEED = SeedPrompt("s1", (Message("user", "What is a prime number?"),))


def chairman_reply(messages):
    """The chairman's JSON: with the decision schema it decides like the paper's chairman (breadth when most reviews
    shown are positive, else depth); the question is numbered after the questions so far."""
    prompt = messages[-1]["content"]
    asked = prompt.split("Latest answer:")[0].count("\n") - 1
    reply = {"question": f"Question {asked + 1}?"}
    if '"decision"' in prompt:
        positive, negative = prompt.count("(positive):"), prompt.count("(negative):")
        reply = {"decision": BREADTH if positive > negative else DEPTH, **reply}
    return json.dumps(reply)


def review_agents(votes=None, **overrides):
    """FakeAgents whose chairman answers the schema it is sent (chairman_reply), unless overridden."""
    return FakeAgents(votes, **{"chairman": chairman_reply, **overrides})


def chairman_json(question, decision=BREADTH):
    return json.dumps({"decision": decision, "question": question})


def grow(agents=None, rm=None, backends=None, **values):
    backend, agents = agents_backend(agents or review_agents())
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
    agents = review_agents(candidate=lambda messages: next(replies, "later answer"))
    result, backend, _ = grow(agents, rounds=2, reviewers=3)
    assert result.kept and result.reasks == 1
    assert backend.calls == 2 * 5 + 1
    assert [m.content for m in result.conversation.messages if m.role == "assistant"] == ["fixed", "later answer"]
    reask = backend.requests[1].messages
    assert reask[-2] == {"role": "assistant", "content": too_long}
    assert reask[-1]["content"] == render("reask", error="the answer has 301 words, the limit is 300", fields=[])
    assert reask[-1]["content"].endswith("Reply again in the required format.")


def test_a_step_is_reasked_at_most_twice_then_the_seed_is_dropped():
    repeat = chairman_json("What is a prime number?")
    result, backend, agents = grow(review_agents(chairman=repeat), rounds=2, reviewers=1)
    assert not result.kept and result.reason == "parse_failure"
    assert agents.calls["chairman"] == 3
    assert backend.calls == 1 + 1 + 3
    reask = backend.requests[3].messages
    assert reask[-2] == {"role": "assistant", "content": repeat}
    assert reask[-1]["content"] == render("reask", error="the question repeats an earlier question",
                                          fields=["decision", "question"])
    assert reask[-1]["content"].endswith('only a JSON object with the keys "decision", "question".')


def test_structured_steps_send_their_json_schema_and_the_answer_stays_free_text():
    _, _, agents = grow(rounds=2, reviewers=2)
    assert agents.formats["candidate"] == [None, None]
    assert agents.formats["reviewer"] == [REVIEWER_FORMAT] * 4
    assert agents.formats["chairman"] == [CHAIRMAN_DECISION_FORMAT] * 2
    _, _, agents = grow(rounds=2, reviewers=2, direction="majority_vote")
    assert agents.formats["chairman"] == [CHAIRMAN_FORMAT] * 2
    assert REVIEWER_FORMAT == {"type": "json_schema", "json_schema": {"name": "review_vote", "strict": True, "schema": {
        "type": "object", "properties": {"review": {"type": "string"},
                                         "vote": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["review", "vote"], "additionalProperties": False}}}
    assert CHAIRMAN_FORMAT == {"type": "json_schema", "json_schema": {
        "name": "next_question", "strict": True, "schema": {
            "type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"],
            "additionalProperties": False}}}
    assert CHAIRMAN_DECISION_FORMAT == {"type": "json_schema", "json_schema": {
        "name": "decision_question", "strict": True, "schema": {
            "type": "object", "properties": {"decision": {"type": "string", "enum": ["breadth", "depth"]},
                                             "question": {"type": "string"}},
            "required": ["decision", "question"], "additionalProperties": False}}}


@pytest.mark.parametrize("role", ["candidate", "reviewer", "chairman"])
@pytest.mark.parametrize("degenerate", ["In the In the In the In the In the In the", "1 1 1 1 1 1 1 1",
                                        "I\nI\nI\nI\nI\nI\nI\nI\nI"])
def test_a_degenerate_answer_review_or_question_drops_the_seed(role, degenerate):
    reply = {"candidate": f"ANSWER: {degenerate}", "reviewer": json.dumps({"review": degenerate, "vote": "positive"}),
             "chairman": chairman_json(degenerate)}[role]
    result, backend, _ = grow(review_agents(**{role: reply}), rounds=2, reviewers=1)
    assert not result.kept and result.reason == "degenerate_text" and result.conversation is None
    assert backend.calls == {"candidate": 1, "reviewer": 2, "chairman": 3}[role]   # nothing built on it
    assert result.detail.startswith({"candidate": "candidate/1", "reviewer": "reviewers/1",
                                     "chairman": "chairman/1"}[role])


def test_exact_prompts_of_each_role():
    result, backend, _ = grow(rounds=2, reviewers=1)
    candidate, reviewer, chairman, candidate_2 = (r.messages for r in backend.requests[:4])
    assert candidate == [{"role": "system", "content": render("candidate_system", max_words=300)},
                         {"role": "user", "content": "What is a prime number?"}]
    assert reviewer[0] == {"role": "system", "content": render("reviewer_system", max_words=300, persona="accuracy")}
    assert "strict accuracy reviewer" in reviewer[0]["content"]
    assert reviewer[1]["content"] == render("reviewer", history=[], question="What is a prime number?",
                                            answer="answer to: What is a prime number?")
    assert "Latest question:\nWhat is a prime number?\n\nAnswer to review:\nanswer to: What is a prime number?" \
        in reviewer[1]["content"]
    assert chairman[0] == {"role": "system", "content": render("chairman_system", max_words=300, decides=True)}
    assert chairman[1]["content"] == render(
        "chairman", questions=["What is a prime number?"], answer="answer to: What is a prime number?",
        reviews=[{"reviewer": "reviewer_1", "vote": "positive", "text": "fine on all five criteria"}],
        decision=None)
    assert "Reviewer 1 (positive): fine on all five criteria" in chairman[1]["content"]
    assert 'Reply with the JSON object {"decision": ..., "question": ...}.' in chairman[1]["content"]
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


def test_the_chairman_decides_breadth_or_depth_itself_and_its_decision_is_recorded():
    # every reviewer votes positive, the chairman still decides depth: its decision, not the votes', is used
    contrary = review_agents(chairman=lambda messages: chairman_json("Which even number is prime?", DEPTH))
    result, backend, _ = grow(contrary, rounds=1, reviewers=3)
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "Decide the direction of the next question yourself" in chairman[1]["content"]
    assert "Most reviews are" not in chairman[1]["content"]
    first = result.conversation.meta["rounds"][0]
    assert (first["decision"], first["decided_by"], first["vote_majority"]) == (DEPTH, "chairman", BREADTH)
    assert first["votes"] == ["positive"] * 3 and first["next_question"] == "Which even number is prime?"
    assert result.conversation.meta["direction"] == "chairman"


def test_majority_vote_ablation_tells_the_chairman_the_direction_the_votes_chose():
    _, backend, _ = grow(review_agents(lambda call: "negative" if call % 3 else "positive"), rounds=1, reviewers=3,
                         direction="majority_vote")
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "(depth)" in chairman[1]["content"] and "(breadth)" not in chairman[1]["content"]
    assert chairman[0]["content"] == render("chairman_system", max_words=300, decides=False)
    result, backend, _ = grow(review_agents(lambda call: "negative" if call % 3 == 2 else "positive"), rounds=1,
                              reviewers=3, direction="majority_vote")
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "(breadth)" in chairman[1]["content"]
    first = result.conversation.meta["rounds"][0]
    assert (first["decision"], first["decided_by"], first["vote_majority"]) == (BREADTH, "majority_vote", BREADTH)


def test_rm_reviewer_votes_with_its_score_and_the_score_is_recorded():
    # every LLM reviewer votes positive; with 1 reviewer + RM negative the tie goes to depth
    result, _, _ = grow(rm=FakeRM(good="never"), rounds=1, reviewers=1)
    review = result.conversation.meta["rounds"][0]["reviews"][-1]
    assert review["reviewer"] == "rm" and review["score"] == -1.0 and review["vote"] == "negative"
    assert result.conversation.meta["rounds"][0]["vote_majority"] == DEPTH
    result, _, _ = grow(rm=FakeRM(good="answer"), rounds=1, reviewers=1, rm_vote_threshold=0.5)
    assert result.conversation.meta["rounds"][0]["reviews"][-1]["vote"] == "positive"
    assert result.conversation.meta["rm_turn_scores"] == [1.0]


def test_rm_filter_drops_conversations_whose_lowest_turn_reward_is_below_threshold():
    answers = iter(["ANSWER: a good answer", "ANSWER: bad reply"])
    result, backend, _ = grow(review_agents(candidate=lambda m: next(answers)), rm=FakeRM(good="good"), rounds=2,
                              reviewers=1, rm_filter_threshold=0.0)
    assert not result.kept and result.reason == "rm_filter"
    result, _, _ = grow(rm=FakeRM(good="answer"), rounds=2, reviewers=1, rm_filter_threshold=0.0)
    assert result.kept and result.conversation.meta["rm_turn_scores"] == [1.0, 1.0]


def test_no_review_ablation_calls_only_candidate_and_chairman():
    result, backend, agents = grow(rounds=2, reviewers=3, review=False, rm=FakeRM())
    assert backend.calls == 2 * 2 and agents.calls["reviewer"] == 0
    chairman = [r.messages for r in backend.requests if role_of(r.messages) == "chairman"][0]
    assert "Reviews of the latest answer" not in chairman[1]["content"]
    assert agents.formats["chairman"] == [CHAIRMAN_FORMAT] * 2
    first = result.conversation.meta["rounds"][0]
    assert (first["decision"], first["decided_by"]) == (UNREVIEWED, None)
    assert result.conversation.meta["reviewer_panel"] == []


def test_separate_backends_per_role_get_their_own_requests():
    agents = review_agents()
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
    last = result.conversation.meta["rounds"][-1]
    assert (last["decision"], last["decided_by"], last["vote_majority"]) == (None, None, BREADTH)


def test_a_failed_question_after_the_last_round_keeps_the_conversation():
    repeat = chairman_json("What is a prime number?")
    questions = iter([chairman_json("Why is 2 prime?")])
    result, backend, agents = grow(review_agents(chairman=lambda messages: next(questions, repeat)), rounds=2,
                                   reviewers=1)
    assert result.kept and result.conversation.turns == 2
    assert result.conversation.meta["next_question"] is None and agents.calls["chairman"] == 1 + 3
    last = result.conversation.meta["rounds"][-1]
    assert last["next_question"] is None and last["decision"] is None
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


def test_a_truncated_answer_drops_the_seed_as_truncated_turn():
    cut = Completion("ANSWER: A prime number is a natural number greater than 1 whose", "length")
    result, backend, agents = grow(review_agents(candidate=lambda messages: cut), rounds=2, reviewers=3)
    assert not result.kept and result.reason == "truncated_turn" and result.conversation is None
    assert result.detail == "candidate/1: the answer was cut off at max_tokens=768"
    assert backend.calls == 1 and agents.calls["reviewer"] == 0      # nothing is built on a cut-off answer


def test_a_truncated_answer_in_a_later_round_drops_the_seed_too():
    answers = iter(["ANSWER: A prime has exactly two divisors.", Completion("ANSWER: Because two is", "length")])
    result, backend, _ = grow(review_agents(candidate=lambda messages: next(answers)), rounds=2, reviewers=1)
    assert not result.kept and result.reason == "truncated_turn" and result.detail.startswith("candidate/2:")
    assert backend.calls == 1 + 1 + 1 + 1 and len(result.rounds) == 1


def test_a_diverse_panel_cycles_personas_and_temperatures_and_records_them():
    result, backend, _ = grow(rounds=1, reviewers=4)
    reviewers = [r for r in backend.requests if role_of(r.messages) == "reviewer"]
    systems = [r.messages[0]["content"] for r in reviewers]
    assert systems == [render("reviewer_system", max_words=300, persona=persona)
                       for persona in ("accuracy", "depth", "helpfulness", "accuracy")]
    assert len(set(systems)) == 3
    assert [r.params["temperature"] for r in reviewers] == [0.1, 0.4, 0.7, 0.1]
    assert {r.params["temperature"] for r in backend.requests if role_of(r.messages) != "reviewer"} == {0.1}
    assert result.conversation.meta["reviewer_panel"] == [
        {"reviewer": "reviewer_1", "persona": "accuracy", "temperature": 0.1, "backend": "scripted"},
        {"reviewer": "reviewer_2", "persona": "depth", "temperature": 0.4, "backend": "scripted"},
        {"reviewer": "reviewer_3", "persona": "helpfulness", "temperature": 0.7, "backend": "scripted"},
        {"reviewer": "reviewer_4", "persona": "accuracy", "temperature": 0.1, "backend": "scripted"}]


def test_a_reviewer_reask_samples_at_its_own_temperature_and_is_counted():
    replies = iter([json.dumps({"review": " ", "vote": "negative"}),
                    json.dumps({"review": "too shallow", "vote": "negative"})])
    agents = review_agents(reviewer=lambda messages: next(replies) if "depth and detail" in messages[0]["content"]
                           else json.dumps({"review": "fine", "vote": "positive"}))
    result, backend, _ = grow(agents, rounds=1, reviewers=2)
    depth = [r for r in backend.requests if "depth and detail" in r.messages[0]["content"]]
    assert [r.params["temperature"] for r in depth] == [0.4, 0.4]
    assert result.reasks == 1 == result.conversation.meta["reasks"]
    assert result.conversation.meta["usage"]["by_role"]["reviewer_2"]["calls"] == 2


def test_reviewers_on_several_backends_keep_their_personas_at_the_base_temperature():
    agents = review_agents()
    shared = ScriptedBackend(agents)
    reviewers = [ScriptedBackend(agents, name="scripted:a"), ScriptedBackend(agents, name="scripted:b")]
    result, _, _ = grow(rounds=1, reviewers=2, backends=ReviewInstructBackends(shared, reviewers, shared))
    assert [(seat["persona"], seat["temperature"], seat["backend"]) for seat in
            result.conversation.meta["reviewer_panel"]] == [("accuracy", 0.1, "scripted:a"), ("depth", 0.1, "scripted:b")]
    assert [r.requests[0].params["temperature"] for r in reviewers] == [0.1, 0.1]


def test_an_identical_panel_restores_one_generic_reviewer_at_the_base_temperature():
    result, backend, _ = grow(rounds=1, reviewers=3, reviewer_panel="identical")
    reviewers = [r for r in backend.requests if role_of(r.messages) == "reviewer"]
    assert {r.messages[0]["content"] for r in reviewers} == {render("reviewer_system", max_words=300)}
    assert [r.params["temperature"] for r in reviewers] == [0.1] * 3
    assert [(seat["persona"], seat["temperature"]) for seat in result.conversation.meta["reviewer_panel"]] == [
        (None, 0.1)] * 3


def test_reviewer_personas_and_temperatures_are_configurable():
    result, _, _ = grow(rounds=1, reviewers=3, reviewer_personas=["depth"], reviewer_temperatures=[0.2, 0.3])
    assert [(seat["persona"], seat["temperature"]) for seat in result.conversation.meta["reviewer_panel"]] == [
        ("depth", 0.2), ("depth", 0.3), ("depth", 0.2)]


def test_chairman_decision_parser_reads_json_or_marked_text():
    assert parse_chairman_decision('{"decision": "depth", "question": " Why is 1 not prime? "}', ["Q?"], 50) == (
        DEPTH, "Why is 1 not prime?")
    assert parse_chairman_decision("thinking\nDECISION: **Breadth**.\nQUESTION: What is a perfect number?", [],
                                   50) == (BREADTH, "What is a perfect number?")
    with pytest.raises(ParseError, match='"breadth" or "depth"'):
        parse_chairman_decision('{"decision": "wider", "question": "Why?"}', [], 50)
    with pytest.raises(ParseError, match='"decision"'):
        parse_chairman_decision('{"question": "Why?"}', [], 50)
    with pytest.raises(ParseError, match="repeats"):
        parse_chairman_decision(chairman_json("What is a prime number?"), ["What is a prime number?"], 50)
    with pytest.raises(ParseError, match='no line starting with "DECISION:"'):
        parse_chairman_decision("QUESTION: Why?", [], 50)


@pytest.mark.parametrize("values, message", [
    ({"direction": "vote"}, "direction"), ({"reviewer_panel": "mixed"}, "reviewer_panel"),
    ({"reviewer_personas": ["creativity"]}, "reviewer_personas"), ({"reviewer_personas": []}, "reviewer_personas"),
    ({"reviewer_temperatures": [-0.1]}, "reviewer_temperatures")])
def test_config_rejects_bad_panel_and_direction_values(values, message):
    from chat.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        ReviewInstructConfig(backends={"default": "scripted"}, **values)
