"""The simulated user: roles flipped, no transcript in the prompt, labels stripped, meta-text rejected."""

from __future__ import annotations

import asyncio

import pytest

from chat.backends import ScriptedBackend
from chat.conversation import Message
from chat.filters import DEGENERATE, REPEATED_TURN, SCAFFOLDING
from chat.user_simulator import (USER_SIMULATOR_VERSION, format_user_simulator_input, parse_user_turn,
                                 user_simulator_reminder, user_simulator_system, user_turn_problem)

HISTORY = [Message("system", "You are a baking assistant."), Message("user", "How do I bake bread?"),
           Message("assistant", "Mix flour, water, salt and yeast, let it rise, then bake at 220C.")]
SYSTEM = ("You are the user in this chat. Ask the assistant one short follow-up question about its last answer, "
          "or ask for one change (at most 20 words). Do not repeat its answer or your earlier messages. "
          "Write only your message.")
REMINDER = "Now write your next message to the assistant: one short question in your own words, at most 20 words."


def test_the_simulator_sees_the_conversation_with_roles_flipped_and_sends_exactly_that():
    backend = ScriptedBackend(["How long should it rise?"])
    reply = asyncio.run(backend.chat(format_user_simulator_input(HISTORY)))
    assert backend.requests[0].messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "assistant", "content": "How do I bake bread?"},
        {"role": "user", "content": "Mix flour, water, salt and yeast, let it rise, then bake at 220C."},
        {"role": "system", "content": REMINDER},
    ]
    assert parse_user_turn(reply.text) == "How long should it rise?"


def test_the_system_message_says_it_is_the_user_and_no_transcript_is_pasted():
    messages = format_user_simulator_input(HISTORY)
    assert messages[0].content == user_simulator_system() == SYSTEM
    assert messages[-1].content == user_simulator_reminder() == REMINDER
    assert all("Conversation so far" not in m.content and "User:" not in m.content for m in messages)
    assert USER_SIMULATOR_VERSION == "user-simulator-v1"


@pytest.mark.parametrize("reply, expected", [
    ("User: How long should it rise?", "How long should it rise?"),
    ("**User:** How long should it rise?", "How long should it rise?"),
    ("[User] How long should it rise?", "How long should it rise?"),
    ('"How long should it rise?"', "How long should it rise?"),
    ("  Human: ok, and rye flour?  ", "ok, and rye flour?"),
    ("Username: bob", "Username: bob"),
])
def test_parse_user_turn_strips_one_leading_user_label_and_wrapping_quotes(reply, expected):
    assert parse_user_turn(reply) == expected


@pytest.mark.parametrize("reply, reason", [
    ("Conversation so far: the user asked about bread.", SCAFFOLDING),
    ("Great! Here's the next message: how long should it rise?", SCAFFOLDING),
    ("Assistant: Bake it at 220C.", SCAFFOLDING),
    ("In the In the In the In the In the In the In the In the", DEGENERATE),
    ("Mix flour, water, salt and yeast, let it rise, then bake at 220C.", REPEATED_TURN),
    ("How do I bake bread?", REPEATED_TURN),
])
def test_user_turn_problem_rejects_meta_text_loops_and_copies(reply, reason):
    problem = user_turn_problem(parse_user_turn(reply), HISTORY)
    assert problem is not None and problem.reason == reason


def test_user_turn_problem_passes_a_real_follow_up():
    assert user_turn_problem("How long should it rise before baking?", HISTORY) is None
