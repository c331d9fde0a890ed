"""Retry wrapper: exponential backoff with full jitter on retryable backend errors and timeouts, bounded."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable, Sequence

from chat.backends.base import ChatBackend, ChatParams, Completion
from chat.backends.wrappers import BackendWrapper
from chat.conversation import Message
from chat.errors import BackendError

logger = logging.getLogger(__name__)


class RetryingBackend(BackendWrapper):
    """Retries 429, 5xx, timeouts, connection errors and malformed responses (`BackendError.retryable`).

    Attempt n (0-based) that fails waits `uniform(0, min(max_delay, base_delay * 2**n))` ("full
    jitter"), or the server's Retry-After if that is longer (capped at `max_retry_after`). Each
    attempt is bounded by `timeout` seconds. After `max_retries` retries the last error is raised as
    a non-retryable BackendError that says how many attempts were made.
    """

    def __init__(self, inner: ChatBackend, *, max_retries: int = 6, timeout: float | None = 120.0,
                 base_delay: float = 0.5, max_delay: float = 30.0, max_retry_after: float = 60.0,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        super().__init__(inner)
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.max_retries = max_retries
        self.timeout = timeout if timeout and timeout > 0 else None
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self._rng = rng or random.Random()
        self._sleep = sleep

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (0-based)."""
        delay = self._rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** attempt))
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    async def forward(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        attempts = self.max_retries + 1
        last_error: BackendError | None = None
        for attempt in range(attempts):
            try:
                return await self._attempt(messages, params)
            except BackendError as error:
                if not error.retryable:
                    raise
                last_error = error
            if attempt + 1 < attempts:
                delay = self.backoff(attempt, last_error.retry_after)
                logger.debug("%s: attempt %d/%d failed (%s); retrying in %.3fs", self.name, attempt + 1, attempts,
                             _detail(self.name, last_error), delay)
                await self._sleep(delay)
        assert last_error is not None
        raise BackendError(f"{self.name}: giving up after {attempts} attempts: {_detail(self.name, last_error)}",
                           retryable=False, status=last_error.status) from None

    async def _attempt(self, messages: Sequence[Message | dict[str, str]], params: ChatParams) -> Completion:
        try:
            if self.timeout is None:
                return await super().forward(messages, params)
            return await asyncio.wait_for(super().forward(messages, params), self.timeout)
        except asyncio.TimeoutError:
            limit = f" after {self.timeout:g}s" if self.timeout is not None else ""
            raise BackendError(f"{self.name}: request timed out{limit}", retryable=True) from None


def _detail(name: str, error: BackendError) -> str:
    """The error's message without the `name: ` prefix the raw backend puts on it."""
    text = str(error)
    prefix = f"{name}: "
    return text[len(prefix):] if text.startswith(prefix) else text
