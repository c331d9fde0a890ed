"""synthesize_pair against a scripted simulator: prompts per role, divergence logic, ablation, filters."""

from __future__ import annotations

import asyncio
import random

import pytest
from augment_helpers import USER_SYSTEM, FakeSimulator, config, fake_backends, requests_of, role_of

from augment.music import draw_divergence_turn, music_pair_id, synthesize_pair
from augment.prompts import PROMPT_VERSION
from augment.seeds import Seed
from augment.steps import SWAP_FORMAT, TURN_STOPS
from chat.agents import derive_seed
from chat.backends.base import Completion
from chat.conversation import Message
from chat.user_simulator import user_simulator_reminder

SEED = Seed("s1", (Message("user", "Write a haiku about rain."),))


def synthesize(seed_=SEED, simulator=None, **values):
    backends, backend = fake_backends(simulator)
    return asyncio.run(synthesize_pair(seed_, backends, config(**values))), backend


def user_turns(messages):
    return [m.content for m in messages if m.role == "user"]


def assistant_turns(messages):
    return [m.content for m in messages if m.role == "assistant"]


def test_user_turns_are_shared_before_d_and_differ_after_it():
    result, _ = synthesize(turns=5, divergence="fixed", divergence_turn=3)
    chosen, rejected = result.pair.chosen.messages, result.pair.rejected.messages
    assert user_turns(chosen)[:3] == user_turns(rejected)[:3]
    assert all(c != r for c, r in zip(user_turns(chosen)[3:], user_turns(rejected)[3:]))
    assert assistant_turns(chosen)[:2] == assistant_turns(rejected)[:2]
    assert all(c != r for c, r in zip(assistant_turns(chosen)[2:], assistant_turns(rejected)[2:]))
    assert len(chosen) == len(rejected) == 10


def test_only_the_rejected_branch_gets_the_contrastive_prompt_from_d_on():
    result, backend = synthesize(turns=4, divergence="fixed", divergence_turn=2)
    rejected = result.pair.rejected.messages
    contrastive = requests_of(backend, "contrastive_assistant")
    assert len(contrastive) == 3  # turns 2, 3, 4
    swaps = result.pair.meta["swaps"]
    for request, turn, swap in zip(contrastive, (2, 3, 4), swaps):
        # the rejected branch so far, its latest user turn silently replaced by the swapped instruction
        assert request == [m.to_dict() for m in rejected[: 2 * turn - 2]] + [{"role": "user", "content": swap["swapped"]}]
    for request in requests_of(backend, "assistant"):
        assert all(not m["content"].startswith("different request") for m in request)
    assert [s["turn"] for s in swaps] == [2, 3, 4]
    assert [s["original"] for s in swaps] == user_turns(rejected)[1:]
    assert all(s["swapped"].startswith("different request") for s in swaps)


def test_normal_assistant_requests_are_each_branch_history():
    result, backend = synthesize(turns=3, divergence="fixed", divergence_turn=2)
    chosen = [m.to_dict() for m in result.pair.chosen.messages]
    histories = requests_of(backend, "assistant")
    assert histories == [chosen[:1], chosen[:3], chosen[:5]]  # turn 1 shared, then chosen's own


def test_user_simulator_sees_its_own_branch_with_roles_flipped():
    result, backend = synthesize(turns=3, divergence="fixed", divergence_turn=1)
    requests = requests_of(backend, "user")
    assert len(requests) == 4  # turns 2 and 3, each branch separately
    flipped = {"user": "assistant", "assistant": "user"}
    for branch in (result.pair.chosen.messages, result.pair.rejected.messages):
        for turn in (2, 3):
            history = branch[: 2 * turn - 2]  # the branch up to the answer the user reacts to
            expected = [{"role": "system", "content": USER_SYSTEM},
                        *({"role": flipped[m.role], "content": m.content} for m in history),
                        {"role": "system", "content": user_simulator_reminder()}]
            assert expected in requests


def test_contrast_only_at_d_answers_later_turns_normally_from_the_rejected_history():
    result, backend = synthesize(turns=4, divergence="fixed", divergence_turn=2, contrast_scope="divergence_only")
    assert len(requests_of(backend, "contrastive_assistant")) == 1
    assert [s["turn"] for s in result.pair.meta["swaps"]] == [2]
    rejected = [m.to_dict() for m in result.pair.rejected.messages]
    assert rejected[:5] in requests_of(backend, "assistant")  # turn 3 answered normally on the rejected branch
    assert result.pair.chosen.messages[4] != result.pair.rejected.messages[4]  # the error persists


