"""CoEvol: step parsers, exact prompts, the accept rules, the rewrite budget, stop rules, multi-turn context, RM scores
of accepted edits, resume."""

from __future__ import annotations

import asyncio
import json

import pytest

from chat.agents import ParseError
from chat.backends.base import Completion
from chat.backends.scripted import ScriptedBackend
from chat.conversation import Conversation, Message
from generate.coevol.algorithm import CoevolBackends, expected_calls, refine_conversation
from generate.coevol.config import CoevolConfig
from generate.coevol.run import coevol_report, format_coevol_report, run_coevol
from generate.coevol.steps import (JUDGE_FORMAT, NEW, OLD, TIE, DebateTurn, advisor_format, context_window,
                                   format_advisor_input, format_debater_input, format_editor_input,
                                   format_free_debate_input, format_judge_input, merge_verdicts, parse_advisor_output,
                                   parse_editor_output, parse_judge_output, parse_review_output)
from generate.prompts import render

DEBATER_MARKS = {"positive": "You are the positive debater", "critical": "You are the critical debater"}


SYSTEM_MARKS = {role: render(f"coevol_{role}_system", max_suggestions=3).splitlines()[0]
                for role in ("advisor", "editor", "judge")}


def role_of(messages):
    system = messages[0]["content"]
    for role, mark in {**DEBATER_MARKS, **SYSTEM_MARKS}.items():
        if system.startswith(mark):
            return role
    return "other"


class FakeCoevol:
    """Agents in the required formats (debaters and editor free text, advisor and judge JSON); the judge prefers
    the edit when `prefer_new(edits in the new response)`. `formats[role]` collects each request's response_format."""

    def __init__(self, prefer_new=lambda edits: True, **overrides):
        self.prefer_new = prefer_new
        self.overrides = overrides
        self.calls = {"positive": 0, "critical": 0, "advisor": 0, "editor": 0, "judge": 0, "other": 0}
        self.formats = {role: [] for role in self.calls}

    def __call__(self, messages, params):
        role = role_of(messages)
        self.calls[role] += 1
        self.formats[role].append(params["response_format"])
        if role in self.overrides:
            value = self.overrides[role]
            return value(messages) if callable(value) else value
        if role in DEBATER_MARKS:
            return f"thinking\nREVIEW: {role} view {self.calls[role]}"
        if role == "advisor":
            return json.dumps({"suggestions": ["add an example", "be precise"]})
        if role == "editor":
            response = messages[1]["content"].split("Response:\n")[1].split("\n\nSuggestions:")[0]
            return f"draft\nRESPONSE: {response} (edited)"
        if role == "judge":
            text = messages[1]["content"]
            a = text.split("Response A:\n")[1].split("\n\nResponse B:")[0]
            b = text.split("Response B:\n")[1].split("\n\nReply with")[0]
            new = "A" if a.count("(edited)") > b.count("(edited)") else "B"
            new_wins = self.prefer_new(max(a.count("(edited)"), b.count("(edited)")))
            return json.dumps({"verdict": new if new_wins else {"A": "B", "B": "A"}[new]})
        return "unexpected"


def config(**values):
    return CoevolConfig(**{"backends": {"default": {"kind": "scripted"}}, **values})


def backends_of(agents):
    backend = ScriptedBackend(agents)
    return CoevolBackends(backend, backend, backend, backend, backend), backend


def refine(agents, conversation=None, scorer=None, **values):
    roles, backend = backends_of(agents)
    conversation = conversation or Conversation([Message("user", "Name a prime."), Message("assistant", "7")], id="c1")
    result = asyncio.run(refine_conversation(conversation, roles, config(**values), scorer))
    return result, backend


# -- parsers ------------------------------------------------------------------------------------------

def test_advisor_keeps_at_most_three_suggestions_and_joins_continuation_lines():
    text = "thoughts\nSUGGESTIONS:\n1. first\n   more of first\n2) second\n- third\n4. fourth"
    assert parse_advisor_output(text, 3) == ["first more of first", "second", "third"]


