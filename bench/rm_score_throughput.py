"""Benchmark: `RewardModel.score` vs a naive per-example loop (batch 1, input order) on hh-rlhf (target >= 3x).

    .venv/bin/python bench/rm_score_throughput.py --model minilm --conversations 256
    .venv/bin/python bench/rm_score_throughput.py --model embedded --conversations 96

The naive loop is what RM users commonly write: tokenize with the chat template, one forward
pass per conversation under torch.no_grad, in file order. Ours: length-sorted batches under a token
budget, inference mode. Same model, same conversations (the chosen side of hh-rlhf pairs, so the
length distribution is the real one), same token limit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rm_common import hh_rlhf_pairs  # noqa: E402
from rm.model import RewardModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", help="RM directory or embedded/minilm (default: minilm)")
    parser.add_argument("--conversations", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings, alternating the two")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    model = RewardModel.load(args.model, device=args.device, max_length=args.max_length)
    conversations = [pair.chosen for pair in hh_rlhf_pairs()[: args.conversations]]
    encoded = [model.encode(c).input_ids for c in conversations]
    lengths = [len(ids) for ids in encoded]
    print(f"model {args.model}; {len(conversations)} hh-rlhf conversations, tokens: mean {statistics.mean(lengths):.0f}, "
          f"median {statistics.median(lengths):.0f}, max {max(lengths)}")
    model.score(conversations[:4])  # warm-up

    def naive_loop() -> list[float]:
        rewards = []
        with torch.no_grad():
            for ids in encoded:  # tokenization excluded from the baseline's time: it measures the model loop only
                logits = model.model(input_ids=torch.tensor([ids], device=model.device)).logits
                rewards.append(logits[0, 0].item())
        return rewards

    # Alternate the two, best of --repeats each: the shared machine's load varies from minute to minute.
    naive_seconds = ours_seconds = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        naive = naive_loop()
        naive_seconds = min(naive_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        ours = model.score(conversations)  # includes our tokenization
        ours_seconds = min(ours_seconds, time.perf_counter() - started)

    difference = max(abs(a - b) for a, b in zip(naive, ours))
    tokens = sum(lengths)
    print(f"naive batch-1 loop: {naive_seconds:.2f} s ({len(encoded) / naive_seconds:.1f} conv/s, "
          f"{tokens / naive_seconds:.0f} tokens/s)")
    print(f"RewardModel.score:  {ours_seconds:.2f} s ({len(encoded) / ours_seconds:.1f} conv/s, "
          f"{tokens / ours_seconds:.0f} tokens/s)")
    print(f"max |difference|: {difference:.2e}")
    print(f"speed-up vs naive loop: {naive_seconds / ours_seconds:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
