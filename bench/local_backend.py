"""Benchmark the `local` backend on the embedded model (`embedded`, Qwen2.5-Coder-0.5B-Instruct).

1. Aggregate generation throughput with 8 concurrent requests vs the same 8 requests one at a time
   (same backend, same prompts, same run). Target: >= 4x.
2. Single-stream tokens/s of the local backend vs plain `model.generate` on the same model.

Every request generates exactly --tokens tokens (end-of-turn masked until then), so runs compare
equal work. Run: .venv/bin/python bench/local_backend.py [--tokens 64] [--quantize auto|none|int8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402

PROMPTS = [
    "Write a short story about a lighthouse.",
    "Explain how rain forms.",
    "Describe a busy market in the morning.",
    "List some uses of copper.",
    "Tell me about the history of bicycles.",
    "What makes a good cup of tea?",
    "Describe the planet Mars.",
    "How do bees make honey?",
]


def measure_backend(quantize: str, tokens: int) -> dict[str, float]:
    from chat.backends.base import BackendSpec
    from chat.backends.local import LocalBackend
    from chat.conversation import Message

    backend = LocalBackend(BackendSpec(kind="local", quantize=quantize, max_batch_size=8, batch_wait_ms=20,
                                       extra={"min_tokens": tokens}))

    async def ask(prompt: str):
        return await backend.chat([Message("user", prompt)], max_tokens=tokens)

    async def serial():
        return [await ask(p) for p in PROMPTS]

    async def concurrent():
        return await asyncio.gather(*[ask(p) for p in PROMPTS])

    asyncio.run(ask(PROMPTS[0]))  # warm-up
    results = {}
    for name, job in (("serial", serial), ("concurrent8", concurrent)):
        started = time.perf_counter()
        completions = asyncio.run(job())
        elapsed = time.perf_counter() - started
        generated = sum(c.usage["completion_tokens"] for c in completions)
        assert generated == tokens * len(PROMPTS), generated
        results[f"{name}_tok_s"] = generated / elapsed
    results["concurrency_ratio"] = results["concurrent8_tok_s"] / results["serial_tok_s"]
    results["batch_sizes"] = dict(backend.engine.batch_sizes)
    return results


def measure_plain_generate(tokens: int) -> float:
    """Single-stream tokens/s of `model.generate` (greedy, float32 weights as converted)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chat.embedded import embedded_model_dir

    path = embedded_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    encoded = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             return_tensors="pt", return_dict=True) for p in PROMPTS]
    with torch.inference_mode():
        model.generate(**encoded[0], max_new_tokens=4, do_sample=False)
        started = time.perf_counter()
        generated = 0
        for batch in encoded:
            out = model.generate(**batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            generated += out.shape[1] - batch["input_ids"].shape[1]
    return generated / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--quantize", nargs="+", default=["int8", "none"], help="local backend variants to run")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    plain = measure_plain_generate(args.tokens)
    rows = {q: measure_backend(q, args.tokens) for q in args.quantize}
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"{len(PROMPTS)} prompts x {args.tokens} tokens")
    print(f"{'variant':<22}{'1 at a time tok/s':>18}{'8 concurrent tok/s':>20}{'ratio (>=4x)':>14}"
          f"{'vs generate':>13}")
    print(f"{'model.generate fp32':<22}{plain:>18.1f}{'':>20}{'':>14}{1.0:>12.2f}x")
    for quantize, r in rows.items():
        print(f"{'local quantize=' + quantize:<22}{r['serial_tok_s']:>18.1f}{r['concurrent8_tok_s']:>20.1f}"
              f"{r['concurrency_ratio']:>13.2f}x{r['serial_tok_s'] / plain:>12.2f}x")
    for quantize, r in rows.items():
        numbers = {"serial_tok_s": round(r["serial_tok_s"], 1), "concurrent8_tok_s": round(r["concurrent8_tok_s"], 1),
                   "plain_generate_tok_s": round(plain, 1), "tokens_per_request": args.tokens}
        record(f"local backend (quantize: {quantize}): aggregate tok/s, 8 concurrent vs 1 at a time",
               baseline="the same 8 requests 1 at a time", ratio=r["concurrency_ratio"], target=">= 4x",
               met=r["concurrency_ratio"] >= 4,
               details={"summary": f"{r['concurrent8_tok_s']:.1f} vs {r['serial_tok_s']:.1f} tok/s, "
                                   f"{len(PROMPTS)} x {args.tokens} tokens", **numbers})
        record(f"local backend (quantize: {quantize}): single-stream tok/s vs model.generate",
               baseline="plain model.generate, float32, batch 1", ratio=r["serial_tok_s"] / plain, target="none",
               met=None, details={"summary": f"{r['serial_tok_s']:.1f} vs {plain:.1f} tok/s", **numbers})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"plain_generate_tok_s": plain, "local": rows, "tokens": args.tokens}, handle, indent=2)


if __name__ == "__main__":
    main()
