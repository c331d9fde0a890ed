"""Logprob verdicts with scripted Completions carrying logprobs: prompts, probabilities, order averaging, grades."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from chat.backends import ScriptedBackend
from chat.backends.base import Completion, TokenLogprob
from chat.conversation import Conversation
from chat.errors import ConfigError
from chat.runner import read_records
from judge.config import JudgeConfig
from judge.jobs import judge_pairs_job
from judge.llm import LLMGradeJudge, LLMOptions, LLMPairwiseJudge, format_grade_input, format_pairwise_input
from judge.logprob import GRADE_TOKENS, PAIRWISE_TOKENS, candidate_distribution, expected_grade
from judge.report import agree
from judge.verdicts import VerdictRecord

LOGPROB = LLMOptions(verdict_mode="logprob")


def conversation(*turns: str, id: str = "c") -> Conversation:
    roles = ["user", "assistant"] * len(turns)
    return Conversation.from_messages([{"role": r, "content": t} for r, t in zip(roles, turns)], id=id)


ONE_A = conversation("What is 2+2?", "4", id="a")
ONE_B = conversation("What is 2+2?", "It is 5.", id="b")


def first_token(top: dict[str, float]) -> Completion:
    """A one-token reply whose position has the alternatives `top` (token -> probability); greedy = the likeliest."""
    token = max(top, key=top.get)
    entry = TokenLogprob(token, math.log(top[token]), {t: math.log(q) for t, q in top.items()})
    return Completion(token, "stop", logprobs=(entry,))


def by_order(when_a_first: dict[str, float], when_b_first: dict[str, float]):
    """A responder answering order AB (ONE_A shown as A) with one distribution, order BA with the other."""
    def respond(messages, params):
        shown_first = messages[1]["content"].split("[Assistant A's answer]\n")[1].split("\n")[0]
        return first_token(when_a_first if shown_first == "4" else when_b_first)
    return respond


# ----------------------------------------------------------------------------- prompts and requests

def test_logprob_pairwise_prompt_asks_for_one_letter():
    system, user = format_pairwise_input(ONE_A, ONE_B, verdict_mode="logprob")
    assert system.content.endswith("Do not explain. Reply with exactly one letter and nothing else: A if assistant A "
                                   "is better, B if assistant B is better, C for a tie.")
    assert "[[" not in system.content
    assert user.content == ("[User request]\nWhat is 2+2?\n\n[Assistant A's answer]\n4\n\n[Assistant B's answer]\n"
                            "It is 5.\n\nWhich answer is better? Reply with one letter: A, B or C.")
    multi = format_pairwise_input(conversation("Hi", "Yo", "More", "x"), conversation("Hi", "Hey", "More", "y"),
                                  turn=2, verdict_mode="logprob")[1].content
    assert multi.endswith("Which assistant did better in turn 2? Reply with one letter: A, B or C.")


def test_logprob_grade_prompt_asks_for_one_digit_0_to_9():
    system, user = format_grade_input(ONE_A, verdict_mode="logprob")
    assert system.content.endswith("Do not explain. Reply with your rating only: one digit from 0 (useless or wrong) "
                                   "to 9 (excellent), and nothing else.")
    assert user.content == ("[User request]\nWhat is 2+2?\n\n[Assistant's reply]\n4\n\n"
                            "Rate the reply. Reply with one digit, 0 to 9.")


def test_logprob_judge_asks_one_greedy_token_with_top_20_in_both_orders():
    backend = ScriptedBackend(by_order({"A": 0.9, "B": 0.1}, {"B": 0.9, "A": 0.1}))
    judge = LLMPairwiseJudge(backend, LOGPROB)
    verdict = asyncio.run(judge.judge_pair(ONE_A, ONE_B))
    assert backend.calls == 2
    for request in backend.requests:
        assert request.params["max_tokens"] == 1 and request.params["logprobs"] == 20
        assert request.params["temperature"] == 0.0 and request.params["response_format"] is None
    assert [r.messages for r in backend.requests] == [
        [m.to_dict() for m in format_pairwise_input(ONE_A, ONE_B, verdict_mode="logprob")],
        [m.to_dict() for m in format_pairwise_input(ONE_B, ONE_A, verdict_mode="logprob")]]
    assert verdict.winner == "A" and verdict.detail["orders"] == {"AB": "A", "BA": "A"}
    assert verdict.detail["verdict_mode"] == "logprob" and judge.name == "llm-pairwise:scripted:v1:logprob"
    assert LLMPairwiseJudge(backend).name == "llm-pairwise:scripted:v1:text"


# ----------------------------------------------------------------------------- probabilities

def test_candidate_tokens_are_matched_after_stripping_and_summed_then_renormalized():
    top = {"A": math.log(0.5), " A": math.log(0.1), "B": math.log(0.2), "\nC": math.log(0.1), "The": math.log(0.1)}
    distribution, mass = candidate_distribution(top, PAIRWISE_TOKENS)
    assert mass == pytest.approx(0.9)
    assert distribution == pytest.approx({"A": 0.6 / 0.9, "B": 0.2 / 0.9, "tie": 0.1 / 0.9})
    assert candidate_distribution({"The": 0.0, "a": -1.0}, PAIRWISE_TOKENS) == (None, 0.0)


def test_verdict_records_the_probabilities_per_order_and_averaged():
    backend = ScriptedBackend(by_order({"A": 0.6, "B": 0.3, "C": 0.1}, {"A": 0.5, "B": 0.3, "C": 0.2}))
    verdict = asyncio.run(LLMPairwiseJudge(backend, LOGPROB).judge_pair(ONE_A, ONE_B))
    probabilities = verdict.detail["probabilities"]
    assert probabilities["AB"] == pytest.approx({"A": 0.6, "B": 0.3, "tie": 0.1})
    # order BA showed ONE_B as A: mapped back, P(ONE_A wins) = P(shown B) = 0.3
    assert probabilities["BA"] == pytest.approx({"A": 0.3, "B": 0.5, "tie": 0.2})
    assert probabilities["mean"] == pytest.approx({"A": 0.45, "B": 0.4, "tie": 0.15})
    assert verdict.detail["orders"] == {"AB": "A", "BA": "B"} and verdict.winner == "A"
    assert verdict.detail["candidate_mass"] == pytest.approx({"AB": 1.0, "BA": 1.0})
    assert verdict.detail["unparseable_orders"] == 0


def test_averaging_the_orders_cancels_a_pure_position_bias():
    # the judge gives the answer shown first 0.8 whichever it is: no preference at all between a and b
    first_shown = {"A": 0.8, "B": 0.2}
    verdict = asyncio.run(LLMPairwiseJudge(ScriptedBackend(by_order(first_shown, first_shown)), LOGPROB)
                          .judge_pair(ONE_A, ONE_B))
    assert verdict.detail["probabilities"]["mean"] == pytest.approx({"A": 0.5, "B": 0.5, "tie": 0.0})
    assert verdict.winner == "tie" and verdict.detail["orders"] == {"AB": "A", "BA": "B"}
    # the same bias on top of a real preference for a still picks a
    verdict = asyncio.run(LLMPairwiseJudge(ScriptedBackend(by_order({"A": 0.9, "B": 0.1}, {"A": 0.7, "B": 0.3})),
                                           LOGPROB).judge_pair(ONE_A, ONE_B))
    assert verdict.detail["probabilities"]["mean"]["A"] == pytest.approx(0.6) and verdict.winner == "A"


@pytest.mark.parametrize("margin, winner", [(0.0, "A"), (0.09, "A"), (0.11, "tie")])
def test_tie_margin_on_the_averaged_probabilities(margin, winner):
    backend = ScriptedBackend(by_order({"A": 0.55, "B": 0.45}, {"B": 0.55, "A": 0.45}))   # mean 0.55 vs 0.45
    verdict = asyncio.run(LLMPairwiseJudge(backend, LLMOptions(verdict_mode="logprob", tie_margin=margin))
                          .judge_pair(ONE_A, ONE_B))
    assert verdict.winner == winner and verdict.detail["tie_margin"] == margin


@pytest.mark.parametrize("margin, winner", [(0.0, "A"), (0.1, "tie")])
def test_a_likely_tie_token_pulls_a_and_b_together_into_the_margin(margin, winner):
    # P(tie) 0.9 in both orders: P(A) - P(B) = 0.06 - 0.04 after averaging
    backend = ScriptedBackend(by_order({"C": 0.9, "A": 0.06, "B": 0.04}, {"C": 0.9, "B": 0.06, "A": 0.04}))
    verdict = asyncio.run(LLMPairwiseJudge(backend, LLMOptions(verdict_mode="logprob", tie_margin=margin))
                          .judge_pair(ONE_A, ONE_B))
    assert verdict.detail["probabilities"]["mean"] == pytest.approx({"A": 0.06, "B": 0.04, "tie": 0.9})
    assert verdict.winner == winner


def test_an_order_without_any_candidate_token_leaves_the_pair_unparseable():
    backend = ScriptedBackend(by_order({"A": 0.7, "B": 0.3}, {"[[": 0.9, "The": 0.1}))
    verdict = asyncio.run(LLMPairwiseJudge(backend, LOGPROB).judge_pair(ONE_A, ONE_B))
    assert verdict.winner is None and verdict.detail["orders"] == {"AB": "A", "BA": None}
    assert verdict.detail["unparseable_orders"] == 1 and verdict.detail["probabilities"]["mean"] is None
    assert verdict.detail["replies"] == {"AB": ["A"], "BA": ["[["]}


def test_a_backend_without_logprobs_is_a_config_error_naming_the_text_mode():
    backend = ScriptedBackend(["A", "B"])
    with pytest.raises(ConfigError, match="returned no logprobs.*use --verdict-mode text"):
        asyncio.run(LLMPairwiseJudge(backend, LOGPROB).judge_pair(ONE_A, ONE_B))
    with pytest.raises(ConfigError, match="--verdict-mode text"):
        asyncio.run(LLMGradeJudge(ScriptedBackend(["7"]), LOGPROB).grade(ONE_A))


def test_unknown_verdict_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="verdict_mode: expected one of text, logprob"):
        LLMOptions(verdict_mode="probs")


# ----------------------------------------------------------------------------- grades

def test_grade_is_the_expected_value_of_the_digit_distribution_mapped_to_1_10():
    backend = ScriptedBackend([first_token({"7": 0.5, "8": 0.3, " 9": 0.1, "Great": 0.1})])
    grade = asyncio.run(LLMGradeJudge(backend, LOGPROB).grade(ONE_A))
    # digits 7, 8, 9 are grades 8, 9, 10; renormalized over 0.9
    assert grade.score == pytest.approx((8 * 0.5 + 9 * 0.3 + 10 * 0.1) / 0.9)
    assert grade.detail["distributions"][0]["10"] == pytest.approx(0.1 / 0.9)
    assert grade.detail["verdict_mode"] == "logprob" and grade.detail["candidate_mass"] == [pytest.approx(0.9)]
    assert backend.requests[0].params["max_tokens"] == 1 and backend.requests[0].params["logprobs"] == 20


def test_grade_10_is_digit_9_and_a_split_10_token_is_not_read_as_1():
    assert expected_grade(candidate_distribution({"9": 0.0}, GRADE_TOKENS)[0]) == 10.0
    assert expected_grade(candidate_distribution({"0": 0.0}, GRADE_TOKENS)[0]) == 1.0
    # a tokenizer with a "10" token, or one whose "10" starts with "1": neither is a candidate on the 0-9 scale
    distribution, mass = candidate_distribution({"10": math.log(0.6), "8": math.log(0.4)}, GRADE_TOKENS)
    assert distribution[9] == 1.0 and mass == pytest.approx(0.4)


def test_multi_turn_logprob_grade_is_the_minimum_of_the_expected_grades():
    dialogue = conversation("Hi", "Hello", "Plan a trip", "Go to Rome", id="d")

    def respond(messages, params):
        turn = 2 if "turn 2" in messages[1]["content"] else 1
        return first_token({"8": 1.0} if turn == 1 else {"3": 0.5, "5": 0.5})

    grade = asyncio.run(LLMGradeJudge(ScriptedBackend(respond), LOGPROB).grade(dialogue))
    assert grade.detail["per_turn"] == [9.0, 5.0] and grade.score == 5.0


def test_grade_without_any_digit_is_unparseable():
    grade = asyncio.run(LLMGradeJudge(ScriptedBackend([first_token({"Rating": 1.0})]), LOGPROB).grade(ONE_A))
    assert grade.score is None and grade.detail["unparseable_turns"] == 1


@pytest.mark.parametrize("margin, winner", [(0.0, "B"), (0.5, "tie")])
def test_grade_judge_pairs_tie_within_the_margin(margin, winner):
    backend = ScriptedBackend([first_token({"6": 0.6, "7": 0.4}), first_token({"7": 0.6, "6": 0.4})])
    verdict = asyncio.run(LLMGradeJudge(backend, LLMOptions(verdict_mode="logprob", tie_margin=margin))
                          .judge_pair(ONE_A, ONE_B))
    assert (verdict.detail["score_a"], verdict.detail["score_b"]) == pytest.approx((7.4, 7.6))
    assert verdict.winner == winner


# ----------------------------------------------------------------------------- records, jobs, CLI, agreement

def test_flipping_a_logprob_record_swaps_its_probabilities():
    record = VerdictRecord("1", "x", "y", "A", detail={
        "orders": {"AB": "A", "BA": "tie"}, "candidate_mass": {"AB": 0.9, "BA": 0.5},
        "probabilities": {"AB": {"A": 0.7, "B": 0.2, "tie": 0.1}, "BA": {"A": 0.4, "B": 0.4, "tie": 0.2},
                          "mean": {"A": 0.55, "B": 0.3, "tie": 0.15}}})
    flipped = record.flipped().detail
    assert flipped["probabilities"] == {"AB": {"A": 0.4, "B": 0.4, "tie": 0.2}, "BA": {"A": 0.2, "B": 0.7, "tie": 0.1},
                                        "mean": {"A": 0.3, "B": 0.55, "tie": 0.15}}
    assert flipped["candidate_mass"] == {"AB": 0.5, "BA": 0.9} and flipped["orders"] == {"AB": "tie", "BA": "B"}


def test_pairs_job_in_logprob_mode_records_the_mode_and_refuses_to_mix_modes(pairs_file, tmp_path):
    output = tmp_path / "v.jsonl"
    backend = ScriptedBackend(lambda messages, params: first_token({"A": 0.7, "B": 0.3}))
    config = JudgeConfig(verdict_mode="logprob")
    judge = LLMPairwiseJudge(backend, LLMOptions.from_config(config))
    summary = asyncio.run(judge_pairs_job(config, pairs_file, output, progress=False, judge=judge))
    records = read_records(output)
    assert summary.done == 3 and backend.calls == 6
    assert {r["judge"] for r in records} == {"llm-pairwise:scripted:v1:logprob"}
    assert {r["detail"]["verdict_mode"] for r in records} == {"logprob"}
    assert {r["winner"] for r in records} == {"tie"}          # "A" at 0.7 in both orders: pure position bias
    text_judge = LLMPairwiseJudge(ScriptedBackend(["[[A]]"] * 6))
    with pytest.raises(ConfigError, match="was written with judge.verdict_mode=logprob, this run has text; pass --overwrite"):
        asyncio.run(judge_pairs_job(JudgeConfig(), pairs_file, output, progress=False, judge=text_judge))


def test_cli_verdict_mode_flag_and_the_no_logprobs_error(run_cli, pairs_file, tmp_path):
    backends = json.dumps({"judge": {"kind": "scripted", "replies": ["A"] * 6}})
    code, _, err = run_cli("judge", "pairs", "--backends", backends, "--verdict-mode", "logprob", "--input",
                           pairs_file, "-o", tmp_path / "v.jsonl", "--no-progress")
    assert code == 2
    assert "returned no logprobs" in err and "--verdict-mode text" in err and "Traceback" not in err
    config = tmp_path / "judge.yaml"
    config.write_text("judge: llm-grade\nverdict_mode: probs\n", encoding="utf-8")
    code, _, err = run_cli("judge", "grade", "--config", config, "--backends", backends, "--input", pairs_file,
                           "-o", tmp_path / "g.jsonl", "--no-progress")
    assert code == 2 and "verdict_mode: expected one of text, logprob, got 'probs'" in err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def mode_record(id: str, winner: str, mode: str, orders: dict, len_a: int = 10, len_b: int = 5) -> dict:
    return {"id": id, "a": "chosen", "b": "rejected", "winner": winner, "judge": f"llm-pairwise:x:v1:{mode}",
            "detail": {"verdict_mode": mode, "orders": orders, "len_a": len_a, "len_b": len_b}}


def test_agree_shows_the_two_verdict_modes_side_by_side(run_cli, tmp_path):
    labels = write_jsonl(tmp_path / "labels.jsonl", [{"id": str(i), "a": "chosen", "b": "rejected", "winner": "A"}
                                                     for i in range(4)])
    text = write_jsonl(tmp_path / "text.jsonl", [
        mode_record(str(i), "tie", "text", {"AB": "A", "BA": "B"}) for i in range(4)])
    logprob = write_jsonl(tmp_path / "logprob.jsonl", [
        mode_record("0", "A", "logprob", {"AB": "A", "BA": "A"}),
        mode_record("1", "A", "logprob", {"AB": "A", "BA": "A"}),
        mode_record("2", "B", "logprob", {"AB": "B", "BA": "B"}),
        mode_record("3", None, "logprob", {"AB": "A", "BA": None})])
    code, out, err = run_cli("judge", "agree", "--a", labels, "--b", text, logprob, "-o", tmp_path / "r",
                             "--bootstrap", "50")
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["modes"] == ["logprob", "text"]
    text_part, logprob_part = report["by_mode"]["text"], report["by_mode"]["logprob"]
    assert text_part["agreement"]["accuracy"] == 0.0 and logprob_part["agreement"]["accuracy"] == pytest.approx(2 / 3)
    assert text_part["judges"]["b"]["position_consistency"]["consistent"] == 0.0
    assert logprob_part["judges"]["b"]["position_consistency"]["consistent"] == 1.0
    assert logprob_part["judges"]["b"]["verdict_per_order"] == {"AB": 1.0, "BA": 0.75}
    assert logprob_part["judges"]["b"]["length_bias"]["prefers_longer"] == pytest.approx(2 / 3)
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "| | logprob | text |" in markdown
    assert "| accuracy (ties) [95% CI] | 0.667 " in markdown
    assert "| verdict produced, order AB / BA | 1.000 / 0.750 | 1.000 / 1.000 |" in markdown
    assert "## Mode logprob:" in markdown and "## Mode text:" in markdown
    assert (tmp_path / "r" / "logprob_agreement.png").stat().st_size > 0
    assert "[logprob] accuracy 0.667" in out and "[text] accuracy 0.000" in out
    # the same records in one file give the same report
    both = write_jsonl(tmp_path / "both.jsonl", [*read_records(text), *read_records(logprob)])
    same = agree(labels, both, tmp_path / "r2", resamples=50, plots=False)
    assert same["by_mode"]["logprob"]["agreement"] == report["by_mode"]["logprob"]["agreement"]
    # a reference holding both modes is refused with a hint
    code, _, err = run_cli("judge", "agree", "--a", both, "--b", labels, "-o", tmp_path / "r3")
    assert code == 2 and "give it as --b" in err


def test_agree_on_grades_of_both_modes_reports_each_mode(tmp_path):
    reference = write_jsonl(tmp_path / "ref.jsonl", [{"id": str(i), "score": s} for i, s in enumerate([1, 2, 3, 4])])
    graded = write_jsonl(tmp_path / "both.jsonl", [
        *({"id": str(i), "score": s, "detail": {"verdict_mode": "text"}} for i, s in enumerate([4, 3, 2, 1])),
        *({"id": str(i), "score": s, "detail": {"verdict_mode": "logprob"}} for i, s in enumerate([1.5, 2.5, 2.9, 9]))])
    report = agree(reference, graded, tmp_path / "r", resamples=20)
    assert report["by_mode"]["text"]["agreement"]["spearman"] == pytest.approx(-1.0)
    assert report["by_mode"]["logprob"]["agreement"]["spearman"] == pytest.approx(1.0)
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "| Spearman [95% CI] | 1.000 " in markdown and (tmp_path / "r" / "logprob_scores.png").exists()
