"""The sqlite response cache: repeat runs cost no backend calls; sampling without a seed is never cached."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from chat.backends import (CachedBackend, Completion, ResponseCache, ScriptedBackend, UsageLedger, build_backend,
                           default_cache_path, request_key)
from chat.errors import BackendError, ConfigError
from fakes.fault_server import FaultPlan, FaultServer

PROMPTS = [[{"role": "user", "content": f"prompt {i}"}] for i in range(5)]


def run_once(server: FaultServer, cache_path: Path, **params):
    """One 'run': a fresh backend (as a new process would build) asks every prompt once."""
    ledger = UsageLedger()
    backend = build_backend(server.backend_config(cache=True), role="judge", ledger=ledger, cache_path=cache_path)

    async def session():
        try:
            return await asyncio.gather(*(backend.chat(p, **params) for p in PROMPTS))
        finally:
            await backend.aclose()

    return asyncio.run(session()), ledger.by_role["judge"]


def test_second_identical_run_makes_zero_backend_calls(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        first, first_usage = run_once(server, cache_path)
        after_first = server.request_count
        second, second_usage = run_once(server, cache_path)
        after_second = server.request_count
    assert after_first == len(PROMPTS)
    assert after_second == after_first
    assert (first_usage.calls, first_usage.cache_hits) == (5, 0)
    assert (second_usage.calls, second_usage.cache_hits) == (0, 5)
    assert [c.text for c in second] == [c.text for c in first]
    assert all(c.cached for c in second) and not any(c.cached for c in first)
    assert [c.usage for c in second] == [c.usage for c in first]


def test_sampling_without_a_seed_is_not_cached(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        run_once(server, cache_path, temperature=0.8)
        _, usage = run_once(server, cache_path, temperature=0.8)
        requests = server.request_count
    assert requests == 2 * len(PROMPTS)
    assert usage.cache_hits == 0
    assert len(ResponseCache(cache_path)) == 0


def test_sampling_with_a_seed_is_cached(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        run_once(server, cache_path, temperature=0.8, seed=11)
        _, usage = run_once(server, cache_path, temperature=0.8, seed=11)
        _, other_seed = run_once(server, cache_path, temperature=0.8, seed=12)
        requests = server.request_count
    assert usage.cache_hits == 5
    assert other_seed.cache_hits == 0
    assert requests == 2 * len(PROMPTS)


def test_failed_requests_are_not_cached(tmp_path):
    with FaultServer(FaultPlan(sequence=("400",))) as server:
        backend = build_backend(server.backend_config(cache=True), cache_path=tmp_path / "responses.sqlite")

        async def three_times():
            with pytest.raises(BackendError):
                await backend.chat(PROMPTS[0])
            answered = await backend.chat(PROMPTS[0])
            repeated = await backend.chat(PROMPTS[0])
            await backend.aclose()
            return answered, repeated

        answered, repeated = asyncio.run(three_times())
        requests = server.request_count
    assert requests == 2
    assert (answered.cached, repeated.cached) == (False, True)


def test_error_completions_are_not_cached(tmp_path):
    inner = ScriptedBackend([Completion("", "error"), Completion("fine", "stop")])
    backend = CachedBackend(inner, ResponseCache(tmp_path / "c.sqlite"), model="m")

    async def twice():
        return [await backend.chat([{"role": "user", "content": "q"}]) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert (first.finish_reason, second.text, second.cached) == ("error", "fine", False)
    assert inner.calls == 2


BASE = dict(backend="openai:m", model="m", messages=[{"role": "user", "content": "hi"}], temperature=0.0,
            max_tokens=16, stop=None, seed=None, json=False)


@pytest.mark.parametrize("change", [
    {"backend": "local:m"}, {"model": "n"}, {"messages": [{"role": "user", "content": "hi!"}]},
    {"messages": [{"role": "system", "content": "hi"}]}, {"temperature": 0.5}, {"max_tokens": 17},
    {"stop": ["\n"]}, {"seed": 0}, {"json": True},
])
def test_every_request_field_is_part_of_the_key(change):
    assert request_key(**{**BASE, **change}) != request_key(**BASE)


def test_key_does_not_depend_on_stop_container_type():
    assert request_key(**{**BASE, "stop": ["a", "b"]}) == request_key(**{**BASE, "stop": ("a", "b")})
    assert request_key(**{**BASE, "stop": []}) == request_key(**BASE)


def test_two_backends_on_one_file_write_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    backends = [CachedBackend(ScriptedBackend(lambda messages, params, n=n: f"{n}:{messages[0]['content']}"),
                              ResponseCache(path), model=f"m{n}") for n in range(2)]

    async def many():
        return await asyncio.gather(*(b.chat([{"role": "user", "content": f"q{i}"}])
                                      for b in backends for i in range(50)))

    completions = asyncio.run(many())
    assert len(completions) == 100
    assert len(ResponseCache(path)) == 100


def write_entries(path: Path, prefix: str, ready, go) -> None:
    """Child process: open the shared cache, wait for the start signal, then write and read back 1000 entries."""
    cache = ResponseCache(path)
    ready.release()
    go.wait(30)
    for i in range(1000):
        cache.put(f"{prefix}-{i}", "scripted", Completion(f"text {i}", "stop"))
        assert cache.get(f"{prefix}-{i}").text == f"text {i}"
    cache.close()


def test_several_processes_share_one_cache_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    context = multiprocessing.get_context("fork")  # children start at once with chat.backends already imported
    ready, go = context.Semaphore(0), context.Event()
    processes = [context.Process(target=write_entries, args=(path, f"p{n}", ready, go)) for n in range(2)]
    for process in processes:
        process.start()
    for _ in processes:
        assert ready.acquire(timeout=30)
    go.set()  # both processes now write at the same time
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert len(ResponseCache(path)) == 2000


def test_unreadable_cache_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "responses.sqlite"
    path.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(ConfigError, match=f"response cache {path}"):
        ResponseCache(path)


def test_default_cache_path_follows_turnwise_cache(isolated_cache_dir):
    assert default_cache_path() == isolated_cache_dir / "responses.sqlite"


def test_cache_file_is_created_in_wal_mode(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    mode = cache._conn.execute("PRAGMA journal_mode").fetchone()[0]
    cache.close()
    assert mode == "wal"
