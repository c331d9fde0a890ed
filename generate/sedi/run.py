"""`generate sedi` as a resumable job: seed tasks in, iterations of SeDi-Instruct (or Self-Instruct) out.

Files of a run on OUT:
    OUT                    kept (instruction, response) pairs as canonical conversations `{id, messages, meta}` with
                           provenance in meta (seed ids, iteration, RM score, nearest pool neighbour); in sedi mode
                           written batch by batch as batches close (meta batch_id, position, written_iteration,
                           waited, response_loss, feedback_score, feedback_thresholds), so that a reader in file
                           order sees the training batches.
    OUT.iterations.jsonl   the runner's sink: one line per finished iteration (its counters, the seeds retired
                           and promoted, the offspring scores, the feedback thresholds and, in sedi mode, the open
                           batches' kept members and the pending pool); a resumed run rebuilds its pools from both
                           files and redoes only unfinished iterations.
    OUT.fingerprint.json   the settings OUT was written with; a rerun with other settings is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from chat.backends import configured_backends
from chat.errors import ConfigError
from chat.runner import (FilteredRunResult, JsonlSink, backend_identities, check_settings, claim_output, encode_record,
                         read_records, run_jobs)
from generate.diversity import MiniLMEmbedder
from generate.kept_summary import format_filtered_run
from generate.run_settings import generator_settings
from generate.sedi.algorithm import Candidate, SediBackends, SediRun, SediState
from generate.sedi.batches import TrainingBatches
from generate.sedi.config import SediConfig
from generate.sedi.feedback import FeedbackThresholds
from generate.seeds import SeedTask, read_seed_records, seed_tasks
from rm.scorer import optional_scorer

logger = logging.getLogger(__name__)


def iteration_log_path(output: str | Path) -> Path:
    """`OUT.iterations.jsonl`: one line per finished iteration (the runner's sink)."""
    return Path(f"{output}.iterations.jsonl")


def restore_state(state: SediState, output: Path, embedder: Any) -> None:
    """A resumed run: the pools as the finished iterations left them (OUT and OUT.iterations.jsonl): the written
    pairs, and from the last log line the feedback thresholds, the open batches' kept members and the pending pool."""
    logs = {row["iteration"]: row for row in read_records(iteration_log_path(output))}
    # records of an iteration killed before its log line was written are redone (and not appended twice)
    records = [row for row in read_records(output)
               if row.get("meta", {}).get("written_iteration", row.get("meta", {}).get("iteration")) in logs]
    last = logs[max(logs)] if logs else {}
    waiting = {int(number): [Candidate(**row) for row in rows]
               for number, rows in last.get("open_batches", {}).items()}
    pending = [Candidate(**row) for row in last.get("pending", [])]
    written = [SeedTask(row["id"], row["meta"]["instruction"], row["messages"][-1]["content"]) for row in records]
    members = [candidate for rows in waiting.values() for candidate in rows]
    kept = written + [SeedTask(c.id, c.instruction, c.response) for c in members]
    for task in kept:
        state.pool.add(task.instruction, task.id)
    for candidate in pending:
        state.pool.add(candidate.instruction, candidate.id)
    state.add_machine(kept)
    state.waiting = {candidate.id: candidate for candidate in members}
    state.pending = pending
    if last.get("thresholds") is not None:
        state.thresholds = FeedbackThresholds.from_dict(last["thresholds"])
    if state.batches is not None and logs:
        vectors = iter(embedder.encode([c.instruction for c in members]) if embedder is not None and members else [])
        state.batches.restore_open({number: [(c.id, c.instruction, next(vectors, None)) for c in rows]
                                    for number, rows in sorted(waiting.items())}, last.get("batches", 0))
    by_id = {task.id: task for task in kept}
    for number in sorted(logs):
        log = logs[number]
        for seed_id, scores in log.get("offspring_scores", {}).items():
            state.offspring_scores[seed_id].extend(scores)
        state.retired.update(log.get("retired", []))
        for candidate_id in log.get("promoted", []):
            if candidate_id in by_id:
                state.seeds[candidate_id] = by_id[candidate_id]


async def run_sedi_async(input_path: str | Path, output: str | Path, config: SediConfig, *,
                         backends: SediBackends | None = None, rm: Any = None, embedder: Any = None,
                         progress: bool = True, handle_sigint: bool = True,
                         overwrite: bool = False) -> FilteredRunResult:
    """Run `config.iterations` iterations from the seed tasks of `input_path` into `output` (module docstring).

    `backends`, `rm` (score/score_turns) and `embedder` (encode(texts) -> unit vectors) override what
    `config` names (tests pass scripted ones); backends built here are closed here. An `output` written with
    other settings is refused unless `overwrite` (which starts it over).
    """
    output = Path(output)
    counters: Counter = Counter()
    tasks = seed_tasks(read_seed_records(input_path, format=config.input_format, on_error=config.input_on_error,
                                         counters=counters), counters)
    if config.limit is not None:
        tasks = tasks[:config.limit]
    if not tasks:
        raise ConfigError(f"{input_path}: no seed tasks")
    scorer = optional_scorer(rm, config.rm, config.rm_device)
    if config.mode == "sedi" and config.feedback_signal == "rm" and scorer is None:
        logger.warning("sedi mode with feedback_signal rm but no RM (--rm): no feedback on the seed pool")
    sedi = config.mode == "sedi"
    if sedi and config.batch_similarity == "embedding" and embedder is None:
        embedder = MiniLMEmbedder()
    state = SediState({task.id: task for task in tasks})
    if sedi:
        state.batches = TrainingBatches(config.batch_size, config.batch_threshold, config.open_batches,
                                       config.batch_similarity)
    # more iterations extend a run like a higher --limit: the finished ones stay valid
    settings, sinks = generator_settings(config, knobs=("iterations",)), ("", ".iterations.jsonl")
    if not overwrite:          # refused before any model is loaded; the backends' identities are checked next
        check_settings(output, settings, sinks=sinks)
    async with configured_backends(config.backends, build=backends is None) as (built, ledger):
        roles = backends or SediBackends.from_roles(built)
        claim_output(output, {**settings, **backend_identities(roles)}, overwrite=overwrite, sinks=sinks)
        for task in tasks:
            state.pool.add(task.instruction, task.id)
        restore_state(state, output, embedder if sedi and config.batch_similarity == "embedding" else None)
        sedi_run = SediRun(state, roles, config, scorer, embedder, counters)
        with JsonlSink(output) as kept_sink:
            async def worker(item: dict[str, Any]) -> dict[str, Any]:
                records, log = await sedi_run.iteration(item["iteration"])
                for record in records:
                    if record["id"] not in kept_sink.finished_ids:
                        kept_sink.append(record["id"], encode_record(record))
                return log

            items = [{"id": f"iteration-{number}", "iteration": number} for number in range(config.iterations)]
            summary = await run_jobs(items, worker, iteration_log_path(output), concurrency=1,
                                     ledger=ledger, counters=counters,
                                     description=f"generate sedi ({config.mode})", progress=progress,
                                     input_name=str(input_path), handle_sigint=handle_sigint)
            kept_total = len(kept_sink.finished_ids)
    return FilteredRunResult(summary, output, kept_total, counters)


def run_sedi(input_path: str | Path, output: str | Path, config: SediConfig, **kwargs: Any) -> FilteredRunResult:
    """Synchronous `run_sedi_async`."""
    return asyncio.run(run_sedi_async(input_path, output, config, **kwargs))


def format_sedi_run(result: FilteredRunResult, output: str | Path) -> str:
    """The CLI report: the runner's summary and kept/dropped lines, then (sedi mode) the batches and the pending
    pool, and the feedback thresholds the run applied (from the last line of OUT.iterations.jsonl)."""
    lines = [format_filtered_run(result, "instructions")]
    logs = read_records(iteration_log_path(output))
    last = logs[-1] if logs else {}
    counters = result.counters
    if "batches" in last:
        lines.append(f"batches: {counters['batches_written']} written this run, {len(last['open_batches'])} open; "
                     f"instructions waited for a batch: {counters['batch_waiting']}, placed later: "
                     f"{counters['batch_placed_later']}, still pending: {len(last['pending'])}")
    thresholds = last.get("thresholds")
    if thresholds is not None:
        keep = "none" if thresholds["keep"] is None else f"{thresholds['keep']:.4g}"
        origin = (f"quantiles of {thresholds['seed_scores']} seed scores (mean {thresholds['seed_mean']:.4g})"
                  if thresholds["source"] == "seed_quantiles" else "absolute")
        lines.append(f"feedback ({thresholds['signal']}, {origin}): retire < {thresholds['retire']:.4g}, "
                     f"promote >= {thresholds['promote']:.4g}, keep >= {keep}")
    return "\n".join(lines)
