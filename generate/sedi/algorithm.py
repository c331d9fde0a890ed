"""SeDi-Instruct and its Self-Instruct baseline: one iteration's steps, from example sampling to the feedback on
the seed pool and the batches written to OUT (docs/methods.md, SeDi-Instruct)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from chat.agents import ParseError, StepCaller, count_usage, derive_seed
from chat.backends.base import ChatBackend, Completion, ResponseFormat
from chat.conversation import Conversation, Message
from chat.errors import ConfigError
from chat.gather import gather_or_cancel
from generate.agents import DEGENERATE_TEXT, first_degenerate
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls
from generate.rouge import RougePool
from generate.sedi.batches import TrainingBatches
from generate.sedi.config import SediConfig
from generate.sedi.feedback import (FeedbackThresholds, absolute_thresholds, apply_feedback, response_loss,
                                    seed_quantile_thresholds)
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
    """A generated instruction on its way through the filters, its batch and the feedback (the iteration log keeps
    those still waiting as `to_dict` rows)."""

    id: str
    instruction: str
    seed_ids: list[str]
    request: int
    nearest_id: str | None = None
    nearest_rouge_l: float = 0.0
    batch: int | None = None
    batch_similarity: float | None = None
    waited: bool = False
    placed_iteration: int | None = None
    response: str = ""
    response_loss: float | None = None
    rm_score: float | None = None
    feedback_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_order(task_id: str) -> tuple[int, ...]:
    """The (iteration, request, index) of a generated id `<mode>-<iteration>-<request>-<index>`."""
    return tuple(int(part) for part in task_id.rsplit("-", 3)[1:])


@dataclass
class SediState:
    """The pools one run evolves: the seed pool (active seeds, retired ids), the ROUGE-L pool of every
    accepted instruction, the kept pairs that can serve as machine examples, offspring scores, the feedback
    thresholds and (sedi mode) the batches: kept pairs `waiting` in open batches, instructions `pending` a place."""

    seeds: dict[str, SeedTask]
    retired: set[str] = field(default_factory=set)
    pool: RougePool = field(default_factory=RougePool)
    machine: list[SeedTask] = field(default_factory=list)
    offspring_scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    batches: TrainingBatches | None = None
    waiting: dict[str, Candidate] = field(default_factory=dict)
    pending: list[Candidate] = field(default_factory=list)
    thresholds: FeedbackThresholds | None = None

    def active_seeds(self) -> list[SeedTask]:
        return [task for task_id, task in self.seeds.items() if task_id not in self.retired]

    def add_machine(self, tasks: list[SeedTask]) -> None:
        """Kept pairs become machine examples, in generation order (the same after a resume)."""
        self.machine = sorted([*self.machine, *tasks], key=lambda task: machine_order(task.id))

    def batch_log(self) -> dict[str, Any]:
        """What a resumed run needs of the batches: their count, the open ones' kept members, the pending pool."""
        if self.batches is None:
            return {}
        open_batches = {str(batch.number): [self.waiting[item_id].to_dict() for item_id in batch.ids]
                        for batch in self.batches.batches if batch.number not in self.batches.closed and batch.ids}
        return {"batches": len(self.batches.batches), "open_batches": open_batches,
                "pending": [candidate.to_dict() for candidate in self.pending]}


def sample_examples(state: SediState, config: SediConfig, rng: random.Random) -> list[SeedTask]:
    """Self-Instruct's in-context examples: `seed_examples` from the (active) seed pool and, once there
    are generated ones, `machine_examples` of those; shuffled."""
    active = state.active_seeds()
    examples = rng.sample(active, min(config.seed_examples, len(active)))
    if state.machine and config.machine_examples:
        examples += rng.sample(state.machine, min(config.machine_examples, len(state.machine)))
    rng.shuffle(examples)
    return examples


def pair_record(candidate: Candidate, config: SediConfig, iteration: int, written: int,
                position: int | None = None, thresholds: FeedbackThresholds | None = None) -> dict[str, Any]:
    """The output row: a canonical conversation whose meta carries the pair's provenance, its batch (`batch_id`,
    `position` in it, the iteration `written` to OUT) and its feedback (score, signal thresholds)."""
    meta = {"generator": config.mode, "instruction": candidate.instruction, "seed_ids": candidate.seed_ids,
            "iteration": iteration, "rm_score": candidate.rm_score,
            "nearest": {"id": candidate.nearest_id, "rouge_l": round(candidate.nearest_rouge_l, 4)},
            "batch_id": candidate.batch, "position": position, "batch_similarity": candidate.batch_similarity,
            "prompt_version": PROMPT_VERSION}
    if config.mode == "sedi":
        meta.update({"written_iteration": written, "waited": candidate.waited,
                     "response_loss": candidate.response_loss, "feedback_score": candidate.feedback_score,
                     "feedback_thresholds": None if thresholds is None else thresholds.to_dict()})
    conversation = Conversation([Message("user", candidate.instruction), Message("assistant", candidate.response)],
                                id=candidate.id, meta=meta)
    return conversation.to_dict()