def test_final_turn_only_ablation_contrasts_the_last_answer_alone():
    result, backend = synthesize(turns=3, divergence="final")
    chosen, rejected = result.pair.chosen.messages, result.pair.rejected.messages
    assert result.pair.meta["divergence_turn"] == 3
    assert chosen[:-1] == rejected[:-1]
    assert chosen[-1] != rejected[-1]
    assert len(requests_of(backend, "contrastive_assistant")) == 1
    assert len(requests_of(backend, "user")) == 2  # shared user turns: one call each


def test_uniform_divergence_is_in_range_and_depends_only_on_seed_and_item_id():
    cfg = config(turns=5, seed=7)
    draws = {f"id{i}": draw_divergence_turn(cfg, 1, random.Random(derive_seed(7, f"id{i}"))) for i in range(200)}
    assert set(draws.values()) == {1, 2, 3, 4, 5}
    again, _ = synthesize(Seed("id3", SEED.messages), turns=5, seed=7)
    assert again.divergence_turn == draws["id3"]


def test_multi_turn_seed_prefix_keeps_its_answers_and_d_starts_at_k():
    seed = Seed("s2", (Message("user", "a"), Message("assistant", "b"), Message("user", "c")))
    result, backend = synthesize(seed, turns=3, seed_turns=2)
    assert result.pair.chosen.messages[:3] == list(seed.messages)
    assert 2 <= result.divergence_turn <= 3
    assert len(result.pair.chosen.messages) == 6


def test_reuse_seed_rejected_takes_the_seed_pair_responses_at_d_1():
    seed = Seed("s3", (Message("user", "q"),), chosen_answer="good answer", rejected_answer="bad answer")
    result, backend = synthesize(seed, turns=2, divergence="fixed", divergence_turn=1, reuse_seed_rejected=True)
    assert result.pair.chosen.messages[1].content == "good answer"
    assert result.pair.rejected.messages[1].content == "bad answer"
    assert result.pair.meta["swaps"][0] == {"turn": 1, "original": "q", "swapped": None}
    assert len(requests_of(backend, "contrastive_assistant")) == 1  # turn 2 only


def test_record_meta_and_request_parameters():
    result, backend = synthesize(turns=2, divergence="fixed", divergence_turn=2, temperature=0.3, max_tokens=99,
                                 user_temperature=0.1, user_max_tokens=33)
    pair = result.pair
    assert pair.id == music_pair_id("s1")
    assert set(pair.to_dict()) == {"id", "chosen", "rejected", "meta"}
    assert set(pair.meta) == {"source_id", "divergence_turn", "turns", "swaps", "simulator", "prompt_version",
                              "user_simulator_version", "usage"}
    assert pair.meta["source_id"] == "s1" and pair.meta["turns"] == 2
    assert pair.meta["prompt_version"] == PROMPT_VERSION == "music-v2"
    assert pair.meta["user_simulator_version"] == "user-simulator-v1"
    assert pair.meta["simulator"] == {"user": "scripted", "assistant": "scripted", "contrast": "scripted"}
    assert pair.meta["usage"]["calls"] == len(backend.requests)
    for request in backend.requests:
        role = role_of(request.messages)
        sampling = (0.1, 33) if role == "user" else (0.3, 99)
        assert (request.params["temperature"], request.params["max_tokens"]) == sampling
        assert request.params["response_format"] == (SWAP_FORMAT if role == "contrast" else None)
        assert request.params["stop"] == (None if role == "contrast" else list(TURN_STOPS))
        assert isinstance(request.params["seed"], int)


def test_same_seed_gives_the_same_call_seeds():
    _, first = synthesize(turns=3)
    _, second = synthesize(turns=3)
    assert [r.params["seed"] for r in first.requests] == [r.params["seed"] for r in second.requests]


# -- filters ---------------------------------------------------------------------------------------

def test_identical_branches_after_d_are_dropped():
    same_question = lambda m: f"same question {sum(x['role'] == 'assistant' for x in m)}"  # noqa: E731
    simulator = FakeSimulator(contrastive_assistant="same", assistant="same", user=same_question)
    result, _ = synthesize(simulator=simulator, turns=3, divergence="fixed", divergence_turn=2)
    assert result.pair is None and result.reason == "identical_after_divergence"


