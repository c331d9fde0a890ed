"""`openai` backend: any OpenAI-compatible /chat/completions server over HTTP (OpenAI, vLLM, llama.cpp, Ollama, TGI)."""

from __future__ import annotations

import email.utils
import http
import json as jsonlib
import ipaddress
import logging
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Sequence

import httpx

from chat.backends.base import (BACKENDS, BackendSpec, ChatParams, Completion, ResponseFormat, TokenLogprob,
                                as_dicts)
from chat.backends.wrappers import PerLoop
from chat.conversation import Message
from chat.errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

#: Longest server error text quoted in a BackendError.
MAX_ERROR_CHARS = 300

#: HTTP statuses worth retrying besides 5xx: request timeout, conflict, too early, rate limited.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


class _Secret:
    """A value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


@BACKENDS.register("openai", "any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, TGI) over HTTP")
class OpenAIBackend:
    """POSTs `{base_url}/chat/completions`; raises BackendError classified as retryable or not.

    The API key is read once from the environment variable *named* by `api_key_env`; it is sent in
    the Authorization header and scrubbed from any text the server echoes back. `transport` replaces
    the HTTP transport (tests use `httpx.MockTransport`). `cache_identity` is kind, base_url, model and
    the canonical JSON of `extra_body`: two servers with one model name, or one server asked with
    different extra request fields, never share response-cache entries. `endpoint_identity` stands in
    for base_url there when the URL does not identify what is served (a server on a free port that
    changes every run, replicas behind different host names): give the served weights' identity.
    """

    #: keys this backend accepts in BackendSpec.extra
    EXTRA_KEYS = frozenset({"extra_body", "endpoint_identity"})

    def __init__(self, *, base_url: str, model: str, api_key_env: str | None = None, timeout: float = 120.0,
                 extra_body: dict[str, Any] | None = None, endpoint_identity: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        try:
            url = httpx.URL(base_url) if isinstance(base_url, str) and base_url else None
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            shown = _display_url(base_url) if isinstance(base_url, str) else type(base_url).__name__
            raise ConfigError(f"base_url: expected an http(s) URL of an OpenAI-compatible API such as "
                              f"http://127.0.0.1:8000/v1, got {shown!r}")
        if extra_body is not None and not isinstance(extra_body, dict):
            raise ConfigError(f"extra_body: expected a mapping, got {type(extra_body).__name__}")
        if endpoint_identity is not None and (not isinstance(endpoint_identity, str) or not endpoint_identity):
            raise ConfigError(f"endpoint_identity: expected a non-empty string, got {endpoint_identity!r}")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        try:
            endpoint = {"endpoint": endpoint_identity} if endpoint_identity else {"base_url": self.base_url}
            self.cache_identity = jsonlib.dumps({"kind": "openai", **endpoint, "model": model,
                                                 "extra_body": self.extra_body},
                                                sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"extra_body: must be JSON-serializable ({exc})") from None
        self._api_key: _Secret | None = None
        if api_key_env:
            value = os.environ.get(api_key_env)
            if value is None:
                raise ConfigError(f"api_key_env: environment variable {api_key_env} is not set")
            self._api_key = _Secret(value)
        loopback = _is_loopback(url.host)
        self._client: PerLoop[httpx.AsyncClient] = PerLoop(lambda: httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), trust_env=not loopback, headers={"User-Agent": "turnwise"},
            transport=transport))

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> "OpenAIBackend":
        if not spec.base_url:
            raise ConfigError("base_url: required for kind openai (for example http://127.0.0.1:8000/v1)")
        return cls(base_url=spec.base_url, model=spec.model, api_key_env=spec.api_key_env, timeout=spec.timeout,
                   extra_body=spec.extra.get("extra_body"), endpoint_identity=spec.extra.get("endpoint_identity"))

    def request_body(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> dict[str, Any]:
        """The JSON body of one chat completion request (None-valued options are left out); `logprobs=k`
        is sent as `logprobs: true, top_logprobs: k`."""
        body: dict[str, Any] = {**self.extra_body, "model": self.model, "messages": as_dicts(messages),
                                "temperature": params.temperature, "max_tokens": params.max_tokens}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.response_format is not None:
            body["response_format"] = params.response_format
        if params.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = params.logprobs
        return body

    async def chat(self, messages: Sequence[Message | dict[str, str]], *, temperature: float = 0.0,
                   max_tokens: int = 512, stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        params = ChatParams(temperature, max_tokens, stop, seed, response_format, logprobs)
        body = self.request_body(messages, params)
        url = f"{self.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {self._api_key.reveal()}"} if self._api_key else {}
        started = time.monotonic()
        logger.debug("%s: POST %s (%d messages, max_tokens=%d)", self.name, _display_url(url), len(body["messages"]),
                     max_tokens)
        try:
            response = await self._client.get().post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise BackendError(f"{self.name}: request timed out after {self.timeout:g}s ({type(exc).__name__})",
                               retryable=True) from None
        except httpx.RequestError as exc:
            raise BackendError(f"{self.name}: connection error to {_display_url(url)} ({type(exc).__name__}: "
                               f"{self._scrub(_excerpt(str(exc)))})", retryable=True) from None
        logger.debug("%s: HTTP %d in %.3fs", self.name, response.status_code, time.monotonic() - started)
        if response.status_code != 200:
            raise self._status_error(response)
        return self._completion(response, want_logprobs=logprobs is not None)

    def _status_error(self, response: httpx.Response) -> BackendError:
        status = response.status_code
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = response.reason_phrase or "error"
        message = self._scrub(_server_message(response))
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        retry_after = _retry_after(response.headers) if retryable else None
        text = f"{self.name}: {status} {phrase}"
        if message:
            text += f": {message}"
        if retry_after is not None:
            text += f" (Retry-After {retry_after:g}s)"
        return BackendError(text, retryable=retryable, status=status, retry_after=retry_after)

    def _completion(self, response: httpx.Response, *, want_logprobs: bool) -> Completion:
        try:
            payload = response.json()
        except ValueError:
            raise BackendError(f"{self.name}: malformed response (not JSON): {self._scrub(_excerpt(response.text))}",
                               retryable=True, status=response.status_code) from None
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BackendError(f"{self.name}: malformed response (no choices): {self._scrub(_excerpt(response.text))}",
                               retryable=True, status=response.status_code)
        choice = choices[0]
        message = choice.get("message")
        text = _content_text(message.get("content")) if isinstance(message, dict) else None
        if text is None:
            raise BackendError(f"{self.name}: malformed response (choices[0].message.content missing): "
                               f"{self._scrub(_excerpt(response.text))}", retryable=True, status=response.status_code)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        try:
            logprobs = _logprobs(choice.get("logprobs")) if want_logprobs else None
        except (TypeError, ValueError) as exc:
            raise BackendError(f"{self.name}: malformed response (choices[0].logprobs: {exc}): "
                               f"{self._scrub(_excerpt(response.text))}", retryable=True,
                               status=response.status_code) from None
        return Completion(text=text, finish_reason=_finish_reason(choice.get("finish_reason")),
                          usage={"prompt_tokens": _int(usage.get("prompt_tokens")),
                                 "completion_tokens": _int(usage.get("completion_tokens"))},
                          cached=False, logprobs=logprobs)

    def _scrub(self, text: str) -> str:
        """`text` with the API key and any bearer token replaced by `***`."""
        if self._api_key is not None and self._api_key.reveal():
            text = text.replace(self._api_key.reveal(), "***")
        return _BEARER.sub(r"\1***", text)

    async def aclose(self) -> None:
        client = self._client.current()
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model!r}, base_url={_display_url(self.base_url)!r}, "
                f"api_key_env={self.api_key_env!r})")


def _server_message(response: httpx.Response) -> str:
    """The error text of a non-200 response: `error.message` of an OpenAI error body, else the body."""
    try:
        body = response.json()
    except ValueError:
        return _excerpt(response.text)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _excerpt(error["message"])
        if isinstance(error, str):
            return _excerpt(error)
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return _excerpt(body[key])
    return _excerpt(response.text)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _content_text(content: Any) -> str | None:
    """Message content as text: a string, null (nothing generated) or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(p["text"] for p in content if isinstance(p.get("text"), str))
    return None


