"""The scripted backend: replies in order, every request recorded, clear errors when the script ends."""

from __future__ import annotations

import asyncio
import json

import pytest

from chat.backends import BackendSpec, Completion, ScriptedBackend, ScriptExhausted, build_backend
from chat.backends.base import TokenLogprob
from chat.conversation import Message
from chat.errors import BackendError, ConfigError, InputError

CONVERSATION = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]


def test_replies_come_in_order_and_every_request_is_recorded():
    backend = ScriptedBackend(["first", "second"])

    async def two():
        return [await backend.chat(CONVERSATION),
                await backend.chat([Message("user", "again")], temperature=0.7, max_tokens=9, stop=["x"], seed=3,
                                   response_format={"type": "text"}, logprobs=2)]

    first, second = asyncio.run(two())
    assert (first.text, second.text) == ("first", "second")
    assert backend.calls == 2 and backend.remaining == 0
    messages, params = backend.requests[0]
    assert messages == CONVERSATION
    assert params == {"temperature": 0.0, "max_tokens": 512, "stop": None, "seed": None, "response_format": None,
                      "logprobs": None}
    assert backend.requests[1].messages == [{"role": "user", "content": "again"}]
    assert backend.requests[1].params == {"temperature": 0.7, "max_tokens": 9, "stop": ["x"], "seed": 3,
                                          "response_format": {"type": "text"}, "logprobs": 2}


def test_running_out_of_replies_is_a_clear_error():
    backend = ScriptedBackend(["only"])
    asyncio.run(backend.chat(CONVERSATION))
    with pytest.raises(ScriptExhausted, match=r"script ran out: request 2 arrived but only 1 replies are "
                                              r"scripted \(last user message: 'Say hi'\)") as caught:
        asyncio.run(backend.chat(CONVERSATION))
    assert isinstance(caught.value, BackendError) and not caught.value.retryable
    assert backend.calls == 2


def test_responder_function_sees_messages_and_params():
    seen = []

    def responder(messages, params):
        seen.append((messages, params))
        return messages[-1]["content"].upper()

    completion = asyncio.run(ScriptedBackend(responder).chat(CONVERSATION, max_tokens=5))
    assert completion.text == "SAY HI"
    assert seen == [(CONVERSATION, {"temperature": 0.0, "max_tokens": 5, "stop": None, "seed": None,
                                    "response_format": None, "logprobs": None})]


def test_usage_counts_whitespace_words():
    completion = asyncio.run(ScriptedBackend(["three word reply"]).chat(CONVERSATION))
    assert completion.usage == {"prompt_tokens": 5, "completion_tokens": 3}
    assert (completion.finish_reason, completion.cached) == ("stop", False)


def test_stop_sequences_cut_the_reply_like_a_server():
    completion = asyncio.run(ScriptedBackend(["answer\nUser: more"]).chat(CONVERSATION, stop=["\nUser:"]))
    assert completion.text == "answer"


def test_scripted_errors_and_completions_are_returned_as_given():
    failure = BackendError("scripted outage", retryable=True)
    backend = ScriptedBackend([Completion("cut", "length", {"prompt_tokens": 1, "completion_tokens": 1}), failure])
    assert asyncio.run(backend.chat(CONVERSATION)).finish_reason == "length"
    with pytest.raises(BackendError, match="scripted outage"):
        asyncio.run(backend.chat(CONVERSATION))


def test_script_file_in_jsonl(tmp_path):
    script = tmp_path / "replies.jsonl"
    script.write_text('"plain"\n\n{"text": "cut off", "finish_reason": "length"}\n{"error": "down", "retryable": true}\n')
    backend = ScriptedBackend.from_spec(BackendSpec(kind="scripted", model="dry-run", extra={"script": str(script)}))
    assert backend.name == "scripted:dry-run" and backend.remaining == 3
    assert asyncio.run(backend.chat(CONVERSATION)).text == "plain"
    assert asyncio.run(backend.chat(CONVERSATION)).finish_reason == "length"
    with pytest.raises(BackendError, match="down"):
        asyncio.run(backend.chat(CONVERSATION))


