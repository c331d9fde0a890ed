"""`turnwise rm serve`: a stdlib HTTP server on 127.0.0.1 scoring conversations, batched across concurrent requests."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chat.conversation import Conversation, ValidationError
from rm.model import RewardModel

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_CONVERSATIONS_PER_REQUEST = 1024


class RequestError(Exception):
    """A client error: answered with `status` and `{"error": message}`."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Pending:
    conversations: list[Conversation]
    per_turn: bool
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Any] | None = None
    error: str | None = None


class ScoreBatcher:
    """One worker thread owns the model; HTTP threads enqueue requests and wait.

    The worker takes the first waiting request, then gathers whatever else arrives within
    `max_wait_s` (up to `max_batch` conversations) and scores them all in one sorted, batched
    `RewardModel` call, so concurrent clients share forward passes.
    """

    def __init__(self, model: RewardModel, max_batch: int = 64, max_wait_s: float = 0.01):
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batches = 0
        self.requests = 0
        self.largest_batch_requests = 0
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="rm-score-batcher", daemon=True)
        self._thread.start()

    def submit(self, conversations: list[Conversation], per_turn: bool, timeout: float = 600.0) -> list[Any]:
        pending = _Pending(conversations, per_turn)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "scoring timed out")
        if pending.error is not None:
            raise RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, pending.error)
        return pending.result or []

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.conversations)
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
                size += len(item.conversations)
            self._score(batch)

    def _score(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.requests += len(batch)
        self.largest_batch_requests = max(self.largest_batch_requests, len(batch))
        try:
            whole = [c for p in batch if not p.per_turn for c in p.conversations]
            turns = [c for p in batch if p.per_turn for c in p.conversations]
            whole_rewards = iter(self.model.score(whole)) if whole else iter(())
            turn_rewards = iter(self.model.score_turns_batch(turns)) if turns else iter(())
            for pending in batch:
                source = turn_rewards if pending.per_turn else whole_rewards
                pending.result = [next(source) for _ in pending.conversations]
        except (RuntimeError, ValueError) as exc:  # a model failure answers 500, the server keeps running
            logger.exception("scoring failed")
            for pending in batch:
                pending.error = f"scoring failed: {exc}"
        finally:
            for pending in batch:
                pending.done.set()


def parse_score_request(body: bytes) -> tuple[list[Conversation], bool]:
    """`{"conversations": [[{role, content}, ...] | {"messages": [...]}, ...], "per_turn": bool}` -> validated."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "body must be a JSON object with a `conversations` list")
    raw = payload.get("conversations")
    if not isinstance(raw, list) or not raw:
        raise RequestError(HTTPStatus.BAD_REQUEST, "conversations: expected a non-empty list of conversations")
    if len(raw) > MAX_CONVERSATIONS_PER_REQUEST:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"conversations: at most {MAX_CONVERSATIONS_PER_REQUEST} per request, got {len(raw)}")
    per_turn = payload.get("per_turn", False)
    if not isinstance(per_turn, bool):
        raise RequestError(HTTPStatus.BAD_REQUEST, "per_turn: expected true or false")
    conversations = []
    for i, item in enumerate(raw):
        where = f"conversations[{i}]"
        messages = item.get("messages") if isinstance(item, dict) else item
        if isinstance(item, dict):
            where += ".messages"
        if not isinstance(messages, list):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{where}: expected a list of {{role, content}} messages")
        try:
            conversations.append(Conversation.from_messages(messages, field_name=where))
        except ValidationError as exc:
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from None
    return conversations, per_turn


def make_handler(batcher: ScoreBatcher, model_name: str) -> type[BaseHTTPRequestHandler]:
    class RewardHandler(BaseHTTPRequestHandler):
        server_version = "turnwise-rm"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if self.path.rstrip("/") == "/health":
                self._reply(HTTPStatus.OK, {"status": "ok", "model": model_name, "requests": batcher.requests,
                                            "batches": batcher.batches})
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                if self.path.rstrip("/") != "/score":
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required")
                if int(length) > MAX_BODY_BYTES:
                    raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
                conversations, per_turn = parse_score_request(self.rfile.read(int(length)))
                result = batcher.submit(conversations, per_turn)
                key = "turn_rewards" if per_turn else "rewards"
                self._reply(HTTPStatus.OK, {key: result, "model": model_name})
            except RequestError as exc:
                self._reply(exc.status, {"error": exc.message})

        def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # route access logs to logging
            logger.info("%s %s", self.address_string(), format % args)

    return RewardHandler


class RewardServer:
    """The HTTP server plus its batcher; `serve_forever()` blocks, `start()` runs it in a thread (tests)."""

    def __init__(self, model: RewardModel, host: str = "127.0.0.1", port: int = 8008, max_batch: int = 64,
                 max_wait_s: float = 0.01):
        self.batcher = ScoreBatcher(model, max_batch=max_batch, max_wait_s=max_wait_s)
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self.batcher, model.name))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RewardServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="rm-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
        self.batcher.close()
