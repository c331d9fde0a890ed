"""OpenRLHF query strings -> conversations through the RM's own chat template (Qwen-style and Gemma-style)."""

from __future__ import annotations

import copy

import pytest

from rm.queries import QueryParser, template_markers

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": "a joke?"},
            {"role": "assistant", "content": "No jokes today."}]


def query(tokenizer, messages, pads: int = 0, end: str | None = None) -> str:
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    return tokenizer.pad_token * pads + prompt + messages[-1]["content"] + (tokenizer.eos_token if end is None else end)


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chatml(gemma_tokenizer):
    """The tokenizer with a ChatML template (Qwen-style: system turn kept, `<|im_end|>` after each turn)."""
    tokenizer = copy.deepcopy(gemma_tokenizer)
    tokenizer.chat_template = CHATML
    tokenizer.eos_token = "<eos>"
    return tokenizer


@pytest.fixture(scope="module")
def gemma_style(gemma_tokenizer):
    from chat.embedded import gemma_chat_template

    tokenizer = copy.deepcopy(gemma_tokenizer)
    tokenizer.chat_template = gemma_chat_template()
    return tokenizer


@pytest.mark.parametrize("pads", [0, 3])
def test_padded_query_with_system_turn_parses_back(chatml, pads):
    parser = QueryParser(chatml)
    assert parser.markers.system_head == "<|im_start|>system\n"
    parsed = parser.parse(query(chatml, MESSAGES, pads))
    assert parsed is not None and parsed.to_messages() == MESSAGES


def test_single_turn_without_system(chatml):
    parsed = QueryParser(chatml).parse(query(chatml, MESSAGES[1:3], end="<|im_end|>"))
    assert parsed.to_messages() == MESSAGES[1:3]


def test_gemma_template_ends_at_end_of_turn(gemma_style):
    parser = QueryParser(gemma_style)
    assert parser.markers.user_end == "<end_of_turn>\n<start_of_turn>model\n"
    parsed = parser.parse(query(gemma_style, MESSAGES[1:], end="<end_of_turn>"))
    assert parsed.to_messages() == MESSAGES[1:]
    # Gemma folds the system prompt into the first user turn; the re-rendered text is the same.
    folded = parser.parse(query(gemma_style, MESSAGES, end="<end_of_turn>"))
    rendered = gemma_style.apply_chat_template(folded.to_messages(), tokenize=False)
    assert rendered == gemma_style.apply_chat_template(MESSAGES, tokenize=False)


def test_text_in_another_template_is_not_parsed(chatml, gemma_style):
    assert QueryParser(chatml).parse(query(gemma_style, MESSAGES[1:], end="<end_of_turn>")) is None
    assert QueryParser(gemma_style).parse(query(chatml, MESSAGES[1:])) is None
    assert QueryParser(chatml).parse("User: hi\nAssistant: hello") is None


def test_a_query_must_end_with_the_reply(chatml):
    prompt_only = chatml.apply_chat_template(MESSAGES[1:2], tokenize=False)
    assert QueryParser(chatml).parse(prompt_only) is None


def test_template_that_rewrites_content_has_no_markers(gemma_tokenizer):
    tokenizer = copy.deepcopy(gemma_tokenizer)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    assert template_markers(tokenizer) is None and QueryParser(tokenizer).parse("ANYTHING") is None
