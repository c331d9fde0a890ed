"""The openai backend: request bodies, response mapping and error classification."""

from __future__ import annotations

import asyncio
import json
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from chat.backends import OpenAIBackend, build_backend
from chat.backends.base import TokenLogprob
from chat.conversation import Message
from chat.errors import BackendError, ConfigError
from fakes.fault_server import FaultServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime number."}]


async def chat_once(backend: OpenAIBackend, messages=MESSAGES, **params):
    try:
        return await backend.chat(messages, **params)
    finally:
        await backend.aclose()


def mock_backend(handler, **kwargs) -> OpenAIBackend:
    return OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", timeout=5,
                         transport=httpx.MockTransport(handler), **kwargs)


def answer(content="hi", finish_reason="stop", usage=None) -> dict:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}]}
    if usage is not None:
        body["usage"] = usage
    return body


def test_request_body_carries_every_parameter_in_openai_form():
    with FaultServer() as server:
        backend = OpenAIBackend(base_url=server.base_url, model="fake-model", timeout=5)
        asyncio.run(chat_once(backend, temperature=0.3, max_tokens=64, stop=["\n\n", "END"], seed=7,
                              response_format={"type": "json_object"}, logprobs=3))
    assert server.received[0].body == {
        "model": "fake-model", "messages": MESSAGES, "temperature": 0.3, "max_tokens": 64,
        "stop": ["\n\n", "END"], "seed": 7, "response_format": {"type": "json_object"},
        "logprobs": True, "top_logprobs": 3,
    }


def test_a_json_schema_response_format_is_sent_as_given():
    schema_format = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
        "type": "object", "properties": {"winner": {"enum": ["A", "B"]}}, "required": ["winner"],
        "additionalProperties": False}}}
    with FaultServer() as server:
        asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"),
                              response_format=schema_format))
    assert server.received[0].body["response_format"] == schema_format
    assert "logprobs" not in server.received[0].body


def test_request_body_leaves_out_unset_options():
    with FaultServer() as server:
        asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model")))
    assert server.received[0].body == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.0,
                                       "max_tokens": 512}
    assert "Authorization" not in server.received[0].headers


def test_completion_maps_text_finish_reason_and_usage():
    with FaultServer() as server:
        completion = asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model")))
    assert completion.text == "echo: Name a prime number."
    assert completion.finish_reason == "stop"
    assert completion.usage == {"prompt_tokens": 6, "completion_tokens": 5}
    assert completion.cached is False


def test_message_objects_are_sent_as_role_content_dicts():
    with FaultServer() as server:
        asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"),
                              [Message("user", "hello there")]))
    assert server.received[0].body["messages"] == [{"role": "user", "content": "hello there"}]


def test_json_mode_returns_the_servers_json_object():
    with FaultServer() as server:
        completion = asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"),
                                           response_format={"type": "json_object"}))
    assert json.loads(completion.text) == {"echo": "Name a prime number."}


def test_stop_sequence_is_honoured_by_the_server_reply():
    with FaultServer(reply=lambda body: "first part STOP second part") as server:
        completion = asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"),
                                           stop=["STOP"]))
    assert completion.text == "first part "


def test_length_finish_reason_when_max_tokens_cuts_the_reply():
    with FaultServer(reply=lambda body: "one two three four five") as server:
        completion = asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"),
                                           max_tokens=2))
    assert (completion.text, completion.finish_reason) == ("one two", "length")


def test_seed_is_forwarded_so_sampling_servers_can_repeat_themselves():
    with FaultServer() as server:
        asyncio.run(chat_once(OpenAIBackend(base_url=server.base_url, model="fake-model"), temperature=0.9,
                              seed=1234))
    assert server.received[0].body["seed"] == 1234
    assert server.received[0].body["temperature"] == 0.9


def test_extra_body_is_merged_into_every_request():
    with FaultServer() as server:
        backend = OpenAIBackend(base_url=server.base_url, model="fake-model", extra_body={"top_p": 0.5})
        asyncio.run(chat_once(backend))
    assert server.received[0].body["top_p"] == 0.5


def with_logprobs(content) -> dict:
    body = answer("Paris.")
    body["choices"][0]["logprobs"] = {"content": content}
    return body


