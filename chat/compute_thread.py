"""One thread for the process's tensor work: model loading, decoding, RM scoring and training.

PyTorch's CPU kernels run on OpenMP, and libgomp gives every thread that enters a parallel region a team of
helper threads of its own. Once two threads of a process have done tensor work there are more OpenMP threads
than cores on a small machine, and libgomp then stops spinning at its barriers: every parallel region pays a
futex wake-up. A decode step is thousands of small regions, so it slows down most. Measured on 2 cores with
Qwen2.5-Coder-0.5B int8 (bench/NOTES.md, engine throughput): a decode step at batch 1 took 41-47 ms while one
thread did all the tensor work, and 86-110 ms on either thread once a second thread had done some.

So turnwise runs its tensor work on one long-lived thread: `run_compute` from synchronous code (waits),
`compute` from async code (the event loop stays free). Both call the function directly when they already run
on that thread.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")

THREAD_NAME = "turnwise-compute"

_jobs: "queue.SimpleQueue[tuple[Callable[[], Any], Future]]" = queue.SimpleQueue()
_start_lock = threading.Lock()
_thread: threading.Thread | None = None


def _work() -> None:
    while True:
        fn, future = _jobs.get()
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, which raises it
                future.set_exception(exc)


def _submit(fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Future[T]":
    """Queue `fn` for the compute thread, started on first use. A daemon: Ctrl-C ends the process without
    waiting for the job in progress (a run's finished work is already on disk)."""
    global _thread
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_work, name=THREAD_NAME, daemon=True)
            _thread.start()
    future: Future = Future()
    _jobs.put((functools.partial(fn, *args, **kwargs), future))
    return future


def on_compute_thread() -> bool:
    """Whether the caller runs on the compute thread."""
    return threading.current_thread() is _thread


def run_compute(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on the compute thread; blocks until it returns (its exception is raised here)."""
    if on_compute_thread():
        return fn(*args, **kwargs)
    return _submit(fn, *args, **kwargs).result()


async def compute(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Await `fn(*args, **kwargs)` on the compute thread (like `asyncio.to_thread`, on that one thread)."""
    if on_compute_thread():
        return fn(*args, **kwargs)
    return await asyncio.wrap_future(_submit(fn, *args, **kwargs))