def test_advisor_and_judge_read_the_json_objects_of_their_schemas():
    assert parse_advisor_output('{"suggestions": ["first", " ", "second", "third", "fourth"]}', 3) == \
        ["first", "second", "third"]
    assert parse_advisor_output('{"suggestions": []}', 3) == [] == parse_advisor_output('{"suggestions": ["None."]}', 3)
    assert parse_judge_output('{"verdict": "B"}') == "B" and parse_judge_output('{"verdict": "tie"}') == "tie"
    assert parse_judge_output('{"verdict": "a"}') == "A"
    with pytest.raises(ParseError, match="verdict"):
        parse_judge_output('{"verdict": "both"}')
    with pytest.raises(ParseError, match='"suggestions"'):
        parse_advisor_output('{"suggestions": "add an example"}', 3)
    with pytest.raises(ParseError, match="not a complete JSON object"):
        parse_judge_output('{"verdict": ')


def test_advisor_and_judge_send_their_schemas_the_other_agents_write_free_text():
    agents = FakeCoevol(prefer_new=lambda edits: False)
    refine(agents, iterations=1, max_suggestions=2)
    assert agents.formats["advisor"] == [advisor_format(2)] and agents.formats["judge"] == [JUDGE_FORMAT] * 2
    assert agents.formats["positive"] == agents.formats["critical"] == [None, None]
    assert agents.formats["editor"] == [None]
    assert advisor_format(2) == {"type": "json_schema", "json_schema": {
        "name": "suggestions", "strict": True, "schema": {
            "type": "object", "properties": {"suggestions": {"type": "array", "items": {"type": "string"},
                                                             "maxItems": 2}},
            "required": ["suggestions"], "additionalProperties": False}}}
    assert JUDGE_FORMAT == {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
        "type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "tie"]}},
        "required": ["verdict"], "additionalProperties": False}}}


def test_advisor_none_means_no_edit_and_a_missing_marker_is_a_parse_error():
    assert parse_advisor_output("SUGGESTIONS: none", 3) == []
    with pytest.raises(ParseError):
        parse_advisor_output("1. do something", 3)


@pytest.mark.parametrize("text, verdict", [("VERDICT: A", "A"), ("hm\nVERDICT: **b**.", "B"), ("VERDICT: tie", "tie")])
def test_judge_verdicts(text, verdict):
    assert parse_judge_output(text) == verdict


def test_judge_rejects_other_verdicts():
    with pytest.raises(ParseError):
        parse_judge_output("VERDICT: both are fine")


# old_first: old is A; new_first: new is A. "B", "A" = the edit preferred in both orders.
@pytest.mark.parametrize("old_first, new_first, lenient, strict", [
    ("B", "A", NEW, NEW), ("A", "B", OLD, OLD), ("B", "B", TIE, TIE), ("A", "A", TIE, TIE), ("tie", "tie", TIE, TIE),
    ("tie", "A", NEW, TIE), ("B", "tie", NEW, TIE), ("tie", "B", OLD, TIE), ("A", "tie", OLD, TIE)])
def test_lenient_merge_sums_the_orders_strict_needs_both(old_first, new_first, lenient, strict):
    assert merge_verdicts(old_first, new_first) == lenient == merge_verdicts(old_first, new_first, "lenient")
    assert merge_verdicts(old_first, new_first, "strict") == strict


def test_review_and_edit_are_the_reply_or_the_text_after_a_marker():
    assert parse_review_output("private\nREVIEW: solid") == "solid"
    assert parse_review_output(" Solid and accurate.\n") == "Solid and accurate."
    assert parse_editor_output("RESPONSE: 7 is prime.") == "7 is prime." == parse_editor_output("7 is prime.")
    with pytest.raises(ParseError, match="empty"):
        parse_editor_output("\n ")


