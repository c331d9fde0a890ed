"""Run progress: a bar with LLM rates on a terminal, short periodic log lines elsewhere."""

from __future__ import annotations

import io
import logging
import time

from chat.backends.base import Completion, UsageLedger
from chat.runner import RunProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ledger_with_calls(calls: int) -> UsageLedger:
    ledger = UsageLedger()
    for _ in range(calls):
        ledger.record("simulator", Completion("hi", "stop", {"prompt_tokens": 100, "completion_tokens": 20}), time.monotonic())
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


def test_without_a_terminal_nothing_is_drawn_and_a_log_line_comes_at_most_every_interval(caplog):
    stream = io.StringIO()
    caplog.set_level(logging.INFO, logger="chat.runner.progress")
    progress = RunProgress(total=100, already_done=0, description="judge", stream=stream, log_every_s=0.05)
    progress.advance(done=1)
    assert caplog.records == []
    time.sleep(0.06)
    progress.advance(done=1)
    progress.advance(done=1)
    progress.close()
    assert stream.getvalue() == ""
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith("judge: 2/100 items, ") and "ETA" in caplog.records[0].getMessage()


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
