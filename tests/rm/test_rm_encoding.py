"""ConversationEncoder: one BOS, assistant-turn ends, left truncation by whole turns (never dropping)."""

from __future__ import annotations

from chat.conversation import Conversation
from rm.encoding import PLAIN_CHAT_TEMPLATE, ConversationEncoder, TruncationStats


def conversation(turns: int, words: int = 5) -> Conversation:
    messages = []
    for t in range(turns):
        messages.append({"role": "user", "content": f"user turn {t} " + "ask " * words})
        messages.append({"role": "assistant", "content": f"assistant turn {t} " + "reply " * words})
    return Conversation.from_messages(messages)


def test_gemma_template_gets_exactly_one_bos(gemma_tokenizer):
    encoder = ConversationEncoder(gemma_tokenizer)
    ids = encoder.encode(conversation(2)).input_ids
    assert ids[0] == gemma_tokenizer.bos_token_id
    assert ids[1] != gemma_tokenizer.bos_token_id
    assert ids.count(gemma_tokenizer.bos_token_id) == 1


def test_turn_ends_are_the_last_tokens_of_each_prefix(gemma_tokenizer):
    encoder = ConversationEncoder(gemma_tokenizer)
    convo = conversation(3)
    encoded = encoder.encode(convo, with_turn_ends=True)
    assert encoded.turn_ends is not None and len(encoded.turn_ends) == 3
    for end, index in zip(encoded.turn_ends, convo.assistant_indices()):
        prefix_ids = encoder.encode(convo.prefix(index + 1)).input_ids
        assert encoded.input_ids[: end + 1] == prefix_ids
    assert encoded.turn_ends[-1] == len(encoded.input_ids) - 1


def test_long_conversation_loses_whole_earlier_turns_and_keeps_the_last(gemma_tokenizer):
    full_length = len(ConversationEncoder(gemma_tokenizer).encode(conversation(6)).input_ids)
    encoder = ConversationEncoder(gemma_tokenizer, max_length=full_length // 2)
    convo = conversation(6)
    encoded = encoder.encode(convo)
    assert len(encoded.input_ids) <= full_length // 2
    assert encoded.truncated_turns >= 3 and encoded.truncated_tokens == 0
    text = gemma_tokenizer.decode(encoded.input_ids)
    assert "assistant turn 5" in text and "user turn 5" in text
    assert "user turn 0" not in text
    kept_turns = 6 - encoded.truncated_turns
    assert text.count("user turn") == kept_turns  # whole exchanges, never half of one
    assert encoded.input_ids[0] == gemma_tokenizer.bos_token_id


def test_final_exchange_longer_than_limit_is_cut_from_the_left_keeping_bos(gemma_tokenizer):
    encoder = ConversationEncoder(gemma_tokenizer, max_length=32)
    convo = Conversation.from_messages([{"role": "user", "content": "long question " * 60},
                                        {"role": "assistant", "content": "the final answer ends here"}])
    encoded = encoder.encode(convo)
    assert len(encoded.input_ids) == 32
    assert encoded.input_ids[0] == gemma_tokenizer.bos_token_id
    assert encoded.truncated_tokens > 0
    assert "the final answer ends here" in gemma_tokenizer.decode(encoded.input_ids)


def test_truncation_stats_count_every_shortened_sequence(gemma_tokenizer):
    encoder = ConversationEncoder(gemma_tokenizer, max_length=60)
    stats = TruncationStats()
    for turns in (1, 4, 5):
        stats.add(encoder.encode(conversation(turns)), f"c{turns}")
    assert stats.sequences == 3
    assert stats.truncated_sequences == 2
    assert stats.examples == ["c4", "c5"]


def test_tokenizer_without_chat_template_gets_the_plain_template():
    from transformers import AutoTokenizer

    from chat.embedded import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    encoder = ConversationEncoder(tokenizer, max_length=128)
    assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    text = tokenizer.decode(encoder.encode(conversation(1)).input_ids)
    assert text.startswith("[CLS] user : user turn 0") and "assistant : assistant turn 0" in text


def test_encoder_cut_keeps_the_leading_cls_token():
    from transformers import AutoTokenizer

    from chat.embedded import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    encoder = ConversationEncoder(tokenizer, max_length=16)
    convo = Conversation.from_messages([{"role": "user", "content": "long question " * 40},
                                        {"role": "assistant", "content": "short answer"}])
    ids = encoder.encode(convo).input_ids
    assert len(ids) == 16
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
