"""Benchmark: `turnwise rm train` in 2 CPU processes (gloo DDP) vs 1 process, same global batch and pairs per step.

    .venv/bin/python bench/rm_distributed.py --train-pairs 256 --eval-pairs 200 --steps 30

Both runs train the tiny random Gemma-2 of configs/rm/tiny-gemma2.yaml on the same hh-rlhf pairs with the
sequential sampler, so each optimizer step sees the same 16 pairs in the same 4 micro-batches of 4: 1 process x 4
accumulation steps, or 2 processes x 2 accumulation steps (configs/accelerate/cpu-ddp.yaml; rank r runs micro-batches
r and r + 2). Equal micro-batches keep padding equal, so the ratio measures the distributed path itself (a 1-process
batch of 16 pads every sequence to the longest of 16 and is several times slower). Training tokens/s = real
(non-padding) tokens over all ranks / train_runtime. Every process gets one thread (OMP_NUM_THREADS=1, as torchrun
sets for each rank), so the ratio is the scaling from 1 to 2 cores (ideal 2x) minus the overhead of the gloo
all-reduce of the 16.9M gradients every step; with 2 threads, a lone process on a loaded 2-core machine measured
5.7x slower than the 2 ranks (OpenMP threads spinning on busy cores), which says nothing about DDP. The held-out
accuracy of the two RMs, scored in this process, should agree within 1 point.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import record
from bench.rm_common import HH_RLHF

TINY_CONFIG = REPO_ROOT / "configs" / "rm" / "tiny-gemma2.yaml"
CPU_DDP = REPO_ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"
#: Micro-batches per optimizer step, in both runs: each process runs the same micro-batches (same padding).
MICRO_BATCHES = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(processes: int, output: Path, train_data: Path, eval_data: Path, steps: int, global_batch: int) -> dict:
    """One `turnwise rm train` run; the TrainResult it wrote to turnwise_rm.json."""
    per_device = global_batch // MICRO_BATCHES
    accumulation = MICRO_BATCHES // processes
    args = ["rm", "train", "--config", str(TINY_CONFIG), "--train_data", str(train_data), "--eval_data",
            str(eval_data), "--skip_invalid_rows", "true", "--output_dir", str(output), "--max_steps", str(steps),
            "--train_sampling_strategy", "sequential", "--per_device_train_batch_size", str(per_device),
            "--gradient_accumulation_steps", str(accumulation), "--logging_steps", str(steps),
            "--use_cpu", "true", "--disable_tqdm", "true"]
    if processes == 1:
        command = [sys.executable, "-m", "app.cli", *args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_DDP),
                   "--num_processes", str(processes), "--main_process_port", str(free_port()), "-m", "app.cli",
                   *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}  # one core per process
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((output / "turnwise_rm.json").read_text(encoding="utf-8"))["result"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-pairs", type=int, default=256)
    parser.add_argument("--eval-pairs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--global-batch", type=int, default=16,
                        help=f"pairs per optimizer step (a multiple of {MICRO_BATCHES})")
    args = parser.parse_args()

    from rm.data import load_preference_pairs
    from rm.evaluate import bootstrap_accuracy, pair_outcomes
    from rm.model import RewardModel

    with gzip.open(HH_RLHF, "rt", encoding="utf-8") as handle:
        rows = list(itertools.islice(handle, args.train_pairs + args.eval_pairs))
    with tempfile.TemporaryDirectory() as tmp:
        train_data, eval_data = Path(tmp) / "train.jsonl", Path(tmp) / "eval.jsonl"
        train_data.write_text("".join(rows[:args.train_pairs]), encoding="utf-8")
        eval_data.write_text("".join(rows[args.train_pairs:]), encoding="utf-8")
        pairs = load_preference_pairs(str(eval_data), skip_invalid=True)
        results, accuracy = {}, {}
        for processes in (1, 2):
            output = Path(tmp) / f"rm-{processes}"
            results[processes] = train(processes, output, train_data, eval_data, args.steps, args.global_batch)
            scores = RewardModel.load(output, device="cpu").score_pairs(pairs)
            accuracy[processes] = bootstrap_accuracy(pair_outcomes([c for c, _ in scores], [r for _, r in scores]))

    speed = {n: r["train_tokens"] / r["train_metrics"]["train_runtime"] for n, r in results.items()}
    ratio = speed[2] / speed[1]
    difference = (accuracy[2].accuracy - accuracy[1].accuracy) * 100
    losses = {n: r["train_metrics"]["train_loss"] for n, r in results.items()}
    print(f"tokens/s: 2 processes {speed[2]:.0f}, 1 process {speed[1]:.0f} ({ratio:.2f}x)")
    print(f"held-out accuracy on {len(pairs)} pairs: 2 processes {accuracy[2].accuracy:.4f}, "
          f"1 process {accuracy[1].accuracy:.4f} ({difference:+.2f} points); "
          f"train loss {losses[2]:.4f} vs {losses[1]:.4f}")
    setup = f"{args.steps} steps x {args.global_batch} pairs, tiny Gemma-2, hh-rlhf"
    record(f"RM training tokens/s, 2 CPU processes (gloo DDP) vs 1, 1 thread each, {setup}",
           baseline="1 process, same global batch and micro-batches", ratio=round(ratio, 3),
           target="none (documents the scaling on a 2-core CPU; ideal 2x)", met=None,
           details={"summary": f"{speed[2]:.0f} vs {speed[1]:.0f} tokens/s", "tokens_per_s_2": speed[2],
                    "tokens_per_s_1": speed[1], "train_tokens": {n: r["train_tokens"] for n, r in results.items()},
                    "train_runtime_s": {n: r["train_metrics"]["train_runtime"] for n, r in results.items()}})
    record(f"RM held-out accuracy, 2 CPU processes (gloo DDP) vs 1, {setup}", baseline="1 process, same global batch",
           ratio=round(difference, 2), unit="points", target="within 1 point", met=abs(difference) <= 1.0,
           details={"summary": f"{accuracy[2].accuracy:.4f} vs {accuracy[1].accuracy:.4f} on {len(pairs)} pairs; "
                               f"train loss {losses[2]:.4f} vs {losses[1]:.4f}"})


if __name__ == "__main__":
    main()
