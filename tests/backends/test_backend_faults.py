"""The composed openai backend against the fault-injecting server: every fault is retried, boundedly."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from chat.backends import UsageLedger, aclose_backends, build_backend
from chat.errors import BackendError
from fakes.fault_server import FAULT_KINDS, FaultPlan, FaultServer


def ask(number: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {number}"}]


async def ask_all(backend, count: int):
    try:
        return await asyncio.gather(*(backend.chat(ask(i)) for i in range(count)))
    finally:
        await aclose_backends({"backend": backend})


@pytest.mark.parametrize("fault", ["429", "500", "garbage", "truncated", "hang"])
def test_each_retryable_fault_alone_is_retried_once(fault):
    ledger = UsageLedger()
    with FaultServer(FaultPlan(sequence=(fault,), hang_s=10), seed=0) as server:
        backend = build_backend(server.backend_config(timeout=0.5), ledger=ledger)
        [completion] = asyncio.run(ask_all(backend, 1))
        counts = server.counts
    assert completion.text == "echo: question 0"
    assert counts["requests"] == 2
    assert counts[fault] == 1 and counts["ok"] == 1
    assert ledger.by_role["default"].calls == 1 and ledger.by_role["default"].errors == 0


def test_mixed_faults_at_concurrency_8_still_yield_every_completion():
    # 30% of requests get a fault, 6% of each kind; seed 3 draws every kind at least once.
    plan = FaultPlan(rate_429=0.06, rate_500=0.06, rate_garbage=0.06, rate_truncated=0.06, rate_hang=0.06,
                     hang_s=10)
    ledger = UsageLedger()
    started = time.monotonic()
    with FaultServer(plan, seed=3) as server:
        backend = build_backend(server.backend_config(timeout=0.5, concurrency=8, max_retries=8), ledger=ledger)
        completions = asyncio.run(ask_all(backend, 40))
        counts = server.counts
    elapsed = time.monotonic() - started
    assert [c.text for c in completions] == [f"echo: question {i}" for i in range(40)]
    faults = {kind: counts[kind] for kind in ("429", "500", "garbage", "truncated", "hang")}
    assert all(n > 0 for n in faults.values()), faults
    assert counts["ok"] == 40
    assert counts["requests"] == 40 + sum(faults.values())
    usage = ledger.by_role["default"]
    assert (usage.calls, usage.errors, usage.cache_hits) == (40, 0, 0)
    assert elapsed < 15


def test_giving_up_after_max_retries_names_backend_attempts_and_last_error():
    ledger = UsageLedger()
    with FaultServer(FaultPlan(rate_500=1.0)) as server:
        backend = build_backend(server.backend_config(max_retries=2), ledger=ledger)
        with pytest.raises(BackendError) as caught:
            asyncio.run(ask_all(backend, 1))
        requests = server.request_count
    message = str(caught.value)
    assert message.startswith("openai:fake-model: giving up after 3 attempts: 500 Internal Server Error: ")
    assert caught.value.retryable is False and caught.value.status == 500
    assert requests == 3
    assert ledger.by_role["default"].errors == 1


def test_giving_up_on_rate_limits_reports_429_and_retry_after():
    with FaultServer(FaultPlan(rate_429=1.0, retry_after=0.01)) as server:
        backend = build_backend(server.backend_config(max_retries=1))
        with pytest.raises(BackendError, match=r"giving up after 2 attempts: 429 Too Many Requests: "
                                               r"rate limit reached.*\(Retry-After 0\.01s\)"):
            asyncio.run(ask_all(backend, 1))


def test_bad_request_is_not_retried():
    with FaultServer(FaultPlan(sequence=("400",))) as server:
        backend = build_backend(server.backend_config(max_retries=5))
        with pytest.raises(BackendError) as caught:
            asyncio.run(ask_all(backend, 1))
        requests = server.request_count
    assert requests == 1
    assert caught.value.retryable is False and caught.value.status == 400
    assert str(caught.value) == "openai:fake-model: 400 Bad Request: this request was rejected by the fault plan"


def test_retry_after_is_honoured():
    with FaultServer(FaultPlan(sequence=("429",), retry_after=0.4)) as server:
        backend = build_backend(server.backend_config(retry_base_delay=0.001, retry_max_delay=0.001))
        started = time.monotonic()
        asyncio.run(ask_all(backend, 1))
    assert time.monotonic() - started >= 0.4


def test_retry_after_is_capped():
    with FaultServer(FaultPlan(sequence=("429",), retry_after=600)) as server:
        backend = build_backend(server.backend_config(retry_after_cap=0.05))
        started = time.monotonic()
        asyncio.run(ask_all(backend, 1))
    assert time.monotonic() - started < 5


def test_hang_past_the_timeout_gives_up_boundedly():
    with FaultServer(FaultPlan(rate_hang=1.0, hang_s=30)) as server:
        backend = build_backend(server.backend_config(timeout=0.3, max_retries=1))
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"giving up after 2 attempts: .*timed out"):
            asyncio.run(ask_all(backend, 1))
    assert time.monotonic() - started < 3


def test_unreachable_server_is_retried_then_reported():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = build_backend({"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m",
                             "max_retries": 2, "cache": False, "retry_base_delay": 0.001})
    with pytest.raises(BackendError, match=r"openai:m: giving up after 3 attempts: connection error"):
        asyncio.run(ask_all(backend, 1))


def test_fault_kinds_cover_the_issue_list():
    assert {"429", "500", "garbage", "hang"} <= set(FAULT_KINDS)
