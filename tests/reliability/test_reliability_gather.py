"""chat.gather.gather_or_cancel: the first failure cancels the sibling calls, so a failed item leaves no call
running against the backend and no unretrieved exception for asyncio to print as a traceback."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from chat.errors import BackendError
from chat.gather import gather_or_cancel


def test_results_come_back_in_order():
    async def value(v: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return v

    assert asyncio.run(gather_or_cancel(value(1, 0.02), value(2, 0.0), value(3, 0.01))) == [1, 2, 3]


def test_the_first_failure_cancels_the_siblings_and_nothing_is_left_unretrieved(caplog):
    finished: list[str] = []
    cancelled: list[str] = []

    async def slow(name: str, fail_after: float | None) -> str:
        try:
            await asyncio.sleep(fail_after if fail_after is not None else 0.5)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        if fail_after is not None:
            raise BackendError(f"{name} failed")
        finished.append(name)
        return name

    async def item() -> None:
        with pytest.raises(BackendError, match="first failed"):
            await gather_or_cancel(slow("first", 0.01), slow("second", None), slow("third", None))
        # the siblings are already done (cancelled) when the error arrives: no task is still pending
        assert {task.get_name() for task in asyncio.all_tasks()} == {asyncio.current_task().get_name()}

    caplog.set_level(logging.ERROR, logger="asyncio")
    asyncio.run(item())
    gc.collect()
    assert cancelled == ["second", "third"] and finished == []
    assert "never retrieved" not in caplog.text and "unhandled exception" not in caplog.text


def test_cancelling_the_caller_cancels_every_call():
    cancelled: list[int] = []

    async def call(n: int) -> None:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    async def main() -> None:
        outer = asyncio.ensure_future(gather_or_cancel(call(1), call(2)))
        await asyncio.sleep(0.01)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer

    asyncio.run(main())
    assert sorted(cancelled) == [1, 2]
