"""Tensor work of the process on one thread: helpers, the local backend's decode and the RM scorer."""

import asyncio
import threading

import pytest

from chat.backends.local import GenerationRequest, _Batcher
from chat.compute_thread import THREAD_NAME, compute, on_compute_thread, run_compute
from chat.conversation import Conversation, Message
from rm.scorer import LockedScorer


def thread_name() -> str:
    return threading.current_thread().name


def test_run_compute_runs_on_the_one_compute_thread_and_calls_directly_from_it():
    first, second = run_compute(thread_name), run_compute(thread_name)
    assert first == second == THREAD_NAME
    assert not on_compute_thread()
    assert run_compute(lambda: run_compute(thread_name)) == first  # nested: no deadlock on the single worker


def test_run_compute_raises_the_function_s_exception_in_the_caller():
    def fail():
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_compute(fail)


def test_compute_awaits_on_the_compute_thread_while_the_event_loop_stays_free():
    async def main():
        ticks = []

        async def ticker():
            for _ in range(3):
                ticks.append(thread_name())
                await asyncio.sleep(0.01)

        def slow():
            threading.Event().wait(0.1)
            return thread_name()

        name, _ = await asyncio.gather(compute(slow), ticker())
        return name, ticks

    name, ticks = asyncio.run(main())
    assert name.startswith(THREAD_NAME)
    assert len(ticks) == 3 and not any(t.startswith(THREAD_NAME) for t in ticks)


class RecordingEngine:
    def __init__(self):
        self.threads = []

    def generate(self, requests):
        self.threads.append(thread_name())
        for request in requests:
            request.text, request.finish_reason = "ok", "stop"


def test_the_local_backend_decodes_its_batches_on_the_compute_thread():
    engine = RecordingEngine()

    async def main():
        batcher = _Batcher(engine, max_batch=4, wait_ms=1)
        requests = [GenerationRequest([1, 2], 0.0, 4, (), 0) for _ in range(3)]
        return await asyncio.gather(*[batcher.submit(r) for r in requests])

    done = asyncio.run(main())
    assert [r.text for r in done] == ["ok"] * 3
    assert engine.threads and all(t.startswith(THREAD_NAME) for t in engine.threads)


class RecordingModel:
    def __init__(self):
        self.threads = []

    def score(self, conversations):
        self.threads.append(thread_name())
        return [float(len(c.messages)) for c in conversations]


def test_the_rm_scorer_scores_on_the_compute_thread():
    model = RecordingModel()
    conversation = Conversation([Message("user", "hi"), Message("assistant", "hello")])
    assert asyncio.run(LockedScorer(model).score([conversation])) == [2.0]
    assert model.threads[0].startswith(THREAD_NAME)


def test_the_compute_thread_is_a_daemon_so_ctrl_c_does_not_wait_for_its_job():
    assert run_compute(lambda: threading.current_thread().daemon) is True