def test_an_assistant_reply_in_the_wrong_role_is_dropped_for_role_alternation():
    result, _ = synthesize(simulator=FakeSimulator(assistant="User: thanks, and now?"), turns=2)
    assert result.reason == "role_alternation"


@pytest.mark.parametrize("user, reason", [
    ("Conversation so far:\nUser: Write a haiku about rain.", "scaffolding_text"),
    ("Great! Here's the next message: make it rhyme", "scaffolding_text"),
    ("Assistant: I can help.", "scaffolding_text"),
    ("In the In the In the In the In the In the In the In the", "degenerate_text"),
    ("I\nI\nI\nI\nI\nI\nI\nI\nI\nI", "degenerate_text"),
    ("Write a haiku about rain.", "repeated_turn"),
])
def test_a_bad_simulated_user_turn_drops_the_pair_with_its_filter_reason(user, reason):
    result, _ = synthesize(simulator=FakeSimulator(user=user), turns=2)
    assert result.reason == reason and result.detail.startswith("user turn 2 (")


def test_a_rejected_user_turn_is_asked_again_with_a_new_seed_and_the_pair_kept():
    replies = iter(["Conversation so far: a haiku", "Great! Here's the next message: more", "Make it rhyme."])
    result, backend = synthesize(simulator=FakeSimulator(user=lambda m: next(replies)), turns=2,
                                 divergence="final", user_attempts=3)
    assert result.pair is not None and result.pair.chosen.messages[2].content == "Make it rhyme."
    seeds = [r.params["seed"] for r in backend.requests if role_of(r.messages) == "user"]
    assert len(seeds) == len(set(seeds)) == 3


def test_a_user_turn_rejected_user_attempts_times_drops_the_pair():
    simulator = FakeSimulator(user="As the user, I would ask for a rhyme.")
    result, _ = synthesize(simulator=simulator, turns=2, divergence="final", user_attempts=2)
    assert result.reason == "scaffolding_text" and result.detail.endswith("(2 attempts)")
    assert simulator.roles.count("user") == 2


def test_an_assistant_turn_that_copies_the_user_or_loops_is_dropped():
    copied, _ = synthesize(simulator=FakeSimulator(assistant=lambda m: m[-1]["content"]), turns=1)
    assert copied.reason == "repeated_turn"
    looping, _ = synthesize(simulator=FakeSimulator(assistant="1 1 1 1 1 1 1 1 1 1 1 1"), turns=1)
    assert looping.reason == "degenerate_text"
    echoed, _ = synthesize(simulator=FakeSimulator(contrastive_assistant=lambda m: m[-1]["content"]), turns=1)
    assert echoed.reason == "repeated_turn" and "repeats the swapped instruction" in echoed.detail


def test_a_rejected_answer_that_reveals_the_swap_is_dropped_and_the_chosen_one_is_not_checked_for_it():
    reveal = "Note: the request was changed, so here is a poem about snow."
    rejected, _ = synthesize(simulator=FakeSimulator(contrastive_assistant=reveal), turns=1)
    assert rejected.reason == "reveals_swap" and rejected.detail.startswith("contrastive assistant turn 1")
    chosen, _ = synthesize(simulator=FakeSimulator(assistant=reveal), turns=1)
    assert chosen.pair is not None


def test_a_later_rejected_answer_revealing_the_swap_is_dropped_in_divergence_only_scope():
    reveal = "Earlier I answered a different request than the one you asked: the request was changed."
    # only the rejected branch's history holds the contrastive answer "answer [hash]"
    simulator = FakeSimulator(assistant=lambda m: reveal if "answer [" in str(m) else "answer ok")
    result, _ = synthesize(simulator=simulator, turns=3, divergence="fixed", divergence_turn=2,
                           contrast_scope="divergence_only")
    assert result.reason == "reveals_swap" and result.detail.startswith("assistant turn 3 (rejected)")


# Replies that match SWAP_FORMAT (the scripted backend enforces it) but fail the parser's own checks.
SAME_SWAP = '{"swapped_instruction": "Write a haiku about rain.", "reason": "none"}'
EMPTY_SWAP = '{"swapped_instruction": " ", "reason": "none"}'


