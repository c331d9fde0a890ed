"""Retry backoff, timeouts, the concurrency limit and usage recording, on small in-process backends."""

from __future__ import annotations

import asyncio
import random

import pytest

from chat.backends import (Completion, ConcurrencyLimitedBackend, RetryingBackend, ScriptedBackend, UsageLedger,
                           UsageRecordingBackend)
from chat.errors import BackendError

HELLO = [{"role": "user", "content": "hello"}]


class SleepRecorder:
    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class SlowOnce:
    """Takes `first_delay` seconds on the first call, answers at once afterwards."""

    name = "slow"

    def __init__(self, first_delay: float):
        self.first_delay = first_delay
        self.calls = 0

    async def chat(self, messages, **params):
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(self.first_delay)
        return Completion("done", "stop")

    async def aclose(self):
        return None


class InFlightCounter:
    name = "counter"

    def __init__(self):
        self.in_flight = 0
        self.peak = 0

    async def chat(self, messages, **params):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return Completion("ok", "stop")

    async def aclose(self):
        return None


def flaky(failures: int, status: int = 503, retry_after: float | None = None) -> ScriptedBackend:
    errors = [BackendError(f"flaky: {status} Service Unavailable", retryable=True, status=status,
                           retry_after=retry_after) for _ in range(failures)]
    return ScriptedBackend([*errors, "recovered"], name="flaky")


def test_backoff_is_full_jitter_under_an_exponential_cap():
    retrying = RetryingBackend(flaky(0), base_delay=1.0, max_delay=8.0, rng=random.Random(0))
    for attempt in range(12):
        delays = [retrying.backoff(attempt) for _ in range(50)]
        assert all(0.0 <= d <= min(8.0, 2.0 ** attempt) for d in delays)
    assert max(retrying.backoff(10) for _ in range(200)) > 4.0  # the cap, not the base, bounds late retries


def test_retry_after_sets_a_floor_that_is_capped():
    retrying = RetryingBackend(flaky(0), base_delay=0.001, max_delay=0.001, max_retry_after=60.0)
    assert retrying.backoff(0, retry_after=5.0) == 5.0
    assert retrying.backoff(0, retry_after=3600.0) == 60.0


def test_retryable_errors_are_retried_until_success():
    sleep = SleepRecorder()
    inner = flaky(3)
    completion = asyncio.run(RetryingBackend(inner, max_retries=3, base_delay=0.1, sleep=sleep).chat(HELLO))
    assert completion.text == "recovered"
    assert inner.calls == 4 and len(sleep.delays) == 3
    assert all(0 <= d <= 0.1 * 2 ** i for i, d in enumerate(sleep.delays))


def test_server_retry_after_is_waited_for():
    sleep = SleepRecorder()
    asyncio.run(RetryingBackend(flaky(1, status=429, retry_after=2.5), base_delay=0.001, sleep=sleep).chat(HELLO))
    assert sleep.delays == [2.5]


def test_gives_up_after_max_retries_with_one_clear_message():
    inner = flaky(5)
    with pytest.raises(BackendError) as caught:
        asyncio.run(RetryingBackend(inner, max_retries=2, sleep=SleepRecorder()).chat(HELLO))
    assert str(caught.value) == "flaky: giving up after 3 attempts: 503 Service Unavailable"
    assert caught.value.status == 503 and not caught.value.retryable
    assert inner.calls == 3


def test_non_retryable_errors_pass_through_at_once():
    failure = BackendError("flaky: 401 Unauthorized", retryable=False, status=401)
    inner = ScriptedBackend([failure, "never"], name="flaky")
    sleep = SleepRecorder()
    with pytest.raises(BackendError) as caught:
        asyncio.run(RetryingBackend(inner, max_retries=5, sleep=sleep).chat(HELLO))
    assert caught.value is failure
    assert inner.calls == 1 and sleep.delays == []


def test_programming_errors_are_not_retried():
    def broken(messages, params):
        raise KeyError("bug")

    inner = ScriptedBackend(broken)
    with pytest.raises(KeyError):
        asyncio.run(RetryingBackend(inner, max_retries=5, sleep=SleepRecorder()).chat(HELLO))
    assert inner.calls == 1


def test_a_request_past_the_timeout_is_retried():
    inner = SlowOnce(first_delay=5.0)
    completion = asyncio.run(RetryingBackend(inner, timeout=0.05, base_delay=0.001).chat(HELLO))
    assert completion.text == "done" and inner.calls == 2


def test_timeouts_count_toward_giving_up():
    inner = SlowOnce(first_delay=5.0)
    with pytest.raises(BackendError, match=r"slow: giving up after 1 attempts: request timed out after 0.05s"):
        asyncio.run(RetryingBackend(inner, max_retries=0, timeout=0.05).chat(HELLO))


def test_concurrency_limit_bounds_requests_in_flight():
    inner = InFlightCounter()
    limited = ConcurrencyLimitedBackend(inner, 3)

    async def many():
        await asyncio.gather(*(limited.chat(HELLO) for _ in range(12)))

    asyncio.run(many())
    assert inner.peak == 3
    asyncio.run(many())  # a second event loop gets its own semaphore
    assert inner.peak == 3


def test_usage_recording_counts_calls_tokens_errors_and_latency():
    ledger = UsageLedger()
    inner = ScriptedBackend(["two words", BackendError("down"), Completion("x", "stop", cached=True)])
    backend = UsageRecordingBackend(inner, "reviewer", ledger)

    async def three():
        await backend.chat([{"role": "user", "content": "a b c"}])
        with pytest.raises(BackendError):
            await backend.chat(HELLO)
        await backend.chat(HELLO)

    asyncio.run(three())
    usage = ledger.by_role["reviewer"]
    assert (usage.calls, usage.errors, usage.cache_hits) == (1, 1, 1)
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 2)
    assert usage.latency_s > 0
