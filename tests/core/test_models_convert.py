"""The real `embedded` Qwen2.5-Coder 0.5B Instruct: converted once (~75 s of CPU), its special ids, two replies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_embedded_instruct_model_converts_with_im_end_and_pad():
    from transformers import AutoTokenizer

    from chat.embedded import resolve_model

    directory = Path(resolve_model("embedded"))
    assert directory.name == "qwen2.5-coder-0.5b-instruct"
    generation = json.loads((directory / "generation_config.json").read_text())
    assert 151645 in generation["eos_token_id"] and generation["pad_token_id"] == 151643
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.pad_token_id == 151643 and tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_the_local_backend_answers_two_requests_on_the_embedded_model():
    from chat.backends.base import BackendSpec
    from chat.backends.local import LocalBackend
    from chat.conversation import Message

    # exact float weights: CPU int8 (`quantize: auto`) visibly degrades a 0.5B model's answers
    backend = LocalBackend(BackendSpec(kind="local", model="embedded", max_batch_size=2, quantize="none"))

    async def both():
        return await asyncio.gather(
            backend.chat([Message("user", "What is 2 + 3? Reply with the number only.")], max_tokens=8),
            backend.chat([Message("user", "Name the capital of France in one word.")], max_tokens=8))

    sum_reply, capital_reply = asyncio.run(both())
    assert "5" in sum_reply.text and "Paris" in capital_reply.text
    assert {sum_reply.finish_reason, capital_reply.finish_reason} == {"stop"}
