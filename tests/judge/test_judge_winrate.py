"""`judge winrate`: AlpacaEval head-to-head numbers, the length-controlled GLM, judging with a scripted backend,
and the recorded GPT-4-turbo annotations against AlpacaEval's published leaderboard."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from chat.backends import ScriptedBackend
from chat.conversation import Conversation
from judge.base import Verdict
from judge.config import JudgeConfig
from judge.llm import LLMOptions, LLMPairwiseJudge, format_pairwise_input
from judge.winrate import head_to_head, length_controlled
from judge.winrate_job import (LEADERBOARD_COLUMNS, judge_outputs_job, preference_of, read_annotations,
                               write_report)

SHARED = Path(os.environ.get("TURNWISE_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
ALPACA = SHARED / "judgments" / "alpaca_eval"


# ----------------------------------------------------------------------------- head to head

def test_head_to_head_counts_and_standard_error():
    stats = head_to_head([1, 2, 2, 1.5, 0, None, 1.75])
    # 0 is a draw, None is dropped: shifted values 0, 1, 1, .5, .5, .75
    values = np.array([0, 1, 1, 0.5, 0.5, 0.75])
    assert stats["win_rate"] == pytest.approx(values.mean() * 100)
    assert stats["standard_error"] == pytest.approx(values.std(ddof=1) / math.sqrt(6) * 100)
    assert (stats["n_wins"], stats["n_wins_base"], stats["n_draws"], stats["n_total"]) == (3, 1, 2, 6)
    # discrete: 1.75 rounds to a win -> 0, 1, 1, .5, .5, 1
    assert stats["discrete_win_rate"] == pytest.approx(4 / 6 * 100)


# ----------------------------------------------------------------------------- length-controlled GLM

def test_length_controlled_removes_a_pure_length_preference():
    """The judge prefers whichever answer is longer and nothing else: raw win rate far from 50, LC near 50."""
    rng = np.random.default_rng(1)
    n = 400
    len_base = rng.integers(200, 2000, n)
    len_model = len_base + rng.integers(0, 1500, n)        # the model is always longer
    delta = (len_base - len_model) / np.std(len_base - len_model, ddof=1)
    preference = 1 + 1 / (1 + np.exp(2.0 * np.tanh(delta)))  # P(model) = sigmoid(-2 tanh(delta)), no model effect
    fit = length_controlled(preference.tolist(), len_base.tolist(), len_model.tolist(), resamples=20)
    assert head_to_head(preference.tolist())["win_rate"] > 70
    assert fit.coefficients["np.tanh(std_delta_len)"] == pytest.approx(-2.0, abs=1e-4)
    assert fit.coefficients["not_gamed_baseline.astype(float)"] == pytest.approx(0.0, abs=1e-4)
    assert fit.length_controlled_winrate == pytest.approx(50.0, abs=0.01)
    assert fit.lc_standard_error > 0 and fit.converged


def test_length_controlled_difficulty_term_enters_the_prediction():
    rng = np.random.default_rng(2)
    n = 300
    len_base, len_model = rng.integers(500, 900, n), rng.integers(500, 900, n)
    difficulty = rng.normal(size=n)
    sd = np.std(len_base - len_model, ddof=1)
    logits = 0.5 - 1.0 * np.tanh((len_base - len_model) / sd) + 0.8 * difficulty
    preference = 1 + 1 / (1 + np.exp(-logits))
    fit = length_controlled(preference.tolist(), len_base.tolist(), len_model.tolist(), difficulty.tolist(),
                            resamples=0)
    assert fit.coefficients["instruction_difficulty"] == pytest.approx(0.8, abs=1e-4)
    expected = np.mean(1 / (1 + np.exp(-(0.5 + 0.8 * difficulty)))) * 100
    assert fit.length_controlled_winrate == pytest.approx(expected, abs=1e-3)
    assert math.isnan(fit.lc_standard_error)


# ----------------------------------------------------------------------------- judging

def conversation(question: str, answer: str, id: str, generator: str) -> Conversation:
    return Conversation.from_messages([{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                                      id=id, meta={"generator": generator})


def test_preference_of_text_and_logprob_verdicts():
    assert [preference_of(Verdict(w)) for w in ("A", "B", "tie", None)] == [1.0, 2.0, 1.5, None]
    verdict = Verdict("B", {"probabilities": {"mean": {"A": 0.2, "B": 0.6, "tie": 0.2}}})
    assert preference_of(verdict) == pytest.approx(1.7)


def test_judged_winrate_shows_both_orders_and_writes_alpaca_annotations(tmp_path):
    """Reference shown as A first, then swapped; the judge always picks the model's answer (B, then A)."""
    model = [{"instruction": "Say hi", "output": "Hello there, friend!", "generator": "mine"},
             {"instruction": "Add 1+1", "output": "2", "generator": "mine"}]
    reference = [{"instruction": "Say hi", "output": "hi", "generator": "base"},
                 {"instruction": "Add 1+1", "output": "The answer is 2.", "generator": "base"}]
    model_path, reference_path = tmp_path / "model.json", tmp_path / "ref.json"
    model_path.write_text(json.dumps(model), encoding="utf-8")
    reference_path.write_text(json.dumps(reference), encoding="utf-8")
    model_answers = {"Hello there, friend!", "2"}

    def responder(messages, params):
        text = messages[-1]["content"]
        answer_a = text.split("[Assistant A's answer]\n", 1)[1].split("\n\n[Assistant B's answer]", 1)[0]
        return "A is better. [[A]]" if answer_a in model_answers else "B is better. [[B]]"

    backend = ScriptedBackend(responder)
    judge = LLMPairwiseJudge(backend, LLMOptions(max_tokens=64))
    summary = asyncio.run(judge_outputs_job(JudgeConfig(concurrency=1), model_path, reference_path,
                                            tmp_path / "out" / "annotations.jsonl", progress=False, judge=judge))
    assert summary.done == 2
    hi_ref = conversation("Say hi", "hi", "r", "base")
    hi_model = conversation("Say hi", "Hello there, friend!", "m", "mine")
    sent = [r.messages for r in backend.requests]
    assert len(sent) == 4
    assert [m.to_dict() for m in format_pairwise_input(hi_ref, hi_model)] in sent
    assert [m.to_dict() for m in format_pairwise_input(hi_model, hi_ref)] in sent
    rows = read_annotations(tmp_path / "out" / "annotations.jsonl")
    assert [(a.instruction, a.generator_1, a.generator_2, a.preference) for a in rows] == [
        ("Say hi", "base", "mine", 2.0), ("Add 1+1", "base", "mine", 2.0)]
    assert rows[0].output_1 == "hi" and rows[0].output_2 == "Hello there, friend!"
    report = write_report(rows, tmp_path / "out", resamples=5)
    assert report["models"]["mine"]["leaderboard"]["win_rate"] == 100.0
    with open(tmp_path / "out" / "leaderboard.csv", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["", *LEADERBOARD_COLUMNS]
    assert (tmp_path / "out" / "winrate.png").stat().st_size > 0


def test_multi_turn_conversations_are_matched_by_id_and_judged_whole(tmp_path, run_cli):
    def dialogue(id: str, second: str) -> dict:
        return {"id": id, "messages": [{"role": "user", "content": "Plan a trip"}, {"role": "assistant", "content": "Go."},
                                       {"role": "user", "content": "Where?"}, {"role": "assistant", "content": second}],
                "meta": {"generator": "mt"}}

    model_path, reference_path = tmp_path / "model.jsonl", tmp_path / "ref.jsonl"
    model_path.write_text(json.dumps(dialogue("d1", "Lisbon, in spring, for the light.")) + "\n", encoding="utf-8")
    reference_path.write_text(json.dumps(dialogue("d1", "Paris.")) + "\n", encoding="utf-8")
    script = tmp_path / "script.yaml"
    script.write_text("['[[C]]', '[[C]]']\n", encoding="utf-8")
    config = tmp_path / "judge.yaml"
    config.write_text(json.dumps({"backends": {"judge": {"kind": "scripted", "script": str(script)}}}),
                      encoding="utf-8")
    code, out, err = run_cli("judge", "winrate", "--model-outputs", model_path, "--reference-outputs", reference_path,
                             "--config", config, "--lc-bootstrap", "0", "--no-progress", "-o", tmp_path / "wr")
    assert code == 0, err
    (row,) = [json.loads(line) for line in (tmp_path / "wr" / "annotations.jsonl").read_text().splitlines()]
    assert row["preference"] == 1.5 and row["id"] == "d1"
    assert row["output_2"] == "Go.\n\nLisbon, in spring, for the light." and row["detail"]["variant"] == "multi-turn"
    assert "win rate 50.00" in out


def test_winrate_cli_refuses_both_sources(tmp_path, run_cli):
    code, _, err = run_cli("judge", "winrate", "--annotations", tmp_path / "a.json", "--model-outputs", "x",
                           "--reference-outputs", "y", "-o", tmp_path / "out")
    assert code == 2 and "either" in err


def test_bad_annotation_row_names_row_and_field(tmp_path, run_cli):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "q", "output_1": "a", "output_2": "b", "preference": 3}]))
    code, _, err = run_cli("judge", "winrate", "--annotations", path, "-o", tmp_path / "out")
    assert code == 2 and "preference" in err and "a.json" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- recorded AlpacaEval annotations

