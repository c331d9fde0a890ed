"""Runs that keep or drop each input item: the per-item outcome log and the run's kept/dropped/cost result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from chat.runner.summary import RunSummary


def seed_log_path(output: str | Path) -> Path:
    """`OUT.seeds.jsonl`: the outcome (kept or dropped, with the reason) of every finished input item.

    It is the runner's sink for generators whose kept records go to OUT itself, so a resumed run redoes
    neither kept nor dropped items."""
    return Path(f"{output}.seeds.jsonl")


@dataclass
class FilteredRunResult:
    """What one run did. `counters` holds `kept`, `dropped_<reason>`, `llm_calls` and token counts."""

    summary: RunSummary
    output: Path
    kept_total: int
    counters: Counter

    @property
    def kept(self) -> int:
        return self.counters["kept"]

    @property
    def dropped(self) -> dict[str, int]:
        """Items dropped in this run, by reason."""
        return {key.removeprefix("dropped_"): value for key, value in sorted(self.counters.items())
                if key.startswith("dropped_") and value}

    def per_kept(self) -> dict[str, float] | None:
        """LLM calls and tokens of this run (dropped items included) divided by the records it kept."""
        if not self.kept:
            return None
        tokens = self.counters["prompt_tokens"] + self.counters["completion_tokens"]
        return {"llm_calls": self.counters["llm_calls"] / self.kept, "tokens": tokens / self.kept,
                "completion_tokens": self.counters["completion_tokens"] / self.kept}
