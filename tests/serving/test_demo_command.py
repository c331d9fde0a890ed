"""`turnwise demo` (the smaller first look beside the pipeline demo) end to end on the embedded model (small limit)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _demo(out, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "demo", "--out", str(out), "--limit", "3",
                           "--max-tokens", "6", *extra], capture_output=True, text=True, timeout=600)


def test_demo_answers_both_turns_and_a_rerun_makes_no_model_calls(tmp_path):
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in (tmp_path / "conversations.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "conversations.jsonl.summary.json").read_text())
    assert summary["done"] + summary["errors"] == 3 and len(records) == summary["done"] >= 1
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant", "user", "assistant"] for r in records)
    assert "Qwen2.5-Coder-0.5B-Instruct" in first.stdout and "small-model quality" in first.stdout

    (tmp_path / "conversations.jsonl").unlink()  # same cache, fresh output: every reply comes from the cache
    second = _demo(tmp_path)
    usage = json.loads((tmp_path / "conversations.jsonl.summary.json").read_text())["usage"]["total"]
    assert second.returncode == 0 and usage["calls"] == 0 and usage["cache_hits"] >= 2 * len(records)
