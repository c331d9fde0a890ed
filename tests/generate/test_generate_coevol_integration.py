"""CoEvol on the shared seed tasks with the embedded base model (smoke quality: plumbing only)."""

from __future__ import annotations

import json

import pytest

from chat.config import build_config, load_yaml
from generate.coevol.algorithm import STOP_REASONS
from generate.coevol.config import CoevolConfig
from generate.coevol.run import run_coevol

pytestmark = pytest.mark.slow


def test_coevol_refines_seed_tasks_with_the_embedded_model(shared_data, tmp_path):
    values = load_yaml("configs/generate/coevol-embedded-smoke.yaml")
    config = build_config(CoevolConfig, {**values, "max_tokens": 24, "limit": 1})
    output = tmp_path / "coevol.jsonl"
    result = run_coevol(shared_data / "seeds" / "self_instruct_seed_tasks.jsonl", output, config, progress=False,
                        handle_sigint=False)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert result.summary.done == 1 and len(rows) == 1
    turn = rows[0]["meta"]["coevol"]["turns"][0]
    assert turn["stop_reason"] in STOP_REASONS
    assert (rows[0]["messages"][-1]["content"] == turn["original"]) == (turn["accepted"] == 0)
    usage = rows[0]["meta"]["usage"]
    assert 2 <= usage["calls"] + usage["cache_hits"] <= 8      # one iteration: 2 + 2 debaters, advisor, editor, 2 judges
    assert result.counters["iteration_1_run"] == 1
    summary = json.loads((tmp_path / "coevol.jsonl.summary.json").read_text())
    assert summary["coevol"]["acceptance_by_iteration"]["1"]["run"] == 1
