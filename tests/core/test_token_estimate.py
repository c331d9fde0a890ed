"""The tokenizer-free token estimate shared by MUSIC's length filter, MIMG's chunker and the cost estimate."""

from chat.conversation import Document, Message
from chat.token_estimate import approx_conversation_tokens, approx_tokens
from generate.documents import chunk_document


def test_text_estimate_is_characters_over_four_rounded_up():
    assert [approx_tokens(text) for text in ["", "abc", "abcd", "abcde"]] == [0, 1, 1, 2]


def test_conversation_estimate_adds_the_template_overhead_of_each_message():
    messages = [Message("user", "a" * 8), Message("assistant", "b" * 9)]
    assert approx_conversation_tokens(messages) == (2 + 4) + (3 + 4)


def test_a_sentence_over_the_chunk_budget_is_cut_at_word_boundaries_within_it():
    sentence = " ".join(f"w{i:03d}" for i in range(100))  # 499 characters, no sentence end: ~125 tokens
    chunks = chunk_document(Document(id="d", text=sentence), chunk_tokens=30)
    assert all(approx_tokens(c.text) <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks) == sentence
