"""Comparing two pipeline run directories record by record (the reliability suite's notion of "same output")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.stages import EVAL_SETS

#: Record files compared between runs (JSONL, one record per id).
RECORD_FILES = ["augment/pairs.jsonl", "augment/pairs.jsonl.seeds.jsonl", "judge/llm.jsonl", "judge/rm.jsonl",
                "judge/labels.jsonl", "generate/review_instruct.jsonl", "generate/review_instruct.jsonl.seeds.jsonl",
                "generate/sedi.jsonl"]
#: rm_eval's per-pair scores: `rm_eval/<baseline|music>/<eval set>/scores.jsonl`, written only for the held-out
#: sets that have pairs, so both runs must hold the same ones.
SCORE_FILES = "rm_eval/*/*/scores.jsonl"
#: Files that must be identical (up to the run directory's path): the mixed splits, the baseline RM's training
#: split and the held-out sets rm_eval scores.
BYTE_EQUAL_FILES = ["mix/data.train.jsonl", "mix/data.eval.jsonl", "mix/data.train.original.jsonl",
                    *(f"mix/data.eval.{name}.jsonl" for name in EVAL_SETS)]


def without_usage(value: Any) -> Any:
    """A record without its usage counters: a resumed item's finished calls are cache hits, not calls."""
    if isinstance(value, dict):
        return {key: without_usage(item) for key, item in value.items() if key not in ("usage", "elapsed_s")}
    if isinstance(value, list):
        return [without_usage(item) for item in value]
    return value


def first_difference(actual: Any, expected: Any, where: str = "") -> str | None:
    """Where two records differ; floats (RM scores) may differ by 1e-5: a resumed RM judge scores the
    remaining pairs in differently padded batches."""
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return None if abs(actual - expected) <= 1e-5 * max(1.0, abs(expected)) else f"{where}: {actual} != {expected}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        if actual.keys() != expected.keys():
            return f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            found = first_difference(actual[key], expected[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return f"{where}: {len(actual)} items != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected)):
            found = first_difference(a, e, f"{where}[{index}]")
            if found:
                return found
        return None
    return None if actual == expected else f"{where}: {actual!r} != {expected!r}"


def run_text(path: Path, run_dir: Path | None) -> str:
    """A file's text with its run directory written as <RUN> (paths to stage outputs are recorded in places)."""
    text = path.read_text(encoding="utf-8")
    return text.replace(str(run_dir), "<RUN>") if run_dir is not None else text


def records(path: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """The file's records by id; every line must parse and no id may repeat."""
    by_id: dict[str, Any] = {}
    for number, line in enumerate(run_text(path, run_dir).splitlines(), 1):
        record = json.loads(line)          # a torn or corrupted line fails here
        key = json.dumps([record.get("id"), record.get("turn")])
        assert key not in by_id, f"{path}:{number}: duplicate record {key}"
        by_id[key] = without_usage(record)
    return by_id


def compare_runs(actual: Path, expected: Path) -> list[str]:
    """Every difference between two run directories' outputs (empty when they match)."""
    problems = []
    score_files = sorted(str(path.relative_to(expected)) for path in expected.glob(SCORE_FILES))
    found = sorted(str(path.relative_to(actual)) for path in actual.glob(SCORE_FILES))
    if found != score_files:
        problems.append(f"{SCORE_FILES}: {found} != {score_files}")
    if not score_files:
        problems.append(f"{SCORE_FILES}: none in {expected}")
    for name in [*RECORD_FILES, *(name for name in score_files if name in found)]:
        difference = first_difference(records(actual / name, actual), records(expected / name, expected))
        if difference:
            problems.append(f"{name}{difference}")
    problems += [f"{name}: differs" for name in BYTE_EQUAL_FILES
                 if run_text(actual / name, actual) != run_text(expected / name, expected)]
    return problems
