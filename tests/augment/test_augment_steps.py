"""The MUSIC steps' pure functions: exact prompts and robust parsing (docs/methods.md, MUSIC steps 3-4)."""

from __future__ import annotations

import pytest

from augment.steps import (SWAP_FORMAT, ParseError, RoleBreak, Swap, format_assistant_input, format_contrast_input,
                           format_contrast_reask, format_contrastive_assistant_input, parse_assistant_output,
                           parse_contrast_output)
from chat.conversation import Message

HISTORY = [Message("user", "Hi"), Message("assistant", "Hello!")]


def test_assistant_prompt_is_the_history_itself():
    assert format_assistant_input(HISTORY + [Message("user", "More")]) == HISTORY + [Message("user", "More")]


def test_contrast_prompt_names_the_latest_instruction():
    messages = format_contrast_input(HISTORY + [Message("user", "Bake a cake")])
    assert messages[0].content.startswith("You help build training data")
    assert '{"swapped_instruction": "...", "reason": "..."}' in messages[0].content
    assert messages[1].content == ("Conversation so far:\n\nUser: Hi\n\nAssistant: Hello!\n\n"
                                   "Latest user instruction:\nBake a cake\n\nReply with the JSON object.")


def test_contrast_prompt_for_a_first_turn_has_no_empty_transcript():
    messages = format_contrast_input([Message("user", "Bake a cake")])
    assert messages[1].content == "Latest user instruction:\nBake a cake\n\nReply with the JSON object."


def test_contrast_reask_appends_the_bad_reply_and_the_reason():
    request = format_contrast_input([Message("user", "Bake a cake")])
    reask = format_contrast_reask(request, "sure!", ParseError("no JSON"))
    assert reask[:2] == request
    assert reask[2] == Message("assistant", "sure!")
    assert reask[3].role == "user" and reask[3].content.startswith("Your reply could not be used: no JSON.")


def test_contrastive_assistant_sees_the_swapped_instruction_in_place_of_the_latest_user_turn():
    history = [Message("system", "Be brief."), *HISTORY, Message("user", "Bake a cake")]
    messages = format_contrastive_assistant_input(history, Swap("Bake rye bread", "why"))
    assert messages == [Message("system", "Be brief."), *HISTORY, Message("user", "Bake rye bread")]


@pytest.mark.parametrize("reply", [
    '{"swapped_instruction": "Bake rye bread", "reason": "bread, not cake"}',
    'Here you go:\n```json\n{"swapped_instruction": "Bake rye bread", "reason": "bread, not cake"}\n```',
    'Sure. {"swapped_instruction": "Bake rye bread", "reason": "bread, not cake"} Hope it helps.',
    'Swapped instruction: Bake rye bread\nReason: bread, not cake',
    '"swapped_instruction": "Bake rye bread", "reason": "bread, not cake"',
])
def test_contrast_parser_accepts_json_fences_prose_and_labels(reply):
    assert parse_contrast_output(reply, "Bake a cake") == Swap("Bake rye bread", "bread, not cake")


def test_contrast_parser_handles_escaped_quotes_inside_json_in_prose():
    reply = 'ok {"swapped_instruction": "Say \\"hi\\" twice", "reason": "{braces}"}'
    assert parse_contrast_output(reply, "Say hello").swapped_instruction == 'Say "hi" twice'


@pytest.mark.parametrize("reply, message", [
    ("I cannot help with that.", "no \"swapped_instruction\" found"),
    ('{"swapped_instruction": "  "}', "empty"),
    ('{"swapped_instruction": "bake A   cake"}', "repeats the original"),
    ('{"instruction": "Bake rye bread"}', "no \"swapped_instruction\" found"),
    ('{"swapped_instruction": "2023", "reason": "a year"}', "not a full request"),
    ('{"swapped_instruction": "Conversation so far: bake bread", "reason": "r"}', "scaffolding"),
])
def test_contrast_parser_raises_parse_error(reply, message):
    with pytest.raises(ParseError, match=message):
        parse_contrast_output(reply, "Bake a cake")


def test_swap_format_is_a_strict_json_schema_that_the_parser_reads():
    schema = SWAP_FORMAT["json_schema"]["schema"]
    assert SWAP_FORMAT["type"] == "json_schema" and SWAP_FORMAT["json_schema"]["strict"] is True
    assert schema["required"] == ["swapped_instruction", "reason"] and schema["additionalProperties"] is False
    reply = '{"swapped_instruction": "Bake rye bread", "reason": "bread, not cake"}'
    assert parse_contrast_output(reply, "Bake a cake") == Swap("Bake rye bread", "bread, not cake")


def test_assistant_parser_strips_its_own_label():
    assert parse_assistant_output("Assistant: Sure.\n\nStep 1.") == "Sure.\n\nStep 1."


@pytest.mark.parametrize("reply", ["User: thanks", "Sure.\nUser: and now?"])
def test_assistant_parser_flags_the_wrong_speaker(reply):
    with pytest.raises(RoleBreak):
        parse_assistant_output(reply)
