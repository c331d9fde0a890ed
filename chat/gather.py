"""Concurrent awaiting where the first failure cancels the siblings, so no call outlives its item."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable


async def gather_or_cancel(*awaitables: Awaitable[Any]) -> list[Any]:
    """Results of `awaitables` run concurrently, in order (like `asyncio.gather`).

    Unlike `asyncio.gather`, when one fails (or the caller is cancelled) the others are cancelled and
    awaited before the error is raised: none keeps calling a backend for an item that already failed,
    and none leaves an unretrieved exception that asyncio would print as a traceback at shutdown.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