def test_a_window_of_three_turns_keeps_system_and_the_two_exchanges_before_the_current_turn():
    messages = [Message("system", "sys")] + [Message("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(10)]
    assert [m.content for m in context_window(messages, 3)] == ["sys", "m6", "m7", "m8", "m9"]
    assert [m.content for m in context_window(messages, 1)] == ["sys"]
    assert CoevolConfig(backends={"default": {"kind": "scripted"}}).context_turns == 3


# -- the loop -------------------------------------------------------------------------------------------

def test_exact_prompts_of_one_iteration():
    agents = FakeCoevol(prefer_new=lambda edits: False)
    result, backend = refine(agents, iterations=1)
    requests = [r.messages for r in backend.requests]
    assert len(requests) == 2 + 2 + 1 + 1 + 2
    context = []
    assert requests[0] == [m.to_dict() for m in format_debater_input(context, "Name a prime.", "7", "positive", 200)]
    assert requests[1] == [m.to_dict() for m in format_debater_input(context, "Name a prime.", "7", "critical", 200)]
    assert requests[2] == [m.to_dict() for m in format_free_debate_input(
        context, "Name a prime.", "7", "positive", "positive view 1", "critical view 1", 200)]
    assert "The critical debater's review:\ncritical view 1" in requests[2][1]["content"]
    assert requests[3][1]["content"].count("positive view 1") == 1
    debate = [DebateTurn("positive", 1, "positive view 1"), DebateTurn("critical", 1, "critical view 1"),
              DebateTurn("positive", 2, "positive view 2"), DebateTurn("critical", 2, "critical view 2")]
    assert requests[4] == [m.to_dict() for m in format_advisor_input(context, "Name a prime.", "7", debate, 3)]
    advisor = requests[4][1]["content"]
    assert "Positive debater (stage 2): positive view 2" in advisor and "thinking" not in advisor
    assert requests[5] == [m.to_dict() for m in format_editor_input(context, "Name a prime.", "7",
                                                                     ["add an example", "be precise"])]
    assert "1. add an example\n2. be precise" in requests[5][1]["content"]
    assert requests[6] == [m.to_dict() for m in format_judge_input(context, "Name a prime.", "7", "7 (edited)")]
    assert requests[7] == [m.to_dict() for m in format_judge_input(context, "Name a prime.", "7 (edited)", "7")]
    assert all(r.params["temperature"] == 0.0 for r in backend.requests)


def test_edits_accepted_while_strictly_better_up_to_max_iterations():
    result, backend = refine(FakeCoevol(), iterations=3)
    turn = result.turns[0]
    assert turn.final == "7 (edited) (edited) (edited)" and turn.stop_reason == "max_iterations"
    assert [it["accepted"] for it in turn.iterations] == [True, True, True]
    assert backend.calls == 3 * 8 == result.usage["calls"]
    assert result.conversation.messages[-1].content == turn.final


def test_stop_on_not_better_keeps_the_previous_response():
    result, backend = refine(FakeCoevol(prefer_new=lambda edits: edits == 1), iterations=3)
    turn = result.turns[0]
    assert turn.final == "7 (edited)" and turn.stop_reason == "not_better"
    assert [it["accepted"] for it in turn.iterations] == [True, False]
    assert backend.calls == 2 * 8


def test_a_tie_across_orders_is_not_better():
    agents = FakeCoevol(judge=lambda messages: '{"verdict": "B"}')
    result, _ = refine(agents, iterations=3)
    assert result.turns[0].final == "7" and result.turns[0].iterations[0]["verdict"]["merged"] == TIE


def test_parse_failure_stops_after_reasks_and_keeps_the_previous_response():
    agents = FakeCoevol(editor=" ")
    result, backend = refine(agents, iterations=3, max_reasks=1)
    turn = result.turns[0]
    assert turn.final == "7" and turn.stop_reason == "parse_failure"
    assert agents.calls["editor"] == 2 and backend.calls == 4 + 1 + 2


def test_no_suggestions_stops_without_editing():
    result, backend = refine(FakeCoevol(advisor='{"suggestions": []}'), iterations=3)
    assert result.turns[0].stop_reason == "no_suggestions" and backend.calls == 5


DEGENERATE = ["In the In the In the In the In the In the", "1 1 1 1 1 1 1 1", "I\nI\nI\nI\nI\nI\nI\nI\nI"]


@pytest.mark.parametrize("degenerate", DEGENERATE)
def test_a_degenerate_edit_is_never_judged_and_stops_with_the_previous_response(degenerate):
    edits = iter(["RESPONSE: 7 (edited)", f"RESPONSE: {degenerate}"])
    result, backend = refine(FakeCoevol(editor=lambda messages: next(edits)), iterations=3)
    turn = result.turns[0]
    assert turn.final == "7 (edited)" and turn.stop_reason == "degenerate_text"
    assert [it["accepted"] for it in turn.iterations] == [True, False]
    assert turn.iterations[1]["edited"] == degenerate and "verdict" not in turn.iterations[1]
    assert turn.iterations[1]["degenerate_text"].startswith("turn1/iter2/editor")
    assert backend.calls == 8 + 6


@pytest.mark.parametrize("role", ["critical", "advisor"])
def test_a_degenerate_review_or_suggestion_stops_the_turn(role):
    reply = {"critical": "REVIEW: " + "In the " * 10, "advisor": json.dumps({"suggestions": ["1 1 1 1 1 1 1 1"]})}[role]
    result, backend = refine(FakeCoevol(**{role: reply}), iterations=3)
    turn = result.turns[0]
    assert turn.stop_reason == "degenerate_text" and turn.final == "7"
    assert backend.calls == {"critical": 2, "advisor": 5}[role]
    assert len(turn.iterations[0]["debate"]) == {"critical": 2, "advisor": 4}[role]   # what it saw is recorded


class ScoreByEdits:
    """An RM rewarding each "(edited)" with +1."""

    def score(self, conversations):
        return [float(c.messages[-1].content.count("(edited)")) for c in conversations]


def test_rm_judge_uses_the_margin_and_makes_no_judge_calls():
    from rm.scorer import LockedScorer

    result, backend = refine(FakeCoevol(), scorer=LockedScorer(ScoreByEdits()), judge="rm", rm="fake", iterations=2)
    assert result.turns[0].final == "7 (edited) (edited)" and backend.calls == 2 * 6
    assert result.turns[0].rm_before == 0.0 and result.turns[0].rm_after == 2.0
    result, _ = refine(FakeCoevol(), scorer=LockedScorer(ScoreByEdits()), judge="rm", rm="fake", rm_margin=1.0)
    assert result.turns[0].final == "7" and result.turns[0].iterations[0]["verdict"]["merged"] == TIE


def test_multi_turn_refines_each_turn_with_the_refined_context():
    conversation = Conversation([Message("user", f"q{i // 2}") if i % 2 == 0 else Message("assistant", f"a{i // 2}")
                                 for i in range(10)], id="long")
    result, backend = refine(FakeCoevol(prefer_new=lambda edits: edits == 1), conversation, iterations=1)
    assert [m.content for m in result.conversation.messages if m.role == "assistant"] == \
        [f"a{i} (edited)" for i in range(5)]
    last_debate = [r.messages for r in backend.requests if "q4" in r.messages[1]["content"]][0][1]["content"]
    assert last_debate.startswith("Conversation before the instruction:\n\nUser: q2\n\nAssistant: a2 (edited)\n\n"
                                  "User: q3\n\nAssistant: a3 (edited)\n\nInstruction:\nq4")
    assert "q1" not in last_debate
    first_of_turn_2 = [r.messages for r in backend.requests if "Instruction:\nq1" in r.messages[1]["content"]][0]
    assert "Assistant: a0 (edited)" in first_of_turn_2[1]["content"]


def test_run_writes_records_report_and_resumes(tmp_path):
    data = tmp_path / "alpaca.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Task {i}", "input": "", "output": f"answer {i}"}) + "\n"
                            for i in range(3)), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    roles, backend = backends_of(FakeCoevol(prefer_new=lambda edits: edits == 1))
    first = run_coevol(data, output, config(iterations=2, limit=2), backends=roles, progress=False,
                       handle_sigint=False)
    assert first.summary.done == 2 and backend.calls == 2 * 16
    report = json.loads((tmp_path / "out.jsonl.summary.json").read_text())["coevol"]
    assert report["acceptance_by_iteration"] == {"1": {"run": 2, "accepted": 2, "rate": 1.0},
                                                 "2": {"run": 2, "accepted": 0, "rate": 0.0}}
    second = run_coevol(data, output, config(iterations=2), backends=roles, progress=False, handle_sigint=False)
    assert second.summary.skipped_existing == 2 and second.summary.done == 1 and backend.calls == 3 * 16
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["messages"][1]["content"].endswith("(edited)")
    assert rows[0]["meta"]["coevol"]["turns"][0]["iterations"][0]["suggestions"] == ["add an example", "be precise"]
    assert rows[0]["meta"]["prompt_version"] == "generate-v3"