def test_script_file_in_yaml_through_build_backend(tmp_path):
    script = tmp_path / "replies.yaml"
    script.write_text("- hello\n- text: bye\n")
    backend = build_backend({"kind": "scripted", "script": str(script)})
    assert asyncio.run(backend.chat(CONVERSATION)).text == "hello"
    assert asyncio.run(backend.chat(CONVERSATION)).text == "bye"


def test_inline_replies_in_config():
    backend = build_backend({"kind": "scripted", "replies": ["a", {"text": "b"}]})
    assert [asyncio.run(backend.chat(CONVERSATION)).text for _ in range(2)] == ["a", "b"]


def test_scripted_backend_writes_no_cache(isolated_cache_dir):
    asyncio.run(build_backend({"kind": "scripted", "replies": ["a"]}).chat(CONVERSATION))
    assert not isolated_cache_dir.exists()


@pytest.mark.parametrize("content, message", [
    ('"ok"\n{not json\n', r"replies.jsonl:2: invalid JSON"),
    ('"ok"\n42\n', r"replies.jsonl:2: expected a string or a mapping with 'text' or 'error', got int"),
    ('{"text": "x", "finish_reason": 1}\n', r"replies.jsonl:1: finish_reason: expected a string"),
    ("\n", r"replies.jsonl: script has no replies"),
])
def test_bad_script_lines_name_file_and_line(tmp_path, content, message):
    script = tmp_path / "replies.jsonl"
    script.write_text(content)
    with pytest.raises(InputError, match=message):
        ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra={"script": str(script)}))


def test_yaml_script_must_be_a_list(tmp_path):
    script = tmp_path / "replies.yaml"
    script.write_text("reply: hello\n")
    with pytest.raises(InputError, match="expected a list of replies, got dict"):
        ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra={"script": str(script)}))


def test_missing_script_file(tmp_path):
    with pytest.raises(InputError, match="script file not found"):
        ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra={"script": str(tmp_path / "none.jsonl")}))


@pytest.mark.parametrize("extra", [{}, {"script": "a.jsonl", "replies": ["x"]}])
def test_exactly_one_source_of_replies(extra):
    with pytest.raises(ConfigError, match="exactly one of 'script'"):
        ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra=extra))


def test_bad_inline_reply_names_its_index():
    with pytest.raises(ConfigError, match=r"replies\[1\]: expected a string"):
        build_backend({"kind": "scripted", "replies": ["a", 3]}, role="simulator")


VERDICT = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["winner", "reasons"],
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]},
                   "reasons": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}}}


def test_replies_that_match_the_response_format_pass():
    backend = ScriptedBackend(['{"winner": "A", "reasons": ["clearer"], "confidence": 0.9}', '{"any": 1}'])
    assert asyncio.run(backend.chat(CONVERSATION, response_format=VERDICT)).text.startswith('{"winner"')
    assert asyncio.run(backend.chat(CONVERSATION, response_format={"type": "json_object"})).text == '{"any": 1}'


@pytest.mark.parametrize("reply, mismatch", [
    ("A is better", r"json_schema 'verdict': not JSON"),
    ('{"winner": "C", "reasons": ["x"]}', r"\$\.winner: 'C' is not one of \['A', 'B', 'tie'\]"),
    ('{"winner": "A"}', r"\$: missing required field\(s\) reasons"),
    ('{"winner": "A", "reasons": []}', r"\$\.reasons: 0 items, expected at least 1"),
    ('{"winner": "A", "reasons": ["x", "y", "z"]}', r"\$\.reasons: 3 items, expected at most 2"),
    ('{"winner": "A", "reasons": [3]}', r"\$\.reasons\[0\]: expected string, got integer"),
    ('{"winner": "A", "reasons": ["x"], "note": "hi"}', r"unexpected field 'note' \(additionalProperties is false\)"),
    ('{"winner": "A", "reasons": ["x"], "confidence": 2}', r"\$\.confidence: 2 is above the maximum 1"),
    ('{"winner": true, "reasons": ["x"]}', r"\$\.winner: expected string, got boolean"),
])
def test_a_reply_that_breaks_the_schema_is_a_backend_error_naming_the_mismatch(reply, mismatch):
    backend = ScriptedBackend([reply])
    with pytest.raises(BackendError, match=r"scripted reply 1 does not match response_format .*" + mismatch) as caught:
        asyncio.run(backend.chat(CONVERSATION, response_format=VERDICT))
    assert not caught.value.retryable


