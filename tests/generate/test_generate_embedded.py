"""Plumbing with the embedded base model (smoke quality): records and counts consistent, files written."""

from __future__ import annotations

import json

import pytest
from generate_helpers import alpaca_seeds

from chat.config import build_config, load_yaml
from chat.runner import seed_log_path
from generate.review_instruct.config import ReviewInstructConfig
from generate.review_instruct.run import run_review_instruct
from generate.sedi.config import SediConfig
from generate.sedi.run import iteration_log_path, run_sedi

pytestmark = pytest.mark.slow


def test_review_instruct_and_sedi_run_on_the_embedded_model(tmp_path):
    values = load_yaml("configs/generate/embedded-smoke.yaml")
    config = build_config(ReviewInstructConfig, {**values, "max_tokens": 24, "max_reasks": 0, "limit": 1})
    result = run_review_instruct(alpaca_seeds(tmp_path / "seeds.jsonl", 2), tmp_path / "review.jsonl", config,
                                 progress=False, handle_sigint=False)
    log = [json.loads(line) for line in seed_log_path(tmp_path / "review.jsonl").read_text().splitlines()]
    assert len(log) == 1 and result.kept + sum(result.dropped.values()) == 1
    assert 1 <= result.counters["llm_calls"] + result.counters["cache_hits"] <= 3   # a rerun hits the response cache
    sedi = build_config(SediConfig, {"mode": "self-instruct", "backends": values["backends"], "iterations": 1,
                                     "requests_per_iteration": 2, "instructions_per_call": 2, "max_tokens": 24,
                                     "seed_examples": 2, "machine_examples": 0})
    result = run_sedi(alpaca_seeds(tmp_path / "tasks.jsonl", 4), tmp_path / "sedi.jsonl", sedi,
                      progress=False, handle_sigint=False)
    assert len(iteration_log_path(tmp_path / "sedi.jsonl").read_text().splitlines()) == 1
    # 2 generator calls, then one response per instruction that passed the filters (2 per call at most);
    # a response can still be dropped (empty or degenerate text)
    assert 2 + result.kept <= result.counters["llm_calls"] + result.counters["cache_hits"] <= 2 + 2 * 2
    rows = (tmp_path / "sedi.jsonl").read_text().splitlines() if (tmp_path / "sedi.jsonl").exists() else []
    assert len(rows) == result.kept
