"""Quantization: memory footprint and pairwise-accuracy change of int8 and nf4 vs the unquantized RM.

    .venv/bin/python bench/rm_quantize.py --model runs/rm-minilm-hh --pairs 296

Eval pairs: the hh-rlhf pairs after the first 1,500 (the held-out part of bench/rm_real_data.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rm_common import hh_rlhf_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained RM directory")
    parser.add_argument("--pairs", type=int, default=296, help="held-out pairs to evaluate on")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    from rm.quantize import quantize_reward_model

    pairs = hh_rlhf_pairs()[1500:1500 + args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (8, 4):
            started = time.perf_counter()
            report = quantize_reward_model(args.model, bits, Path(tmp) / f"q{bits}", eval_pairs=pairs,
                                           device=args.device)
            info = report.to_dict()
            print(f"{'int8' if bits == 8 else 'nf4 '}: memory {report.memory_bytes_before / 2**20:.1f} MiB -> "
                  f"{report.memory_bytes_after / 2**20:.1f} MiB ({info['memory_ratio']:.2f}x); accuracy on "
                  f"{len(pairs)} pairs {report.accuracy_before:.4f} -> {report.accuracy_after:.4f} "
                  f"({report.accuracy_change_points:+.2f} points, target within 1); {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
