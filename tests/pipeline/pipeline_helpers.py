"""A small valid pipeline config for unit tests (stage functions are replaced by fakes there)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


SEED_PAIRS = str(REPO_ROOT / "configs" / "demo" / "seed_pairs.jsonl")
SEED_TASKS = str(REPO_ROOT / "configs" / "demo" / "seed_tasks.jsonl")


def config_values(run_dir: Path) -> dict:
    return {
        "run_dir": str(run_dir),
        "label": "unit test",
        "backends": {"llm": {"kind": "local", "model": "embedded", "max_batch_size": 1}},
        "augment": {"seeds": SEED_PAIRS, "config": {"backends": {"simulator": "llm"}, "turns": 3, "limit": 10,
                                                    "max_tokens": 32}},
        "mix": {"original": SEED_PAIRS, "eval_fraction": 0.25},
        "rm_train": {"config": str(REPO_ROOT / "configs" / "rm" / "tiny-gemma2.yaml")},
        "judge": {"config": {"judge": "llm-pairwise", "backends": {"judge": "llm"}, "max_tokens": 16,
                             "max_reasks": 1}},
        "generate": {"seeds": SEED_TASKS,
                     "review_instruct": {"backends": {"default": "llm"}, "reviewers": 2, "rounds": 2, "limit": 5},
                     "sedi": {"backends": {"default": "llm"}, "iterations": 2, "requests_per_iteration": 3,
                              "instructions_per_call": 4}},
    }


def write_config(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path
