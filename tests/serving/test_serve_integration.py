"""The real `turnwise serve` process on 127.0.0.1: OpenAI API surface, auth, and faults between client and server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from chat.backends import build_backend
from chat.conversation import Message
from chat.runner import read_records, run_jobs
from fakes.fault_server import FaultPlan, FaultServer

pytestmark = pytest.mark.slow

KEY_ENV = "TURNWISE_TEST_SERVE_KEY"
KEY = "sk-serve-test-0123456789"


@pytest.fixture(scope="module")
def served():
    """`turnwise serve --port 0` in a subprocess, requiring a bearer key; yields its base URL."""
    env = {**os.environ, KEY_ENV: KEY}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", "0", "--api-key-env", KEY_ENV,
                                "--model", "gemma3-270m", "--served-model-name", "embedded"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"serve did not start: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _http(url: str, body: dict | None = None, key: str | None = KEY) -> tuple[int, dict | str]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            raw = response.read().decode()
            return response.status, json.loads(raw) if response.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode())


def test_models_endpoint_lists_the_served_model(served):
    status, body = _http(f"{served}/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["embedded"]


def test_request_without_the_key_is_refused(served):
    status, body = _http(f"{served}/models", key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("body, message", [
    ({}, "'messages' must be a non-empty list"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "unsupported role 'robot'"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "'temperature' must be a number"),
])
def test_invalid_requests_get_400_with_an_openai_error_body(served, body, message):
    status, reply = _http(f"{served}/chat/completions", body)
    assert status == 400 and message in reply["error"]["message"]


def test_n_choices_and_usage_are_reported(served):
    status, body = _http(f"{served}/chat/completions", {
        "model": "embedded", "messages": [{"role": "user", "content": "Name a fruit."}],
        "max_tokens": 4, "temperature": 0.8, "seed": 1, "n": 2})
    assert status == 200 and [c["index"] for c in body["choices"]] == [0, 1]
    assert body["usage"]["completion_tokens"] == body["usage"]["total_tokens"] - body["usage"]["prompt_tokens"] >= 2


def test_streaming_request_gets_server_sent_events(served):
    status, raw = _http(f"{served}/chat/completions", {
        "model": "embedded", "messages": [{"role": "user", "content": "Say yes."}], "max_tokens": 3, "stream": True})
    events = [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]
    assert status == 200 and events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("stop", "length")


def test_a_json_schema_reply_with_top_logprobs_from_the_real_model(served):
    schema = {"type": "object", "properties": {"planet": {"type": "string", "enum": ["Mars", "Venus"]}},
              "required": ["planet"], "additionalProperties": False}
    planet_format = {"type": "json_schema", "json_schema": {"name": "planet", "schema": schema}}
    status, body = _http(f"{served}/chat/completions", {
        "model": "embedded", "messages": [{"role": "user", "content": "Name a planet, as JSON."}], "max_tokens": 16,
        "temperature": 0, "response_format": planet_format, "logprobs": True, "top_logprobs": 2})
    assert status == 200, body
    choice = body["choices"][0]
    assert json.loads(choice["message"]["content"])["planet"] in ("Mars", "Venus")
    content = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]
    # a position the grammar forces may list fewer alternatives than asked for
    assert all(1 <= len(entry["top_logprobs"]) <= 2 and entry["logprob"] <= 0 for entry in content)
    assert all(entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][-1]["logprob"] for entry in content)


def test_openai_backend_gets_completions_from_turnwise_serve(served, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    backend = build_backend({"kind": "openai", "base_url": served, "model": "embedded", "api_key_env": KEY_ENV,
                             "cache": False})

    async def ask():
        try:
            return await backend.chat([Message("user", "Name a planet.")], max_tokens=5)
        finally:
            await backend.aclose()

    completion = asyncio.run(ask())
    assert completion.finish_reason in ("stop", "length") and 1 <= completion.usage["completion_tokens"] <= 5


def test_faults_between_client_and_serve_still_yield_every_record(served, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    plan = FaultPlan(rate_429=0.15, rate_500=0.15, rate_garbage=0.1, rate_truncated=0.1, rate_hang=0.1, hang_s=4)
    prompts = [{"id": f"p{i}", "text": f"Give me word number {i}."} for i in range(12)]
    with FaultServer(plan, seed=3, upstream=served) as proxy:
        backend = build_backend(proxy.backend_config(model="embedded", api_key_env=KEY_ENV, timeout=2.0,
                                                     max_retries=12))

        async def answer(item):
            completion = await backend.chat([Message("user", item["text"])], max_tokens=3, temperature=0.5, seed=0)
            return {"reply": completion.text, "finish_reason": completion.finish_reason}

        async def run_all():
            try:
                return await run_jobs(prompts, answer, tmp_path / "out.jsonl", concurrency=6, progress=False)
            finally:
                await backend.aclose()

        summary = asyncio.run(run_all())
        faults = sum(proxy.counts[kind] for kind in ("429", "500", "garbage", "truncated", "hang"))
    assert (summary.done, summary.errors) == (12, 0)
    assert sorted(r["id"] for r in read_records(tmp_path / "out.jsonl")) == sorted(p["id"] for p in prompts)
    assert faults >= 3, proxy.counts
