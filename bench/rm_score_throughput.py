"""Benchmark: `RewardModel.score` vs a naive per-example loop (batch 1, input order) on hh-rlhf (target >= 3x).

    .venv/bin/python bench/rm_score_throughput.py --model runs/rm-minilm-hh --conversations 256
    .venv/bin/python bench/rm_score_throughput.py --model embedded --conversations 32
    .venv/bin/python bench/rm_score_throughput.py --model runs/rm-minilm-hh --dynamic-int8

The naive loop is what RM users commonly write: tokenize with the chat template, one forward
pass per conversation under torch.no_grad, in file order. Ours: length-sorted batches under a token
budget, inference mode. Same model, same conversations (the chosen side of hh-rlhf pairs, so the
length distribution is the real one), same token limit.

It also prints the compute-bound floor of an exact float32 forward pass on this machine: the model's
matmul FLOPs (linear layers + attention scores) divided by the float32 GEMM rate measured here, and so
the largest speed-up over the naive loop that any exact implementation could reach.

--dynamic-int8 adds the opt-in int8 dynamic path (`RewardModel.load(..., dynamic_int8=True)`): its time
on the same conversations, its reward error, and its pairwise accuracy on held-out hh-rlhf pairs vs float32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from bench.rm_common import hh_rlhf_pairs  # noqa: E402
from rm.model import RewardModel  # noqa: E402
from rm.rewards import unwrap_model  # noqa: E402


def matmul_flops(model: Any, lengths: list[int]) -> float:
    """FLOPs of the matrix products of one forward pass per sequence: every linear layer on every token,
    plus attention scores and weighted sums (4 * T^2 * attention width per layer). Embedding lookups,
    norms and activations are left out, so this is a lower bound of the work."""
    inner = unwrap_model(model)
    config = inner.config
    per_sequence_heads = ("pooler", "classifier", "score")  # applied to one token per sequence: left out
    per_token = sum(2 * m.in_features * m.out_features for name, m in inner.named_modules()
                    if isinstance(m, torch.nn.Linear) and not set(name.split(".")) & set(per_sequence_heads))
    width = config.num_attention_heads * (getattr(config, "head_dim", None)
                                          or config.hidden_size // config.num_attention_heads)
    attention = sum(4 * t * t * width * config.num_hidden_layers for t in lengths)
    return per_token * sum(lengths) + attention


def gemm_rate(rows: int, inner: int, outer: int, seconds: float = 1.0) -> float:
    """Best float32 GEMM rate (FLOP/s) of a [rows, inner] x [inner, outer] product on this machine, now."""
    a, b = torch.randn(rows, inner), torch.randn(inner, outer)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * rows * inner * outer / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", help="RM directory or embedded/minilm (default: minilm)")
    parser.add_argument("--conversations", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timings per side, alternating the two; best kept")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dynamic-int8", action="store_true", help="also time the opt-in int8 dynamic path and "
                        "measure its accuracy change")
    parser.add_argument("--accuracy-pairs", type=int, default=296,
                        help="held-out hh-rlhf pairs (after the first 1,500) for the int8 accuracy check")
    args = parser.parse_args()

    model = RewardModel.load(args.model, device=args.device, max_length=args.max_length)
    pairs = hh_rlhf_pairs()
    conversations = [pair.chosen for pair in pairs[: args.conversations]]
    encoded = [model.encode(c).input_ids for c in conversations]
    lengths = [len(ids) for ids in encoded]
    print(f"model {args.model}; {len(conversations)} hh-rlhf conversations, tokens: mean {statistics.mean(lengths):.0f}, "
          f"median {statistics.median(lengths):.0f}, max {max(lengths)}; torch threads {torch.get_num_threads()}")
    model.score(conversations[:4])  # warm-up

    def naive_loop(rm: RewardModel) -> list[float]:
        rewards = []
        with torch.no_grad():
            for ids in encoded:  # tokenization excluded from the baseline's time: it measures the model loop only
                logits = rm.model(input_ids=torch.tensor([ids], device=rm.device)).logits
                rewards.append(logits[0, 0].item())
        return rewards

    sides: dict[str, Any] = {"naive": lambda: naive_loop(model), "ours": lambda: model.score(conversations)}
    int8 = None
    if args.dynamic_int8:
        int8 = RewardModel.load(args.model, device=args.device, max_length=args.max_length, dynamic_int8=True)
        int8.score(conversations[:4])
        sides["int8"] = lambda: int8.score(conversations)

    # Alternate the sides, best of --repeats each: the shared machine's load varies from minute to minute.
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, side in sides.items():
            started = time.perf_counter()
            outputs[name] = side()
            times[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in times.items()}

    tokens = sum(lengths)
    difference = max(abs(a - b) for a, b in zip(outputs["naive"], outputs["ours"]))
    spread = {name: ", ".join(f"{t:.2f}" for t in values) for name, values in times.items()}
    print(f"naive batch-1 loop: {best['naive']:.2f} s ({len(encoded) / best['naive']:.1f} conv/s, "
          f"{tokens / best['naive']:.0f} tokens/s); all runs: {spread['naive']} s")
    print(f"RewardModel.score:  {best['ours']:.2f} s ({len(encoded) / best['ours']:.1f} conv/s, "
          f"{tokens / best['ours']:.0f} tokens/s); all runs: {spread['ours']} s")
    ratios = [n / o for n, o in zip(times["naive"], times["ours"])]
    print(f"max |difference|: {difference:.2e}")
    speedup = best["naive"] / best["ours"]
    print(f"speed-up vs naive loop: {speedup:.2f}x best-of-{args.repeats} (per round: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}); target >= 3x")

    # The compute-bound floor of exact float32 scoring on this machine.
    config = unwrap_model(model.model).config
    flops = matmul_flops(model.model, lengths)
    rate = gemm_rate(512, config.hidden_size, getattr(config, "intermediate_size", 4 * config.hidden_size))
    floor_seconds = flops / rate
    print(f"compute floor: {flops / 1e9:.0f} GFLOP of matmuls / {rate / 1e9:.0f} GFLOP/s (float32 GEMM, measured now) "
          f"= {floor_seconds:.2f} s; naive loop runs at {flops / best['naive'] / 1e9:.0f} GFLOP/s, ours at "
          f"{flops / best['ours'] / 1e9:.0f} GFLOP/s; the largest exact speed-up possible here is "
          f"{best['naive'] / floor_seconds:.2f}x")
    record(f"rm score throughput vs naive loop ({args.model})", baseline="naive batch-1 loop, file order, no_grad",
           ratio=round(speedup, 2), target=">= 3x", met=speedup >= 3.0,
           details={"conversations": len(encoded), "tokens": tokens, "naive_s": times["naive"], "ours_s": times["ours"],
                    "max_abs_difference": difference, "compute_floor_s": round(floor_seconds, 3),
                    "gemm_gflops": round(rate / 1e9), "max_exact_speedup": round(best["naive"] / floor_seconds, 2)})

    if int8 is not None:
        int8_speedup = best["naive"] / best["int8"]
        int8_difference = max(abs(a - b) for a, b in zip(outputs["naive"], outputs["int8"]))
        held_out = pairs[1500:1500 + args.accuracy_pairs]
        exact_pairs, int8_pairs = model.score_pairs(held_out), int8.score_pairs(held_out)
        exact_accuracy = statistics.mean(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in exact_pairs)
        int8_accuracy = statistics.mean(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in int8_pairs)
        flips = sum((c > r) != (qc > qr) for (c, r), (qc, qr) in zip(exact_pairs, int8_pairs))
        rewards = [x for pair in exact_pairs for x in pair]
        print(f"dynamic int8 (opt-in): {best['int8']:.2f} s ({tokens / best['int8']:.0f} tokens/s); all runs: "
              f"{spread['int8']} s; speed-up vs naive float32 loop {int8_speedup:.2f}x; max |reward difference| "
              f"{int8_difference:.3f} (reward std {statistics.pstdev(rewards):.3f}); pairwise accuracy on "
              f"{len(held_out)} held-out pairs {exact_accuracy:.4f} -> {int8_accuracy:.4f} "
              f"({100 * (int8_accuracy - exact_accuracy):+.2f} points, {flips} pairs flipped)")
        record(f"rm score throughput, opt-in dynamic int8 vs naive float32 loop ({args.model})",
               baseline="naive batch-1 float32 loop", ratio=round(int8_speedup, 2), target=">= 3x (not exact)",
               met=int8_speedup >= 3.0,
               details={"int8_s": times["int8"], "naive_s": times["naive"], "max_abs_difference": int8_difference,
                        "accuracy_float32": exact_accuracy, "accuracy_int8": int8_accuracy, "flipped_pairs": flips,
                        "eval_pairs": len(held_out)})


if __name__ == "__main__":
    main()
