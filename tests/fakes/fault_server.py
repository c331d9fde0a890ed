"""A fault-injecting OpenAI-compatible HTTP server on 127.0.0.1, answering itself or forwarding to an upstream.

    plan = FaultPlan(rate_429=0.1, rate_500=0.1, rate_garbage=0.05, rate_hang=0.05, hang_s=10)
    with FaultServer(plan, seed=0, upstream="http://127.0.0.1:8000/v1") as server:
        # server.backend_config(): an openai backend entry for server.base_url with test-sized backoff
        backend = build_backend(server.backend_config(model="embedded", timeout=0.5, max_retries=8))
        ...
        assert server.request_count == 40 + sum(server.counts[kind] for kind in FAULT_KINDS)

Import it as `from fakes.fault_server import FaultServer, FaultPlan` (tests/ is on sys.path because
tests/conftest.py sits outside any package).

Each POST to /v1/chat/completions draws one outcome from a seeded RNG: "ok" or a fault kind
(FAULT_KINDS). GET /v1/models never fails. With `upstream=URL` (e.g. a real `turnwise serve`'s
http://127.0.0.1:PORT/v1) the "ok" outcome, the truncated body and the late answer after a hang
come from the upstream; otherwise the reply is derived from the request (`reply(body)`, default:
an echo of the last user message).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple

logger = logging.getLogger(__name__)

#: Outcomes a request can be given besides "ok".
#: 429: Too Many Requests with Retry-After; 500: Internal Server Error; 400: Bad Request (not retryable);
#: garbage: 200 with a non-JSON body; truncated: Content-Length larger than the body, then the connection
#: closes; hang: nothing for `hang_s` seconds (past the client's timeout), then the normal answer.
FAULT_KINDS = ("429", "500", "garbage", "truncated", "hang", "400")


@dataclass(frozen=True)
class FaultPlan:
    """Which fraction of chat requests gets which fault; the rest are answered normally."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_garbage: float = 0.0
    rate_truncated: float = 0.0
    rate_hang: float = 0.0
    rate_400: float = 0.0
    #: outcomes of the first requests in arrival order ("ok" or a fault kind), before random draws start
    sequence: tuple[str, ...] = ()
    #: value of the Retry-After header on 429s, in seconds
    retry_after: float = 0.01
    #: how long a hung request waits before answering (cut short when the server stops)
    hang_s: float = 5.0
    #: error bodies quote the request's Authorization header (to test that clients scrub secrets)
    echo_authorization: bool = False

    def __post_init__(self) -> None:
        rates = self.rates()
        if any(not 0.0 <= r <= 1.0 for r in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must lie in [0, 1] and sum to at most 1, got {rates}")
        unknown = [s for s in self.sequence if s != "ok" and s not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown outcomes in sequence: {unknown} (expected 'ok' or one of {FAULT_KINDS})")

    def rates(self) -> dict[str, float]:
        return {kind: getattr(self, f"rate_{kind}") for kind in FAULT_KINDS}

    @property
    def fault_rate(self) -> float:
        return sum(self.rates().values())

    def draw(self, rng: random.Random) -> str:
        """One outcome: a fault kind with its rate's probability, else "ok"."""
        u = rng.random()
        for kind, rate in self.rates().items():
            if u < rate:
                return kind
            u -= rate
        return "ok"


class ReceivedRequest(NamedTuple):
    """A chat completion request as the server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]
    outcome: str


def echo_reply(body: dict[str, Any]) -> str:
    """Default answer: `echo: <last user message>` (JSON `{"echo": ...}` in json mode)."""
    last_user = next((m.get("content", "") for m in reversed(body.get("messages", []))
                      if isinstance(m, dict) and m.get("role") == "user"), "")
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"echo": last_user})
    return f"echo: {last_user}"


@dataclass
class _State:
    plan: FaultPlan
    rng: random.Random
    upstream: str | None
    reply: Callable[[dict[str, Any]], str]
    model: str
    upstream_timeout: float
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter = field(default_factory=Counter)
    received: list[ReceivedRequest] = field(default_factory=list)
    completion_ids: int = 0


class FaultServer:
    """Fault-injecting OpenAI-compatible server in a background thread; use as a context manager.

    `counts` holds "requests" (chat completion requests), "ok", one entry per fault kind served,
    and "models" (GET /v1/models). `received` lists every chat request in arrival order.
    """

    def __init__(self, plan: FaultPlan | None = None, *, seed: int = 0, upstream: str | None = None,
                 reply: Callable[[dict[str, Any]], str] = echo_reply, model: str = "fake-model",
                 upstream_timeout: float = 300.0):
        self._state = _State(plan=plan or FaultPlan(), rng=random.Random(seed),
                             upstream=upstream.rstrip("/") if upstream else None, reply=reply, model=model,
                             upstream_timeout=upstream_timeout)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def plan(self) -> FaultPlan:
        return self._state.plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Change the faults of requests from now on (e.g. a dead server that comes back)."""
        self._state.plan = plan

    @property
    def counts(self) -> Counter:
        with self._state.lock:
            return Counter(self._state.counts)

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._state.lock:
            return list(self._state.received)

    @property
    def request_count(self) -> int:
        """Chat completion requests received so far (every attempt, faulted or not)."""
        return self.counts["requests"]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultServer is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    def backend_config(self, **overrides: Any) -> dict[str, Any]:
        """A `backends:` entry for an openai backend pointed at this server, with test-sized backoff
        (at most 50 ms between attempts) and the response cache off unless overridden."""
        config: dict[str, Any] = {"kind": "openai", "base_url": self.base_url, "model": self._state.model,
                                  "timeout": 5.0, "max_retries": 6, "concurrency": 8, "cache": False,
                                  "retry_base_delay": 0.005, "retry_max_delay": 0.05}
        config.update(overrides)
        return config

    def start(self) -> "FaultServer":
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = self._state  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fault-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hung requests and close the listening socket."""
        if self._server is None:
            return
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("fault server: client %s went away: %s", client_address, error)
            return
        logger.exception("fault server: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "turnwise-fault-server"
    #: idle keep-alive connections are dropped after this many seconds
    timeout = 10

    def setup(self) -> None:
        super().setup()
        # answer at once: with Nagle's algorithm on, every response would wait for the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fault server: " + format, *args)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        with self.state.lock:
            self.state.counts["models"] += 1
        if self.state.upstream:
            self._forward("GET", None)
            return
        self._send_json(200, {"object": "list", "data": [
            {"id": self.state.model, "object": "model", "created": 0, "owned_by": "turnwise-fault-server"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("expected an object with a 'messages' list")
            if body.get("stream"):
                raise ValueError("streaming is not supported by the fault server")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": f"invalid request: {exc}", "type": "invalid_request_error"}})
            return
        state = self.state
        with state.lock:
            index = state.counts["requests"]
            outcome = state.plan.sequence[index] if index < len(state.plan.sequence) else state.plan.draw(state.rng)
            state.counts["requests"] += 1
            state.counts[outcome] += 1
            state.received.append(ReceivedRequest(body, dict(self.headers.items()), outcome))
        self._serve(outcome, body, raw)

    def _serve(self, outcome: str, body: dict[str, Any], raw: bytes) -> None:
        if outcome == "429":
            self._send_json(429, self._error_body("rate limit reached, slow down", "rate_limit_exceeded"),
                            headers={"Retry-After": f"{self.state.plan.retry_after:g}"})
        elif outcome == "500":
            self._send_json(500, self._error_body("the server had an error while processing your request",
                                                  "server_error"))
        elif outcome == "400":
            self._send_json(400, self._error_body("this request was rejected by the fault plan",
                                                  "invalid_request_error"))
        elif outcome == "garbage":
            self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>\x00\xff", "application/json")
        elif outcome == "truncated":
            status, payload = self._answer(body, raw)
            self._send_raw(status, payload[: max(1, len(payload) // 2)], "application/json",
                           content_length=len(payload))
            self.close_connection = True
        elif outcome == "hang":
            if self.state.stopping.wait(self.state.plan.hang_s):
                self.close_connection = True
                return
            self._send_answer(body, raw)
        else:
            self._send_answer(body, raw)

    def _error_body(self, message: str, code: str) -> dict[str, Any]:
        if self.state.plan.echo_authorization:
            message += f" (request had Authorization: {self.headers.get('Authorization', '<none>')})"
        return {"error": {"message": message, "type": code, "code": code}}

    def _send_answer(self, body: dict[str, Any], raw: bytes) -> None:
        status, payload = self._answer(body, raw)
        self._send_raw(status, payload, "application/json")

    def _answer(self, body: dict[str, Any], raw: bytes) -> tuple[int, bytes]:
        """(status, JSON bytes) of the normal answer: the upstream's, or one derived from the request."""
        if self.state.upstream:
            return self._upstream_call("POST", raw)
        text = self.state.reply(body)
        stop = body.get("stop") or []
        for sequence in [stop] if isinstance(stop, str) else stop:
            at = text.find(sequence) if sequence else -1
            if at != -1:
                text = text[:at]
        words = text.split()
        finish_reason = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            text, finish_reason = " ".join(words[:max_tokens]), "length"
        with self.state.lock:
            self.state.completion_ids += 1
            number = self.state.completion_ids
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in body["messages"] if isinstance(m, dict))
        payload = {
            "id": f"chatcmpl-fault-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.state.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_words + len(text.split())},
        }
        return 200, json.dumps(payload).encode("utf-8")

    def _upstream_call(self, method: str, raw: bytes | None) -> tuple[int, bytes]:
        assert self.state.upstream is not None
        path = self.path[len("/v1"):] if self.path.startswith("/v1") else self.path
        headers = {"Content-Type": "application/json"}
        if self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        request = urllib.request.Request(self.state.upstream + path, data=raw, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.state.upstream_timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return 502, json.dumps({"error": {"message": f"upstream unreachable: {exc}",
                                              "type": "bad_gateway"}}).encode("utf-8")

    def _forward(self, method: str, raw: bytes | None) -> None:
        status, payload = self._upstream_call(method, raw)
        self._send_raw(status, payload, "application/json")

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode("utf-8"), "application/json", headers=headers)

    def _send_raw(self, status: int, payload: bytes, content_type: str, *, content_length: int | None = None,
                  headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload) if content_length is None else content_length))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # the client gave up (timed out) before the answer came
            self.close_connection = True
