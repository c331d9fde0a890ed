"""MIMG: single-hop QAs per chunk, verified, then merged with their nearest QAs into multi-hop QAs (docs/methods.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping, Sequence

from chat.agents import StepCaller, derive_seed
from chat.backends.base import ChatBackend
from chat.errors import ConfigError
from chat.filters import PARSE_FAILURE
from chat.gather import gather_or_cancel
from generate.agents import DEGENERATE_TEXT, StepFailed, ask_step, check_degenerate, first_degenerate
from generate.documents import Chunk
from generate.mimg_config import MimgConfig
from generate.mimg_steps import (ANSWER_FORMAT, MERGE_FORMAT, VERIFY_FORMAT, format_answer_input, format_merge_input,
                                 format_question_input, format_training_prompt, format_verify_input,
                                 parse_answer_output, parse_merge_output, parse_question_output,
                                 parse_verify_output, question_format)
from generate.prompts import PROMPT_VERSION

#: Why a QA was dropped (and `degenerate_text`: its question or answer failed the shared filter).
UNANSWERABLE, BELOW_THRESHOLD = "unanswerable", "below_threshold"


@dataclass
class MimgBackends:
    """The backend of each agent."""

    questioner: ChatBackend
    answerer: ChatBackend
    verifier: ChatBackend
    merger: ChatBackend

    @classmethod
    def from_roles(cls, backends: Mapping[str, ChatBackend]) -> "MimgBackends":
        def pick(role: str) -> ChatBackend:
            if role in backends or "default" in backends:
                return backends.get(role, backends.get("default"))
            raise ConfigError(f"backends: no entry for {role}")

        return cls(pick("questioner"), pick("answerer"), pick("verifier"), pick("merger"))

    def names(self) -> dict[str, str]:
        return {role: getattr(self, role).name for role in ("questioner", "answerer", "verifier", "merger")}


@dataclass(frozen=True)
class SingleHopQA:
    """A verified single-hop QA: the long answer is its rationale, the short answer is embedded for sampling."""

    id: str
    doc_id: str
    chunk_id: str
    question: str
    answer: str
    short_answer: str
    score: int

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], doc_id: str, chunk_id: str) -> "SingleHopQA":
        return cls(row["id"], doc_id, chunk_id, row["question"], row["answer"], row["short_answer"], row["score"])


def _step(config: MimgConfig, label: str) -> StepCaller:
    return StepCaller(config.temperature, config.max_tokens, derive_seed(config.seed, label), config.max_reasks)


async def verify(step: StepCaller, backend: ChatBackend, passages: Sequence[dict[str, str]], question: str,
                 answer: str, hops: int, label: str) -> int:
    """docs/methods.md, MIMG step 3: the verification agent's 1-10 score (StepFailed if it never parses)."""
    return await ask_step(step, "verifier", backend, format_verify_input(passages, question, answer, hops),
                          parse_verify_output, label, response_format=VERIFY_FORMAT)


async def single_hop_chunk(chunk: Chunk, backends: MimgBackends, config: MimgConfig) -> dict[str, Any]:
    """docs/methods.md, MIMG steps 2-3 on one chunk: up to `max_questions` self-contained questions (those with dangling
    references or degenerate text rejected), an answer per question (long answer kept as rationale, short
    answer; a degenerate one drops the QA), a 1-10 verification of each; QAs scoring at least
    `verify_threshold` are kept. Every step's reply is a JSON object of its schema. Returns the chunk's record."""
    step = _step(config, chunk.id)
    record: dict[str, Any] = {"id": chunk.id, "doc_id": chunk.doc_id, "chunk_index": chunk.index, "questions": 0,
                              "rejected": [], "qas": [], "prompt_version": PROMPT_VERSION}
    try:
        proposed = await ask_step(step, "questioner", backends.questioner,
                                  format_question_input(chunk.title, chunk.text, config.max_questions),
                                  partial(parse_question_output, max_questions=config.max_questions), "questions",
                                  response_format=question_format(config.max_questions))
    except StepFailed as failed:
        record.update(question_failure=failed.detail, usage=step.usage.to_dict(), reasks=step.reasks)
        return record
    record["questions"] = len(proposed.questions) + len(proposed.rejected)
    record["rejected"] = proposed.rejected

    async def answer_and_verify(number: int, question: str) -> dict[str, Any]:
        qa: dict[str, Any] = {"id": f"{chunk.id}/q{number}", "question": question, "kept": False}
        try:
            reply = await ask_step(step, "answerer", backends.answerer,
                                   format_answer_input(chunk.title, chunk.text, question), parse_answer_output,
                                   f"answer/{number}", response_format=ANSWER_FORMAT)
        except StepFailed as failed:
            return {**qa, "dropped": f"answer_{PARSE_FAILURE}", "detail": failed.detail}
        qa.update(answer=reply.answer, short_answer=reply.short_answer)
        if first_degenerate([reply.answer, reply.short_answer]) is not None:
            return {**qa, "dropped": DEGENERATE_TEXT}
        if not reply.answerable:
            return {**qa, "dropped": UNANSWERABLE}
        try:
            qa["score"] = await verify(step, backends.verifier, [chunk.passage()], question, reply.answer, 1,
                                       f"verify/{number}")
        except StepFailed as failed:
            return {**qa, "dropped": f"verify_{PARSE_FAILURE}", "detail": failed.detail}
        if qa["score"] < config.verify_threshold:
            return {**qa, "dropped": BELOW_THRESHOLD}
        return {**qa, "kept": True}

    record["qas"] = list(await gather_or_cancel(*(answer_and_verify(n, q) for n, q in enumerate(proposed.questions, 1))))
    record.update(usage=step.usage.to_dict(), reasks=step.reasks)
    return record


