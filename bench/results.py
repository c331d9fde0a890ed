"""One result row per benchmark comparison, appended as JSON to $TURNWISE_BENCH_RESULTS for `bench/run_all`.

Every benchmark script prints its numbers for a human and also calls `record(...)` once per comparison:

    record("rm score_turns vs prefix scoring", baseline="score every prefix separately",
           ratio=7.29, target=">= 2.5x", met=True, details={"ours_s": 1.2, "baseline_s": 8.7})

When TURNWISE_BENCH_RESULTS is unset (a script run by hand) nothing is written.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

#: Environment variable naming the JSONL file that `record` appends to.
RESULTS_ENV = "TURNWISE_BENCH_RESULTS"


def machine() -> str:
    """A short description of the machine the numbers come from (CPU count, model, load, GPU if any)."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    described = f"{os.cpu_count()} cores, {cpu_model}"
    try:
        import torch

        if torch.cuda.is_available():
            described += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{described}; load {load:.1f}"


def record(benchmark: str, *, baseline: str, ratio: float | None, target: str, met: bool | None,
           details: dict[str, Any] | None = None, unit: str = "x") -> None:
    """Append one comparison row for `bench/run_all`. `ratio` is ours / baseline in the benchmark's direction
    (`unit` "x" for speed-ups and cost ratios, "points" for accuracy differences); `met` is None when the
    benchmark has no pass/fail target."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    row = {"benchmark": benchmark, "baseline": baseline, "ratio": ratio, "unit": unit, "target": target,
           "met": met, "machine": machine(), "details": details or {}}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")