def test_logprobs_are_parsed_into_token_logprobs():
    content = [{"token": "Paris", "logprob": -0.01, "bytes": [80], "top_logprobs": [
                   {"token": "Paris", "logprob": -0.01}, {"token": "Lyon", "logprob": -4.6}]},
               {"token": ".", "logprob": -0.5, "top_logprobs": [{"token": "!", "logprob": -0.3}]}]
    completion = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=with_logprobs(content))),
                                       logprobs=2))
    assert completion.logprobs == (TokenLogprob("Paris", -0.01, {"Paris": -0.01, "Lyon": -4.6}),
                                   TokenLogprob(".", -0.5, {"!": -0.3, ".": -0.5}))


def test_a_server_without_logprobs_gives_none():
    missing = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=answer("x"))), logprobs=5))
    null = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=with_logprobs(None))),
                                 logprobs=5))
    assert (missing.logprobs, null.logprobs) == (None, None)


def test_logprobs_are_left_out_when_not_asked_for():
    content = [{"token": "x", "logprob": -1.0, "top_logprobs": []}]
    completion = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=with_logprobs(content)))))
    assert completion.logprobs is None


@pytest.mark.parametrize("content, what", [
    ("tokens", "content: expected a list"),
    ([{"token": "x"}], r"content\[0\]: logprob of 'x': expected a number"),
    ([{"token": "x", "logprob": -1, "top_logprobs": [{"logprob": -2}]}], r"content\[0\]: expected an object"),
])
def test_malformed_logprobs_are_a_retryable_malformed_response(content, what):
    backend = mock_backend(lambda request: httpx.Response(200, json=with_logprobs(content)))
    with pytest.raises(BackendError, match=rf"malformed response \(choices\[0\]\.logprobs: {what}") as caught:
        asyncio.run(chat_once(backend, logprobs=1))
    assert caught.value.retryable


def test_cache_identity_is_kind_base_url_model_and_canonical_extra_body():
    one = OpenAIBackend(base_url="http://127.0.0.1:8000/v1/", model="m", extra_body={"top_p": 0.5, "top_k": 4})
    same = OpenAIBackend(base_url="http://127.0.0.1:8000/v1", model="m", extra_body={"top_k": 4, "top_p": 0.5})
    assert one.cache_identity == same.cache_identity
    assert json.loads(one.cache_identity) == {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m",
                                              "extra_body": {"top_k": 4, "top_p": 0.5}}
    others = [OpenAIBackend(base_url="http://127.0.0.1:8001/v1", model="m", extra_body={"top_p": 0.5, "top_k": 4}),
              OpenAIBackend(base_url="http://127.0.0.1:8000/v1", model="n", extra_body={"top_p": 0.5, "top_k": 4}),
              OpenAIBackend(base_url="http://127.0.0.1:8000/v1", model="m", extra_body={"top_p": 0.6, "top_k": 4})]
    assert len({one.cache_identity, *(other.cache_identity for other in others)}) == 4


def test_endpoint_identity_stands_in_for_the_base_url():
    def identity(base_url: str, **extra) -> str:
        config = {"kind": "openai", "base_url": base_url, "model": "m", "cache": False, **extra}
        return build_backend(config).cache_identity

    pinned = [identity(f"http://127.0.0.1:{port}/v1", endpoint_identity="local|weights-abc") for port in (8000, 8001)]
    assert pinned[0] == pinned[1] != identity("http://127.0.0.1:8000/v1")
    assert pinned[0] != identity("http://127.0.0.1:8000/v1", endpoint_identity="local|weights-def")
    with pytest.raises(ConfigError, match="endpoint_identity: expected a non-empty string"):
        identity("http://127.0.0.1:8000/v1", endpoint_identity="")


def test_extra_body_that_is_not_json_is_a_config_error():
    with pytest.raises(ConfigError, match="extra_body: must be JSON-serializable"):
        OpenAIBackend(base_url="http://127.0.0.1:8000/v1", model="m", extra_body={"when": object()})


def test_name_identifies_kind_and_model():
    assert OpenAIBackend(base_url="http://127.0.0.1:8000/v1", model="gemma-2-9b-it").name == "openai:gemma-2-9b-it"


@pytest.mark.parametrize("base_url", ["", "127.0.0.1:8000/v1", "ftp://host/v1", "http://"])
def test_base_url_must_be_an_http_url(base_url):
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIBackend(base_url=base_url, model="m")


