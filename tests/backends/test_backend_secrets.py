"""The API key reaches the server and nothing else: no cache, log, exception message or repr holds it."""

from __future__ import annotations

import asyncio
import logging
import traceback
from pathlib import Path

import pytest

from chat.backends import OpenAIBackend, UsageLedger, build_backend
from chat.errors import BackendError, ConfigError
from fakes.fault_server import FaultPlan, FaultServer

KEY = "sk-turnwise-FAKE-7f3c9a1e5b2d4c6e8a0f"
KEY_ENV = "TURNWISE_TEST_API_KEY"


@pytest.fixture(autouse=True)
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def keyed_backend(server: FaultServer, tmp_path: Path, **overrides):
    config = server.backend_config(api_key_env=KEY_ENV, cache=True, max_retries=1, **overrides)
    return build_backend(config, ledger=UsageLedger(), cache_path=tmp_path / "responses.sqlite")


async def chat_and_close(backend, text: str):
    try:
        return await backend.chat([{"role": "user", "content": text}])
    finally:
        await backend.aclose()


def error_texts(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


def test_key_is_sent_as_a_bearer_token(tmp_path):
    with FaultServer() as server:
        asyncio.run(chat_and_close(keyed_backend(server, tmp_path), "hello"))
    assert server.received[0].headers["Authorization"] == f"Bearer {KEY}"


def test_missing_key_variable_is_named_in_a_config_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"api_key_env: environment variable {KEY_ENV} is not set"):
        build_backend({"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m",
                       "api_key_env": KEY_ENV, "cache": False})


@pytest.mark.parametrize("plan", [FaultPlan(rate_500=1.0, echo_authorization=True),
                                  FaultPlan(rate_429=1.0, echo_authorization=True),
                                  FaultPlan(rate_400=1.0, echo_authorization=True)],
                         ids=["500-given-up", "429-given-up", "400-not-retried"])
def test_key_echoed_by_the_server_is_scrubbed_from_errors(tmp_path, plan):
    with FaultServer(plan) as server:
        with pytest.raises(BackendError) as caught:
            asyncio.run(chat_and_close(keyed_backend(server, tmp_path), "hello"))
    texts = error_texts(caught.value)
    assert "Authorization: Bearer ***" in texts  # the server did echo the header, and it was scrubbed
    assert KEY not in texts


def test_key_never_appears_in_debug_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    plan = FaultPlan(sequence=("500", "ok", "400"), echo_authorization=True)
    with FaultServer(plan) as server:
        backend = keyed_backend(server, tmp_path)

        async def session():
            await backend.chat([{"role": "user", "content": "first"}])
            with pytest.raises(BackendError):
                await backend.chat([{"role": "user", "content": "second"}])
            await backend.aclose()

        asyncio.run(session())
    assert "httpcore" in caplog.text and "openai:fake-model" in caplog.text  # DEBUG logging was captured
    assert KEY not in caplog.text


def test_key_never_reaches_the_cache_file(tmp_path):
    with FaultServer() as server:
        backend = keyed_backend(server, tmp_path)

        async def session():
            await backend.chat([{"role": "user", "content": "cache me"}])
            files = {p.name: p.read_bytes() for p in tmp_path.glob("responses.sqlite*")}
            await backend.aclose()
            return files

        while_open = asyncio.run(session())
    after_close = {p.name: p.read_bytes() for p in tmp_path.glob("responses.sqlite*")}
    for files in (while_open, after_close):
        everything = b"".join(files.values())
        assert b"echo: cache me" in everything  # the response itself was written
        assert KEY.encode() not in everything


def test_key_is_not_in_any_repr(tmp_path):
    with FaultServer() as server:
        backend = keyed_backend(server, tmp_path)
        raw = OpenAIBackend(base_url=server.base_url, model="m", api_key_env=KEY_ENV)
        asyncio.run(backend.aclose())
    assert KEY not in repr(backend)
    assert KEY not in repr(raw) and KEY not in repr(vars(raw))
    assert KEY_ENV in repr(raw)