def test_a_degenerate_stop_is_counted_and_reported(tmp_path):
    data = tmp_path / "alpaca.jsonl"
    data.write_text(json.dumps({"instruction": "Task 0", "input": "", "output": "answer 0"}) + "\n", encoding="utf-8")
    roles, _ = backends_of(FakeCoevol(editor="RESPONSE: " + "1 " * 12))
    result = run_coevol(data, tmp_path / "out.jsonl", config(iterations=2), backends=roles, progress=False,
                        handle_sigint=False)
    assert result.counters["stop_degenerate_text"] == 1 and result.counters["turns_changed"] == 0
    report = json.loads((tmp_path / "out.jsonl.summary.json").read_text())["coevol"]
    assert report["stop_reasons"] == {"degenerate_text": 1}
    assert json.loads((tmp_path / "out.jsonl").read_text())["messages"][1]["content"] == "answer 0"


def test_a_failing_debater_stops_the_turn_after_both_debaters_answered():
    result, backend = refine(FakeCoevol(critical=""), iterations=3, max_reasks=0)
    assert result.turns[0].stop_reason == "parse_failure" and backend.calls == 2 == result.usage["calls"]


def test_sharegpt_multi_turn_input_refines_every_assistant_turn(tmp_path):
    data = tmp_path / "sharegpt.jsonl"
    turns = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
             {"from": "human", "value": "name a prime"}, {"from": "gpt", "value": "7"}]
    data.write_text(json.dumps({"id": "sg1", "conversations": turns}) + "\n", encoding="utf-8")
    roles, backend = backends_of(FakeCoevol(prefer_new=lambda edits: edits == 1))
    run_coevol(data, tmp_path / "out.jsonl", config(iterations=1), backends=roles, progress=False,
               handle_sigint=False)
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert [m["content"] for m in row["messages"]] == ["hi", "hello (edited)", "name a prime", "7 (edited)"]
    assert [t["turn"] for t in row["meta"]["coevol"]["turns"]] == [1, 2] and backend.calls == 2 * 8


