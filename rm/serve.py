"""`turnwise rm serve`: a stdlib HTTP server on 127.0.0.1 scoring conversations (and OpenRLHF queries), batched."""

from __future__ import annotations

import hmac
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
from rm.queries import QueryParser

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_CONVERSATIONS_PER_REQUEST = 1024


class RequestError(Exception):
    """A client error: answered with `status` and `{"error": message}`."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


#: What a request asks for: whole-conversation rewards, per-turn rewards, or rewards of OpenRLHF query strings.
WHOLE, TURNS, QUERIES = "whole", "turns", "queries"


@dataclass
class _Pending:
    items: list[Any]      # Conversations (WHOLE, TURNS) or query strings (QUERIES)
    mode: str
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
        self.queries = 0
        self.unparsed_queries = 0   # not in the RM's chat template: scored as text
        self.query_parser = QueryParser(model.tokenizer)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="rm-score-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: list[Any], mode: str, timeout: float = 600.0) -> list[Any]:
        pending = _Pending(items, mode)
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
            size = len(first.items)
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
                size += len(item.items)
            self._score(batch)

    def _score(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.requests += len(batch)
        self.largest_batch_requests = max(self.largest_batch_requests, len(batch))
        try:
            # Whole conversations and queries share one sorted, batched pass over token ids.
            sequences = [self.model.encode(c).input_ids if p.mode == WHOLE else self.query_ids(c)
                         for p in batch if p.mode != TURNS for c in p.items]
            turns = [c for p in batch if p.mode == TURNS for c in p.items]
            whole_rewards = iter(self.model.score_token_ids(sequences))
            turn_rewards = iter(self.model.score_turns_batch(turns)) if turns else iter(())
            for pending in batch:
                source = turn_rewards if pending.mode == TURNS else whole_rewards
                pending.result = [next(source) for _ in pending.items]
        except (RuntimeError, ValueError) as exc:  # a model failure answers 500, the server keeps running
            logger.exception("scoring failed")
            for pending in batch:
                pending.error = f"scoring failed: {exc}"
        finally:
            for pending in batch:
                pending.done.set()


    def query_ids(self, query: str) -> list[int]:
        """Token ids of an OpenRLHF query: its conversation encoded as `/score` does when it is in the RM's
        chat template; otherwise the cleaned text as is (left-truncated to max_length, BOS kept)."""
        self.queries += 1
        conversation = self.query_parser.parse(query)
        if conversation is not None:
            return self.model.encode(conversation).input_ids
        self.unparsed_queries += 1
        if self.unparsed_queries == 1:
            logger.warning("a /get_reward query is not in the reward model's chat template; scoring it as text "
                           "(later ones are counted in /health)")
        encoder = self.model.encoder
        ids = encoder.tokenize_text(self.query_parser.clean(query))
        limit = encoder.max_length
        if limit is not None and len(ids) > limit:
            keep_first = ids[0] in encoder.special_ids
            ids = ids[:1] + ids[-(limit - 1):] if keep_first else ids[-limit:]
        return ids


def _json_object(body: bytes, expected: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body must be a JSON object with {expected}")
    return payload


def parse_reward_request(body: bytes) -> list[str]:
    """OpenRLHF's `{"query": [str, ...], ...}` (its other keys, e.g. prompts/labels, are ignored) -> the queries."""
    queries = _json_object(body, "a `query` list").get("query")
    if not isinstance(queries, list) or not queries:
        raise RequestError(HTTPStatus.BAD_REQUEST, "query: expected a non-empty list of strings")
    if len(queries) > MAX_CONVERSATIONS_PER_REQUEST:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"query: at most {MAX_CONVERSATIONS_PER_REQUEST} per request, got {len(queries)}")
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"query[{i}]: expected a non-empty string")
    return queries


def parse_score_request(body: bytes) -> tuple[list[Conversation], bool]:
    """`{"conversations": [[{role, content}, ...] | {"messages": [...]}, ...], "per_turn": bool}` -> validated."""
    payload = _json_object(body, "a `conversations` list")
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


def make_handler(batcher: ScoreBatcher, model_name: str, api_key: str | None = None) -> type[BaseHTTPRequestHandler]:
    class RewardHandler(BaseHTTPRequestHandler):
        server_version = "turnwise-rm"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/health":
                self._reply(HTTPStatus.OK, {"status": "ok", "model": model_name, "requests": batcher.requests,
                                            "batches": batcher.batches, "queries": batcher.queries,
                                            "unparsed_queries": batcher.unparsed_queries})
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if not self._authorized():
                return
            try:
                path = self.path.rstrip("/")
                if path not in ("/score", "/get_reward"):
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required")
                if int(length) > MAX_BODY_BYTES:
                    raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
                body = self.rfile.read(int(length))
                if path == "/get_reward":  # OpenRLHF's remote reward model protocol
                    self._reply(HTTPStatus.OK, {"rewards": batcher.submit(parse_reward_request(body), QUERIES)})
                    return
                conversations, per_turn = parse_score_request(body)
                result = batcher.submit(conversations, TURNS if per_turn else WHOLE)
                key = "turn_rewards" if per_turn else "rewards"
                self._reply(HTTPStatus.OK, {key: result, "model": model_name})
            except RequestError as exc:
                self._reply(exc.status, {"error": exc.message})

        def _authorized(self) -> bool:
            """With an API key set, every request must send `Authorization: Bearer KEY` (compared in constant
            time); others get 401 and are logged by address and path, never with what they sent."""
            if api_key is None:
                return True
            supplied = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if hmac.compare_digest(supplied.encode(), api_key.encode()):
                return True
            logger.warning("%s %s %s: 401, missing or invalid API key", self.address_string(), self.command, self.path)
            self._reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid API key"})
            return False

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
                 max_wait_s: float = 0.01, api_key: str | None = None):
        self.batcher = ScoreBatcher(model, max_batch=max_batch, max_wait_s=max_wait_s)
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self.batcher, model.name, api_key))
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