def _logprobs(value: Any) -> tuple[TokenLogprob, ...] | None:
    """`choices[0].logprobs` (`{content: [{token, logprob, top_logprobs: [{token, logprob}]}]}`) as TokenLogprobs;
    None when the server sent none. Each position's `top` holds the alternatives and the generated token."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    if value.get("content") is None:
        return None
    if not isinstance(value["content"], list):
        raise TypeError(f"content: expected a list, got {type(value['content']).__name__}")
    entries = []
    for position, entry in enumerate(value["content"]):
        try:
            token, logprob = _token_logprob(entry)
            top: dict[str, float] = {}
            for alternative in entry.get("top_logprobs") or ():
                alt_token, alt_logprob = _token_logprob(alternative)
                top.setdefault(alt_token, alt_logprob)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"content[{position}]: {exc}") from None
        top.setdefault(token, logprob)
        entries.append(TokenLogprob(token, logprob, top))
    return tuple(entries)


def _token_logprob(entry: Any) -> tuple[str, float]:
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise ValueError("expected an object with a string 'token'")
    logprob = entry.get("logprob")
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
        raise ValueError(f"logprob of {entry['token']!r}: expected a number, got {logprob!r}")
    return entry["token"], float(logprob)


def _finish_reason(value: Any) -> str:
    if value in (None, "stop", "eos", "eos_token", "end_turn", "stop_sequence"):
        return "stop"
    if value in ("length", "max_tokens"):
        return "length"
    return str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _display_url(url: str | None) -> str:
    """`url` without user info or query string (either could carry a credential)."""
    if not url:
        return str(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