def test_the_rm_judge_needs_a_reward_model():
    from chat.errors import ConfigError

    with pytest.raises(ConfigError, match="judge=rm needs"):
        config(judge="rm")


# -- accept rule, multi-turn advisor, rewrite budget, RM scores of accepted edits --------------------------

def edit_then_tie(messages):
    """The edit preferred when shown second (old first), a tie when shown first: (better, tie)."""
    a = messages[1]["content"].split("Response A:\n")[1].split("\n\nResponse B:")[0]
    return json.dumps({"verdict": "tie" if "(edited)" in a else "B"})


def test_lenient_rule_accepts_an_edit_better_in_one_order_and_tied_in_the_other():
    result, _ = refine(FakeCoevol(judge=edit_then_tie), iterations=1)
    turn = result.turns[0]
    assert turn.final == "7 (edited)" and turn.iterations[0]["accepted"] is True
    assert turn.iterations[0]["verdict"] == {"judge": "llm", "old_first": "B", "new_first": "tie",
                                             "prefers": {"old_first": "new", "new_first": "tie"},
                                             "accept_rule": "lenient", "merged": NEW}


def test_strict_rule_keeps_the_original_when_one_order_ties():
    result, _ = refine(FakeCoevol(judge=edit_then_tie), iterations=3, accept_rule="strict")
    turn = result.turns[0]
    assert turn.final == "7" and turn.stop_reason == "not_better" and turn.iterations[0]["accepted"] is False
    assert turn.iterations[0]["verdict"]["prefers"] == {"old_first": "new", "new_first": "tie"}
    assert turn.iterations[0]["verdict"]["accept_rule"] == "strict" and turn.iterations[0]["verdict"]["merged"] == TIE


def test_the_advisor_sees_the_conversation_window_before_the_turn():
    conversation = Conversation([Message("user", "q0"), Message("assistant", "a0"), Message("user", "q1"),
                                 Message("assistant", "a1"), Message("user", "q2"), Message("assistant", "a2")],
                                id="three")
    agents = FakeCoevol(prefer_new=lambda edits: False)
    _, backend = refine(agents, conversation, iterations=1)
    advisor = [r.messages for r in backend.requests if role_of(r.messages) == "advisor"]
    assert advisor[2][1]["content"].startswith("Conversation before the instruction:\n\nUser: q0\n\nAssistant: a0\n\n"
                                               "User: q1\n\nAssistant: a1\n\nInstruction:\nq2\n\nResponse:\na2")
    assert advisor[0][1]["content"].startswith("Instruction:\nq0\n\nResponse:\na0\n\nDebate:")


