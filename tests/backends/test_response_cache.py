"""The sqlite response cache: repeat runs cost no backend calls; sampling without a seed is never cached."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from chat.backends import (CachedBackend, Completion, ResponseCache, ScriptedBackend, UsageLedger, build_backend,
                           default_cache_path, request_key)
from chat.backends.base import ChatParams, TokenLogprob
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
    backend = CachedBackend(inner, ResponseCache(tmp_path / "c.sqlite"))

    async def twice():
        return [await backend.chat([{"role": "user", "content": "q"}]) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert (first.finish_reason, second.text, second.cached) == ("error", "fine", False)
    assert inner.calls == 2


BASE_MESSAGES = [{"role": "user", "content": "hi"}]
BASE_PARAMS = dict(temperature=0.0, max_tokens=16, stop=None, seed=None, response_format=None, logprobs=None)
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "yes_no", "schema": {
    "type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}}}


def key(identity: str = "openai:m", messages=BASE_MESSAGES, **change) -> str:
    return request_key(identity, messages, ChatParams(**{**BASE_PARAMS, **change}))


@pytest.mark.parametrize("change", [
    {"identity": "local:m"}, {"messages": [{"role": "user", "content": "hi!"}]},
    {"messages": [{"role": "system", "content": "hi"}]}, {"temperature": 0.5}, {"max_tokens": 17},
    {"stop": ["\n"]}, {"seed": 0}, {"response_format": {"type": "json_object"}},
    {"response_format": SCHEMA_FORMAT}, {"logprobs": 0}, {"logprobs": 5},
])
def test_every_request_field_is_part_of_the_key(change):
    assert key(**change) != key()


def test_key_does_not_depend_on_stop_container_type():
    assert key(stop=["a", "b"]) == key(stop=("a", "b"))
    assert key(stop=[]) == key()


def test_two_backends_on_one_file_write_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    backends = [CachedBackend(ScriptedBackend(lambda messages, params, n=n: f"{n}:{messages[0]['content']}",
                                              name=f"scripted:m{n}"), ResponseCache(path)) for n in range(2)]

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


def ask_twice(backend_config: dict, cache_path: Path, prompt=PROMPTS[0], **params) -> list[Completion]:
    """A fresh cached backend (as a new run builds) asks `prompt` twice with `params`."""
    backend = build_backend({**backend_config, "cache": True}, cache_path=cache_path)

    async def session():
        try:
            return [await backend.chat(prompt, **params) for _ in range(2)]
        finally:
            await backend.aclose()

    return asyncio.run(session())


def test_two_servers_with_one_model_name_do_not_share_entries(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer(reply=lambda body: "from server one") as one, FaultServer(reply=lambda body: "from two") as two:
        assert one.backend_config()["model"] == two.backend_config()["model"] == "fake-model"
        first = ask_twice(one.backend_config(), cache_path)
        second = ask_twice(two.backend_config(), cache_path)
        counts = (one.request_count, two.request_count)
    assert [c.text for c in first + second] == ["from server one"] * 2 + ["from two"] * 2
    assert [c.cached for c in first + second] == [False, True, False, True]
    assert counts == (1, 1)
    assert len(ResponseCache(cache_path)) == 2


def test_a_changed_extra_body_misses(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        ask_twice(server.backend_config(extra_body={"top_p": 0.5}), cache_path)
        changed = ask_twice(server.backend_config(extra_body={"top_p": 0.9}), cache_path)
        requests = server.request_count
    assert [c.cached for c in changed] == [False, True]
    assert requests == 2


def test_a_different_response_format_misses(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        runs = [ask_twice(server.backend_config(), cache_path, response_format=response_format)
                for response_format in (None, {"type": "json_object"}, SCHEMA_FORMAT)]
        requests = server.request_count
    assert [[c.cached for c in run] for run in runs] == [[False, True]] * 3
    assert requests == 3
    assert runs[0][1].text == "echo: prompt 0" and runs[1][1].text == '{"echo": "prompt 0"}'


def test_a_different_logprobs_k_misses(tmp_path):
    cache_path = tmp_path / "responses.sqlite"
    with FaultServer() as server:
        runs = [ask_twice(server.backend_config(), cache_path, logprobs=k) for k in (None, 1, 2)]
        requests = server.request_count
    assert [[c.cached for c in run] for run in runs] == [[False, True]] * 3
    assert requests == 3
    assert [body["top_logprobs"] for body in (r.body for r in server.received) if "top_logprobs" in body] == [1, 2]


SCORED = Completion("yes", "stop", {"prompt_tokens": 3, "completion_tokens": 1},
                    logprobs=(TokenLogprob("yes", -0.25, {"yes": -0.25, "no": -1.5}),
                              TokenLogprob("", -0.01, {})))


def test_a_cached_completion_round_trips_its_logprobs(tmp_path):
    path = tmp_path / "responses.sqlite"
    inner = ScriptedBackend([SCORED])

    async def ask(backend):
        return await backend.chat([{"role": "user", "content": "ok?"}], logprobs=2)

    stored = asyncio.run(ask(CachedBackend(inner, ResponseCache(path))))
    reopened = asyncio.run(ask(CachedBackend(inner, ResponseCache(path))))   # a new run on the same file
    assert stored.logprobs == SCORED.logprobs and not stored.cached
    assert reopened.cached and reopened.logprobs == SCORED.logprobs
    assert inner.calls == 1


def test_a_completion_without_logprobs_comes_back_without(tmp_path):
    cache = ResponseCache(tmp_path / "responses.sqlite")
    cache.put("k", "scripted", Completion("plain", "stop"))
    assert cache.get("k").logprobs is None


OLD_SCHEMA = """CREATE TABLE responses (key TEXT PRIMARY KEY, backend TEXT NOT NULL, text TEXT NOT NULL,
    finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL)"""


def test_a_cache_file_from_before_logprobs_still_opens(tmp_path):
    path = tmp_path / "responses.sqlite"
    old = sqlite3.connect(path)
    old.execute(OLD_SCHEMA)
    old.execute("INSERT INTO responses VALUES ('old-key', 'openai:m', 'old text', 'stop', 1, 2, 0.0)")
    old.commit()
    old.close()
    cache = ResponseCache(path)
    assert len(cache) == 1
    assert cache.get("old-key") == Completion("old text", "stop", {"prompt_tokens": 1, "completion_tokens": 2},
                                              cached=True)
    cache.put("new-key", "scripted", SCORED)
    assert cache.get("new-key").logprobs == SCORED.logprobs
    cache.close()
    assert ResponseCache(path).get("new-key").text == "yes"   # a second open finds the column in place


def test_the_cache_keys_on_the_raw_backends_identity_through_the_wrappers(tmp_path):
    with FaultServer() as server:
        backend = build_backend(server.backend_config(cache=True), cache_path=tmp_path / "c.sqlite")
        raw = backend.inner.inner.inner
        assert backend.identity == backend.cache_identity == raw.cache_identity
        assert server.base_url in raw.cache_identity
        asyncio.run(backend.aclose())


def test_a_backend_without_cache_identity_cannot_be_cached(tmp_path):
    class Anonymous:
        name = "anonymous"

    with pytest.raises(TypeError, match="anonymous: backend .* has no cache_identity"):
        CachedBackend(Anonymous(), ResponseCache(tmp_path / "c.sqlite"))