@pytest.mark.skipif(not ALPACA.is_dir(), reason=f"shared AlpacaEval annotations not found at {ALPACA}")
def test_recorded_gpt4_turbo_preferences_reproduce_the_published_win_rate(tmp_path):
    """Mistral-7B-Instruct-v0.2 vs gpt4_1106_preview judged by alpaca_eval_cot_gpt4_turbo_fn (the annotator the
    shared file records): AlpacaEval publishes win_rate 15.527950310559005, standard_error 1.2772783712147573,
    n_wins 125, n_wins_base 680, n_draws 0, n_total 805, avg_length 1676 in
    tatsu-lab/alpaca_eval src/alpaca_eval/leaderboards/data_AlpacaEval_2/alpaca_eval_cot_gpt4_turbo_fn_leaderboard.csv.
    The weighted FuseChat-Gemma-2-9B-Instruct file has no row in the leaderboard versions we could read, so it is
    checked for self-consistency only (win rate = mean preference - 1)."""
    mistral = read_annotations(ALPACA / "Mistral-7B-Instruct-v0.2.alpaca_eval_gpt4_turbo_fn.annotations.json.gz")
    report = write_report(mistral, tmp_path, resamples=10, plots=False)
    row = report["models"]["Mistral-7B-Instruct-v0.2"]["leaderboard"]
    assert row["win_rate"] == pytest.approx(15.527950310559005, abs=0.1)
    assert row["standard_error"] == pytest.approx(1.2772783712147573, abs=0.01)
    assert (row["n_wins"], row["n_wins_base"], row["n_draws"], row["n_total"], row["avg_length"]) == (
        125, 680, 0, 805, 1676)
    fuse_path = ALPACA / "FuseChat-Gemma-2-9B-Instruct.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz"
    raw = json.loads(gzip.open(fuse_path).read())
    fuse = write_report(read_annotations(fuse_path), tmp_path, resamples=0, plots=False)
    fuse_row = fuse["models"]["FuseChat-Gemma-2-9B-Instruct"]["leaderboard"]
    assert fuse_row["win_rate"] == pytest.approx(np.mean([r["preference"] - 1 for r in raw]) * 100, abs=1e-9)
    assert 40 < fuse_row["length_controlled_winrate"] < 90
