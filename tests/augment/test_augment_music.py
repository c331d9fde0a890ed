"""synthesize_pair against a scripted simulator: prompts per role, divergence logic, ablation, filters."""

from __future__ import annotations

import asyncio
import random

import pytest
from augment_helpers import FakeSimulator, config, fake_backends, requests_of, role_of

from augment.music import draw_divergence_turn, music_pair_id, synthesize_pair
from augment.prompts import PROMPT_VERSION
from augment.seeds import Seed
from augment.steps import TURN_STOPS
from chat.agents import derive_seed
from chat.backends.base import Completion
from chat.conversation import Message

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
    for request, turn in zip(contrastive, (2, 3, 4)):
        history = request[1:]  # after the contrastive system prompt: exactly the rejected branch so far
        assert history == [m.to_dict() for m in rejected[: 2 * turn - 1]]
    for request in requests_of(backend, "assistant"):
        assert all("For your next reply only" not in m["content"] for m in request)
    swaps = result.pair.meta["swaps"]
    assert [s["turn"] for s in swaps] == [2, 3, 4]
    assert [s["original"] for s in swaps] == user_turns(rejected)[1:]
    assert all(s["swapped"].startswith("different request") for s in swaps)


def test_normal_assistant_requests_are_each_branch_history():
    result, backend = synthesize(turns=3, divergence="fixed", divergence_turn=2)
    chosen = [m.to_dict() for m in result.pair.chosen.messages]
    histories = requests_of(backend, "assistant")
    assert histories == [chosen[:1], chosen[:3], chosen[:5]]  # turn 1 shared, then chosen's own


def test_user_simulator_sees_its_own_branch_transcript():
    result, backend = synthesize(turns=3, divergence="fixed", divergence_turn=1)
    transcripts = [request[1]["content"] for request in requests_of(backend, "user")]
    assert len(transcripts) == 4  # turns 2 and 3, each branch separately
    rejected_answer = result.pair.rejected.messages[1].content
    chosen_answer = result.pair.chosen.messages[1].content
    assert sum(f"Assistant: {rejected_answer}" in t for t in transcripts) == 2
    assert sum(f"Assistant: {chosen_answer}" in t for t in transcripts) == 2


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
    result, backend = synthesize(turns=2, divergence="fixed", divergence_turn=2, temperature=0.3, max_tokens=99)
    pair = result.pair
    assert pair.id == music_pair_id("s1")
    assert set(pair.to_dict()) == {"id", "chosen", "rejected", "meta"}
    assert set(pair.meta) == {"source_id", "divergence_turn", "turns", "swaps", "simulator", "prompt_version", "usage"}
    assert pair.meta["source_id"] == "s1" and pair.meta["turns"] == 2
    assert pair.meta["prompt_version"] == PROMPT_VERSION
    assert pair.meta["simulator"] == {"user": "scripted", "assistant": "scripted", "contrast": "scripted"}
    assert pair.meta["usage"]["calls"] == len(backend.requests)
    for request in backend.requests:
        role = role_of(request.messages)
        assert request.params["temperature"] == 0.3 and request.params["max_tokens"] == 99
        assert request.params["json"] is (role == "contrast")
        assert request.params["stop"] == (None if role == "contrast" else list(TURN_STOPS))
        assert isinstance(request.params["seed"], int)


def test_same_seed_gives_the_same_call_seeds():
    _, first = synthesize(turns=3)
    _, second = synthesize(turns=3)
    assert [r.params["seed"] for r in first.requests] == [r.params["seed"] for r in second.requests]


# -- filters ---------------------------------------------------------------------------------------

def test_identical_branches_after_d_are_dropped():
    simulator = FakeSimulator(contrastive_assistant="same", assistant="same", user="same question")
    result, _ = synthesize(simulator=simulator, turns=3, divergence="fixed", divergence_turn=2)
    assert result.pair is None and result.reason == "identical_after_divergence"


def test_a_reply_in_the_wrong_role_is_dropped_for_role_alternation():
    result, _ = synthesize(simulator=FakeSimulator(user="Assistant: I can help."), turns=2)
    assert result.reason == "role_alternation"


def test_unparseable_swap_is_reasked_at_most_max_reasks_times_then_dropped():
    simulator = FakeSimulator(contrast="no idea", contrast_reask="still no idea")
    result, backend = synthesize(simulator=simulator, turns=2, divergence="fixed", divergence_turn=1, max_reasks=2)
    assert result.reason == "parse_failure"
    assert simulator.roles.count("contrast") == 1 and simulator.roles.count("contrast_reask") == 2
    reasks = requests_of(backend, "contrast_reask")
    assert reasks[0][2] == {"role": "assistant", "content": "no idea"}
    assert reasks[1][2] == {"role": "assistant", "content": "still no idea"}  # each re-ask quotes the last reply
    assert "contrastive_assistant" not in simulator.roles


def test_a_reask_that_parses_keeps_the_pair():
    simulator = FakeSimulator(contrast="no idea")
    result, _ = synthesize(simulator=simulator, turns=1, max_reasks=1)
    assert result.pair is not None
    assert simulator.roles.count("contrast_reask") == 1


def test_zero_reasks_drops_at_the_first_bad_reply():
    simulator = FakeSimulator(contrast="no idea")
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
    long_answer = "word " * 400  # ~500 tokens
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
