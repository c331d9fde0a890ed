"""LLM and RM judges driven by scripted backends: exact prompts, parsed verdicts, re-asks and call counts."""

from __future__ import annotations

import asyncio

import pytest

from chat.backends import ScriptedBackend
from chat.backends.base import Completion
from chat.conversation import Conversation
from judge.base import through_turn
from judge.llm import (LLMGradeJudge, LLMOptions, LLMPairwiseJudge, format_grade_input, format_pairwise_input)
from judge.parsing import (PAIRWISE_VERDICT_FORMAT, RATING_FORMAT, VerdictParseError, parse_pairwise_verdict,
                           parse_rating)
from judge.rm_judge import RMJudge
from judge.templates import render


def conversation(*turns: str, id: str = "c") -> Conversation:
    roles = ["user", "assistant"] * len(turns)
    return Conversation.from_messages([{"role": r, "content": t} for r, t in zip(roles, turns)], id=id)


ONE_A = conversation("What is 2+2?", "4")
ONE_B = conversation("What is 2+2?", "It is 5.")


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, winner", [
    ("A is better.\n[[A]]", "A"), ("[[B]]", "B"), ("Both fine. [[C]]", "tie"), ("verdict: [[tie]]", "tie"),
    ("[[A]] ... so again [[A]]", "A"), ('{"winner": "B", "reason": "x"}', "B"), ("[[ b ]]", "B"),
])
def test_parse_pairwise_verdict(text, winner):
    assert parse_pairwise_verdict(text) == winner


@pytest.mark.parametrize("text", ["A is better", "[[A]] or maybe [[B]]", "", '{"winner": "left"}'])
def test_parse_pairwise_verdict_refuses_to_guess(text):
    with pytest.raises(VerdictParseError):
        parse_pairwise_verdict(text)


@pytest.mark.parametrize("text, rating", [("Rating: [[7]]", 7.0), ("[[8.5]]", 8.5), ('{"rating": 3}', 3.0),
                                          ('{"score": 10}', 10.0)])
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


@pytest.mark.parametrize("text", ["Rating: 7", "Rating: [[11]]", "[[3]] then [[4]]", "[[0]]"])
def test_parse_rating_refuses_to_guess(text):
    with pytest.raises(VerdictParseError):
        parse_rating(text)


# ----------------------------------------------------------------------------- pairwise

def test_single_turn_pairwise_prompt_is_exact():
    messages = format_pairwise_input(ONE_A, ONE_B)
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == render("v1", "pairwise_system", reference=None, verdict_mode="text")
    assert messages[1].content == (
        "[User request]\nWhat is 2+2?\n\n[Assistant A's answer]\n4\n\n[Assistant B's answer]\nIt is 5.\n\n"
        "Which answer is better? End with [[A]], [[B]] or [[C]].")
    assert "reference answer" not in messages[0].content


def test_reference_guided_prompt_shows_the_reference():
    messages = format_pairwise_input(ONE_A, ONE_B, reference="4")
    assert "A reference answer is provided" in messages[0].content
    assert "[Reference answer]\n4\n" in messages[1].content


def test_multi_turn_prompt_shows_both_whole_conversations_and_the_turn():
    a = conversation("Hi", "Hello", "Plan a trip", "Go to Rome", id="a")
    b = conversation("Hi", "Hey", "Plan a hike", "Climb a hill", id="b")
    whole = format_pairwise_input(a, b)[1].content
    assert "over the whole conversation" in whole
    assert whole.index("[User, turn 2]\nPlan a trip") < whole.index("[User, turn 2]\nPlan a hike")
    turn_one = format_pairwise_input(a, b, turn=1)[1].content
    assert "Judge only the assistant's reply in user turn 1" in turn_one
    assert "Plan a trip" not in turn_one


def test_pairwise_judge_asks_both_orders_and_maps_the_second_back():
    backend = ScriptedBackend(["Reasoning. [[A]]", "Reasoning. [[B]]"])
    verdict = asyncio.run(LLMPairwiseJudge(backend).judge_pair(ONE_A, ONE_B))
    assert verdict.winner == "A"
    assert verdict.detail["orders"] == {"AB": "A", "BA": "A"}
    assert backend.calls == 2
    first_user, second_user = (r.messages[1]["content"] for r in backend.requests)
    assert "[Assistant A's answer]\n4\n" in first_user and "[Assistant A's answer]\nIt is 5.\n" in second_user
    assert backend.requests[0].params["temperature"] == 0.0 and backend.requests[0].params["seed"] == 0


def test_order_inconsistent_verdicts_are_a_tie():
    backend = ScriptedBackend(["[[A]]", "[[A]]"])   # always prefers the answer shown first
    verdict = asyncio.run(LLMPairwiseJudge(backend).judge_pair(ONE_A, ONE_B))
    assert verdict.winner == "tie"
    assert verdict.detail["orders"] == {"AB": "A", "BA": "B"}


