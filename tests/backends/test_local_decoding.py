"""The `local` backend on a small real model: response_format enforced while decoding, logprobs, cache identity."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from chat.backends.base import BackendSpec
from chat.backends.local import LocalBackend, load_engine
from chat.backends.response_format import reply_mismatch
from chat.conversation import Message
from chat.embedded import resolve_model
from chat.errors import BackendError, ConfigError

pytestmark = pytest.mark.slow

VERDICT = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "C"]}},
           "required": ["verdict"], "additionalProperties": False}
RATING = {"type": "object", "properties": {"rating": {"type": "integer", "enum": list(range(1, 11))},
                                           "sure": {"type": "boolean"}},
          "required": ["rating", "sure"], "additionalProperties": False}
THREE = {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 3, "maxItems": 3}


def _schema(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _small_model() -> str:
    """The smallest model CI has: Gemma 3 270M by its registry name, else whatever `embedded` resolves to."""
    try:
        path = resolve_model("gemma3-270m")
    except ConfigError:
        path = ""
    return path if Path(path).is_dir() else resolve_model("embedded")


@pytest.fixture(scope="module")
def model_path() -> str:
    # module scope: resolved before tests/backends/conftest.py points TURNWISE_CACHE at a per-test directory
    path = _small_model()
    load_engine(path)
    return path


def _backend(model_path: str, **spec) -> LocalBackend:
    return LocalBackend(BackendSpec(kind="local", model=model_path, **({"max_batch_size": 8, "batch_wait_ms": 50} | spec)))


def test_mixed_batch_enforces_each_rows_schema(model_path):
    backend = _backend(model_path)
    engine = backend.engine
    before = engine.batch_sizes.copy()
    asks = [("Which answer is better, A or B? Reply in JSON.", _schema("verdict", VERDICT)),
            ("Rate this poem from 1 to 10: 'Roses are red.'", _schema("rating", RATING)),
            ("Name three colours.", _schema("three", THREE)),
            ("Describe the sea.", {"type": "json_object"}),
            ("Say hello.", None)]
    for _, rf in asks:  # compiled once up front (cached), so no row waits on a compile and misses the batch
        engine.compile(rf)

    async def ask_all():
        return await asyncio.gather(*[backend.chat([Message("user", prompt)], max_tokens=48, response_format=rf)
                                      for prompt, rf in asks])

    replies = asyncio.run(ask_all())
    assert engine.batch_sizes - before == {len(asks): 1}
    for (prompt, rf), reply in zip(asks[:3], replies[:3]):
        assert reply.finish_reason == "stop", (prompt, reply)
        assert reply_mismatch(reply.text, rf) is None, reply.text
    if replies[3].finish_reason == "stop":  # an open-ended object may run to max_tokens; if it ended, it is one
        assert isinstance(json.loads(replies[3].text), dict)
    assert replies[4].usage["completion_tokens"] >= 1 and replies[4].logprobs is None


def test_sampled_constrained_rows_still_validate(model_path):
    backend = _backend(model_path)

    async def ask_all():
        return await asyncio.gather(*[backend.chat([Message("user", "Pick A, B or C.")], temperature=1.0, seed=seed,
                                                   max_tokens=16, response_format=_schema("verdict", VERDICT))
                                      for seed in range(4)])

    for reply in asyncio.run(ask_all()):
        assert json.loads(reply.text)["verdict"] in ("A", "B", "C")


def test_a_schema_the_engine_cannot_compile_is_a_clear_error(model_path):
    backend = _backend(model_path)
    bad = _schema("bad", {"type": "object", "properties": {"x": {"$ref": "#/definitions/missing"}}})
    with pytest.raises(BackendError, match=r"^response_format: xgrammar cannot compile the JSON schema: .*missing"):
        asyncio.run(backend.chat([Message("user", "hi")], response_format=bad))


def test_first_position_logprobs_for_a_judge(model_path):
    backend = _backend(model_path)
    reply = asyncio.run(backend.chat([Message("user", "Which is better, A or B? Answer with one letter.")],
                                     max_tokens=1, logprobs=20))
    assert reply.usage["completion_tokens"] == 1 and len(reply.logprobs) == 1
    first = reply.logprobs[0]
    assert first.token == reply.text and 20 <= len(first.top) <= 21
    best = max(first.top, key=first.top.get)
    assert best == first.token and first.top[best] == first.logprob  # greedy: the pick is the top-1
    assert all(value <= 0 for value in first.top.values())
    assert sum(math.exp(value) for value in first.top.values()) <= 1 + 1e-4


def test_every_token_has_logprobs_and_greedy_picks_the_top1(model_path):
    backend = _backend(model_path)
    reply = asyncio.run(backend.chat([Message("user", "Count to five.")], max_tokens=6, logprobs=3))
    assert len(reply.logprobs) == reply.usage["completion_tokens"]
    for entry in reply.logprobs:
        assert max(entry.top, key=entry.top.get) == entry.token and 1 <= len(entry.top) <= 4
    plain = asyncio.run(backend.chat([Message("user", "Count to five.")], max_tokens=6, logprobs=0))
    assert [e.token for e in plain.logprobs] == [e.token for e in reply.logprobs]
    assert all(e.top == {e.token: e.logprob} for e in plain.logprobs)


def test_constrained_logprobs_come_after_the_grammar_mask(model_path):
    backend = _backend(model_path)
    reply = asyncio.run(backend.chat([Message("user", "Which is better, A or B?")], max_tokens=16, logprobs=20,
                                     response_format=_schema("verdict", VERDICT)))
    first = reply.logprobs[0]
    assert first.top and all(token.startswith("{") for token in first.top)  # only what the grammar allows
    assert math.isclose(sum(math.exp(v) for v in first.top.values()), 1.0, abs_tol=1e-3) or len(first.top) == 20
    assert "".join(e.token for e in reply.logprobs) == reply.text


def test_logprobs_out_of_range_is_a_clear_error(model_path):
    with pytest.raises(BackendError, match="logprobs must be between 0 and 20, got 21"):
        asyncio.run(_backend(model_path).chat([Message("user", "hi")], logprobs=21))


def test_cache_identity_names_the_loaded_weights(model_path):
    backend = _backend(model_path)
    assert backend.cache_identity.startswith(f"local|{Path(model_path).resolve()}|")
    assert "|quantize=" in backend.cache_identity and "|dtype=" in backend.cache_identity
    assert _backend(model_path, extra={"top_p": 0.9}).cache_identity != backend.cache_identity


def test_decoding_passes_the_kv_cache_without_a_deprecation_warning(model_path):
    import warnings

    backend = _backend(model_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reply = asyncio.run(backend.chat([Message("user", "Say hi.")], max_tokens=3, temperature=0.0))
    assert reply.text is not None
    assert not [w for w in caught if "past_key_values" in str(w.message)]
