"""`generate coevol` as a resumable job: instruction data in, refined conversations out, with a refinement report.

Files of a run on OUT:
    OUT                    one refined conversation per input (canonical `{id, messages, meta}`; every turn's
                           iterations, suggestions, both judge orders and the merged decision, acceptance,
                           truncated edits, RM scores before/after per turn and per accepted edit, and usage in
                           meta.coevol / meta.usage). Rerunning the same command skips finished ids.
    OUT.summary.json       the runner's summary, plus `coevol`: acceptance rate per iteration, the RM score
                           delta distribution per turn and the mean change over accepted edits, over every record
                           in OUT.
    OUT.errors.jsonl       inputs that failed.
    OUT.fingerprint.json   the settings OUT was written with; a rerun with other settings is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from chat.agents import count_usage
from chat.backends import configured_backends
from chat.conversation import Conversation, PreferencePair
from chat.runner import (FilteredRunResult, backend_identities, check_settings, claim_output, format_summary,
                         iter_records, run_jobs, summary_path, write_json_atomic)
from generate.coevol.algorithm import CoevolBackends, CoevolResult, refinable_turns, refine_conversation
from generate.coevol.config import CoevolConfig
from generate.run_settings import generator_settings
from generate.seeds import read_seed_records
from rm.scorer import optional_scorer


def coevol_inputs(path: str | Path, config: CoevolConfig, counters: Counter) -> Iterator[Conversation]:
    """Conversations with at least one assistant turn (Alpaca, ShareGPT, canonical; a pair gives its chosen side);
    others are skipped and counted as `inputs_without_response`."""
    for record in read_seed_records(path, format=config.input_format, on_error=config.input_on_error,
                                    counters=counters):
        conversation = record.chosen if isinstance(record, PreferencePair) else record
        if not isinstance(conversation, Conversation) or not refinable_turns(conversation):
            counters["inputs_without_response"] += 1
            continue
        yield conversation


def count_refinement(counters: Counter, result: CoevolResult) -> None:
    """Per-run counters: turns, changed turns, stop reasons, iterations run and accepted by number."""
    count_usage(counters, result.usage)
    counters["reasks"] += result.reasks
    counters["conversations"] += 1
    for turn in result.turns:
        counters["turns"] += 1
        counters["turns_changed"] += turn.final != turn.original
        counters[f"stop_{turn.stop_reason}"] += 1
        for iteration in turn.iterations:
            counters[f"iteration_{iteration['iteration']}_run"] += 1
            counters[f"iteration_{iteration['iteration']}_accepted"] += bool(iteration["accepted"])


def coevol_report(output: str | Path) -> dict[str, Any]:
    """Over every record in `output`: acceptance rate per iteration (accepted / iterations run, where a run
    iteration is one that started), changed-turn rate, stop reasons, the RM score delta distribution per turn
    and the mean RM score change over accepted edits (docs/methods.md, CoEvol step 6)."""
    run: Counter = Counter()
    accepted: Counter = Counter()
    stops: Counter = Counter()
    deltas: list[float] = []
    edit_deltas: list[float] = []
    turns = changed = 0
    for row in iter_records(output):
        for turn in row.get("meta", {}).get("coevol", {}).get("turns", []):
            turns += 1
            changed += bool(turn.get("changed"))
            stops[turn["stop_reason"]] += 1
            for iteration in turn["iterations"]:
                run[iteration["iteration"]] += 1
                accepted[iteration["iteration"]] += bool(iteration["accepted"])
                if iteration["accepted"] and iteration.get("rm_delta") is not None:
                    edit_deltas.append(float(iteration["rm_delta"]))
            if turn.get("rm_delta") is not None:
                deltas.append(float(turn["rm_delta"]))
    report: dict[str, Any] = {
        "turns": turns, "changed_turns": changed, "stop_reasons": dict(sorted(stops.items())),
        "acceptance_by_iteration": {str(k): {"run": run[k], "accepted": accepted[k],
                                             "rate": accepted[k] / run[k]} for k in sorted(run)},
    }
    if deltas:
        values = np.asarray(deltas)
        report["rm_delta"] = {"n": len(deltas), "mean": float(values.mean()), "std": float(values.std()),
                              "min": float(values.min()), "p25": float(np.percentile(values, 25)),
                              "median": float(np.median(values)), "p75": float(np.percentile(values, 75)),
                              "max": float(values.max()), "positive": int((values > 0).sum()),
                              "zero": int((values == 0).sum()), "negative": int((values < 0).sum())}
    if edit_deltas:
        report["rm_delta_accepted_edits"] = {"n": len(edit_deltas), "mean": float(np.mean(edit_deltas))}
    return report


async def run_coevol_async(input_path: str | Path, output: str | Path, config: CoevolConfig, *,
                           backends: CoevolBackends | None = None, rm: Any = None, progress: bool = True,
                           handle_sigint: bool = True, overwrite: bool = False) -> FilteredRunResult:
    """Refine every conversation of `input_path` into `output` (see the module docstring). `backends` and `rm`
    (any object with `score`) override `config.backends` / `config.rm`; what is built here is closed here.
    An `output` written with other settings is refused unless `overwrite` (which starts it over)."""
    output = Path(output)
    counters: Counter = Counter()
    # every input is read first: a bad row fails before any model is loaded, any LLM call or any output
    inputs = list(coevol_inputs(input_path, config, counters))
    scorer = optional_scorer(rm, config.rm, config.rm_device)
    if not overwrite:          # refused before any model is loaded; the backends' identities are checked next
        check_settings(output, generator_settings(config))
    async with configured_backends(config.backends, build=backends is None) as (built, ledger):
        roles = backends or CoevolBackends.from_roles(built, llm_judge=config.judge == "llm")
        claim_output(output, {**generator_settings(config), **backend_identities(roles)}, overwrite=overwrite)

        async def worker(conversation: Conversation) -> dict[str, Any]:
            result = await refine_conversation(conversation, roles, config, scorer)
            count_refinement(counters, result)
            return result.conversation.to_dict()

        summary = await run_jobs(inputs, worker, output,
                                 item_id=lambda conversation: conversation.id, concurrency=config.concurrency,
                                 ledger=ledger, counters=counters, description="generate coevol",
                                 progress=progress, limit=config.limit, input_name=str(input_path),
                                 handle_sigint=handle_sigint)
    counters["kept"] = summary.done
    report = coevol_report(output)
    written = json.loads(summary_path(output).read_text(encoding="utf-8"))
    write_json_atomic(summary_path(output), {**written, "coevol": report})
    return FilteredRunResult(summary, output, sum(1 for _ in iter_records(output)), counters)


def run_coevol(input_path: str | Path, output: str | Path, config: CoevolConfig, **kwargs: Any) -> FilteredRunResult:
    """Synchronous `run_coevol_async`."""
    return asyncio.run(run_coevol_async(input_path, output, config, **kwargs))


def format_coevol_report(report: dict[str, Any]) -> str:
    """The lines the CLI prints after the runner's summary."""
    lines = [f"turns refined: {report['turns']}; changed: {report['changed_turns']}; stop reasons: "
             + (", ".join(f"{reason} {count}" for reason, count in report["stop_reasons"].items()) or "-")]
    for k, row in report["acceptance_by_iteration"].items():
        lines.append(f"iteration {k}: {row['accepted']}/{row['run']} edits accepted ({row['rate']:.0%})")
    if "rm_delta" in report:
        d = report["rm_delta"]
        lines.append(f"RM score delta (after - before) over {d['n']} turns: mean {d['mean']:+.3f}, median "
                     f"{d['median']:+.3f}, min {d['min']:+.3f}, max {d['max']:+.3f}; {d['positive']} up, "
                     f"{d['zero']} same, {d['negative']} down")
    if "rm_delta_accepted_edits" in report:
        e = report["rm_delta_accepted_edits"]
        lines.append(f"RM score change per accepted edit over {e['n']} edits: mean {e['mean']:+.3f}")
    return "\n".join(lines)


def format_coevol_run(result: FilteredRunResult, output: str | Path) -> str:
    """What the CLI prints after a run: the runner's summary, then the refinement report of every record in OUT."""
    return f"{format_summary(result.summary)}\n{format_coevol_report(coevol_report(output))}"