def test_an_edit_cut_at_max_tokens_is_truncated_never_judged_nor_accepted():
    agents = FakeCoevol(editor=Completion("RESPONSE: 7 is a prime and", "length", {"prompt_tokens": 0,
                                                                                  "completion_tokens": 5}))
    result, backend = refine(agents, iterations=3)
    turn = result.turns[0]
    assert turn.final == "7" and turn.stop_reason == "truncated" and agents.calls["judge"] == 0
    assert turn.iterations[0]["truncated"] == "cut at max_tokens (768)"
    assert turn.iterations[0]["edit_finish_reason"] == "length" and turn.iterations[0]["accepted"] is False
    assert turn.iterations[0]["edited"] == "7 is a prime and" and backend.calls == 6


def test_an_edit_over_the_word_budget_is_truncated_and_the_editor_is_told_the_budget():
    result, backend = refine(FakeCoevol(), iterations=3, max_edit_words=2)
    turn = result.turns[0]
    assert [it["accepted"] for it in turn.iterations] == [True, False]
    assert turn.final == "7 (edited)" and turn.stop_reason == "truncated"
    assert turn.iterations[1]["truncated"] == "3 words, over the budget of 2"
    editor = next(r.messages for r in backend.requests if role_of(r.messages) == "editor")
    assert editor[0]["content"].endswith("nothing before or after it, in at most 2 words.")
    assert format_editor_input([], "q", "r", ["s"])[0].content.endswith("nothing before or after it.")


def test_an_rm_scores_every_accepted_edit_before_and_after():
    from rm.scorer import LockedScorer

    result, _ = refine(FakeCoevol(prefer_new=lambda edits: edits <= 2), scorer=LockedScorer(ScoreByEdits()),
                       iterations=3)
    turn = result.turns[0].to_dict()
    assert [(it["accepted"], it.get("rm_before"), it.get("rm_after"), it.get("rm_delta"))
            for it in turn["iterations"]] == [(True, 0.0, 1.0, 1.0), (True, 1.0, 2.0, 1.0), (False, None, None, None)]
    assert (turn["rm_before"], turn["rm_after"], turn["rm_delta"]) == (0.0, 2.0, 2.0)


def test_the_run_summary_gives_the_mean_rm_change_over_accepted_edits(tmp_path):
    data = tmp_path / "alpaca.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Task {i}", "input": "", "output": f"answer {i}"}) + "\n"
                            for i in range(2)), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    roles, _ = backends_of(FakeCoevol(prefer_new=lambda edits: edits == 1))
    run_coevol(data, output, config(iterations=2), backends=roles, rm=ScoreByEdits(), progress=False,
               handle_sigint=False)
    report = json.loads((tmp_path / "out.jsonl.summary.json").read_text())["coevol"]
    assert report["rm_delta_accepted_edits"] == {"n": 2, "mean": 1.0} == coevol_report(output)["rm_delta_accepted_edits"]
    assert "RM score change per accepted edit over 2 edits: mean +1.000" in format_coevol_report(report)
    row = json.loads(output.read_text().splitlines()[0])
    assert row["meta"]["coevol"]["turns"][0]["iterations"][0]["rm_delta"] == 1.0


def test_expected_calls_count_eight_calls_per_iteration_six_with_the_rm_judge():
    planned = expected_calls(config(iterations=3, max_reasks=2), 10, 100.0)
    assert (planned.calls, planned.max_calls, planned.max_tokens) == (80, 80 * 3 * 3, 768)
    assert expected_calls(config(judge="rm", rm="fake", iterations=1, max_reasks=0), 10, 100.0).max_calls == 60
    assert expected_calls(config(), None, 100.0) is None


def test_config_rejects_an_empty_window_and_unknown_rules():
    from chat.errors import ConfigError

    with pytest.raises(ConfigError, match="context_turns: expected at least 1"):
        config(context_turns=0)
    with pytest.raises(ConfigError, match="accept_rule"):
        config(accept_rule="majority")
    with pytest.raises(ConfigError, match="max_edit_words"):
        config(max_edit_words=0)