def generation_iteration(candidate_id: str) -> int:
    return machine_order(candidate_id)[0]


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
        self.feedback = config.mode == "sedi" and (config.feedback_signal == "loss" or rm is not None)
        if self.feedback and config.thresholds == "absolute" and state.thresholds is None:
            state.thresholds = absolute_thresholds(config)

    @property
    def logprobs(self) -> int | None:
        """`logprobs=0` (the generated tokens' own logprobs) on responder calls when the signal is the loss."""
        return 0 if self.feedback and self.config.feedback_signal == "loss" else None

    async def iteration(self, number: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One iteration (docs/methods.md, SeDi steps 1-6): (once, sedi mode) score the seed set for the feedback
        thresholds; generate (a JSON batch of tasks per request), filter (heuristics, the shared degenerate-text
        filter, the pool and, in sedi mode, a place in a diverse batch or the pending pool), answer (a degenerate
        response drops the pair), score, and (sedi mode) feed the scores back into the seed pool and write the
        batches that closed. Returns the records to append to OUT and the iteration's log line."""
        config, state, counters = self.config, self.state, Counter()
        # one call per step: the seed of each call derives from the run's seed and the call's label
        step = StepCaller(config.temperature, config.max_tokens, config.seed, max_reasks=0)
        rng = random.Random(derive_seed(config.seed, f"iteration/{number}"))
        calibrated = self.feedback and state.thresholds is None
        if calibrated:
            state.thresholds = await self.calibrate(step, counters)
        candidates = await self.generate_instructions(number, step, rng, counters)
        accepted = self.filter_instructions(candidates, number, counters)
        answered = await self.answer_instructions(accepted, step, counters)
        kept = await self.score_and_keep(answered, counters)
        retired, promoted, offspring = (apply_feedback(state, answered, kept, config, state.thresholds)
                                        if self.feedback else ([], [], {}))
        counters["seeds_retired"] += len(retired)
        counters["seeds_promoted"] += len(promoted)
        state.add_machine([SeedTask(c.id, c.instruction, c.response) for c in kept])
        records = self.records_to_write(kept, number, counters)
        count_usage(counters, step.usage.to_dict())
        self.counters.update(counters)
        log = {"iteration": number, "counters": dict(sorted(counters.items())), "usage": step.usage.to_dict(),
               "retired": retired, "promoted": promoted,
               "offspring_scores": offspring,
               "active_seeds": len(state.active_seeds()),
               "thresholds": None if state.thresholds is None else state.thresholds.to_dict(),
               "calibrated": calibrated, **state.batch_log()}
        return records, log

    async def calibrate(self, step: StepCaller, counters: Counter) -> FeedbackThresholds:
        """SeDi step 6, the reference: the responder answers the active seed tasks (a seeded sample of
        `calibration_seeds` of them, in pool order) as it will answer generated ones, each pair gets the feedback
        signal, and the thresholds are quantiles of those scores (ConfigError when no seed could be scored, e.g. a
        backend that returns no logprobs)."""
        config = self.config
        seeds = calibration_sample(self.state.active_seeds(), config)
        completions = await gather_or_cancel(*(
            self._chat(step, "responder", self.backends.responder, format_response_input(seed.instruction),
                       f"calibrate/{seed.id}", config.response_temperature, logprobs=self.logprobs)
            for seed in seeds))
        scored = [Candidate(seed.id, seed.instruction, [], -1, response=completion.text.strip(),
                            response_loss=response_loss(completion))
                  for seed, completion in zip(seeds, completions) if completion.text.strip()]
        await self.score_feedback(scored)
        scores = [c.feedback_score for c in scored if c.feedback_score is not None]
        counters["calibration_seeds_scored"] += len(scores)
        if not scores:
            raise ConfigError(f"feedback_signal {config.feedback_signal}: none of the {len(seeds)} seed tasks got a "
                              f"score from {self.backends.responder.name} (the loss needs a backend that returns "
                              "logprobs); use thresholds: absolute or another signal")
        return seed_quantile_thresholds(scores, config)

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
                      for k, instruction in enumerate(self._instructions(reply.text, counters))]
        counters["generated"] += len(candidates)
        return candidates

    def filter_instructions(self, candidates: list[Candidate], number: int, counters: Counter) -> list[Candidate]:
        """SeDi steps 3-4, in request order so later candidates are checked against earlier ones: heuristics, the
        degenerate-text filter, ROUGE-L against the pool and (sedi mode) a place in a diverse batch. Returns the
        instructions to answer now: pending ones that found a batch, then this iteration's placed ones."""
        config, state = self.config, self.state
        placed = self.place_pending(number, counters)
        vectors = self._vectors(candidates)
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
                if self._place(candidate, None if vectors is None else vectors[index], number):
                    placed.append(candidate)
                elif config.batch_overflow == "wait":
                    candidate.waited = True
                    state.pending.append(candidate)
                    counters["batch_waiting"] += 1
                else:
                    reason = "batch_similarity"
            elif reason is None:
                placed.append(candidate)
            if reason is not None:
                counters[f"dropped_{reason}"] += 1
                continue
            state.pool.add(candidate.instruction, candidate.id)
        return placed + self.place_pending(number, counters)

    def place_pending(self, number: int, counters: Counter) -> list[Candidate]:
        """SeDi step 4 for the pending pool: oldest first, each waiting instruction that an open (or a new) batch
        admits now takes its place; passes repeat while one fills a batch and so makes room for another."""
        state = self.state
        placed: list[Candidate] = []
        while state.pending:
            vectors = self._vectors(state.pending)
            waiting = []
            for index, candidate in enumerate(state.pending):
                if self._place(candidate, None if vectors is None else vectors[index], number):
                    placed.append(candidate)
                else:
                    waiting.append(candidate)
            moved = len(waiting) < len(state.pending)
            state.pending = waiting
            if not moved:
                break
        counters["batch_placed_later"] += len(placed)
        return placed

    async def answer_instructions(self, accepted: list[Candidate], step: StepCaller,
                                  counters: Counter) -> list[Candidate]:
        """SeDi step 5: the responder answers each instruction (with its tokens' logprobs when the feedback is the
        loss); an empty or degenerate response drops the pair."""
        config = self.config
        completions = await gather_or_cancel(*(
            self._chat(step, "responder", self.backends.responder, format_response_input(c.instruction),
                       f"respond/{c.id}", config.response_temperature, logprobs=self.logprobs) for c in accepted))
        answered: list[Candidate] = []
        for candidate, completion in zip(accepted, completions):
            try:
                candidate.response = parse_response(completion.text)
            except ParseError:
                counters["dropped_empty_response"] += 1
                self._unplace(candidate)
                continue
            if first_degenerate([candidate.response]) is not None:
                counters[f"dropped_{DEGENERATE_TEXT}"] += 1
                self._unplace(candidate)
                continue
            candidate.response_loss = response_loss(completion)
            answered.append(candidate)
        return answered

    async def score_feedback(self, pairs: list[Candidate]) -> None:
        """Each pair's RM score (when there is an RM) and its feedback score: the responder's loss or the RM score."""
        if self.rm is not None and pairs:
            scores = await self.rm.score([Conversation([Message("user", c.instruction), Message("assistant", c.response)])
                                          for c in pairs])
            for candidate, score in zip(pairs, scores):
                candidate.rm_score = score
        for candidate in pairs:
            candidate.feedback_score = (candidate.response_loss if self.config.feedback_signal == "loss"
                                        else candidate.rm_score)

    async def score_and_keep(self, answered: list[Candidate], counters: Counter) -> list[Candidate]:
        """SeDi step 6, first half: score each (instruction, response) pair; sedi mode drops those below the keep
        threshold."""
        await self.score_feedback(answered)
        keep = self.state.thresholds.keep if self.feedback and self.state.thresholds is not None else None
        kept = []
        for candidate in answered:
            if keep is not None and candidate.feedback_score is not None and candidate.feedback_score < keep:
                counters["dropped_feedback_filter"] += 1
                self._unplace(candidate)
                continue
            kept.append(candidate)
        counters["kept"] += len(kept)
        return kept

    def records_to_write(self, kept: list[Candidate], number: int, counters: Counter) -> list[dict[str, Any]]:
        """The records this iteration appends to OUT. Self-Instruct: its kept pairs. SeDi (step 4): kept pairs wait
        in their batch; each batch that filled (every batch, in the run's last iteration) is written whole, in
        batch order, each member with its `position`."""
        config, state = self.config, self.state
        if state.batches is None:
            return [pair_record(c, config, number, number) for c in kept]
        state.waiting.update((c.id, c) for c in kept)
        records = []
        for batch in state.batches.close(every=number == config.iterations - 1):
            counters["batches_written"] += 1
            for position, item_id in enumerate(batch.ids):
                candidate = state.waiting.pop(item_id)
                records.append(pair_record(candidate, config, generation_iteration(candidate.id), number, position,
                                           state.thresholds))
        return records

    async def _chat(self, step: StepCaller, role: str, backend: ChatBackend, messages: list[Message], label: str,
                    temperature: float, response_format: ResponseFormat | None = None,
                    logprobs: int | None = None) -> Completion:
        """One call, at most `concurrency` in flight across the iteration."""
        async with self.limit:
            return await step.call(role, backend, messages, label, response_format=response_format,
                                   logprobs=logprobs, temperature=temperature)

    def _instructions(self, reply: str, counters: Counter) -> list[str]:
        """The generated instructions of one reply; an unparseable reply counts as `generation_parse_failures`."""
        try:
            return parse_generated_instructions(reply, self.config.instructions_per_call)
        except ParseError as error:
            counters["generation_parse_failures"] += 1
            logger.debug("unparseable generator reply: %s", error)
            return []

    def _vectors(self, candidates: list[Candidate]) -> Any:
        """The instructions' embeddings when batches compare embeddings, else None."""
        batches = self.state.batches
        if batches is None or batches.similarity != "embedding" or not candidates:
            return None
        return self.embedder.encode([c.instruction for c in candidates])

    def _place(self, candidate: Candidate, vector: Any, number: int) -> bool:
        """Put the candidate in a batch that admits it (recording batch, similarity, iteration); False if none does."""
        placed = self.state.batches.place(candidate.id, candidate.instruction, vector)
        if placed is None:
            return False
        candidate.batch, candidate.batch_similarity = placed[0], round(placed[1], 4)
        candidate.placed_iteration = number
        return True

    def _unplace(self, candidate: Candidate) -> None:
        if self.state.batches is not None:
            self.state.batches.remove(candidate.id)


