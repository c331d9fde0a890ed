"""Benchmark: per-turn rewards of 5-turn conversations, one-pass `score_turns` vs scoring every prefix (target >= 2.5x).

    .venv/bin/python bench/rm_score_turns.py --model embedded --conversations 24

Both sides use the same model, the same length-sorted token-budget batching and inference mode;
the baseline scores the 5 prefixes of each conversation as 5 separate sequences.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from bench.rm_common import five_turn_conversations, hh_rlhf_pairs  # noqa: E402
from rm.model import RewardModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="RM directory or embedded/minilm (default: embedded)")
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    model = RewardModel.load(args.model, device=args.device)
    conversations = five_turn_conversations(hh_rlhf_pairs(), args.conversations)
    lengths = [len(model.encode(c).input_ids) for c in conversations]
    print(f"model {args.model} (one-pass per turn: {model.one_pass_turns}); {len(conversations)} conversations of 5 "
          f"turns, {sum(lengths) / len(lengths):.0f} tokens on average")
    model.score_turns_batch(conversations[:2])  # warm-up

    def one_pass() -> list[list[float]]:
        return model.score_turns_batch(conversations)

    def every_prefix() -> list[list[float]]:
        prefixes = [c.prefix(i + 1) for c in conversations for i in c.assistant_indices()]
        flat = model.score(prefixes)
        return [flat[5 * k: 5 * k + 5] for k in range(len(conversations))]

    timings = {}
    results = {}
    for name, function in (("prefix scoring", every_prefix), ("one-pass score_turns", one_pass)):
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            results[name] = function()
            best = min(best, time.perf_counter() - started)
        timings[name] = best
        print(f"{name:>22}: {best:.3f} s ({len(conversations) / best:.2f} conversations/s)")
    difference = max(abs(a - b) for x, y in zip(results["prefix scoring"], results["one-pass score_turns"])
                     for a, b in zip(x, y))
    print(f"max |difference| between the two: {difference:.2e}")
    speed_up = timings["prefix scoring"] / timings["one-pass score_turns"]
    print(f"speed-up one-pass vs prefix scoring: {speed_up:.2f}x (target >= 2.5x)")
    record(f"per-turn rewards of 5-turn conversations ({args.model}): one-pass score_turns vs every prefix",
           baseline="score every prefix separately, same batching", ratio=speed_up, target=">= 2.5x",
           met=speed_up >= 2.5,
           details={"summary": f"{timings['prefix scoring']:.2f} vs {timings['one-pass score_turns']:.2f} s, "
                               f"{len(conversations)} conversations, {sum(lengths) / len(lengths):.0f} tokens on "
                               f"average; max |difference| {difference:.1e}",
                    "seconds": timings, "max_difference": difference})


if __name__ == "__main__":
    main()
