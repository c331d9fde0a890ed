"""SeDi-Instruct and its Self-Instruct baseline: instructions kept by pool, batch and RM filters (docs/methods.md).

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
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from chat.agents import ParseError, RoleUsage, count_usage, derive_seed
from chat.backends import configured_backends
from chat.backends.base import ChatBackend, ResponseFormat
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from chat.runner import (FilteredRunResult, JsonlSink, backend_identities, check_settings, claim_output, encode_record,
                         read_records, run_jobs)
from generate.agents import DEGENERATE_TEXT, first_degenerate
from generate.config import SediConfig
from generate.diversity import BatchAssembler, MiniLMEmbedder
from generate.prompts import PROMPT_VERSION
from generate.registry import GENERATORS
from generate.rouge import RougePool
from generate.run_settings import generator_settings
from generate.sedi_steps import (format_generation_input, format_response_input, generation_format,
                                 instruction_filter_reason, parse_generated_instructions, parse_response)
from generate.seeds import SeedTask, read_seed_records, seed_tasks
from rm.scorer import LockedScorer, optional_scorer

logger = logging.getLogger(__name__)


def iteration_log_path(output: str | Path) -> Path:
    """`OUT.iterations.jsonl`: one line per finished iteration (the runner's sink)."""
    return Path(f"{output}.iterations.jsonl")


@dataclass
class SediBackends:
    generator: ChatBackend
    responder: ChatBackend

    @classmethod
    def from_roles(cls, backends: Mapping[str, ChatBackend]) -> "SediBackends":
        try:
            return cls(backends.get("generator") or backends["default"], backends.get("responder") or backends["default"])
        except KeyError:
            raise ConfigError("backends: generator and responder need an entry each or a 'default' entry") from None


@dataclass
class Candidate:
    """A generated instruction on its way through the filters."""

    id: str
    instruction: str
    seed_ids: list[str]
    request: int
    nearest_id: str | None = None
    nearest_rouge_l: float = 0.0
    batch: int | None = None
    batch_similarity: float | None = None
    response: str = ""
    rm_score: float | None = None


@dataclass
class SediState:
    """The pools one run evolves: the seed pool (active seeds, retired ids), the ROUGE-L pool of every
    accepted instruction, the kept pairs that can serve as machine examples, batches and offspring scores."""

    seeds: dict[str, SeedTask]
    retired: set[str] = field(default_factory=set)
    pool: RougePool = field(default_factory=RougePool)
    machine: list[SeedTask] = field(default_factory=list)
    offspring_scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    batches: BatchAssembler | None = None

    def active_seeds(self) -> list[SeedTask]:
        return [task for task_id, task in self.seeds.items() if task_id not in self.retired]


def sample_examples(state: SediState, config: SediConfig, rng: random.Random) -> list[SeedTask]:
    """Self-Instruct's in-context examples: `seed_examples` from the (active) seed pool and, once there
    are generated ones, `machine_examples` of those; shuffled."""
    active = state.active_seeds()
    examples = rng.sample(active, min(config.seed_examples, len(active)))
    if state.machine and config.machine_examples:
        examples += rng.sample(state.machine, min(config.machine_examples, len(state.machine)))
    rng.shuffle(examples)
    return examples


def apply_feedback(state: SediState, scored: list[Candidate], kept: list[Candidate],
                   config: SediConfig) -> tuple[list[str], list[str], dict[str, list[float]]]:
    """SeDi's iterative feedback (docs/methods.md, SeDi step 6; the signal is the RM score): credit each scored pair's
    score (kept or dropped by the RM filter) to the seeds shown when it was generated; retire seeds with at least `min_offspring` scores whose
    mean is below `retire_threshold` (never below `seed_examples` active seeds, lowest mean first); promote
    kept pairs scoring >= `promote_threshold` into the seed pool.
    Returns (retired ids, promoted ids, this iteration's offspring scores by seed id)."""
    credited: dict[str, list[float]] = defaultdict(list)
    for candidate in scored:
        if candidate.rm_score is None:
            continue
        for seed_id in candidate.seed_ids:
            credited[seed_id].append(candidate.rm_score)
            state.offspring_scores[seed_id].append(candidate.rm_score)
    failing = sorted((float(np.mean(scores)), seed_id) for seed_id, scores in state.offspring_scores.items()
                     if seed_id in state.seeds and seed_id not in state.retired
                     and len(scores) >= config.min_offspring and np.mean(scores) < config.retire_threshold)
    room = max(len(state.active_seeds()) - config.seed_examples, 0)
    retired = [seed_id for _, seed_id in failing[:room]]
    state.retired.update(retired)
    promoted = [c.id for c in kept if c.rm_score is not None and c.rm_score >= config.promote_threshold]
    for candidate in kept:
        if candidate.id in promoted:
            state.seeds[candidate.id] = SeedTask(candidate.id, candidate.instruction, candidate.response)
    return retired, promoted, dict(credited)


def pair_record(candidate: Candidate, config: SediConfig, iteration: int) -> dict[str, Any]:
    """The output row: a canonical conversation whose meta carries the pair's provenance."""
    meta = {"generator": config.mode, "instruction": candidate.instruction, "seed_ids": candidate.seed_ids,
            "iteration": iteration, "rm_score": candidate.rm_score,
            "nearest": {"id": candidate.nearest_id, "rouge_l": round(candidate.nearest_rouge_l, 4)},
            "batch": candidate.batch, "batch_similarity": candidate.batch_similarity,
            "prompt_version": PROMPT_VERSION}
    conversation = Conversation([Message("user", candidate.instruction), Message("assistant", candidate.response)],
                                id=candidate.id, meta=meta)
    return conversation.to_dict()


class SediRun:
    """One `generate sedi` run: the state, the backends, the RM and the embedder the iterations share."""

    def __init__(self, state: SediState, backends: SediBackends, config: SediConfig,
                 rm: LockedScorer | None, embedder: Any, counters: Counter):
        self.state = state
        self.backends = backends
        self.config = config
        self.rm = rm
        self.embedder = embedder
        self.counters = counters
        self.limit = asyncio.Semaphore(config.concurrency)

    async def _chat(self, usage: RoleUsage, role: str, backend: ChatBackend, messages: list[Message], label: str,
                    temperature: float, response_format: ResponseFormat | None = None) -> str:
        async with self.limit:
            completion = await backend.chat(messages, temperature=temperature, max_tokens=self.config.max_tokens,
                                            seed=derive_seed(self.config.seed, label),
                                            response_format=response_format)
        usage.count(role, completion)
        return completion.text

    def _instructions(self, reply: str, counters: Counter) -> list[str]:
        """The generated instructions of one reply; an unparseable reply counts as `generation_parse_failures`."""
        try:
            return parse_generated_instructions(reply, self.config.instructions_per_call)
        except ParseError as error:
            counters["generation_parse_failures"] += 1
            logger.debug("unparseable generator reply: %s", error)
            return []

    async def iteration(self, number: int) -> tuple[list[Candidate], dict[str, Any]]:
        """One iteration (docs/methods.md, SeDi steps 1-6): generate (a JSON batch of tasks per request), filter
        (heuristics, the shared degenerate-text filter, the pool and, in sedi mode, diverse batches), answer (a
        degenerate response drops the pair), score with the RM, and (sedi mode) feed the scores back into the seed
        pool."""
        config, state, counters = self.config, self.state, Counter()
        usage = RoleUsage()
        rng = random.Random(derive_seed(config.seed, f"iteration/{number}"))
        # 1. instruction generation: Self-Instruct's prompt with sampled seed (+ machine) tasks
        shown = [sample_examples(state, config, rng) for _ in range(config.requests_per_iteration)]
        replies = await gather_or_cancel(*(
            self._chat(usage, "generator", self.backends.generator,
                       format_generation_input([task.instruction for task in examples], config.instructions_per_call),
                       f"generate/{number}/{request}", config.temperature,
                       generation_format(config.instructions_per_call))
            for request, examples in enumerate(shown)))
        candidates = [Candidate(f"{config.mode}-{number}-{request}-{k}", instruction,
                                [task.id for task in shown[request]], request)
                      for request, reply in enumerate(replies)
                      for k, instruction in enumerate(self._instructions(reply, counters))]
        counters["generated"] += len(candidates)
        # 2. filters, in request order so later candidates are checked against earlier ones
        vectors = (self.embedder.encode([c.instruction for c in candidates])
                   if state.batches is not None and state.batches.similarity == "embedding" else None)
        accepted: list[Candidate] = []
        for index, candidate in enumerate(candidates):
            reason = instruction_filter_reason(candidate.instruction, config.min_words, config.max_words)
            if reason is None and first_degenerate([candidate.instruction]) is not None:
                reason = DEGENERATE_TEXT
            nearest = state.pool.nearest(candidate.instruction)
            if nearest is not None:
                candidate.nearest_id, candidate.nearest_rouge_l = nearest.id, nearest.score
            if reason is None and nearest is not None and nearest.score >= config.pool_threshold:
                reason = "rouge_pool"
            if reason is None and state.batches is not None:
                placed = state.batches.place(candidate.id, candidate.instruction,
                                             None if vectors is None else vectors[index])
                if placed is None:
                    reason = "batch_similarity"
                else:
                    candidate.batch, candidate.batch_similarity = placed[0], round(placed[1], 4)
            if reason is not None:
                counters[f"dropped_{reason}"] += 1
                continue
            state.pool.add(candidate.instruction, candidate.id)
            accepted.append(candidate)
        # 3. responses
        responses = await gather_or_cancel(*(
            self._chat(usage, "responder", self.backends.responder, format_response_input(c.instruction),
                       f"respond/{c.id}", config.response_temperature) for c in accepted))
        answered: list[Candidate] = []
        for candidate, text in zip(accepted, responses):
            try:
                candidate.response = parse_response(text)
            except ParseError:
                counters["dropped_empty_response"] += 1
                self._unplace(candidate)
                continue
            if first_degenerate([candidate.response]) is not None:
                counters[f"dropped_{DEGENERATE_TEXT}"] += 1
                self._unplace(candidate)
                continue
            answered.append(candidate)
        # 4. RM scores of the (instruction, response) pairs; sedi mode drops the low ones
        if self.rm is not None and answered:
            scores = await self.rm.score([Conversation([Message("user", c.instruction), Message("assistant", c.response)])
                                          for c in answered])
            for candidate, score in zip(answered, scores):
                candidate.rm_score = score
        kept = []
        for candidate in answered:
            if (config.mode == "sedi" and config.rm_keep_threshold is not None and candidate.rm_score is not None
                    and candidate.rm_score < config.rm_keep_threshold):
                counters["dropped_rm_filter"] += 1
                self._unplace(candidate)
                continue
            kept.append(candidate)
        counters["kept"] += len(kept)
        # 5. feedback into the seed pool (sedi mode, with an RM)
        retired, promoted, offspring = (apply_feedback(state, answered, kept, config)
                                        if config.mode == "sedi" and self.rm is not None else ([], [], {}))
        counters["seeds_retired"] += len(retired)
        counters["seeds_promoted"] += len(promoted)
        state.machine.extend(SeedTask(c.id, c.instruction, c.response) for c in kept)
        count_usage(counters, usage.to_dict())
        self.counters.update(counters)
        log = {"iteration": number, "counters": dict(sorted(counters.items())), "usage": usage.to_dict(),
               "retired": retired, "promoted": promoted,
               "offspring_scores": offspring,
               "active_seeds": len(state.active_seeds())}
        return kept, log

    def _unplace(self, candidate: Candidate) -> None:
        if self.state.batches is not None:
            self.state.batches.remove(candidate.id)


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


@GENERATORS.register("sedi", "SeDi-Instruct (relaxed ROUGE-L, diverse batches, RM feedback on seeds) and its "
                             "Self-Instruct baseline mode (docs/methods.md, SeDi-Instruct)")
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
