"""SeDi-Instruct and its Self-Instruct baseline: one iteration's steps, from example sampling to the RM feedback on
the seed pool (docs/methods.md, SeDi-Instruct)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from chat.agents import ParseError, StepCaller, count_usage, derive_seed
from chat.backends.base import ChatBackend, ResponseFormat
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from generate.agents import DEGENERATE_TEXT, first_degenerate
from generate.diversity import BatchAssembler
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls
from generate.rouge import RougePool
from generate.sedi.config import SediConfig
from generate.sedi.steps import (format_generation_input, format_response_input, generation_format,
                                 instruction_filter_reason, parse_generated_instructions, parse_response)
from generate.seeds import SeedTask
from rm.scorer import LockedScorer

logger = logging.getLogger(__name__)


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

    async def iteration(self, number: int) -> tuple[list[Candidate], dict[str, Any]]:
        """One iteration (docs/methods.md, SeDi steps 1-6): generate (a JSON batch of tasks per request), filter
        (heuristics, the shared degenerate-text filter, the pool and, in sedi mode, diverse batches), answer (a
        degenerate response drops the pair), score with the RM, and (sedi mode) feed the scores back into the seed
        pool."""
        config, state, counters = self.config, self.state, Counter()
        # one call per step: the seed of each call derives from the run's seed and the call's label
        step = StepCaller(config.temperature, config.max_tokens, config.seed, max_reasks=0)
        rng = random.Random(derive_seed(config.seed, f"iteration/{number}"))
        candidates = await self.generate_instructions(number, step, rng, counters)
        accepted = self.filter_instructions(candidates, counters)
        answered = await self.answer_instructions(accepted, step, counters)
        kept = await self.score_and_keep(answered, counters)
        retired, promoted, offspring = (apply_feedback(state, answered, kept, config)
                                        if config.mode == "sedi" and self.rm is not None else ([], [], {}))
        counters["seeds_retired"] += len(retired)
        counters["seeds_promoted"] += len(promoted)
        state.machine.extend(SeedTask(c.id, c.instruction, c.response) for c in kept)
        count_usage(counters, step.usage.to_dict())
        self.counters.update(counters)
        log = {"iteration": number, "counters": dict(sorted(counters.items())), "usage": step.usage.to_dict(),
               "retired": retired, "promoted": promoted,
               "offspring_scores": offspring,
               "active_seeds": len(state.active_seeds())}
        return kept, log

    async def generate_instructions(self, number: int, step: StepCaller, rng: random.Random,
                                    counters: Counter) -> list[Candidate]:
        """SeDi steps 1-2: Self-Instruct's prompt with sampled seed (+ machine) tasks, one JSON batch per request."""
        config = self.config
        shown = [sample_examples(self.state, config, rng) for _ in range(config.requests_per_iteration)]
        replies = await gather_or_cancel(*(
            self._chat(step, "generator", self.backends.generator,
                       format_generation_input([task.instruction for task in examples], config.instructions_per_call),
                       f"generate/{number}/{request}", config.temperature,
                       generation_format(config.instructions_per_call))
            for request, examples in enumerate(shown)))
        candidates = [Candidate(f"{config.mode}-{number}-{request}-{k}", instruction,
                                [task.id for task in shown[request]], request)
                      for request, reply in enumerate(replies)
                      for k, instruction in enumerate(self._instructions(reply, counters))]
        counters["generated"] += len(candidates)
        return candidates

    def filter_instructions(self, candidates: list[Candidate], counters: Counter) -> list[Candidate]:
        """SeDi steps 3-4, in request order so later candidates are checked against earlier ones: heuristics, the
        degenerate-text filter, ROUGE-L against the pool and (sedi mode) a place in a diverse batch."""
        config, state = self.config, self.state
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
        return accepted

    async def answer_instructions(self, accepted: list[Candidate], step: StepCaller,
                                  counters: Counter) -> list[Candidate]:
        """SeDi step 5: the responder answers each instruction; an empty or degenerate response drops the pair."""
        config = self.config
        responses = await gather_or_cancel(*(
            self._chat(step, "responder", self.backends.responder, format_response_input(c.instruction),
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
        return answered

    async def score_and_keep(self, answered: list[Candidate], counters: Counter) -> list[Candidate]:
        """SeDi step 6, first half: the RM scores each (instruction, response) pair; sedi mode drops the low ones."""
        config = self.config
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
        return kept

    async def _chat(self, step: StepCaller, role: str, backend: ChatBackend, messages: list[Message], label: str,
                    temperature: float, response_format: ResponseFormat | None = None) -> str:
        """One call, at most `concurrency` in flight across the iteration."""
        async with self.limit:
            completion = await step.call(role, backend, messages, label, response_format=response_format,
                                         temperature=temperature)
        return completion.text

    def _instructions(self, reply: str, counters: Counter) -> list[str]:
        """The generated instructions of one reply; an unparseable reply counts as `generation_parse_failures`."""
        try:
            return parse_generated_instructions(reply, self.config.instructions_per_call)
        except ParseError as error:
            counters["generation_parse_failures"] += 1
            logger.debug("unparseable generator reply: %s", error)
            return []

    def _unplace(self, candidate: Candidate) -> None:
        if self.state.batches is not None:
            self.state.batches.remove(candidate.id)


def expected_calls(config: SediConfig, seeds: int | None, input_tokens: float) -> ExpectedCalls:
    """`iterations x requests_per_iteration` generation calls, and a response for up to `instructions_per_call`
    instructions each (half of them on average); no re-asks (docs/methods.md, SeDi steps 2 and 5)."""
    requests = config.iterations * config.requests_per_iteration
    responses_max = requests * config.instructions_per_call
    return ExpectedCalls(requests + responses_max / 2, requests + responses_max, config.max_tokens,
                         config.seed_examples * 40,
                         f"{config.mode} {requests} generation calls + up to {responses_max} responses")
