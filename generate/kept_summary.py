"""The kept/dropped lines the CLI prints after the runner's summary of a generator that keeps or drops items."""

from __future__ import annotations

from chat.runner import FilteredRunResult, format_summary


def format_generate_summary(result: FilteredRunResult, what: str) -> str:
    """The generator-specific lines the CLI prints after the runner's summary."""
    dropped = result.dropped
    lines = [f"{what} kept this run: {result.kept}; dropped: {sum(dropped.values())}"
             + (f" ({', '.join(f'{reason} {count}' for reason, count in dropped.items())})" if dropped else "")]
    cost = result.per_kept()
    if cost is not None:
        lines.append(f"per kept {what.rstrip('s')}: {cost['llm_calls']:.2f} LLM calls, {cost['tokens']:.0f} tokens")
    lines.append(f"{result.kept_total} {what} in {result.output}")
    return "\n".join(lines)


def format_filtered_run(result: FilteredRunResult, what: str) -> str:
    """The runner's summary, then the kept/dropped lines of `format_generate_summary`."""
    return f"{format_summary(result.summary)}\n{format_generate_summary(result, what)}"
