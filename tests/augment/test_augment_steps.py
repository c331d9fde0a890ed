"""The MUSIC steps' pure functions: exact prompts and robust parsing (PAPERS.md section 1)."""

from __future__ import annotations

import pytest

from augment.steps import (ParseError, RoleBreak, Swap, format_assistant_input, format_contrast_input,
                           format_contrast_reask, format_contrastive_assistant_input, format_user_simulator_input,
                           parse_assistant_output, parse_contrast_output, parse_user_simulator_output)
from chat.conversation import Message

HISTORY = [Message("user", "Hi"), Message("assistant", "Hello!")]


def test_user_simulator_prompt_shows_the_branch_transcript():
    messages = format_user_simulator_input(HISTORY)
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content.startswith("You are role-playing a human user")
    assert messages[1].content == "Conversation so far:\n\nUser: Hi\n\nAssistant: Hello!\n\nWrite the user's next message."


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


def test_contrastive_assistant_prompt_carries_the_swap_in_the_system_message():
    messages = format_contrastive_assistant_input([Message("user", "Bake a cake")], Swap("Bake bread", "why"))
    assert [m.role for m in messages] == ["system", "user"]
    assert "answer that request as well and as naturally as you can:\nBake bread\nDo not mention" in messages[0].content
    assert messages[1] == Message("user", "Bake a cake")


def test_contrastive_assistant_prompt_keeps_an_existing_system_message_first():
    messages = format_contrastive_assistant_input([Message("system", "Be brief."), Message("user", "Bake a cake")],
                                                  Swap("Bake bread", ""))
    assert messages[0].content.startswith("Be brief.\n\nFor your next reply only")
    assert [m.role for m in messages] == ["system", "user"]


@pytest.mark.parametrize("reply", [
    '{"swapped_instruction": "Bake bread", "reason": "bread, not cake"}',
    'Here you go:\n```json\n{"swapped_instruction": "Bake bread", "reason": "bread, not cake"}\n```',
    'Sure. {"swapped_instruction": "Bake bread", "reason": "bread, not cake"} Hope it helps.',
    'Swapped instruction: Bake bread\nReason: bread, not cake',
    '"swapped_instruction": "Bake bread", "reason": "bread, not cake"',
])
def test_contrast_parser_accepts_json_fences_prose_and_labels(reply):
    assert parse_contrast_output(reply, "Bake a cake") == Swap("Bake bread", "bread, not cake")


def test_contrast_parser_handles_escaped_quotes_inside_json_in_prose():
    reply = 'ok {"swapped_instruction": "Say \\"hi\\" twice", "reason": "{braces}"}'
    assert parse_contrast_output(reply, "Say hello").swapped_instruction == 'Say "hi" twice'


@pytest.mark.parametrize("reply, message", [
    ("I cannot help with that.", "no \"swapped_instruction\" found"),
    ('{"swapped_instruction": "  "}', "empty"),
    ('{"swapped_instruction": "bake A   cake"}', "repeats the original"),
    ('{"instruction": "Bake bread"}', "no \"swapped_instruction\" found"),
])
def test_contrast_parser_raises_parse_error(reply, message):
    with pytest.raises(ParseError, match=message):
        parse_contrast_output(reply, "Bake a cake")


def test_turn_parsers_strip_their_own_label_and_quotes():
    assert parse_user_simulator_output('User: "Can you add sugar?"') == "Can you add sugar?"
    assert parse_assistant_output("Assistant: Sure.\n\nStep 1.") == "Sure.\n\nStep 1."


@pytest.mark.parametrize("parse, reply", [
    (parse_user_simulator_output, "Assistant: Here is the cake."),
    (parse_user_simulator_output, "Add sugar?\nAssistant: yes"),
    (parse_assistant_output, "User: thanks"),
    (parse_assistant_output, "Sure.\nUser: and now?"),
])
def test_turn_parsers_flag_the_wrong_speaker(parse, reply):
    with pytest.raises(RoleBreak):
        parse(reply)
