"""build_backend / build_backends: composition order, settings taken from the spec, config errors."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from chat.backends import (BACKENDS, BackendSpec, CachedBackend, ConcurrencyLimitedBackend, OpenAIBackend,
                           RetryingBackend, UsageLedger, UsageRecordingBackend, aclose_backends,
                           build_backend, build_backends)
from chat.errors import ConfigError
from app.list_cli import list_registry

OPENAI = {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "gemma-2-9b-it"}


def chain(backend) -> list[type]:
    types = []
    while backend is not None:
        types.append(type(backend))
        backend = getattr(backend, "inner", None)
    return types


def test_wrappers_compose_usage_cache_concurrency_retry_raw(tmp_path):
    backend = build_backend({**OPENAI, "concurrency": 3, "max_retries": 2, "timeout": 7.5}, role="judge",
                            ledger=UsageLedger(), cache_path=tmp_path / "c.sqlite")
    assert chain(backend) == [UsageRecordingBackend, CachedBackend, ConcurrencyLimitedBackend, RetryingBackend,
                              OpenAIBackend]
    cached, limited = backend.inner, backend.inner.inner
    retrying = limited.inner
    assert backend.role == "judge" and backend.name == "openai:gemma-2-9b-it"
    assert cached.cache.path == tmp_path / "c.sqlite"
    assert limited.limit == 3
    assert (retrying.max_retries, retrying.timeout) == (2, 7.5)
    asyncio.run(backend.aclose())


def test_retry_tuning_comes_from_spec_extras():
    backend = build_backend({**OPENAI, "cache": False, "retry_base_delay": 0.01, "retry_max_delay": 0.2,
                             "retry_after_cap": 3})
    retrying = backend.inner
    assert (retrying.base_delay, retrying.max_delay, retrying.max_retry_after) == (0.01, 0.2, 3.0)


def test_no_ledger_means_no_usage_wrapper_and_cache_false_means_no_cache():
    assert chain(build_backend(OPENAI, cache=False)) == [ConcurrencyLimitedBackend, RetryingBackend, OpenAIBackend]
    assert chain(build_backend({**OPENAI, "cache": False}))[0] is ConcurrencyLimitedBackend


def test_default_cache_file_is_under_turnwise_cache(isolated_cache_dir):
    backend = build_backend(OPENAI)
    assert backend.cache.path == isolated_cache_dir / "responses.sqlite"
    asyncio.run(backend.aclose())


def test_spec_cache_path_chooses_the_cache_file(isolated_cache_dir, tmp_path):
    backend = build_backend({**OPENAI, "cache_path": str(tmp_path / "run" / "responses.sqlite")})
    assert backend.cache.path == tmp_path / "run" / "responses.sqlite"
    asyncio.run(backend.aclose())


def test_scripted_kind_is_not_cached_unless_asked(tmp_path):
    spec = {"kind": "scripted", "replies": ["a"]}
    assert CachedBackend not in chain(build_backend(spec))
    assert CachedBackend in chain(build_backend(spec, cache=True, cache_path=tmp_path / "c.sqlite"))


def test_spec_object_and_mapping_build_the_same_backend():
    from_object = build_backend(BackendSpec(kind="openai", base_url=OPENAI["base_url"], model="x"), cache=False)
    from_mapping = build_backend({**OPENAI, "model": "x"}, cache=False)
    assert repr(from_object) == repr(from_mapping)


def test_build_backends_makes_one_backend_per_role_sharing_the_ledger(tmp_path):
    ledger = UsageLedger()
    backends = build_backends({"simulator": {"kind": "scripted", "replies": ["s1", "s2"]},
                               "judge": {"kind": "scripted", "replies": ["j1"]}}, ledger, tmp_path / "c.sqlite")

    async def use():
        await backends["simulator"].chat([{"role": "user", "content": "one two"}])
        await backends["simulator"].chat([{"role": "user", "content": "three"}])
        await backends["judge"].chat([{"role": "user", "content": "four"}])
        await aclose_backends(backends)

    asyncio.run(use())
    assert sorted(backends) == ["judge", "simulator"]
    assert ledger.by_role["simulator"].calls == 2 and ledger.by_role["simulator"].prompt_tokens == 3
    assert ledger.by_role["judge"].calls == 1


def test_kinds_are_registered_and_listed(capsys):
    assert {"openai", "scripted"} <= set(BACKENDS.names())
    list_registry(argparse.Namespace(what="backends"))
    printed = capsys.readouterr().out
    assert "openai" in printed and "scripted" in printed


@pytest.mark.parametrize("entry, message", [
    ({"kind": "nope"}, r"backends\.judge\.kind: unknown backend 'nope'"),
    ({"kind": "openai"}, r"backends\.judge: base_url: required for kind openai"),
    ({**OPENAI, "concurrency": 0}, r"backends\.judge\.concurrency: expected an integer >= 1"),
    ({**OPENAI, "timeout": 0}, r"backends\.judge\.timeout: expected seconds > 0"),
    ({**OPENAI, "max_retries": -1}, r"backends\.judge\.max_retries: expected an integer >= 0"),
    ({**OPENAI, "cache": "yes"}, r"backends\.judge\.cache: expected true or false"),
    ({**OPENAI, "cache_path": ""}, r"backends\.judge\.cache_path: expected a file path"),
    ({**OPENAI, "retry_base_delay": "fast"}, r"backends\.judge\.retry_base_delay: expected seconds >= 0"),
    ({**OPENAI, "temprature": 0.3}, r"backends\.judge\.temprature: unknown option for kind openai"),
    ({**OPENAI, "api_key": "sk-x"}, r"backends\.judge\.api_key: put the key in an environment variable"),
    ({**OPENAI, "extra_body": [1]}, r"backends\.judge: extra_body: expected a mapping"),
    ("openai", r"backends\.judge: base_url: required"),
    (["openai"], r"backends\.judge: expected a mapping with a 'kind'"),
])
def test_bad_entries_are_config_errors_naming_the_field(entry, message):
    with pytest.raises(ConfigError, match=message):
        build_backend(entry, role="judge", cache=False)


def test_backends_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="backends: expected a mapping"):
        build_backends([OPENAI])
