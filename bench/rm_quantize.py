"""Quantization: memory footprint and pairwise-accuracy change of int8 and nf4 vs the unquantized RM.

    .venv/bin/python bench/rm_quantize.py --model runs/rm-minilm-hh --pairs 296
    .venv/bin/python bench/rm_quantize.py --model runs/rm-minilm-hh --bits 4 --keep-float '.*attention'

Eval pairs: the hh-rlhf pairs after the first 1,500 (the held-out part of bench/rm_real_data.py).
The net accuracy change hides the pairs that flip each way, so the flipped-pair count and the mean
|reward change| are printed too: with F pairs flipping at random, the net change has a standard
error of about 100 * sqrt(F) / N points.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from bench.rm_common import hh_rlhf_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained RM directory")
    parser.add_argument("--pairs", type=int, default=296, help="held-out pairs to evaluate on")
    parser.add_argument("--device", default=None)
    parser.add_argument("--bits", type=int, choices=[8, 4], action="append", help="8 and/or 4 (default: both)")
    parser.add_argument("--keep-float", action="append", default=[], metavar="PATTERN",
                        help="linear layers left unquantized besides the head (as `turnwise rm quantize --keep-float`)")
    args = parser.parse_args()

    from rm.quantize import quantize_reward_model

    pairs = hh_rlhf_pairs()[1500:1500 + args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        for bits in args.bits or (8, 4):
            started = time.perf_counter()
            report = quantize_reward_model(args.model, bits, Path(tmp) / f"q{bits}", eval_pairs=pairs,
                                           device=args.device, keep_float=args.keep_float)
            info = report.to_dict()
            name = "int8" if bits == 8 else "nf4 "
            kept = f" (also float: {', '.join(args.keep_float)})" if args.keep_float else ""
            change = report.accuracy_change_points
            noise = 100 * math.sqrt(report.flipped_pairs or 0) / len(pairs)
            print(f"{name}{kept}: memory {report.memory_bytes_before / 2**20:.1f} MiB -> "
                  f"{report.memory_bytes_after / 2**20:.1f} MiB ({info['memory_ratio']:.2f}x); accuracy on "
                  f"{len(pairs)} pairs {report.accuracy_before:.4f} -> {report.accuracy_after:.4f} "
                  f"({change:+.2f} points, target within 1; {report.flipped_pairs} pairs flipped, so +-{noise:.1f} "
                  f"points of flip noise; mean |reward change| {report.mean_abs_reward_change:.4f}); "
                  f"{time.perf_counter() - started:.0f} s")
            record(f"rm quantize {name.strip()}{kept} accuracy change ({args.model})",
                   baseline="the unquantized RM on the same pairs", ratio=round(change, 2), unit="points",
                   target="|change| <= 1 point", met=abs(change) <= 1.0,
                   details={"memory_mib_before": round(report.memory_bytes_before / 2**20, 1),
                            "memory_mib_after": round(report.memory_bytes_after / 2**20, 1),
                            "accuracy_before": report.accuracy_before, "accuracy_after": report.accuracy_after,
                            "flipped_pairs": report.flipped_pairs, "eval_pairs": len(pairs),
                            "mean_abs_reward_change": report.mean_abs_reward_change,
                            "keep_float": args.keep_float})


if __name__ == "__main__":
    main()
