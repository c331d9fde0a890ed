"""`generate sedi` as a resumable job: seed tasks in, iterations of SeDi-Instruct (or Self-Instruct) out.

Files of a run on OUT:
    OUT                    kept (instruction, response) pairs as canonical conversations `{id, messages, meta}` with
                           provenance in meta (seed ids, iteration, RM score, nearest pool neighbour, batch).
    OUT.iterations.jsonl   the runner's sink: one line per finished iteration (its counters, the seeds retired
                           and promoted, the offspring scores); a resumed run rebuilds its pools from both files
                           and redoes only unfinished iterations.
    OUT.fingerprint.json   the settings OUT was written with; a rerun with other settings is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from chat.backends import configured_backends
from chat.errors import ConfigError
from chat.runner import (FilteredRunResult, JsonlSink, backend_identities, check_settings, claim_output, encode_record,
                         read_records, run_jobs)
from generate.diversity import BatchAssembler, MiniLMEmbedder
from generate.run_settings import generator_settings
from generate.sedi.algorithm import SediBackends, SediRun, SediState, pair_record
from generate.sedi.config import SediConfig
from generate.seeds import SeedTask, read_seed_records, seed_tasks
from rm.scorer import optional_scorer

logger = logging.getLogger(__name__)


def iteration_log_path(output: str | Path) -> Path:
    """`OUT.iterations.jsonl`: one line per finished iteration (the runner's sink)."""
    return Path(f"{output}.iterations.jsonl")


def restore_state(state: SediState, output: Path, config: SediConfig, embedder: Any) -> None:
    """A resumed run: the pools as the finished iterations left them (OUT and OUT.iterations.jsonl)."""
    logs = {row["iteration"]: row for row in read_records(iteration_log_path(output))}
    # records of an iteration killed before its log line was written are redone (and not appended twice)
    records = [row for row in read_records(output) if row.get("meta", {}).get("iteration") in logs]
    members: dict[int, list[tuple[str, str, Any]]] = defaultdict(list)
    by_id = {}
    texts = [row["meta"]["instruction"] for row in records]
    vectors = embedder.encode(texts) if embedder is not None and texts else None
    for index, row in enumerate(records):
        meta = row["meta"]
        task = SeedTask(row["id"], meta["instruction"], row["messages"][-1]["content"])
        by_id[row["id"]] = (task, meta)
        state.pool.add(task.instruction, task.id)
        state.machine.append(task)
        if meta.get("batch") is not None:
            members[meta["batch"]].append((task.id, task.instruction, None if vectors is None else vectors[index]))
    if state.batches is not None:
        state.batches.restore(members)
    for number in sorted(logs):
        log = logs[number]
        for seed_id, scores in log.get("offspring_scores", {}).items():
            state.offspring_scores[seed_id].extend(scores)
        state.retired.update(log.get("retired", []))
        for candidate_id in log.get("promoted", []):
            if candidate_id in by_id:
                state.seeds[candidate_id] = by_id[candidate_id][0]


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
    if config.mode == "sedi" and scorer is None:
        logger.warning("sedi mode without an RM (--rm): no feedback on the seed pool, no RM filter")
    sedi = config.mode == "sedi"
    if sedi and config.batch_similarity == "embedding" and embedder is None:
        embedder = MiniLMEmbedder()
    state = SediState({task.id: task for task in tasks})
    if sedi:
        state.batches = BatchAssembler(config.batch_size, config.batch_threshold, config.open_batches,
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
        restore_state(state, output, config, embedder if sedi and config.batch_similarity == "embedding" else None)
        sedi_run = SediRun(state, roles, config, scorer, embedder, counters)
        with JsonlSink(output) as kept_sink:
            async def worker(item: dict[str, Any]) -> dict[str, Any]:
                kept, log = await sedi_run.iteration(item["iteration"])
                for candidate in kept:
                    if candidate.id not in kept_sink.finished_ids:
                        kept_sink.append(candidate.id, encode_record(pair_record(candidate, config, item["iteration"])))
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
