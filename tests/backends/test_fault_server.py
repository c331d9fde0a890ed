"""The fault-injecting server itself: seeded outcomes, counters, forwarding, prompt shutdown."""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request

import pytest

from fakes.fault_server import FaultPlan, FaultServer


def post(base_url: str, body: dict, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "ping"}]}


def test_outcomes_follow_the_sequence_then_seeded_draws():
    plan = FaultPlan(rate_500=0.5, sequence=("429", "ok"))
    rng = random.Random(5)
    expected = ["429", "ok"] + [plan.draw(rng) for _ in range(6)]
    with FaultServer(plan, seed=5) as server:
        statuses = [post(server.base_url, CHAT)[0] for _ in range(8)]
        received = server.received
    assert [r.outcome for r in received] == expected
    assert statuses == [{"429": 429, "500": 500, "ok": 200}[o] for o in expected]


def test_counts_every_request_and_outcome():
    with FaultServer(FaultPlan(sequence=("500", "400", "ok"))) as server:
        for _ in range(3):
            post(server.base_url, CHAT)
        counts = server.counts
    assert counts == {"requests": 3, "500": 1, "400": 1, "ok": 1}


def test_echo_reply_is_a_valid_chat_completion():
    with FaultServer() as server:
        status, raw = post(server.base_url, {**CHAT, "max_tokens": 10})
    body = json.loads(raw)
    assert status == 200
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: ping"}
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_models_endpoint_lists_the_model_and_never_faults():
    with FaultServer(FaultPlan(rate_500=1.0), model="served-model") as server:
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=5) as response:
            body = json.loads(response.read())
        counts = server.counts
    assert [m["id"] for m in body["data"]] == ["served-model"]
    assert counts["models"] == 1 and counts["requests"] == 0


def test_garbage_and_truncated_bodies_are_broken():
    with FaultServer(FaultPlan(sequence=("garbage", "truncated"))) as server:
        status, raw = post(server.base_url, CHAT)
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(raw)
        with pytest.raises(http.client.IncompleteRead):
            post(server.base_url, CHAT)


def test_forwarding_to_an_upstream_injects_faults_in_front_of_it():
    with FaultServer(reply=lambda body: "from upstream") as upstream:
        with FaultServer(FaultPlan(sequence=("429", "ok")), upstream=upstream.base_url) as proxy:
            first, _ = post(proxy.base_url, CHAT)
            second, raw = post(proxy.base_url, CHAT)
            with urllib.request.urlopen(f"{proxy.base_url}/models", timeout=5) as response:
                models = json.loads(response.read())
        upstream_counts = upstream.counts
    assert (first, second) == (429, 200)
    assert json.loads(raw)["choices"][0]["message"]["content"] == "from upstream"
    assert upstream_counts["requests"] == 1 and upstream_counts["models"] == 1
    assert models["data"][0]["id"] == "fake-model"


def test_stopping_releases_hung_requests_at_once():
    server = FaultServer(FaultPlan(rate_hang=1.0, hang_s=60)).start()
    with pytest.raises(OSError):  # socket timeout
        post(server.base_url, CHAT, timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("plan", [dict(rate_429=0.7, rate_500=0.4), dict(rate_hang=-0.1), dict(sequence=("503",))])
def test_invalid_plans_are_rejected(plan):
    with pytest.raises(ValueError):
        FaultPlan(**plan)


def test_bad_requests_get_a_400_without_counting_as_a_fault():
    with FaultServer() as server:
        status, raw = post(server.base_url, {"model": "m"})
        counts = server.counts
    assert status == 400 and b"messages" in raw
    assert counts["requests"] == 0