@dataclass
class MergeStep:
    """One merge of a chain: the QA merged from `sources` (seed first), its verification, kept or why not."""

    hops: int
    sources: list[SingleHopQA]
    question: str = ""
    answer: str = ""
    score: int | None = None
    kept: bool = False
    dropped: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"hops": self.hops, "source_qa_ids": [qa.id for qa in self.sources], "question": self.question,
                "answer": self.answer, "score": self.score, "kept": self.kept, "dropped": self.dropped,
                "detail": self.detail}


def chain_passages(sources: Sequence[SingleHopQA], chunks: Mapping[str, Chunk]) -> list[dict[str, str]]:
    """The chunks the sources were asked about, each once, in source order."""
    return [chunks[chunk_id].passage() for chunk_id in dict.fromkeys(qa.chunk_id for qa in sources)]


async def merge_chain(seed: SingleHopQA, partners: Sequence[SingleHopQA], chunks: Mapping[str, Chunk],
                      backends: MimgBackends, config: MimgConfig, label: str) -> tuple[list[MergeStep], dict[str, Any],
                                                                                       int]:
    """docs/methods.md, MIMG step 5: merge the seed with its neighbours one at a time into 2-, 3-, 4-hop QAs whose
    answer carries the reasoning; each merged QA is verified against the passages of all its sources. The chain
    stops at the first merge that does not parse, is degenerate text or does not pass. Returns (steps, usage,
    re-asks)."""
    step = _step(config, label)
    steps: list[MergeStep] = []
    sources = [seed]
    question, answer = seed.question, seed.answer
    for partner in partners[:config.max_hops - 1]:
        merge = MergeStep(len(sources) + 1, [*sources, partner])
        steps.append(merge)
        try:
            merged = await ask_step(
                step, "merger", backends.merger,
                format_merge_input(question, answer, partner.question, partner.answer, merge.hops),
                partial(parse_merge_output, sources=[qa.question for qa in merge.sources]), f"merge/{merge.hops}",
                response_format=MERGE_FORMAT)
            merge.question, merge.answer = merged.question, merged.answer
            check_degenerate(f"merge/{merge.hops}", merged.question, merged.answer)
            if config.verify_merged:
                merge.score = await verify(step, backends.verifier, chain_passages(merge.sources, chunks),
                                           merged.question, merged.answer, merge.hops, f"verify/{merge.hops}")
        except StepFailed as failed:
            merge.dropped, merge.detail = failed.reason, failed.detail
            break
        if merge.score is not None and merge.score < config.verify_threshold:
            merge.dropped = BELOW_THRESHOLD
            break
        merge.kept = True
        sources, question, answer = merge.sources, merged.question, merged.answer
    return steps, step.usage.to_dict(), step.reasks


@dataclass
class TrainingPassages:
    """Chunks available as distractors: every chunk, by id, in a fixed order."""

    chunks: Mapping[str, Chunk]
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.order:
            self.order = sorted(self.chunks)

    def for_record(self, record_id: str, sources: Sequence[SingleHopQA], distractors: int,
                   seed: int) -> list[Chunk]:
        """The source chunks plus `distractors` chunks of documents none of the sources is from, shuffled with
        a seed derived from the record id."""
        rng = random.Random(derive_seed(seed, record_id))
        own = [self.chunks[chunk_id] for chunk_id in dict.fromkeys(qa.chunk_id for qa in sources)]
        docs = {qa.doc_id for qa in sources}
        pool = [chunk_id for chunk_id in self.order if self.chunks[chunk_id].doc_id not in docs]
        picked = [self.chunks[chunk_id] for chunk_id in rng.sample(pool, min(distractors, len(pool)))]
        passages = own + picked
        if picked:
            rng.shuffle(passages)
        return passages


def training_record(record_id: str, merge: MergeStep, kind: str, passages: Sequence[Chunk]) -> dict[str, Any]:
    """The training record of a kept merged QA: `{prompt: passages + question, answer, hops, source_qa_ids,
    doc_ids, rationale}` (rationale = the sources' long answers) plus provenance."""
    return {"id": record_id, "prompt": format_training_prompt([c.passage() for c in passages], merge.question),
            "question": merge.question, "answer": merge.answer, "hops": merge.hops,
            "source_qa_ids": [qa.id for qa in merge.sources],
            "doc_ids": list(dict.fromkeys(qa.doc_id for qa in merge.sources)),
            "rationale": [qa.answer for qa in merge.sources],
            "meta": {"generator": "mimg", "chain": kind, "score": merge.score,
                     "passage_ids": [c.id for c in passages], "prompt_version": PROMPT_VERSION}}
