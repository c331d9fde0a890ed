"""Run progress: a bar with LLM rates on a terminal, plain periodic lines elsewhere (files, pipes, CI)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from chat.backends.base import Completion, UsageLedger
from chat.runner import RunProgress

REPO_ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ledger_with_calls(calls: int) -> UsageLedger:
    ledger = UsageLedger()
    for _ in range(calls):
        completion = Completion("hi", "stop", {"prompt_tokens": 100, "completion_tokens": 20})
        ledger.record("simulator", completion, time.monotonic())
    return ledger


def test_terminal_bar_shows_counts_rates_and_errors():
    terminal = Terminal()
    with RunProgress(total=10, already_done=4, description="augment", ledger=ledger_with_calls(3),
                     stream=terminal) as progress:
        progress.advance(done=2)
        progress.advance(errors=1)
    text = terminal.getvalue()
    assert "augment" in text and "7/10" in text
    assert "calls/s" in text and "tok/s" in text and "1 err" in text


def test_without_a_terminal_plain_lines_come_every_interval_and_at_the_end():
    stream = io.StringIO()
    with RunProgress(total=100, already_done=0, description="judge", ledger=ledger_with_calls(2), stream=stream,
                     log_every_s=0.05) as progress:
        progress.advance(done=2)
        time.sleep(0.18)
    lines = stream.getvalue().splitlines()
    assert 3 <= len(lines) <= 5 and "\r" not in stream.getvalue()  # no bar: ~3 timer lines + the last line
    assert lines[0].startswith("judge: 2/100 items, ") and "2 LLM calls, " in lines[0]
    assert "calls/s" in lines[0] and "tok/s" in lines[0] and "elapsed" in lines[0] and "ETA" in lines[0]
    assert lines[-1].endswith("(run ended)")


def test_a_run_shorter_than_the_interval_writes_nothing():
    stream = io.StringIO()
    with RunProgress(total=3, already_done=0, description="judge", stream=stream, log_every_s=5) as progress:
        progress.advance(done=3)
    assert stream.getvalue() == ""


def test_a_pipeline_stage_with_stderr_a_pipe_prints_progress_before_its_first_item_finishes(tmp_path):
    child = Path(__file__).with_name("progress_child.py")
    result = subprocess.run([sys.executable, str(child), str(tmp_path / "out.jsonl")], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("augment music: ")]
    assert len(lines) >= 3, result.stderr
    assert lines[0].startswith("augment music: 0/3 items, 0.00 items/s, 3 LLM calls, ")
    assert "+" in lines[0] and "tok/s" in lines[0]
    assert lines[-1].startswith("augment music: 3/3 items, ") and "ETA 00:00" in lines[-1]
    assert lines[-1].endswith("(run ended)")


def test_disabled_progress_neither_draws_nor_logs(caplog):
    terminal = Terminal()
    caplog.set_level(logging.INFO, logger="chat.runner.progress")
    progress = RunProgress(total=5, already_done=0, enabled=False, stream=terminal, log_every_s=0)
    progress.advance(done=5)
    progress.close()
    assert terminal.getvalue() == "" and caplog.records == []


def test_rates_and_eta_count_only_this_runs_items():
    progress = RunProgress(total=110, already_done=100, ledger=ledger_with_calls(4), enabled=False)
    progress.started -= 2.0  # pretend two seconds have passed
    progress.advance(done=4)
    rates = progress.rates()
    assert 1.9 < rates["items"] <= 2.0 and 1.9 < rates["calls"] <= 2.0
    assert 190 < rates["prompt_tokens"] <= 200 and 38 < rates["completion_tokens"] <= 40
    assert 2.9 < progress.eta_s() < 3.2  # 6 items left at 2 items/s
