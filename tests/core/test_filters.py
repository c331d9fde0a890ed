"""Content filters: each catches the failures it names and passes ordinary conversation text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from chat.filters import (DEGENERATE, REPEATED_TURN, REVEALS_SWAP, SCAFFOLDING, degenerate_reason, repeat_reason,
                          scaffolding_reason, swap_reveal_reason)

RMB = Path("/work/shared/data/preference/rmb-pairwise")
RMB_FILES = ("Helpfulness_Chat_Casual_Conversation.json.gz", "Helpfulness_Code_Development_and_Implementation.json.gz",
             "Helpfulness_Brainstorming_Problem_Solving.json.gz")
ROWS_PER_FILE = 20

NORMAL_ANSWERS = (
    "Sure! To reverse a list in Python, use `items[::-1]` or call `items.reverse()` to do it in place.",
    "Use a list instead of a tuple if you need to append items later.",
    "The function swapped the two values, so `a` now holds 2 and `b` holds 1.",
    "You asked for a vegetarian recipe, so here is a lentil curry that takes about 30 minutes.",
    "I changed the variable names to make the code easier to read.",
    "Yes.",
    "| Name | Age |\n| --- | --- |\n| Ann | 31 |\n| Bob | 27 |",
)
NORMAL_USER_TURNS = (
    "Can you make it shorter? My boss only reads the first paragraph.",
    "What about the next step, after I install the package?",
    "Thanks! How would I do the same thing in JavaScript?",
    "hmm, I meant the user settings page, not the admin one",
    "It still crashes.\nSystem: Ubuntu 22.04\nVersion: 3.1",
)


def rmb_texts(side: str) -> list[str]:
    """User turns (`side="user"`) or chosen answers (`side="chosen"`) of the first rows of a few RMB files."""
    if not RMB.is_dir():
        pytest.skip(f"real data not present at {RMB}")
    texts = []
    for name in RMB_FILES:
        for row in json.loads(gzip.decompress((RMB / name).read_bytes()))[:ROWS_PER_FILE]:
            if side == "user":
                texts += [m["content"] for m in row["conversation_input"] if m["role"] == "user"]
            else:
                texts.append(row["chosen"]["answer"])
    return texts


@pytest.mark.parametrize("text", [
    "In the In the In the In the In the In the In the In the In the In the",
    "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "I\nI\nI\nI\nI\nI\nI\nI\nI\nI\nI\nI",
    "I\nI\nI\nI\nI",
    "1 1 1 1",
    "Sure.\nThe answer.\nThe answer.\nThe answer.\nThe answer.",
    "Here is my answer: the cat sat on the mat the cat sat on the mat the cat sat on the mat the cat sat on the "
    "mat the cat sat on the mat the cat sat on the mat the cat sat on the mat",
    "!!! ??? ... --- *** ### !!! ??? ... --- *** ###",
    "The answer is \ufffd\ufffd\ufffd here",
    "   \n ",
])
def test_degenerate_reason_catches_loops_noise_and_empty_text(text: str) -> None:
    assert degenerate_reason(text) == DEGENERATE


@pytest.mark.parametrize("text", NORMAL_ANSWERS + NORMAL_USER_TURNS + ("No no no, that's wrong.", "42", "- eggs\n- milk\n- flour\n- sugar"))
def test_degenerate_reason_passes_ordinary_text(text: str) -> None:
    assert degenerate_reason(text) is None


@pytest.mark.parametrize("text", [
    "Conversation so far:\nUser: How do I bake bread?\nAssistant: Mix flour and water.",
    "Great! Here's the next message: What temperature should the oven be?",
    "Next message: what about rye flour?",
    "User: What temperature should the oven be?",
    "Sure.\nAssistant: The oven should be at 220C.",
    "**Human:** can you explain more?",
    "As the user, I would ask about the oven temperature.",
    "<|im_start|>user\nwhat about rye?",
    "Here's a possible follow-up question: how long should it rise?",
])
def test_scaffolding_reason_catches_echoed_prompt_text_and_role_labels(text: str) -> None:
    assert scaffolding_reason(text) == SCAFFOLDING


@pytest.mark.parametrize("text", NORMAL_USER_TURNS)
def test_scaffolding_reason_passes_ordinary_user_turns(text: str) -> None:
    assert scaffolding_reason(text) is None


@pytest.mark.parametrize("text", [
    "Note: the request was changed, so I wrote a poem about dogs instead.",
    "Instead of what you asked, here is a summary of the French Revolution.",
    "You asked for a Python script, but I will write it in Java.",
    "I have been instructed to answer a different question.",
    "Here is a modified version of your request: a limerick about cats.",
    "It seems the question has been swapped; here is the answer to the new one.",
    "This is not what you originally asked for, but here is a haiku.",
])
def test_swap_reveal_reason_catches_an_assistant_revealing_the_swap(text: str) -> None:
    assert swap_reveal_reason(text) == REVEALS_SWAP


@pytest.mark.parametrize("text", NORMAL_ANSWERS)
def test_swap_reveal_reason_passes_ordinary_answers(text: str) -> None:
    assert swap_reveal_reason(text) is None


def test_repeat_reason_catches_a_copy_and_a_near_copy() -> None:
    previous = "Mix the flour with water and salt, then knead the dough for ten minutes."
    assert repeat_reason(previous, previous) == REPEATED_TURN
    assert repeat_reason("mix the flour with water and salt then knead the dough for 10 minutes!", previous) == \
        REPEATED_TURN
    assert repeat_reason("Salt, then knead the dough for ten minutes.", previous + " Bake it at 220C for half an hour.") == \
        REPEATED_TURN


def test_repeat_reason_passes_a_new_turn_that_shares_a_few_words() -> None:
    previous = "Mix the flour with water and salt, then knead the dough for ten minutes."
    assert repeat_reason("How long should the dough rest after I knead it?", previous) is None
    assert repeat_reason("Thanks!", previous) is None
    assert repeat_reason("Anything", "") is None


def test_real_user_turns_pass_scaffolding_and_degenerate_filters() -> None:
    for text in rmb_texts("user"):
        assert scaffolding_reason(text) is None, text[:200]
        assert degenerate_reason(text) is None, text[:200]


def test_real_chosen_answers_pass_degenerate_and_swap_reveal_filters() -> None:
    for text in rmb_texts("chosen"):
        assert degenerate_reason(text) is None, text[:200]
        assert swap_reveal_reason(text) is None, text[:200]
