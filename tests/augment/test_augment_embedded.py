"""End to end with the real embedded instruct model (Qwen2.5-Coder-0.5B-Instruct; Gemma 3's chat template rejects
the flipped-role user simulator's leading assistant turn). Short budgets, so seeds may be dropped: only the plumbing
and the drop bookkeeping are asserted."""

from __future__ import annotations

import json

import pytest

from augment.config import MusicConfig
from augment.run import run_music
from augment.turns import DROP_REASONS
from chat.runner import seed_log_path
from chat.formats import read_records
from chat.runner import read_records as read_sink


@pytest.mark.slow
def test_a_few_pairs_end_to_end_with_the_embedded_model(tmp_path):
    source = tmp_path / "prompts.jsonl"
    prompts = ["Name three fruits.", "What is the capital of France?", "Write a short greeting.", "Count to five."]
    source.write_text("".join(json.dumps({"id": f"q{i}", "messages": [{"role": "user", "content": p}]}) + "\n"
                              for i, p in enumerate(prompts)))
    config = MusicConfig(backends={"simulator": {"kind": "local", "model": "embedded", "cache": False}},
                         turns=2, max_tokens=16, drop_truncated=False, max_reasks=1, concurrency=4, seed=1)
    output = tmp_path / "music.jsonl"
    result = run_music(source, output, config, progress=False, handle_sigint=False)

    assert result.summary.errors == 0
    log = read_sink(seed_log_path(output))
    assert sorted(row["id"] for row in log) == ["q0", "q1", "q2", "q3"]
    pairs = list(read_records(output)) if output.stat().st_size else []
    assert len(pairs) == result.kept == sum(row["kept"] for row in log)
    assert result.kept + sum(result.dropped.values()) == 4
    assert {row["dropped"] for row in log if not row["kept"]} <= set(DROP_REASONS)
    assert result.summary.usage["total"]["calls"] == result.counters["llm_calls"]
    for pair in pairs:
        assert pair.meta["simulator"]["assistant"].startswith("local")
        assert pair.chosen.turns == pair.rejected.turns == 2
