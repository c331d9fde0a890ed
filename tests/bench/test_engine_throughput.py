"""bench/engine_throughput.py: the timing arithmetic, the concurrency gate, untagged prefixes and the recorded rows."""

from __future__ import annotations

import asyncio
import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench import engine_throughput as bench  # noqa: E402
from bench.results import RESULTS_ENV  # noqa: E402


def test_point_rates_from_the_two_runs():
    point = bench.Point("local", 8, requests=8, prompt_tokens=4000, ttft_s=3.0, first_wall_s=20.0,
                        full_wall_s=30.0, generated=808)
    assert point.prefill_tok_s == 200.0
    assert point.aggregate_tok_s == pytest.approx(808 / 30)
    assert point.decode_tok_s == pytest.approx(800 / 10)  # tokens after the first, time past the first run


def test_tagged_prompts_start_with_the_run_and_leave_the_originals():
    prompts = [[{"role": "user", "content": "judge this"}]]
    assert bench.tagged(prompts, "full 8") == [[{"role": "user", "content": "[full 8] judge this"}]]
    assert prompts == [[{"role": "user", "content": "judge this"}]]


def test_timed_keeps_at_most_the_concurrency_in_flight_and_sums_usage():
    in_flight, peak = 0, 0

    async def ask(messages, max_tokens):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return {"prompt_tokens": len(messages[0]["content"]), "completion_tokens": max_tokens}

    prompts = [[{"role": "user", "content": "x" * n}] for n in (3, 4, 5, 6, 7)]
    wall, latency, prompt_tokens, generated = asyncio.run(bench.timed(ask, prompts, 2, 9))
    assert peak == 2
    assert (prompt_tokens, generated) == (25, 45)
    assert 0 < latency <= wall


def test_measure_refuses_an_engine_that_stops_early():
    async def ask(messages, max_tokens):
        return {"prompt_tokens": 10, "completion_tokens": min(max_tokens, 5)}

    with pytest.raises(RuntimeError, match="generated 10 tokens, expected 8 x 2"):
        bench.measure("stub", ask, [[{"role": "user", "content": "a"}]] * 2, 2, 8)


def test_report_records_floor_share_and_ratios_with_the_issue_targets(tmp_path, monkeypatch):
    results = tmp_path / "rows.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    points = [bench.Point("local", 8, 8, 4000, 2.0, 20.0, 30.0, 800),
              bench.Point("llamacpp", 8, 8, 4000, 4.0, 40.0, 50.0, 800),
              bench.Point("generate", 8, 8, 4000, 5.0, 40.0, 80.0, 800)]
    args = Namespace(concurrency=[8], tokens=100, json=None)
    floors = {"int8": bench.Floor(400.0, 300.0, 300.0), "fp32": bench.Floor(100.0, 80.0, 70.0)}
    bench.report(points, floors, 0.7e9, 500, args, {})
    rows = {row["benchmark"]: row for row in map(json.loads, results.read_text().splitlines())}
    floor = rows["local backend prefill tok/s at 8 concurrent vs the int8 compute floor"]
    assert (floor["ratio"], floor["met"]) == (0.5, True)
    llama = rows["local backend aggregate tok/s at 8 concurrent vs llamacpp"]
    assert (llama["ratio"], llama["target"], llama["met"]) == (pytest.approx(50 / 30), ">= 1.0x", True)
    generate = rows["local backend aggregate tok/s at 8 concurrent vs generate"]
    assert (generate["ratio"], generate["met"]) == (pytest.approx(80 / 30), None)
