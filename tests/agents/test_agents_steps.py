"""chat.agents: derived seeds, per-role usage, the bounded re-ask loop and StepCaller, against a scripted backend."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from chat.agents import (AskResult, ParseError, RoleUsage, StepCaller, ask_until_parsed, count_usage, derive_seed,
                         reask_messages)
from chat.backends.base import Completion, TokenLogprob
from chat.backends.scripted import ScriptedBackend
from chat.conversation import Message

REQUEST = [Message("system", "Answer with a number."), Message("user", "How many legs has a spider?")]


class VerdictLikeError(ParseError):
    """A package's own parse error (as judge's VerdictParseError)."""


def parse_int(text: str) -> int:
    if not text.strip().isdigit():
        raise ParseError(f"not a number: {text!r}")
    return int(text)


def note_reask(sent: list[Message], reply: str, error: ParseError) -> list[Message]:
    return reask_messages(REQUEST, reply, f"fix: {error}")


def completion(text: str, *, cached: bool = False, prompt: int = 0, generated: int = 0) -> Completion:
    return Completion(text, "stop", {"prompt_tokens": prompt, "completion_tokens": generated}, cached)


def test_derive_seed_values_are_pinned_because_they_key_the_response_cache():
    assert derive_seed(7, "id0") == 1590745046
    assert derive_seed("base", "user/shared/2") == 1896233875
    assert derive_seed(7, "id0") != derive_seed(7, "id1") != derive_seed(8, "id1")
    assert all(0 <= derive_seed(s, "x") < 2 ** 31 for s in range(50))


def test_reask_messages_appends_the_reply_and_the_note():
    messages = reask_messages(REQUEST, "eight-ish", "answer with digits")
    assert messages == [*REQUEST, Message("assistant", "eight-ish"), Message("user", "answer with digits")]


def test_role_usage_counts_calls_and_tokens_by_role_and_cached_replies_as_hits_only():
    usage = RoleUsage()
    usage.count("user", completion("a", prompt=10, generated=3))
    usage.count("user", completion("b", prompt=5, generated=2))
    usage.count("contrast", completion("c", cached=True, prompt=99, generated=99))
    assert usage.to_dict() == {
        "calls": 2, "cache_hits": 1, "prompt_tokens": 15, "completion_tokens": 5,
        "by_role": {"contrast": {"calls": 0, "cache_hits": 1, "prompt_tokens": 0, "completion_tokens": 0},
                    "user": {"calls": 2, "cache_hits": 0, "prompt_tokens": 15, "completion_tokens": 5}}}


def test_count_usage_adds_an_items_usage_to_run_counters_and_skips_zero_cache_hits():
    counters: Counter = Counter()
    count_usage(counters, {"calls": 3, "cache_hits": 0, "prompt_tokens": 30, "completion_tokens": 7, "by_role": {}})
    count_usage(counters, {"calls": 1, "cache_hits": 2, "prompt_tokens": 4, "completion_tokens": 1})
    assert counters == Counter({"llm_calls": 4, "cache_hits": 2, "prompt_tokens": 34, "completion_tokens": 8})
    empty: Counter = Counter()
    count_usage(empty, {"calls": 1})
    assert "cache_hits" not in empty


def run_ask(replies: list[str], max_reasks: int) -> tuple[AskResult[int], list[list[Message]]]:
    sent: list[list[Message]] = []

    async def send(messages: list[Message], attempt: int) -> Completion:
        assert attempt == len(sent)
        sent.append(messages)
        return completion(replies[attempt])

    return asyncio.run(ask_until_parsed(send, REQUEST, parse_int, note_reask, max_reasks=max_reasks)), sent


def test_a_reply_that_parses_is_used_without_a_reask():
    result, sent = run_ask(["8"], max_reasks=2)
    assert (result.value, result.parsed, result.reasks, result.reply) == (8, True, 0, "8")
    assert sent == [REQUEST]


def test_an_unparseable_reply_is_reasked_with_the_callers_reask_messages():
    result, sent = run_ask(["eight", "8"], max_reasks=2)
    assert (result.value, result.parsed, result.reasks) == (8, True, 1)
    assert result.errors == ["not a number: 'eight'"]
    assert sent[1] == [*REQUEST, Message("assistant", "eight"), Message("user", "fix: not a number: 'eight'")]


def test_reasks_are_bounded_and_a_step_that_never_parses_is_reported_not_guessed():
    result, sent = run_ask(["a", "b", "c", "9"], max_reasks=2)
    assert len(sent) == 3
    assert (result.value, result.parsed, result.reasks) == (None, False, 2)
    assert result.replies == ["a", "b", "c"] and len(result.errors) == 3


def test_a_subclass_of_parse_error_triggers_the_reask():
    def strict(text: str) -> str:
        if text != "[[A]]":
            raise VerdictLikeError("no verdict")
        return "A"

    async def send(messages: list[Message], attempt: int) -> Completion:
        return completion(["maybe", "[[A]]"][attempt])

    result = asyncio.run(ask_until_parsed(send, REQUEST, strict, note_reask, max_reasks=1))
    assert (result.value, result.reasks, result.errors) == ("A", 1, ["no verdict"])


def test_other_errors_of_the_parser_are_not_reasked():
    def broken(text: str) -> int:
        raise KeyError("bug")

    async def send(messages: list[Message], attempt: int) -> Completion:
        return completion("8")

    with pytest.raises(KeyError):
        asyncio.run(ask_until_parsed(send, REQUEST, broken, note_reask, max_reasks=3))


COUNT_FORMAT = {"type": "json_schema", "json_schema": {"name": "count", "schema": {
    "type": "object", "properties": {"legs": {"type": ["integer", "string"]}}, "required": ["legs"]}}}


def parse_legs(text: str) -> int:
    legs = json.loads(text)["legs"]
    if not isinstance(legs, int):
        raise ParseError(f"legs is not a number: {legs!r}")
    return legs


def test_step_caller_seeds_each_attempt_by_label_and_counts_usage_and_reasks():
    backend = ScriptedBackend(['{"legs": "eight"}', '{"legs": 8}'])
    step = StepCaller(temperature=0.7, max_tokens=64, item_seed=123, max_reasks=2)
    result = asyncio.run(step.ask("solver", backend, REQUEST, parse_legs, "count/1", note_reask,
                                  response_format=COUNT_FORMAT, logprobs=3))
    assert result.value == 8 and step.reasks == 1
    seeds = [r.params["seed"] for r in backend.requests]
    assert seeds == [derive_seed(123, "count/1/0"), derive_seed(123, "count/1/1")]
    assert all(r.params == {"temperature": 0.7, "max_tokens": 64, "stop": None, "seed": r.params["seed"],
                            "response_format": COUNT_FORMAT, "logprobs": 3}
               for r in backend.requests)
    assert step.usage.to_dict()["by_role"]["solver"]["calls"] == 2


def test_ask_keeps_every_completion_with_its_logprobs():
    scored = Completion("8", "stop", logprobs=(TokenLogprob("8", -0.1, {"8": -0.1, "6": -2.5}),))
    backend = ScriptedBackend([Completion("eight", "stop"), scored])
    step = StepCaller(temperature=0.0, max_tokens=4, item_seed=1)
    result = asyncio.run(step.ask("solver", backend, REQUEST, parse_int, "count", note_reask, logprobs=2))
    assert [c.text for c in result.completions] == result.replies == ["eight", "8"]
    assert result.completions[-1].logprobs == scored.logprobs


def test_step_caller_call_passes_stop_sequences_and_the_label_seed():
    backend = ScriptedBackend(["hello"])
    step = StepCaller(temperature=0.0, max_tokens=16, item_seed=5)
    reply = asyncio.run(step.call("user", backend, REQUEST, "user/shared/2", stop=("\nUser:",)))
    assert reply.text == "hello"
    assert backend.requests[0].params == {"temperature": 0.0, "max_tokens": 16, "stop": ["\nUser:"],
                                          "seed": derive_seed(5, "user/shared/2"), "response_format": None,
                                          "logprobs": None}
    assert backend.requests[0].messages == [m.to_dict() for m in REQUEST]


def test_reasks_sample_at_the_reask_temperature_and_the_first_attempt_at_the_callers():
    backend = ScriptedBackend(['{"legs": "eight"}', '{"legs": "eight"}', '{"legs": 8}'])
    step = StepCaller(temperature=0.3, max_tokens=64, item_seed=1, max_reasks=2, reask_temperature=1.0)
    result = asyncio.run(step.ask("solver", backend, REQUEST, parse_legs, "count", note_reask))
    assert result.value == 8
    assert [r.params["temperature"] for r in backend.requests] == [0.3, 1.0, 1.0]


def test_a_reask_temperature_below_the_callers_keeps_the_callers():
    step = StepCaller(temperature=0.8, max_tokens=8, item_seed=1, reask_temperature=0.5)
    assert [step.attempt_temperature(attempt) for attempt in range(3)] == [0.8, 0.8, 0.8]
    assert StepCaller(temperature=0.2, max_tokens=8, item_seed=1).attempt_temperature(1) == 0.2
