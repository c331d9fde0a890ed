"""An OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/models`) in front of any chat backend."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chat.backends.base import MAX_TOP_LOGPROBS, ChatBackend, Completion, ResponseFormat
from chat.backends.response_format import check_response_format
from chat.conversation import Message
from chat.errors import BackendError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_TOKENS = 512


class RequestError(ValueError):
    """A malformed request: answered with HTTP 400 and an OpenAI-style error body."""


class ChatServer:
    """Serves `backend` on host:port. Each HTTP request runs in its own thread and awaits the backend
    on one shared event loop, so concurrent requests reach the backend concurrently (and the `local`
    backend batches them into one decode loop)."""

    def __init__(self, backend: ChatBackend, model_name: str, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None):
        self.backend = backend
        self.model_name = model_name
        self.api_key = api_key
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="turnwise-serve-loop", daemon=True)
        self.httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def base_url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}/v1"

    def start(self) -> "ChatServer":
        """Serve in background threads (for tests and embedding); `serve_forever` blocks instead."""
        self._loop_thread.start()
        threading.Thread(target=self.httpd.serve_forever, name="turnwise-serve-http", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self._loop_thread.start()
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.backend.aclose(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one `/v1/chat/completions` request body (n choices generated concurrently)."""
        messages, params, n = parse_chat_request(body)
        seed = params.pop("seed")
        top_k = params["logprobs"]

        async def all_choices() -> list[Completion]:
            return await asyncio.gather(*[
                self.backend.chat(messages, seed=None if seed is None else seed + i, **params) for i in range(n)])

        completions = asyncio.run_coroutine_threadsafe(all_choices(), self.loop).result()
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "logprobs": openai_logprobs(c, top_k), "finish_reason": c.finish_reason}
                        for i, c in enumerate(completions)],
            "usage": {
                "prompt_tokens": completions[0].usage.get("prompt_tokens", 0),
                "completion_tokens": sum(c.usage.get("completion_tokens", 0) for c in completions),
                "total_tokens": completions[0].usage.get("prompt_tokens", 0)
                + sum(c.usage.get("completion_tokens", 0) for c in completions),
            },
        }


def openai_logprobs(completion: Completion, top_k: int | None) -> dict[str, Any] | None:
    """`choices[i].logprobs` in OpenAI's shape: `{content: [{token, logprob, bytes, top_logprobs: [...]}]}`, each
    position's `top_logprobs` its `top_k` most likely alternatives; None when not asked for or not available."""
    if top_k is None or completion.logprobs is None:
        return None

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {"content": [
        {**entry(position.token, position.logprob),
         "top_logprobs": [entry(token, logprob) for token, logprob
                          in sorted(position.top.items(), key=lambda item: -item[1])[:top_k]]}
        for position in completion.logprobs]}


def parse_chat_request(body: Any) -> tuple[list[Message], dict[str, Any], int]:
    """Validate an OpenAI chat request: (messages, chat() keyword arguments incl. seed, n). `logprobs: true`
    with `top_logprobs: k` (0 when left out) becomes `logprobs=k`."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError("'messages' must be a non-empty list")
    messages = []
    for i, message in enumerate(raw_messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise RequestError(f"messages[{i}] must be an object with 'role' and 'content'")
        if message["role"] not in ("system", "user", "assistant"):
            raise RequestError(f"messages[{i}].role: unsupported role {message['role']!r}")
        messages.append(Message(message["role"], _content_text(message["content"], i)))
    params: dict[str, Any] = {
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "max_tokens": int(_number(body, "max_completion_tokens", _number(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, 1e6), 1, 1e6)),
        "seed": None if body.get("seed") is None else int(_number(body, "seed", 0, -2**62, 2**62)),
        "response_format": _response_format(body.get("response_format")),
        "logprobs": _top_logprobs(body),
    }
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
        raise RequestError("'stop' must be a string or a list of non-empty strings")
    params["stop"] = stop
    n = int(_number(body, "n", 1, 1, 16))
    return messages, params, n


def _response_format(value: Any) -> ResponseFormat | None:
    """The request's `response_format` for the backend; `{"type": "text"}` (no constraint) is None."""
    if value is None:
        return None
    try:
        check_response_format(value)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return None if value["type"] == "text" else value


def _top_logprobs(body: dict[str, Any]) -> int | None:
    """`logprobs: true` + `top_logprobs: k` as the backend's `logprobs=k`; None when logprobs are not asked for."""
    wanted = body.get("logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise RequestError("'logprobs' must be true or false")
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise RequestError(f"'top_logprobs' must be an integer between 0 and {MAX_TOP_LOGPROBS}")
    if not wanted:
        if top is not None:
            raise RequestError("'top_logprobs' requires 'logprobs': true")
        return None
    return top or 0


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts")


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"'{key}' must be a number between {low:g} and {high:g}")
    return value


def _handler_class(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(HTTPStatus.OK, {"object": "list", "data": [
                    {"id": server.model_name, "object": "model", "created": 0, "owned_by": "turnwise"}]})
            elif self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(HTTPStatus.OK, {"status": "ok"})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}", "not_found_error")

        def do_POST(self) -> None:
            if not self._authorized():
                return
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}", "not_found_error")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise RequestError(f"request body over {MAX_BODY_BYTES} bytes")
                body = json.loads(self.rfile.read(length) or b"null")
                stream = bool(body.get("stream")) if isinstance(body, dict) else False
                response = server.complete(body)
            except (RequestError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc), "invalid_request_error")
                return
            except BackendError as exc:
                self._error(HTTPStatus.BAD_REQUEST if not exc.retryable else HTTPStatus.SERVICE_UNAVAILABLE,
                            str(exc), "backend_error")
                return
            except Exception as exc:  # a server bug must answer 500, not drop the connection
                logger.exception("chat completion failed")
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}", "server_error")
                return
            if stream:
                self._send_stream(response)
            else:
                self._send(HTTPStatus.OK, response)

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            supplied = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if hmac.compare_digest(supplied.encode(), server.api_key.encode()):
                return True
            self._error(HTTPStatus.UNAUTHORIZED, "missing or invalid API key", "authentication_error")
            return False

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, response: dict[str, Any]) -> None:
            """Server-sent events for `stream: true`; each choice arrives as one content chunk."""
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {"id": response["id"], "object": "chat.completion.chunk", "created": response["created"],
                    "model": response["model"]}
            for choice in response["choices"]:
                content = {"role": "assistant", "content": choice["message"]["content"]}
                for delta, logprobs, finish in ((content, choice["logprobs"], None),
                                                ({}, None, choice["finish_reason"])):
                    chunk = {**base, "choices": [{"index": choice["index"], "delta": delta, "logprobs": logprobs,
                                                  "finish_reason": finish}]}
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode("utf-8"))
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def _error(self, status: HTTPStatus, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status.value}})

    return Handler