@pytest.mark.parametrize("status, retryable", [(429, True), (500, True), (502, True), (503, True), (408, True),
                                               (400, False), (401, False), (404, False), (422, False)])
def test_http_statuses_are_classified_as_retryable_or_not(status, retryable):
    backend = mock_backend(lambda request: httpx.Response(status, json={"error": {"message": "nope"}}))
    with pytest.raises(BackendError) as caught:
        asyncio.run(chat_once(backend))
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    assert str(caught.value).startswith(f"openai:m: {status} ")
    assert str(caught.value).endswith("nope")


def test_error_message_is_the_servers_message_truncated():
    backend = mock_backend(lambda request: httpx.Response(400, json={"error": {"message": "x" * 5000}}))
    with pytest.raises(BackendError) as caught:
        asyncio.run(chat_once(backend))
    assert "400 Bad Request: xxx" in str(caught.value)
    assert len(str(caught.value)) < 400


def test_plain_text_error_bodies_are_quoted():
    backend = mock_backend(lambda request: httpx.Response(404, text="model 'm' not found\n"))
    with pytest.raises(BackendError, match=r"404 Not Found: model 'm' not found$"):
        asyncio.run(chat_once(backend))


@pytest.mark.parametrize("headers, seconds", [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": "0.25"}, 0.25),
    ({"retry-after-ms": "1500"}, 1.5),
    ({}, None),
])
def test_retry_after_is_parsed_from_seconds_or_milliseconds(headers, seconds):
    backend = mock_backend(lambda request: httpx.Response(429, headers=headers, json={"error": {"message": "slow"}}))
    with pytest.raises(BackendError) as caught:
        asyncio.run(chat_once(backend))
    assert caught.value.retry_after == seconds


def test_retry_after_as_http_date():
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    backend = mock_backend(lambda request: httpx.Response(503, headers={"Retry-After": when}, text="busy"))
    with pytest.raises(BackendError) as caught:
        asyncio.run(chat_once(backend))
    assert 25 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("body, what", [
    (b"<html>oops</html>", "not JSON"),
    (b'{"object": "chat.completion"}', "no choices"),
    (b'{"choices": []}', "no choices"),
    (b'{"choices": [{"finish_reason": "stop"}]}', "content missing"),
    (b'{"choices": [{"message": {"content": 42}}]}', "content missing"),
])
def test_malformed_success_bodies_are_retryable(body, what):
    backend = mock_backend(lambda request: httpx.Response(200, content=body))
    with pytest.raises(BackendError, match=what) as caught:
        asyncio.run(chat_once(backend))
    assert caught.value.retryable


def test_connection_errors_are_retryable():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendError, match="connection error") as caught:
        asyncio.run(chat_once(mock_backend(refuse)))
    assert caught.value.retryable


def test_http_timeouts_are_retryable():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(BackendError, match="timed out") as caught:
        asyncio.run(chat_once(mock_backend(slow)))
    assert caught.value.retryable


@pytest.mark.parametrize("raw, expected", [("stop", "stop"), (None, "stop"), ("eos", "stop"),
                                           ("length", "length"), ("content_filter", "content_filter")])
def test_finish_reasons_are_normalised(raw, expected):
    completion = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=answer(
        finish_reason=raw)))))
    assert completion.finish_reason == expected


def test_missing_usage_counts_zero_tokens():
    completion = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=answer("x")))))
    assert completion.usage == {"prompt_tokens": 0, "completion_tokens": 0}


def test_null_content_is_an_empty_reply_and_text_parts_are_joined():
    empty = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=answer(None)))))
    parts = asyncio.run(chat_once(mock_backend(lambda request: httpx.Response(200, json=answer(
        [{"type": "text", "text": "ab"}, {"type": "text", "text": "cd"}])))))
    assert (empty.text, parts.text) == ("", "abcd")


def test_backend_survives_being_used_from_two_event_loops():
    with FaultServer() as server:
        backend = OpenAIBackend(base_url=server.base_url, model="fake-model")
        first = asyncio.run(backend.chat(MESSAGES))
        second = asyncio.run(chat_once(backend))
    assert first.text == second.text == "echo: Name a prime number."
