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

from chat.backends.base import ChatBackend, Completion, as_dicts
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
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """`$TURNWISE_CACHE/responses.sqlite`, else ~/.cache/turnwise/responses.sqlite."""
    return cache_dir() / "responses.sqlite"


def is_cacheable(temperature: float, seed: int | None) -> bool:
    """Greedy requests are deterministic; sampled ones only repeat when a seed is given."""
    return temperature <= 0 or seed is not None


def request_key(backend: str, model: str, messages: Sequence[Message | dict[str, str]], *, temperature: float,
                max_tokens: int, stop: Sequence[str] | None, seed: int | None, json: bool) -> str:
    """sha256 of everything that determines a response: backend, model, messages and sampling parameters."""
    payload = {
        "backend": backend,
        "model": model,
        "messages": as_dicts(messages),
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "stop": list(stop) if stop else None,
        "seed": seed,
        "json": bool(json),
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
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"response cache {self.path}: cannot open ({exc}); "
                              f"delete it or point $TURNWISE_CACHE elsewhere") from None

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                (key,)).fetchone()
        if row is None:
            return None
        text, finish_reason, prompt_tokens, completion_tokens = row
        return Completion(text, finish_reason, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                          cached=True)

    def put(self, key: str, backend: str, completion: Completion) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, backend, completion.text, completion.finish_reason,
                 int(completion.usage.get("prompt_tokens", 0)), int(completion.usage.get("completion_tokens", 0)),
                 time.time()))

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
    completions whose finish_reason is not "error".
    """

    def __init__(self, inner: ChatBackend, cache: ResponseCache, *, model: str):
        super().__init__(inner)
        self.cache = cache
        self.model = model

    async def chat(self, messages: Sequence[Message | dict[str, str]], *, temperature: float = 0.0,
                   max_tokens: int = 512, stop: Sequence[str] | None = None, seed: int | None = None,
                   json: bool = False) -> Completion:
        params = dict(temperature=temperature, max_tokens=max_tokens, stop=stop, seed=seed, json=json)
        if not is_cacheable(temperature, seed):
            return await self.inner.chat(messages, **params)
        key = request_key(self.name, self.model, messages, **params)
        try:
            hit = await asyncio.to_thread(self.cache.get, key)
        except sqlite3.Error as exc:
            logger.warning("%s: response cache %s unreadable, asking the backend: %s", self.name, self.cache.path, exc)
            hit = None
        if hit is not None:
            logger.debug("%s: cache hit %s", self.name, key[:12])
            return hit
        completion = await self.inner.chat(messages, **params)
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
