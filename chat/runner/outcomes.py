"""Runs that keep or drop each input item: the per-item outcome log and the run's kept/dropped/cost result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from chat.runner.jobs import run_jobs
from chat.runner.sink import JsonlSink, encode_record
from chat.runner.summary import RunSummary

T = TypeVar("T")


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


async def run_filtered(items: Iterable[T], grow: Callable[[T], Awaitable[tuple[dict[str, Any] | None, dict[str, Any]]]],
                       output: str | Path, *, item_id: Callable[[T], str], kept_id: Callable[[T], str],
                       kept_key: str, counters: Counter, **run_options: Any) -> FilteredRunResult:
    """Run a generator that keeps or drops each item: kept records go to `output`, every item's outcome to
    `seed_log_path(output)` (the runner's sink), so a resumed run redoes neither kept nor dropped items.

    `grow(item)` returns (the kept record or None, the item's outcome line). An item whose record is in `output`
    but whose outcome is not (a run killed between the two writes) is logged as kept without growing it again,
    its outcome naming the record under `kept_key`. `run_options` go to `run_jobs` (concurrency, ledger, ...).
    """
    output = Path(output)
    with JsonlSink(output) as kept_sink:
        async def worker(item: T) -> dict[str, Any]:
            record_id = kept_id(item)
            if record_id in kept_sink.finished_ids:
                return {"id": item_id(item), "kept": True, kept_key: record_id}
            record, outcome = await grow(item)
            if record is not None:
                kept_sink.append(record_id, encode_record(record))
            return outcome

        summary = await run_jobs(items, worker, seed_log_path(output), item_id=item_id, counters=counters,
                                 **run_options)
        kept_total = len(kept_sink.finished_ids)
    return FilteredRunResult(summary, output, kept_total, counters)
