"""`turnwise serve`'s ChatServer: response_format, logprobs and top_logprobs in, OpenAI-shaped logprobs out
(in front of a scripted backend, so the exact request the backend receives is checked)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from chat.backends import OpenAIBackend, ScriptedBackend
from chat.backends.base import Completion, TokenLogprob
from chat.serve import ChatServer

MESSAGES = [{"role": "user", "content": "Is water wet?"}]
ANSWER_FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
    "type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}}}
SCORED = Completion('{"answer": "yes"}', "stop", {"prompt_tokens": 4, "completion_tokens": 2}, logprobs=(
    TokenLogprob('{"answer": "', -0.05, {'{"answer": "': -0.05, '{"': -3.2, "{": -4.0}),
    TokenLogprob('yes"}', -0.4, {'no"}': -1.1, 'yes"}': -0.4}),
))


@pytest.fixture(scope="module")
def server():
    """One server for the module (closing one waits for its poll loop); each test puts in its own backend."""
    with ChatServer(ScriptedBackend([]), "scripted") as running:
        yield running


def post(server: ChatServer, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)


def test_response_format_and_top_logprobs_reach_the_backend_and_come_back_in_openai_shape(server):
    backend = ScriptedBackend([SCORED])
    server.backend = backend
    response = post(server, {"messages": MESSAGES, "temperature": 0, "response_format": ANSWER_FORMAT,
                             "logprobs": True, "top_logprobs": 2})
    assert response.status_code == 200
    assert backend.requests[0].params == {"temperature": 0, "max_tokens": 512, "stop": None, "seed": None,
                                          "response_format": ANSWER_FORMAT, "logprobs": 2}
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == '{"answer": "yes"}'
    first, second = choice["logprobs"]["content"]
    assert first == {"token": '{"answer": "', "logprob": -0.05, "bytes": list(b'{"answer": "'), "top_logprobs": [
        {"token": '{"answer": "', "logprob": -0.05, "bytes": list(b'{"answer": "')},
        {"token": '{"', "logprob": -3.2, "bytes": list(b'{"')}]}
    assert [(t["token"], t["logprob"]) for t in second["top_logprobs"]] == [('yes"}', -0.4), ('no"}', -1.1)]


def test_logprobs_without_top_logprobs_asks_for_zero_alternatives(server):
    backend = ScriptedBackend([SCORED])
    server.backend = backend
    response = post(server, {"messages": MESSAGES, "logprobs": True})
    assert backend.requests[0].params["logprobs"] == 0
    assert [entry["top_logprobs"] for entry in response.json()["choices"][0]["logprobs"]["content"]] == [[], []]


def test_without_logprobs_the_choice_has_null_logprobs_and_text_format_is_no_constraint(server):
    backend = ScriptedBackend([SCORED])
    server.backend = backend
    response = post(server, {"messages": MESSAGES, "response_format": {"type": "text"}})
    assert backend.requests[0].params["response_format"] is None and backend.requests[0].params["logprobs"] is None
    assert response.json()["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("extra, message", [
    ({"top_logprobs": 2}, "'top_logprobs' requires 'logprobs': true"),
    ({"logprobs": True, "top_logprobs": 21}, "'top_logprobs' must be an integer between 0 and 20"),
    ({"logprobs": "yes"}, "'logprobs' must be true or false"),
    ({"response_format": {"type": "xml"}}, "response_format.type: expected 'text', 'json_object' or 'json_schema'"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
     "response_format.json_schema.schema: expected a JSON Schema object"),
])
def test_bad_format_or_logprobs_fields_get_400(server, extra, message):
    backend = ScriptedBackend([SCORED])
    server.backend = backend
    response = post(server, {"messages": MESSAGES, **extra})
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert backend.calls == 0


def test_a_reply_that_breaks_the_schema_is_a_400_backend_error(server):
    server.backend = ScriptedBackend(['{"answer": "maybe"}'])
    response = post(server, {"messages": MESSAGES, "response_format": ANSWER_FORMAT})
    error = response.json()["error"]
    assert response.status_code == 400 and error["type"] == "backend_error"
    assert "$.answer: 'maybe' is not one of ['yes', 'no']" in error["message"]


def test_streamed_content_chunks_carry_the_logprobs(server):
    server.backend = ScriptedBackend([SCORED])
    response = post(server, {"messages": MESSAGES, "stream": True, "logprobs": True, "top_logprobs": 1})
    chunks = [json.loads(line.removeprefix("data: ")) for line in response.text.splitlines()
              if line.startswith("data: {")]
    assert [len(c["choices"][0]["logprobs"]["content"]) if c["choices"][0]["logprobs"] else None
            for c in chunks] == [2, None]


def test_the_openai_backend_reads_the_servers_logprobs_back_into_token_logprobs(server):
    server.backend = ScriptedBackend([SCORED])
    client = OpenAIBackend(base_url=server.base_url, model="scripted")

    async def ask():
        try:
            return await client.chat(MESSAGES, response_format=ANSWER_FORMAT, logprobs=3)
        finally:
            await client.aclose()

    completion = asyncio.run(ask())
    assert completion.text == SCORED.text
    assert completion.logprobs == SCORED.logprobs