def test_unreadable_verdict_is_reasked_once_then_parsed():
    backend = ScriptedBackend(["I like A more", '{"verdict": "A"}', "[[B]]"])
    verdict = asyncio.run(LLMPairwiseJudge(backend).judge_pair(ONE_A, ONE_B))
    assert verdict.winner == "A" and verdict.detail["reasks"] == 1
    reask = backend.requests[1].messages
    assert reask[-2] == {"role": "assistant", "content": "I like A more"}
    assert reask[-1]["content"] == render("v1", "pairwise_reask")
    assert backend.calls == 3
    # only the re-ask asks for JSON, so only it is constrained (a schema with an enum verdict)
    assert backend.requests[0].params["response_format"] is None
    assert backend.requests[1].params["response_format"] == PAIRWISE_VERDICT_FORMAT
    schema = PAIRWISE_VERDICT_FORMAT["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["A", "B", "C"] and schema["required"] == ["verdict"]


def test_reask_json_tie_is_a_tie():
    backend = ScriptedBackend(["hmm", '{"verdict": "C"}', "[[C]]"])
    assert asyncio.run(LLMPairwiseJudge(backend).judge_pair(ONE_A, ONE_B)).winner == "tie"


def test_unparseable_after_reasks_is_counted_not_guessed():
    # a constrained re-ask can only fail by being cut off (finish_reason "length")
    backend = ScriptedBackend(["A!", Completion('{"verdict": "', "length"), "[[B]]"])
    verdict = asyncio.run(LLMPairwiseJudge(backend, LLMOptions(max_reasks=1)).judge_pair(ONE_A, ONE_B))
    assert verdict.winner is None
    assert verdict.detail["orders"] == {"AB": None, "BA": "A"}
    assert verdict.detail["unparseable_orders"] == 1
    assert backend.calls == 3


def test_judging_a_conversation_that_ends_with_a_user_turn_is_an_error():
    open_turn = Conversation.from_messages([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="ends with a user turn"):
        format_pairwise_input(open_turn, ONE_B)


# ----------------------------------------------------------------------------- grading

def test_single_turn_grade_prompt_and_score():
    backend = ScriptedBackend(["Fine. Rating: [[7]]"])
    grade = asyncio.run(LLMGradeJudge(backend).grade(ONE_A))
    assert grade.score == 7.0
    assert backend.requests[0].messages[1]["content"] == (
        "[User request]\nWhat is 2+2?\n\n[Assistant's reply]\n4\n\nRate the reply. End with Rating: [[N]].")


def test_multi_turn_grade_is_the_minimum_over_turns():
    dialogue = conversation("Hi", "Hello", "Plan a trip", "Go to Rome", "Cheaper?", "Go to Ostia", id="d")

    def responder(messages, params):
        return {1: "Rating: [[9]]", 2: "Rating: [[4]]", 3: "Rating: [[6]]"}[messages[1]["content"].count("[User, turn") or 1]

    backend = ScriptedBackend(responder)
    grade = asyncio.run(LLMGradeJudge(backend).grade(dialogue))
    assert grade.detail["per_turn"] == [9.0, 4.0, 6.0] and grade.score == 4.0
    assert backend.calls == 3
    prompts = [r.messages[1]["content"] for r in backend.requests]
    assert prompts[1] == format_grade_input(dialogue, 2)[1].content
    assert "Cheaper?" not in prompts[1] and "Rate the assistant's reply in turn 2" in prompts[1]


def test_dialogue_with_an_unparseable_turn_has_no_score():
    dialogue = conversation("Hi", "Hello", "Plan a trip", "Go to Rome", id="d")
    backend = ScriptedBackend(["Rating: [[8]]", "no idea", Completion('{"rat', "length")])
    grade = asyncio.run(LLMGradeJudge(backend).grade(dialogue))
    assert grade.score is None and grade.detail["unparseable_turns"] == 1
    assert backend.requests[2].params["response_format"] == RATING_FORMAT
    assert backend.requests[2].messages[-1]["content"] == render("v1", "grade_reask")


def test_grade_reask_is_parsed_from_json():
    backend = ScriptedBackend(["no idea", '{"rating": 6}'])
    grade = asyncio.run(LLMGradeJudge(backend).grade(ONE_A))
    assert grade.score == 6.0 and grade.detail["reasks"] == 1 and grade.detail["verdict_mode"] == "text"


def test_grade_judge_compares_pairs_by_grades():
    backend = ScriptedBackend(["Rating: [[3]]", "Rating: [[8]]"])
    verdict = asyncio.run(LLMGradeJudge(backend).judge_pair(ONE_A, ONE_B))
    assert verdict.winner == "B" and (verdict.detail["score_a"], verdict.detail["score_b"]) == (3.0, 8.0)


# ----------------------------------------------------------------------------- RM judge

class LengthRM:
    """Stand-in reward model: reward = characters of the last message."""

    def score(self, conversations):
        return [float(len(c.messages[-1].content)) for c in conversations]


def test_rm_judge_prefers_the_higher_score_with_a_tie_margin():
    judge = RMJudge(LengthRM(), tie_margin=2.0)
    assert asyncio.run(judge.judge_pair(ONE_B, ONE_A)).winner == "A"       # 8 vs 1 characters
    assert asyncio.run(judge.judge_pair(ONE_A, ONE_B)).winner == "B"
    close = conversation("What is 2+2?", "four", id="x")
    assert asyncio.run(judge.judge_pair(close, ONE_A)).winner == "A"      # margin 3 > 2
    near = conversation("What is 2+2?", "=4", id="y")
    assert asyncio.run(judge.judge_pair(near, ONE_A)).winner == "tie"     # margin 1 <= 2


def test_rm_judge_on_a_turn_scores_the_conversation_up_to_that_turn():
    a = conversation("Hi", "Hello there!", "More", "x", id="a")
    b = conversation("Hi", "Yo", "More", "a much longer last reply", id="b")
    judge = RMJudge(LengthRM())
    assert asyncio.run(judge.judge_pair(a, b, turn=1)).winner == "A"
    assert asyncio.run(judge.judge_pair(a, b)).winner == "B"
    assert through_turn(a, 1).messages[-1].content == "Hello there!"
    assert asyncio.run(judge.grade(a, turn=1)).score == len("Hello there!")
