"""Bench: two local-engine options measured on agent prompts: batch sizes above 32 (decode tok/s and memory) and
torch.compile of the decoder (eager vs compiled decode tok/s).

Same model and prompts as bench/engine_throughput.py: Qwen2.5-Coder-0.5B-Instruct (int8 dynamic quantization, the
CPU default) and RMB pairwise-judge prompts of 500-800 tokens, every row decoding exactly `--tokens` tokens
(end-of-turn masked). The engine's own decode loop (chat/backends/local.py `LocalEngine.generate`) runs in this
process's main thread, the only thread that touches tensors.
1. Batch scaling: one batch of 8, 32 and 64 requests; prefill time (the decoder calls with more than one position)
   is split from the decode loop; memory is the process's peak resident set during the batch above its resident
   set before it (sampled every 20 ms), beside the KV cache's size by arithmetic.
2. torch.compile: the decoder wrapped in `torch.compile(dynamic=True)` (inductor, the default backend) against
   eager, at batch 1 and 8, fp32 and int8; the first compiled batch of each size (compilation, or recompilation
   for the new size) is timed apart and not counted.
Run: .venv/bin/python bench/local_engine_options.py [--tokens 64 --batches 8 32 64 --compile-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from itertools import cycle, islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_throughput import QWEN, judge_prompts  # noqa: E402
from bench.results import record  # noqa: E402
from chat.backends.local import GenerationRequest, LocalEngine  # noqa: E402
from chat.embedded import resolve_model  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakMemory:
    """The peak resident set, sampled every 20 ms on a thread that touches no tensors, above the level at entry."""

    def __enter__(self) -> "PeakMemory":
        self.base = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    @property
    def added(self) -> int:
        return self.peak - self.base


class TimedDecoder:
    """The engine's decoder, timing its prefill calls (more than one position) apart from its decode steps."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.prefill_seconds = 0.0

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        out = self.decoder(*args, **kwargs)
        if kwargs["input_ids"].shape[1] > 1:
            self.prefill_seconds += time.perf_counter() - started
        return out


def requests_for(engine: LocalEngine, prompts: list, tokens: int) -> list[GenerationRequest]:
    return [GenerationRequest(engine.encode_chat(p), temperature=0.0, max_tokens=tokens, stop=(), seed=0,
                              min_tokens=tokens) for p in prompts]


def decode_run(engine: LocalEngine, prompts: list, tokens: int) -> dict:
    """One batch: prefill seconds, decode-loop seconds, decode tok/s, memory above the level before it."""
    timed = TimedDecoder(engine.decoder)
    engine.decoder = timed
    requests = requests_for(engine, prompts, tokens)
    try:
        with PeakMemory() as memory:
            started = time.perf_counter()
            engine.generate(requests)
            total = time.perf_counter() - started
    finally:
        engine.decoder = timed.decoder
    decoded = sum(len(r.output_ids) for r in requests) - len(requests)   # the first token comes from the prefill
    decode_seconds = total - timed.prefill_seconds
    return {"batch": len(prompts), "prompt_tokens": sum(len(r.prompt_ids) for r in requests),
            "prefill_s": round(timed.prefill_seconds, 2), "decode_s": round(decode_seconds, 2),
            "decode_tok_s": decoded / decode_seconds, "memory_added_mb": memory.added / 2**20}


def kv_cache_mb(engine: LocalEngine, tokens: int) -> float:
    """fp32 keys and values of every layer for `tokens` positions."""
    config = engine.model.config
    heads = getattr(config, "num_key_value_heads", config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * 4 * tokens / 2**20


def batch_scaling(engine: LocalEngine, prompts: list, batches: list[int], tokens: int) -> list[dict]:
    decode_run(engine, prompts[:2], 4)                                       # warm-up
    points = []
    for batch in batches:
        point = decode_run(engine, list(islice(cycle(prompts), batch)), tokens)
        point["kv_cache_mb"] = kv_cache_mb(engine, point["prompt_tokens"] + batch * tokens)
        print(json.dumps(point), flush=True)
        points.append(point)
    return points


def compile_comparison(path: str, prompts: list, tokens: int) -> list[dict]:
    """Eager vs torch.compile decode tok/s at batch 1 and 8 for each quantization: one compiled decoder per
    quantization, its first batch of each size (compilation, or recompilation for the new batch size) timed apart."""
    import torch

    rows = []
    for quantize in ("none", "int8"):
        engine = LocalEngine(path, quantize=quantize)
        eager_decoder = engine.decoder
        decode_run(engine, prompts[:1], 4)                                   # warm-up
        eager = {batch: decode_run(engine, prompts[:batch], tokens) for batch in (1, 8)}
        engine.decoder = torch.compile(eager_decoder, dynamic=True)
        for batch in (1, 8):
            started = time.perf_counter()
            compiled, error = None, None
            try:
                decode_run(engine, prompts[:batch], tokens)                  # compiles
                first = time.perf_counter() - started
                compiled = decode_run(engine, prompts[:batch], tokens)
            except Exception as exc:                                       # a compile failure is the result
                first, error = time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:300]
            row = {"quantize": quantize, "batch": batch, "eager_tok_s": eager[batch]["decode_tok_s"],
                   "compiled_tok_s": compiled["decode_tok_s"] if compiled else None,
                   "first_compiled_batch_s": round(first, 1), "error": error}
            print(json.dumps(row), flush=True)
            rows.append(row)
        del engine
        torch._dynamo.reset()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per row (batch scaling)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--compile-tokens", type=int, default=32, help="tokens decoded per row (torch.compile)")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    path = resolve_model(QWEN)
    engine = LocalEngine(path)
    prompts = judge_prompts(engine.tokenizer, min(32, max(args.batches)))
    points = batch_scaling(engine, prompts, args.batches, args.tokens)
    del engine
    base = points[0]
    for point in points[1:]:
        record(f"local backend (int8) decode tok/s, one batch of {point['batch']} vs {base['batch']}",
               baseline=f"one batch of {base['batch']}", ratio=point["decode_tok_s"] / base["decode_tok_s"],
               target="none (documents scaling above 32 and its memory)", met=None,
               details={"summary": f"{point['decode_tok_s']:.1f} vs {base['decode_tok_s']:.1f} tok/s; memory "
                                   f"+{point['memory_added_mb']:.0f} MB vs +{base['memory_added_mb']:.0f} MB "
                                   f"(KV cache {point['kv_cache_mb']:.0f} vs {base['kv_cache_mb']:.0f} MB); "
                                   f"prefill {point['prefill_s']:.0f} vs {base['prefill_s']:.0f} s; "
                                   f"{args.tokens} tokens per row, RMB judge prompts of 500-800 tokens",
                        "points": points})
    if args.skip_compile:
        return
    for row in compile_comparison(path, prompts, args.compile_tokens):
        summary = (f"{row['compiled_tok_s']:.1f} vs {row['eager_tok_s']:.1f} tok/s; first compiled batch "
                   f"{row['first_compiled_batch_s']} s" if row["compiled_tok_s"] else
                   f"compiled run failed after {row['first_compiled_batch_s']} s: {row['error']}")
        record(f"local backend ({row['quantize'] if row['quantize'] != 'none' else 'fp32'}) decode tok/s, "
               f"torch.compile(dynamic=True) vs eager, batch {row['batch']}",
               baseline="eager decoder, same batch", target="none (decides whether the engine compiles)", met=None,
               ratio=row["compiled_tok_s"] / row["eager_tok_s"] if row["compiled_tok_s"] else None,
               details={"summary": f"{summary}; {args.compile_tokens} tokens per row", **row})


if __name__ == "__main__":
    main()
