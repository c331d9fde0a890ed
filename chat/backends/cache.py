"""On-disk sqlite response cache and the wrapper that serves repeated requests from it."""

from __future__ import annotations

import asyncio
import hashlib
import json as jsonlib
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from chat.backends.base import ChatBackend, ChatParams, Completion, TokenLogprob, as_dicts
from chat.backends.wrappers import BackendWrapper
from chat.conversation import Message
from chat.embedded import cache_dir
from chat.errors import ConfigError

logger = logging.getLogger(__name__)

#: Seconds a writer waits for another process's lock before failing.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    logprobs TEXT
)
"""
#: Columns added after the first release, with their declarations; an older file gains them when opened.
_ADDED_COLUMNS = {"logprobs": "TEXT"}


def default_cache_path() -> Path:
    """`$TURNWISE_CACHE/responses.sqlite`, else ~/.cache/turnwise/responses.sqlite."""
    return cache_dir() / "responses.sqlite"


def is_cacheable(temperature: float, seed: int | None) -> bool:
    """Greedy requests are deterministic; sampled ones only repeat when a seed is given."""
    return temperature <= 0 or seed is not None


def request_key(identity: str, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> str:
    """sha256 of everything that determines a response: the raw backend's `cache_identity` (kind, endpoint,
    model, weights, request options), the messages and every request parameter, response_format and
    logprobs included."""
    payload = {
        "backend": identity,
        "messages": as_dicts(messages),
        "temperature": float(params.temperature),
        "max_tokens": int(params.max_tokens),
        "stop": list(params.stop) if params.stop else None,
        "seed": params.seed,
        "response_format": params.response_format,
        "logprobs": params.logprobs,
    }
    encoded = jsonlib.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


class ResponseCache:
    """A sqlite file of completions by request key; WAL mode so several processes can share it."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                         isolation_level=None)
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(_SCHEMA)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"response cache {self.path}: cannot open ({exc}); "
                              f"delete it or point $TURNWISE_CACHE elsewhere") from None

    def _add_missing_columns(self) -> None:
        """Bring a file written by an older version up to the current columns (its old entries keep their
        old keys, which the current key scheme never produces, so they simply stop matching)."""
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(responses)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column in present:
                continue
            try:
                self._conn.execute(f"ALTER TABLE responses ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process added it first
                    raise

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens, logprobs FROM responses WHERE key = ?",
                (key,)).fetchone()
        if row is None:
            return None
        text, finish_reason, prompt_tokens, completion_tokens, logprobs = row
        return Completion(text, finish_reason, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                          cached=True,
                          logprobs=None if logprobs is None else tuple(TokenLogprob.from_dict(entry)
                                                                       for entry in jsonlib.loads(logprobs)))

    def put(self, key: str, backend: str, completion: Completion) -> None:
        logprobs = None if completion.logprobs is None else jsonlib.dumps(
            [entry.to_dict() for entry in completion.logprobs], ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, backend, text, finish_reason, prompt_tokens, "
                "completion_tokens, created, logprobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, backend, completion.text, completion.finish_reason,
                 int(completion.usage.get("prompt_tokens", 0)), int(completion.usage.get("completion_tokens", 0)),
                 time.time(), logprobs))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"


class CachedBackend(BackendWrapper):
    """Serves a request from the cache when the same one was answered before (`Completion.cached=True`).

    Only requests with temperature 0 or an explicit seed are looked up and stored, and only
    completions whose finish_reason is not "error". Entries are keyed by `request_key` on the raw
    backend's `cache_identity`, which every raw backend must define.
    """

    def __init__(self, inner: ChatBackend, cache: ResponseCache):
        super().__init__(inner)
        try:
            self.identity = inner.cache_identity
        except AttributeError:
            raise TypeError(f"{self.name}: backend {inner!r} has no cache_identity, so its responses cannot be "
                            f"cached") from None
        self.cache = cache

    async def forward(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        if not is_cacheable(params.temperature, params.seed):
            return await super().forward(messages, params)
        key = request_key(self.identity, messages, params)
        try:
            hit = await asyncio.to_thread(self.cache.get, key)
        except sqlite3.Error as exc:
            logger.warning("%s: response cache %s unreadable, asking the backend: %s", self.name, self.cache.path, exc)
            hit = None
        if hit is not None:
            logger.debug("%s: cache hit %s", self.name, key[:12])
            return hit
        completion = await super().forward(messages, params)
        if completion.finish_reason != "error":
            try:
                await asyncio.to_thread(self.cache.put, key, self.name, replace(completion, cached=False))
            except sqlite3.Error as exc:
                logger.warning("%s: could not store a response in %s: %s", self.name, self.cache.path, exc)
        return completion

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.cache.close()

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, cache={self.cache!r})"