def calibration_sample(seeds: list[SeedTask], config: SediConfig) -> list[SeedTask]:
    """The seed tasks calibration answers: all of them, or `calibration_seeds` drawn with the run's seed, kept in
    pool order."""
    if config.calibration_seeds is None or len(seeds) <= config.calibration_seeds:
        return seeds
    rng = random.Random(derive_seed(config.seed, "calibrate"))
    picked = set(rng.sample(range(len(seeds)), config.calibration_seeds))
    return [seed for index, seed in enumerate(seeds) if index in picked]


def calibrates(config: SediConfig) -> bool:
    """Whether a run scores the seed set first (sedi mode, seed_quantiles thresholds and a signal it has: the loss,
    or an RM path for the rm signal)."""
    return config.mode == "sedi" and config.thresholds == "seed_quantiles" and (
        config.feedback_signal == "loss" or config.rm is not None)


def expected_calls(config: SediConfig, seeds: int | None, input_tokens: float) -> ExpectedCalls:
    """`iterations x requests_per_iteration` generation calls, and a response for up to `instructions_per_call`
    instructions each (half of them on average; a pending instruction is answered once, when it is placed); with
    seed-quantile thresholds, one response per calibration seed task first (`calibration_seeds` at most); no
    re-asks (docs/methods.md, SeDi steps 2, 5, 6)."""
    requests = config.iterations * config.requests_per_iteration
    responses_max = requests * config.instructions_per_call
    sampled = seeds if config.calibration_seeds is None or seeds is None else min(seeds, config.calibration_seeds)
    calibration = (sampled or 0) if calibrates(config) else 0
    note = f"{config.mode} {requests} generation calls + up to {responses_max} responses"
    if calibrates(config):
        note += f" + {calibration if seeds is not None else 'one per sampled seed'} seed responses (thresholds)"
    return ExpectedCalls(calibration + requests + responses_max / 2, calibration + requests + responses_max,
                         config.max_tokens, config.seed_examples * 40, note)
