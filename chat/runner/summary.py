"""What one run did: RunSummary (written to `<output>.summary.json`) and its text form for the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from chat.runner.sink import errors_path

#: Exit code of a command whose run was interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Exit code of a command whose run finished but left items failed (listed in `<output>.errors.jsonl`).
EXIT_ITEMS_FAILED = 1


@dataclass
class RunSummary:
    """Counts of one run of `run_jobs`.

    output: the sink path. total: input items considered (after `limit`; for a lazy input that
        was not read to the end, the items read so far). done: records written by this run.
    skipped_existing: input items already in the sink when the run started. errors: items that
        failed in this run (see `<output>.errors.jsonl`; they are retried by the next run).
    interrupted: stopped early by Ctrl-C; rerunning the same command resumes.
    elapsed_s: wall time. usage: `UsageLedger.to_dict()` of this run, or {}.
    extra: the caller's job-specific counters. description: the job's name for humans.
    """

    output: str
    total: int
    done: int
    skipped_existing: int
    errors: int
    interrupted: bool
    elapsed_s: float
    usage: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def pending(self) -> int:
        """Items of the input still without a record (failed, or not reached before an interrupt)."""
        return max(self.total - self.done - self.skipped_existing, 0)

    @property
    def exit_code(self) -> int:
        """What a CLI exits with after this run: 130 when interrupted by Ctrl-C, 1 when items failed
        (after the backends' retries; rerunning retries them), else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_ITEMS_FAILED if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pending": self.pending}


def format_summary(summary: RunSummary) -> str:
    """A few lines for the CLI to print at the end of a job."""
    name = f"{summary.description}: " if summary.description else ""
    rate = summary.done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    lines = [f"{name}{summary.done} new records, {summary.skipped_existing} already done, "
             f"{summary.errors} failed, {summary.pending} pending of {summary.total} "
             f"in {summary.elapsed_s:.1f} s ({rate:.2f} records/s) -> {summary.output}"]
    total_usage = summary.usage.get("total") if summary.usage else None
    if total_usage:
        lines.append(f"LLM: {total_usage['calls']} calls, {total_usage['cache_hits']} cache hits, "
                     f"{total_usage['prompt_tokens']} prompt + {total_usage['completion_tokens']} completion tokens, "
                     f"{total_usage['errors']} failed calls")
        by_role = summary.usage.get("by_role", {})
        if len(by_role) > 1:
            for role, usage in by_role.items():
                lines.append(f"  {role}: {usage['calls']} calls, {usage['cache_hits']} cache hits, "
                             f"{usage['prompt_tokens']}+{usage['completion_tokens']} tokens")
    if summary.extra:
        lines.append("counters: " + ", ".join(f"{key}={value}" for key, value in summary.extra.items()))
    if summary.errors:
        lines.append(f"failures are listed in {errors_path(summary.output)}; rerun the same command to retry them")
    if summary.interrupted:
        lines.append("interrupted: rerun the same command to resume")
    return "\n".join(lines)
