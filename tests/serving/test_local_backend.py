"""The `local` backend on the real embedded models (Gemma 3 270M, Qwen 0.5B): decoding, batching, sampling, stop rules."""

from __future__ import annotations

import asyncio

import pytest

from chat.backends.base import BackendSpec
from chat.backends.local import GenerationRequest, LocalBackend, load_engine
from chat.conversation import Message

pytestmark = pytest.mark.slow

PROMPTS = ["Name a colour.", "Write one word about the sea.", "Count to three.", "Say hello."]


def _request(engine, text: str, **kwargs) -> GenerationRequest:
    params = {"temperature": 0.0, "max_tokens": 12, "stop": (), "seed": None} | kwargs
    return GenerationRequest(engine.encode_chat([{"role": "user", "content": text}]), **params)


def test_greedy_decoding_equals_transformers_generate_on_exact_weights():
    import torch

    engine = load_engine("gemma3-270m", quantize="none")
    request = _request(engine, PROMPTS[0], max_tokens=16, min_tokens=0)
    engine.generate([request])
    prompt = torch.tensor([request.prompt_ids])
    reference = engine.model.generate(prompt, max_new_tokens=16, do_sample=False)[0, prompt.shape[1]:].tolist()
    eos = engine.eos_ids
    reference = reference[: next((i for i, t in enumerate(reference) if t in eos), len(reference))]
    assert request.output_ids == reference


def test_concurrent_requests_are_decoded_in_one_batch(embedded_engine):
    backend = LocalBackend(BackendSpec(kind="local", model="gemma3-270m", max_batch_size=8, batch_wait_ms=50))
    before = embedded_engine.batch_sizes.copy()

    async def ask_all():
        return await asyncio.gather(*[backend.chat([Message("user", p)], max_tokens=6) for p in PROMPTS])

    completions = asyncio.run(ask_all())
    assert all(c.usage["completion_tokens"] >= 1 for c in completions)
    assert embedded_engine.batch_sizes - before == {len(PROMPTS): 1}


def test_seeded_sampling_is_reproducible(embedded_engine):
    first, second = (_request(embedded_engine, PROMPTS[1], temperature=0.9, seed=7, max_tokens=10) for _ in range(2))
    embedded_engine.generate([first])
    embedded_engine.generate([second])
    assert first.output_ids == second.output_ids


def test_max_tokens_ends_with_length_finish_reason(embedded_engine):
    request = _request(embedded_engine, PROMPTS[2], max_tokens=3, min_tokens=3)
    embedded_engine.generate([request])
    assert (len(request.output_ids), request.finish_reason) == (3, "length")


def test_min_tokens_masks_end_of_turn(embedded_engine):
    request = _request(embedded_engine, PROMPTS[3], max_tokens=5, min_tokens=5)
    embedded_engine.generate([request])
    assert len(request.output_ids) == 5 and not set(request.output_ids) & embedded_engine.eos_ids


def test_stop_string_cuts_the_reply(embedded_engine):
    free = _request(embedded_engine, PROMPTS[2], max_tokens=20, min_tokens=20)
    embedded_engine.generate([free])
    stop = free.text.strip()[1:3] if len(free.text.strip()) >= 3 else free.text.strip()[-1]
    cut = _request(embedded_engine, PROMPTS[2], max_tokens=20, min_tokens=20, stop=(stop,))
    embedded_engine.generate([cut])
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and free.text.startswith(cut.text)


def test_prompt_over_context_length_is_a_clear_error(embedded_engine):
    from chat.errors import BackendError

    backend = LocalBackend(BackendSpec(kind="local", model="gemma3-270m"))
    with pytest.raises(BackendError, match="exceeds the context length"):
        asyncio.run(backend.chat([Message("user", "hi")], max_tokens=embedded_engine.context_length))


def test_prompts_of_different_lengths_prefill_one_by_one_and_decode_as_alone(monkeypatch):
    engine = load_engine("embedded", quantize="none")  # Qwen: no sliding-window layers, so the CPU path applies
    prompts = ["Say hello.", "Write one word about the sea.", "Describe the planet Mars in two short sentences."]
    alone = []
    for prompt in prompts:
        request = _request(engine, prompt, max_tokens=8, min_tokens=8)
        engine.generate([request])
        alone.append(request.output_ids)
    together = [_request(engine, prompt, max_tokens=8, min_tokens=8) for prompt in prompts]
    assert len({len(r.prompt_ids) for r in together}) == 3
    prefill_shapes = []
    decoder = engine.decoder

    def counting(*args, **kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            prefill_shapes.append(tuple(kwargs["input_ids"].shape))
        return decoder(*args, **kwargs)

    monkeypatch.setattr(engine, "decoder", counting)
    engine.generate(together)
    assert prefill_shapes == [(1, len(r.prompt_ids)) for r in together]
    assert [r.output_ids for r in together] == alone
