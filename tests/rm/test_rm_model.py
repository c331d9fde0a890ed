"""RewardModel: score, one-pass score_turns == per-prefix scoring, batching by token budget, prefer, loading."""

from __future__ import annotations

import pytest

from chat.conversation import Conversation
from chat.errors import ConfigError
from rm.model import RewardModel
from rm.rewards import length_batches


def five_turn_conversation(seed: int) -> Conversation:
    messages = []
    for t in range(5):
        messages.append({"role": "user", "content": f"question {t} number {seed} " + "why " * (t + seed % 3)})
        messages.append({"role": "assistant", "content": f"answer {t} " + "because " * (2 * t + seed % 5 + 1)})
    return Conversation.from_messages(messages)


@pytest.fixture(scope="module")
def tiny_rm(tiny_base_dir) -> RewardModel:
    return RewardModel.load(tiny_base_dir, device="cpu")


def test_score_turns_equals_scoring_each_prefix(tiny_rm):
    conversations = [five_turn_conversation(seed) for seed in range(4)]
    one_pass = tiny_rm.score_turns_batch(conversations)
    for convo, rewards in zip(conversations, one_pass):
        prefixes = [convo.prefix(i + 1) for i in convo.assistant_indices()]
        expected = [tiny_rm.score([prefix])[0] for prefix in prefixes]
        assert len(rewards) == 5
        assert rewards == pytest.approx(expected, abs=1e-4)


def test_score_turns_uses_one_forward_pass(tiny_rm):
    backbone = tiny_rm.model.model
    calls = []
    handle = backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        rewards = tiny_rm.score_turns(five_turn_conversation(0))
    finally:
        handle.remove()
    assert len(rewards) == 5
    assert len(calls) == 1


def test_scores_do_not_depend_on_batching(tiny_rm):
    conversations = [five_turn_conversation(seed).prefix(2 * (seed % 5) + 2) for seed in range(10)]
    batched = tiny_rm.score(conversations)
    tiny_rm.token_budget, budget = 1, tiny_rm.token_budget  # every conversation alone
    try:
        alone = tiny_rm.score(conversations)
    finally:
        tiny_rm.token_budget = budget
    assert batched == pytest.approx(alone, abs=1e-5)


def test_score_accepts_message_dicts_and_validates_them(tiny_rm):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert tiny_rm.score([messages]) == pytest.approx(tiny_rm.score([Conversation.from_messages(messages)]))
    with pytest.raises(ValueError, match=r"messages\[1\]\.role"):
        tiny_rm.score([[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]])


def test_prefer_picks_the_higher_reward(tiny_rm):
    a, b = five_turn_conversation(1), five_turn_conversation(2)
    preference = tiny_rm.prefer(a, b)
    score_a, score_b = tiny_rm.score([a, b])
    assert preference.score_a == pytest.approx(score_a) and preference.score_b == pytest.approx(score_b)
    assert preference.winner == ("a" if score_a > score_b else "b")
    assert preference.margin == pytest.approx(score_a - score_b)


def test_length_batches_respect_the_token_budget():
    lengths = [5, 100, 30, 30, 7, 64, 1]
    batches = length_batches(lengths, token_budget=128, max_batch_size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 128
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)


def test_encoder_rm_scores_turns_prefix_by_prefix():
    from chat.embedded import minilm_dir

    model = RewardModel.load(minilm_dir(), device="cpu")
    assert not model.one_pass_turns
    convo = five_turn_conversation(3)
    rewards = model.score_turns(convo)
    expected = model.score([convo.prefix(i + 1) for i in convo.assistant_indices()])
    assert rewards == pytest.approx(expected, abs=1e-5)


def test_loading_a_directory_that_is_not_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a reward model directory"):
        RewardModel.load(tmp_path, device="cpu")


def test_dynamic_int8_is_opt_in_quantizes_the_backbone_and_keeps_the_head_float(tiny_base_dir):
    import torch

    exact = RewardModel.load(tiny_base_dir, device="cpu")
    fast = RewardModel.load(tiny_base_dir, device="cpu", dynamic_int8=True)
    assert not any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__ for m in exact.model.modules())
    quantized = [name for name, m in fast.model.named_modules() if "quantized" in type(m).__module__]
    assert quantized and all(not name.startswith("score") for name in quantized)
    assert isinstance(fast.model.score, torch.nn.Linear)
    conversations = [five_turn_conversation(seed) for seed in range(4)]
    ours, reference = fast.score(conversations), exact.score(conversations)
    assert ours != reference  # not exact: that is why it is opt-in
    assert ours == pytest.approx(reference, abs=0.25)


def test_dynamic_int8_refuses_a_gpu_device(tiny_base_dir):
    with pytest.raises(ConfigError, match="CPU only"):
        RewardModel.load(tiny_base_dir, device="meta", dynamic_int8=True)
