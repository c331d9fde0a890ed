"""Small wrappers around any ChatBackend: the shared wrapper base, a concurrency limit and per-role usage accounting."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Generic, Sequence, TypeVar

from chat.backends.base import ChatBackend, ChatParams, Completion, ResponseFormat, UsageLedger
from chat.conversation import Message

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One object per running event loop, made on first use in that loop.

    asyncio primitives and HTTP connection pools belong to the loop that first used them; a backend
    built once and used from several `asyncio.run` calls (one per pipeline stage) needs fresh ones.
    """

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._value is None:
            self._value = self._factory()
            self._loop = loop
        return self._value

    def current(self) -> T | None:
        """The object made for the running loop, or None (nothing to clean up)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._value if self._loop is loop else None


class BackendWrapper:
    """A backend that adds one behaviour around `inner`; `name` and `cache_identity` are the inner backend's.

    `chat` is the one place that spells out the request keywords: it bundles them into a ChatParams
    and calls `forward`, which subclasses override to add their behaviour (and which passes the request
    on unchanged here)."""

    def __init__(self, inner: ChatBackend):
        self.inner = inner
        self.name = inner.name

    @property
    def cache_identity(self) -> str:
        """The raw backend's `cache_identity`, reached through any wrappers in between."""
        return self.inner.cache_identity

    async def chat(self, messages: Sequence[Message | dict[str, str]], *, temperature: float = 0.0,
                   max_tokens: int = 512, stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        return await self.forward(messages, ChatParams(temperature, max_tokens, stop, seed, response_format, logprobs))

    async def forward(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        """Send one request to `inner`."""
        return await self.inner.chat(messages, **params.kwargs())

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class ConcurrencyLimitedBackend(BackendWrapper):
    """At most `limit` requests in flight through this backend at once."""

    def __init__(self, inner: ChatBackend, limit: int):
        super().__init__(inner)
        if limit < 1:
            raise ValueError(f"concurrency limit must be >= 1, got {limit}")
        self.limit = limit
        self._semaphore: PerLoop[asyncio.Semaphore] = PerLoop(lambda: asyncio.Semaphore(limit))

    async def forward(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        async with self._semaphore.get():
            return await super().forward(messages, params)

    def __repr__(self) -> str:
        return f"ConcurrencyLimitedBackend({self.inner!r}, limit={self.limit})"


class UsageRecordingBackend(BackendWrapper):
    """Records every request's outcome, tokens and latency in `ledger` under `role`."""

    def __init__(self, inner: ChatBackend, role: str, ledger: UsageLedger):
        super().__init__(inner)
        self.role = role
        self.ledger = ledger

    async def forward(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        started = time.monotonic()
        try:
            completion = await super().forward(messages, params)
        except Exception:
            self.ledger.record(self.role, None, started, error=True)
            raise
        self.ledger.record(self.role, completion, started, error=completion.finish_reason == "error")
        return completion

    def __repr__(self) -> str:
        return f"UsageRecordingBackend({self.inner!r}, role={self.role!r})"
