"""Helpers for tests/distributed: a real-data slice, `accelerate launch` command lines, the rank probe's records."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_DIR = Path(__file__).resolve().parent / "probe"
TINY_CONFIG = REPO_ROOT / "configs" / "rm" / "tiny-gemma2.yaml"
CPU_DDP = REPO_ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"
HH_FILE = "preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz"


def write_hh_slice(shared_data: Path, directory: Path, train_rows: int, eval_rows: int) -> tuple[Path, Path]:
    """The first `train_rows` hh-rlhf rows as training data and the next `eval_rows` as held-out data."""
    with gzip.open(shared_data / HH_FILE, "rt", encoding="utf-8") as handle:
        rows = [line for line in itertools.islice(handle, train_rows + eval_rows)]
    directory.mkdir(parents=True, exist_ok=True)
    train, held_out = directory / "train.jsonl", directory / "eval.jsonl"
    train.write_text("".join(rows[:train_rows]), encoding="utf-8")
    held_out.write_text("".join(rows[train_rows:]), encoding="utf-8")
    return train, held_out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_command(config_file: Path, port: int, train_args: list[str]) -> list[str]:
    """`accelerate launch --config_file F -m app.cli rm train ...` (the README's module entry)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--main_process_port", str(port), "-m", "app.cli", "rm", "train", *train_args]


def single_command(train_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "app.cli", "rm", "train", *train_args]


def probe_env(records: Path, watch: Path, fail_rank: int | None = None) -> dict[str, str]:
    """The environment that loads tests/distributed/probe/sitecustomize.py into every training process."""
    records.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROBE_DIR), str(REPO_ROOT)]),
           "TURNWISE_PROBE_DIR": str(records), "TURNWISE_PROBE_WATCH": str(watch), "OMP_NUM_THREADS": "1"}
    env.pop("TURNWISE_PROBE_FAIL_RANK", None)
    if fail_rank is not None:
        env["TURNWISE_PROBE_FAIL_RANK"] = str(fail_rank)
    return env


def run(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "10", *command], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          check=False, timeout=timeout)


@dataclass
class ProbeRecords:
    """What the probe saw: per rank, the training micro-batches by step and the files opened for writing."""

    batches: dict[int, dict[int, list[int]]]   # rank -> global step -> pair hashes (all micro-batches of it)
    writes: dict[int, list[str]]               # rank -> paths, in order

    @classmethod
    def read(cls, directory: Path) -> ProbeRecords:
        batches: dict[int, dict[int, list[int]]] = {}
        writes: dict[int, list[str]] = {}
        for path in sorted(directory.glob("rank*.jsonl")):
            rank = int(path.stem.removeprefix("rank"))
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry["kind"] == "batch":
                    batches.setdefault(rank, {}).setdefault(entry["step"], []).extend(entry["pairs"])
                else:
                    writes.setdefault(rank, []).append(entry["path"])
        return cls(batches, writes)