def test_unparseable_swap_is_reasked_at_most_max_reasks_times_then_dropped():
    simulator = FakeSimulator(contrast=SAME_SWAP, contrast_reask=EMPTY_SWAP)
    result, backend = synthesize(simulator=simulator, turns=2, divergence="fixed", divergence_turn=1, max_reasks=2)
    assert result.reason == "parse_failure"
    assert simulator.roles.count("contrast") == 1 and simulator.roles.count("contrast_reask") == 2
    reasks = requests_of(backend, "contrast_reask")
    assert reasks[0][2] == {"role": "assistant", "content": SAME_SWAP}
    assert reasks[1][2] == {"role": "assistant", "content": EMPTY_SWAP}  # each re-ask quotes the last reply
    assert "repeats the original" in reasks[0][3]["content"] and "empty" in reasks[1][3]["content"]
    assert "contrastive_assistant" not in simulator.roles


def test_a_reask_that_parses_keeps_the_pair():
    simulator = FakeSimulator(contrast=SAME_SWAP)
    result, _ = synthesize(simulator=simulator, turns=1, max_reasks=1)
    assert result.pair is not None
    assert simulator.roles.count("contrast_reask") == 1


def test_the_swap_reask_samples_at_reask_temperature_and_other_steps_at_temperature():
    simulator = FakeSimulator(contrast=SAME_SWAP)
    result, backend = synthesize(simulator=simulator, turns=1, max_reasks=1, temperature=0.3, reask_temperature=1.0)
    assert result.pair is not None
    by_role = {role_of(request.messages): request.params["temperature"] for request in backend.requests}
    assert by_role == {"contrast": 0.3, "contrast_reask": 1.0, "contrastive_assistant": 0.3, "assistant": 0.3}


def test_zero_reasks_drops_at_the_first_bad_reply():
    simulator = FakeSimulator(contrast=SAME_SWAP)
    result, _ = synthesize(simulator=simulator, turns=1, max_reasks=0)
    assert result.reason == "parse_failure" and simulator.roles.count("contrast") == 1


def test_empty_turn_is_dropped():
    result, _ = synthesize(simulator=FakeSimulator(user="   "), turns=2)
    assert result.reason == "empty_turn"


def test_truncated_turn_is_dropped():
    truncated = Completion("an answer that goes on and", "length", {"prompt_tokens": 5, "completion_tokens": 6})
    result, _ = synthesize(simulator=FakeSimulator(assistant=truncated), turns=2)
    assert result.reason == "truncated_turn"
    assert result.usage["completion_tokens"] >= 6


def test_over_length_conversation_is_dropped_as_soon_as_it_is_too_long():
    long_answer = " ".join(f"word{i}" for i in range(400))  # ~800 tokens, not a loop
    result, backend = synthesize(simulator=FakeSimulator(assistant=long_answer), turns=5,
                                 divergence="final", max_conversation_tokens=300)
    assert result.reason == "too_long"
    assert len(backend.requests) == 1  # stopped after the first turn


def test_dropped_result_keeps_usage_and_divergence():
    result, backend = synthesize(simulator=FakeSimulator(user=""), turns=3, divergence="fixed", divergence_turn=2)
    assert result.pair is None and result.divergence_turn == 2
    assert result.usage["calls"] == len(backend.requests)
    assert result.detail.startswith("user turn 2")


@pytest.mark.parametrize("values, message", [
    ({"divergence": "fixed"}, "divergence_turn: required"),
    ({"divergence": "fixed", "divergence_turn": 6}, "divergence_turn: expected"),
    ({"divergence_turn": 2}, "only used with divergence=fixed"),
    ({"seed_turns": 6}, "seed_turns"),
    ({"backends": {"judge": {"kind": "local"}}}, "a 'simulator' entry"),
    ({"backends": {"simulator": "local", "critic": "local"}}, "unknown role"),
])
def test_bad_config_values_raise_config_errors(values, message):
    from chat.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        config(**values)


def test_truncated_turns_are_kept_when_drop_truncated_is_off():
    truncated = Completion("an answer that goes on and", "length", {"prompt_tokens": 5, "completion_tokens": 6})
    result, _ = synthesize(simulator=FakeSimulator(assistant=truncated), turns=2, drop_truncated=False)
    assert result.pair is not None


def test_cached_replies_count_as_cache_hits_not_calls():
    cached = Completion("a cached answer", "stop", {"prompt_tokens": 50, "completion_tokens": 3}, cached=True)
    result, backend = synthesize(simulator=FakeSimulator(assistant=cached), turns=1)
    assert result.usage["cache_hits"] == 1
    assert result.usage["calls"] == len(backend.requests) - 1
    assert result.usage["by_role"]["assistant"]["prompt_tokens"] == 0
