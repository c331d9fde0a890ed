"""--dry-run estimates: exact call counts of each method's algorithm, and the plan table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from generate.review_instruct.algorithm import calls_per_conversation
from pipeline.config import STAGES, PipelineConfig
from pipeline.estimate import bon_calls, estimate_stage, format_plan, music_calls
from pipeline.stages import StageContext
from pipeline_helpers import REPO_ROOT, config_values, write_config

SEED_PROMPTS = str(REPO_ROOT / "configs" / "demo" / "seed_prompts.jsonl")


def mean_music_calls(turns: int, scope: str = "from_divergence", divergences=None) -> float:
    divergences = divergences or range(1, turns + 1)
    return sum(music_calls(turns, 1, d, scope, False)[0] for d in divergences) / len(divergences)


def test_music_calls_follow_the_algorithm():
    # T=5, d uniform in 1..5, contrast at every turn >= d: (23 + 20 + 17 + 14 + 11) / 5; the scripted benchmark
    # (bench/augment_call_counts.py, 200 seeds) measured 16.76 for the same setup, i.e. a sample of d's.
    assert mean_music_calls(5) == 17.0
    assert music_calls(5, 1, 5, "from_divergence", False) == (11, 1)        # final-turn ablation
    assert music_calls(5, 1, 1, "divergence_only", False) == (19, 1)
    assert music_calls(3, 1, 1, "divergence_only", True) == (8, 0)          # seed contrast reused at d = 1


@pytest.mark.parametrize("rounds, reviewers, review, ask_last, expected", [
    (2, 3, True, True, 10), (2, 3, False, True, 4), (2, 3, True, False, 9), (1, 1, True, True, 3)])
def test_review_instruct_calls_per_conversation(rounds, reviewers, review, ask_last, expected):
    config = SimpleNamespace(rounds=rounds, reviewers=reviewers, review=review, ask_after_last_round=ask_last)
    assert calls_per_conversation(config) == expected


def test_stage_estimates_of_a_config(tmp_path):
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(tmp_path / "run"))))
    augment = estimate_stage(ctx, "augment")
    assert augment.items == "10 seeds" and augment.calls == 10 * mean_music_calls(3)
    # every turn >= d is a contrast step (3, 2 or 1 of them), each allowed max_reasks = 2 re-asks
    assert augment.max_calls == 10 * (mean_music_calls(3) + 2 * (3 + 2 + 1) / 3)
    assert augment.completion_tokens_max == int(augment.max_calls * 32)
    judge = estimate_stage(ctx, "judge")
    assert judge.items == "~18 pairs"                        # (64 originals + 10 MUSIC) x 0.25
    assert (judge.calls, judge.max_calls) == (36, 72)        # both orders, one re-ask each
    generate = estimate_stage(ctx, "generate")
    # review-instruct 5 seeds x 2 x (1 + 2 + 1); sedi 6 generation calls + on average half of 24 responses, and
    # one response per seed task for the seed-quantile thresholds (24 seed tasks)
    assert generate.calls == 5 * 8 + 6 + 12 + 24 and generate.max_calls == 5 * 8 * 3 + 6 + 24 + 24
    assert estimate_stage(ctx, "rm_train").calls == 0


def test_plan_lists_every_stage_with_a_total(tmp_path):
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", config_values(tmp_path / "run"))))
    statuses = {stage: "pending" for stage in STAGES}
    statuses["augment"] = "done"
    plan = format_plan(ctx, list(STAGES), statuses)
    lines = plan.splitlines()
    assert lines[0].split()[:4] == ["stage", "status", "input", "LLM"]
    assert [line.split()[0] for line in lines[2:2 + len(STAGES)]] == list(STAGES)
    assert "already done" in lines[2]
    generate = estimate_stage(ctx, "generate")
    judge = estimate_stage(ctx, "judge")
    total = next(line for line in lines if line.startswith("total")).split()
    assert total[1] == f"{generate.calls + judge.calls:.0f}"


def test_bon_calls_bound_every_trajectory_apart_after_turn_one():
    # T=3, N in {2,4,8}: turn 1 samples 8 once; turns 2-3: 2 trajectories x (2 + 4 + 8); 2 x 3 x 2 user turns;
    # one pair per N in both orders
    assert bon_calls(3, [2, 4, 8]) == (8 + 2 * 28, 12, 6)
    assert bon_calls(1, [4]) == (4, 0, 2)


def test_bon_and_rm_train_rows_of_the_plan(tmp_path):
    values = config_values(tmp_path / "run")
    values["bon"] = {"prompts": SEED_PROMPTS, "backends": {"policy": "llm", "user_sim": "llm", "judge": "llm"},
                     "config": {"limit": 5, "turns": 2, "n_values": [2, 4], "max_tokens": 64, "user_max_tokens": 32},
                     "judge": {"max_tokens": 1, "max_reasks": 1}}
    values["rm_train"] = {"config": {"max_length": 128, "max_steps": 9}}
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    bon = estimate_stage(ctx, "bon")
    assert bon.items == "5 prompts" and bon.calls == 5 * (16 + 4 + 4)
    assert bon.max_calls == 5 * (16 + 4 * 3 + 4 * 2)            # 3 user attempts, one judge re-ask
    assert bon.completion_tokens_max == 5 * (16 * 64 + 4 * 3 * 32 + 4 * 2 * 1)
    assert bon.note.startswith("per prompt <= 16 policy + 4 user + 4 judge calls (T=2, N in 2,4)")
    rm_train = estimate_stage(ctx, "rm_train")
    # augment: T=3 answers of 32 tokens + 2 user turns of 128 (the default) = 352 > max_length 128
    assert rm_train.note.startswith("no LLM calls; baseline and MUSIC RM, 9 steps each; WARNING: MUSIC "
                                    "conversations may reach ~352 tokens")
    values.pop("bon")
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "q.yaml", values)))
    assert (estimate_stage(ctx, "bon").items, estimate_stage(ctx, "bon").calls) == ("no bon section", 0)


def test_a_config_without_judge_and_generate_plans_them_as_skipped(tmp_path):
    values = config_values(tmp_path / "run")
    del values["judge"], values["generate"]
    ctx = StageContext(PipelineConfig.load(write_config(tmp_path / "p.yaml", values)))
    for stage in ("judge", "generate"):
        estimate = estimate_stage(ctx, stage)
        assert (estimate.items, estimate.note, estimate.calls) == (f"no {stage} section", "skipped", 0)