def test_json_object_format_needs_a_json_object():
    with pytest.raises(BackendError, match=r"json_object: expected a JSON object, got array"):
        asyncio.run(ScriptedBackend(["[1, 2]"]).chat(CONVERSATION, response_format={"type": "json_object"}))


def test_a_cut_off_reply_is_not_checked_against_the_format():
    completion = asyncio.run(ScriptedBackend([Completion('{"winner": "A", "rea', "length")]).chat(
        CONVERSATION, response_format=VERDICT))
    assert completion.finish_reason == "length"


def test_a_schema_keyword_the_checker_does_not_know_is_refused():
    pattern = {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "string", "pattern": "^a"}}}
    with pytest.raises(BackendError, match="unsupported keyword\\(s\\) pattern"):
        asyncio.run(ScriptedBackend(['"b"']).chat(CONVERSATION, response_format=pattern))


def test_a_malformed_response_format_or_logprobs_is_refused():
    with pytest.raises(ValueError, match="response_format.json_schema.schema: expected a JSON Schema object"):
        asyncio.run(ScriptedBackend(["x"]).chat(CONVERSATION, response_format={
            "type": "json_schema", "json_schema": {"name": "n"}}))
    with pytest.raises(ValueError, match="logprobs: expected an integer 0-20"):
        asyncio.run(ScriptedBackend(["x"]).chat(CONVERSATION, logprobs=21))


SCORED = Completion("yes", "stop", logprobs=(TokenLogprob("yes", -0.2, {"yes": -0.2, "no": -1.7}),))


def test_scripted_logprobs_come_back_only_when_asked_for():
    backend = ScriptedBackend([SCORED, SCORED, "plain"])
    assert asyncio.run(backend.chat(CONVERSATION, logprobs=2)).logprobs == SCORED.logprobs
    assert asyncio.run(backend.chat(CONVERSATION)).logprobs is None
    assert asyncio.run(backend.chat(CONVERSATION, logprobs=2)).logprobs is None


def test_script_file_replies_may_carry_logprobs(tmp_path):
    script = tmp_path / "replies.jsonl"
    entry = {"token": "yes", "logprob": -0.2, "top": {"yes": -0.2, "no": -1.7}}
    script.write_text(json.dumps({"text": "yes", "logprobs": [entry]}) + "\n")
    backend = ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra={"script": str(script)}))
    assert asyncio.run(backend.chat(CONVERSATION, logprobs=2)).logprobs == SCORED.logprobs


@pytest.mark.parametrize("logprobs, message", [
    ('"high"', r"replies.jsonl:1: logprobs: expected a list"),
    ('[{"logprob": -1}]', r"replies.jsonl:1: logprobs\[0\]: expected a mapping with a string 'token'"),
    ('[{"token": "a", "logprob": "low"}]', r"replies.jsonl:1: logprobs\[0\].logprob: expected a number"),
    ('[{"token": "a", "logprob": -1, "top": [1]}]', r"replies.jsonl:1: logprobs\[0\].top: expected a mapping"),
])
def test_bad_logprobs_in_a_script_name_file_line_and_field(tmp_path, logprobs, message):
    script = tmp_path / "replies.jsonl"
    script.write_text(f'{{"text": "a", "logprobs": {logprobs}}}\n')
    with pytest.raises(InputError, match=message):
        ScriptedBackend.from_spec(BackendSpec(kind="scripted", extra={"script": str(script)}))


def test_cache_identity_is_the_name():
    assert ScriptedBackend(["a"], name="scripted:demo").cache_identity == "scripted:demo"
