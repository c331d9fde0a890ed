"""MIMG: single-hop QAs per chunk, verified, then merged with their nearest QAs into multi-hop QAs (docs/methods.md).

The steps in order: `DocumentGroups` (step 1), `single_hop_chunk` (steps 2-3), `RelatedQAs` (step 4),
`multi_hop_chain` and `merge_chain` (steps 4-5), `training_records` / `single_hop_records` (step 6); the resumable
job around them is generate/mimg/run.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from chat.agents import StepCaller, derive_seed
from chat.backends.base import ChatBackend
from chat.errors import ConfigError
from chat.filters import PARSE_FAILURE
from chat.gather import gather_or_cancel
from chat.token_estimate import approx_tokens
from generate.agents import DEGENERATE_TEXT, StepFailed, ask_step, check_degenerate, first_degenerate
from generate.documents import Chunk
from generate.mimg.config import MimgConfig
from generate.mimg.steps import (ANSWER_FORMAT, MERGE_FORMAT, VERIFY_FORMAT, format_answer_input, format_merge_input,
                                 format_question_input, format_training_prompt, format_verify_input,
                                 parse_answer_output, parse_merge_output, parse_question_output,
                                 parse_verify_output, question_format)
from generate.prompts import PROMPT_VERSION
from generate.registry import ExpectedCalls

#: Why a QA was dropped (and `degenerate_text`: its question or answer failed the shared filter).
UNANSWERABLE, BELOW_THRESHOLD = "unanswerable", "below_threshold"
#: A chain needs a seed QA and at least one neighbour.
MIN_CHAIN_QAS = 2
#: The chain kind of the no-merger ablation's records (docs/methods.md, MIMG step 6).
SINGLE_HOP = "single_hop"
#: `texts -> [len(texts), d]` unit vectors (generate.diversity.MiniLMEmbedder.encode, or a test fake).
Embed = Callable[[list[str]], np.ndarray]


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


# -- step 1: organise documents --------------------------------------------------------------------------

def document_openings(chunks: Sequence[Chunk]) -> dict[str, str]:
    """What is embedded for each document, in first-chunk order: its title and first chunk (embedders truncate
    longer texts, so this is what they would see of the whole document)."""
    openings: dict[str, str] = {}
    for chunk in chunks:
        if chunk.doc_id not in openings:
            openings[chunk.doc_id] = f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text
    return openings


def organise_documents(vectors: np.ndarray, group_size: int, neighbours: int) -> list[list[int]]:
    """docs/methods.md, MIMG step 1: documents (unit vectors [n, d]) walked into groups of related ones. A group
    starts at the first unvisited document and steps to the most similar unvisited document among the current
    one's `neighbours` nearest (ties by index); it ends when it holds `group_size` documents or none of those
    is unvisited. Returns each group's document indices in walk order."""
    visited = np.zeros(len(vectors), dtype=bool)
    groups: list[list[int]] = []
    for start in range(len(vectors)):
        if visited[start]:
            continue
        group, current = [start], start
        visited[start] = True
        while len(group) < group_size:
            similarities = vectors @ vectors[current]            # [n]
            order = np.lexsort((np.arange(len(vectors)), -similarities))
            nearest = [int(index) for index in order if index != current][:neighbours]
            unvisited = [index for index in nearest if not visited[index]]
            if not unvisited:
                break
            current = unvisited[0]
            visited[current] = True
            group.append(current)
        groups.append(group)
    return groups


@dataclass
class DocumentGroups:
    """docs/methods.md, MIMG step 1: the run's documents organised into groups (document ids in walk order)."""

    groups: list[list[str]]
    group_of: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.group_of = {doc_id: number for number, group in enumerate(self.groups) for doc_id in group}

    @classmethod
    def embedded(cls, chunks: Sequence[Chunk], embed: Embed, config: MimgConfig) -> "DocumentGroups":
        """The documents of `chunks`, embedded by their openings (`document_openings`) and walked into groups."""
        openings = document_openings(chunks)
        doc_ids = list(openings)
        vectors = embed(list(openings.values())) if doc_ids else np.zeros((0, 1), dtype=np.float32)
        return cls([[doc_ids[index] for index in group]
                    for group in organise_documents(vectors, config.group_size, config.group_neighbours)])

    def members(self, doc_id: str) -> list[str]:
        """The document ids of `doc_id`'s group, in walk order."""
        return self.groups[self.group_of[doc_id]]


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


# -- step 4: sample related questions -------------------------------------------------------------------

@dataclass(frozen=True)
class Neighbour:
    """A QA picked for a seed: its index in the QA list and its cosine similarity to the seed."""

    index: int
    similarity: float


def qa_text(question: str, answer: str) -> str:
    """What is embedded for a QA: the question, then its (short) answer."""
    return f"{question} {answer}"


def nearest_neighbours(vectors: np.ndarray, doc_ids: Sequence[str], seed: int, k: int, kind: str,
                       questions: Sequence[str] | None = None, groups: Sequence[int] | None = None) -> list[Neighbour]:
    """The `k` QAs most similar to QA `seed` (cosine of unit vectors [n, d]), most similar first: within the
    seed's document (kind "indoc") or in other documents ("crossdoc"; given `groups`, each QA's document group,
    only documents of the seed's group). The seed itself is never picked, nor (given `questions`) a QA whose
    question, case-folded, is the seed's or an already picked one's; ties break by index."""
    similarities = vectors @ vectors[seed]                       # [n]
    same_doc = np.asarray([doc == doc_ids[seed] for doc in doc_ids])
    allowed = same_doc if kind == "indoc" else ~same_doc
    if groups is not None:
        allowed &= np.asarray([group == groups[seed] for group in groups])
    allowed[seed] = False
    candidates = np.flatnonzero(allowed)
    picked: list[Neighbour] = []
    seen = {questions[seed].casefold().strip()} if questions is not None else set()
    for index in candidates[np.lexsort((candidates, -similarities[candidates]))]:
        if len(picked) == k:
            break
        if questions is not None:
            key = questions[index].casefold().strip()
            if key in seen:
                continue
            seen.add(key)
        picked.append(Neighbour(int(index), float(similarities[index])))
    return picked


def seed_indices(count: int, max_seeds: int | None, seed: int) -> list[int]:
    """Every QA index, or `max_seeds` of them sampled with `seed` (in index order)."""
    if max_seeds is None or max_seeds >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), max_seeds))


@dataclass
class RelatedQAs:
    """The kept single-hop QAs that chains draw on, with their "question + short answer" embeddings [n, d] and,
    when documents are organised, their document groups."""

    qas: list[SingleHopQA]
    vectors: np.ndarray
    groups: DocumentGroups | None = None
    doc_ids: list[str] = field(init=False)
    questions: list[str] = field(init=False)
    group_numbers: list[int] | None = field(init=False)

    def __post_init__(self) -> None:
        self.doc_ids = [qa.doc_id for qa in self.qas]
        self.questions = [qa.question for qa in self.qas]
        self.group_numbers = (None if self.groups is None
                              else [self.groups.group_of[qa.doc_id] for qa in self.qas])

    @classmethod
    def embedded(cls, qas: list[SingleHopQA], embed: Embed | None,
                 groups: DocumentGroups | None = None) -> "RelatedQAs":
        """The QAs with their embeddings; with fewer than MIN_CHAIN_QAS there is nothing to chain, nor to embed
        (`embed` may then be None)."""
        if len(qas) < MIN_CHAIN_QAS:
            return cls(qas, np.zeros((0, 1), dtype=np.float32), groups)
        return cls(qas, embed([qa_text(qa.question, qa.short_answer) for qa in qas]), groups)

    def chain_seeds(self, config: MimgConfig) -> list[tuple[int, str]]:
        """(seed QA index, chain kind) of every chain to merge: every QA or `max_seeds` sampled, each kind."""
        if len(self.qas) < MIN_CHAIN_QAS:
            return []
        return [(index, kind) for index in seed_indices(len(self.qas), config.max_seeds, config.seed)
                for kind in config.chains]

    def neighbours(self, index: int, kind: str, k: int) -> list[Neighbour]:
        return nearest_neighbours(self.vectors, self.doc_ids, index, k, kind, self.questions, self.group_numbers)

    def doc_group(self, index: int) -> list[str] | None:
        """The document ids of QA `index`'s group (None when documents are not organised)."""
        return None if self.groups is None else self.groups.members(self.qas[index].doc_id)


# -- step 5: merge into multi-hop questions -------------------------------------------------------------

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
class Chain:
    """One seed QA's chain of one kind: the neighbours sampled for it and every merge step."""

    seed: SingleHopQA
    kind: str
    neighbours: list[tuple[SingleHopQA, float]]
    steps: list[MergeStep]
    usage: dict[str, Any]
    reasks: int
    doc_group: list[str] | None = None

    @property
    def id(self) -> str:
        return f"{self.seed.id}|{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return {"seed_qa_id": self.seed.id, "chain": self.kind, "doc_group": self.doc_group,
                "neighbours": [{"qa_id": qa.id, "similarity": round(similarity, 4)}
                               for qa, similarity in self.neighbours],
                "steps": [merge.to_dict() for merge in self.steps], "usage": self.usage, "reasks": self.reasks}


async def multi_hop_chain(related: RelatedQAs, index: int, kind: str, chunks: Mapping[str, Chunk],
                          backends: MimgBackends, config: MimgConfig) -> Chain:
    """docs/methods.md, MIMG steps 4-5 for one seed QA: its `max_hops - 1` nearest QAs of the chain kind (from the
    seed's document group when documents are organised), merged into it one at a time (`merge_chain`)."""
    seed = related.qas[index]
    neighbours = [(related.qas[n.index], n.similarity) for n in related.neighbours(index, kind, config.max_hops - 1)]
    steps, usage, reasks = await merge_chain(seed, [qa for qa, _ in neighbours], chunks, backends, config,
                                             f"{seed.id}|{kind}")
    return Chain(seed, kind, neighbours, steps, usage, reasks, related.doc_group(index))


# -- step 6: write training records ---------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingContext:
    """The passages of a training prompt, in order, with their ids (chunk ids, or document ids when built from a
    group), how they were chosen ("chunks" or "group"), the group's document ids and the approximate tokens."""

    passages: list[dict[str, str]]
    ids: list[str]
    kind: str
    doc_group: list[str] | None
    tokens: int

    def meta(self) -> dict[str, Any]:
        return {"context": self.kind, "passage_ids": self.ids, "doc_group": self.doc_group,
                "context_tokens": self.tokens}


@dataclass
class TrainingPassages:
    """Without organised documents: chunks available as distractors, every chunk by id, in a fixed order."""

    chunks: Mapping[str, Chunk]
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.order:
            self.order = sorted(self.chunks)

    def for_record(self, record_id: str, sources: Sequence[SingleHopQA], config: MimgConfig) -> TrainingContext:
        """The source chunks plus `distractor_chunks` chunks of documents none of the sources is from, shuffled
        with a seed derived from the record id."""
        rng = random.Random(derive_seed(config.seed, record_id))
        own = [self.chunks[chunk_id] for chunk_id in dict.fromkeys(qa.chunk_id for qa in sources)]
        docs = {qa.doc_id for qa in sources}
        pool = [chunk_id for chunk_id in self.order if self.chunks[chunk_id].doc_id not in docs]
        picked = [self.chunks[chunk_id] for chunk_id in rng.sample(pool, min(config.distractor_chunks, len(pool)))]
        passages = own + picked
        if picked:
            rng.shuffle(passages)
        return TrainingContext([c.passage() for c in passages], [c.id for c in passages], "chunks", None,
                               sum(approx_tokens(c.text) for c in passages))


@dataclass
class GroupContext:
    """With organised documents: each document whole (its chunks joined) and its groups, for the long context."""

    groups: DocumentGroups
    documents: dict[str, dict[str, str]]

    @classmethod
    def of_chunks(cls, groups: DocumentGroups, chunks: Sequence[Chunk]) -> "GroupContext":
        parts: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            parts.setdefault(chunk.doc_id, []).append(chunk)
        return cls(groups, {doc_id: {"title": pieces[0].title,
                                     "text": "\n\n".join(c.text for c in sorted(pieces, key=lambda c: c.index))}
                            for doc_id, pieces in parts.items()})

    def for_record(self, record_id: str, sources: Sequence[SingleHopQA], config: MimgConfig) -> TrainingContext:
        """docs/methods.md, MIMG step 6: the documents of the sources' group, in group (walk) order: the sources'
        documents always, then the other members in group order while the total stays within `context_tokens`
        (a member that does not fit is passed over; none = the whole group)."""
        group = self.groups.members(sources[0].doc_id)
        tokens = {doc_id: approx_tokens(self.documents[doc_id]["text"]) for doc_id in group}
        chosen = {qa.doc_id for qa in sources}
        total = sum(tokens[doc_id] for doc_id in chosen)
        for doc_id in group:
            if doc_id not in chosen and (config.context_tokens is None
                                         or total + tokens[doc_id] <= config.context_tokens):
                chosen.add(doc_id)
                total += tokens[doc_id]
        ids = [doc_id for doc_id in group if doc_id in chosen]
        return TrainingContext([self.documents[doc_id] for doc_id in ids], ids, "group", list(group), total)


#: Where training records take their context from: the sources' chunks and distractors, or their group.
ContextBuilder = TrainingPassages | GroupContext


def training_record(record_id: str, question: str, answer: str, hops: int, sources: Sequence[SingleHopQA],
                    kind: str, score: int | None, context: TrainingContext) -> dict[str, Any]:
    """The training record of a kept QA: `{prompt: passages + question, answer, hops, source_qa_ids, doc_ids,
    rationale}` (rationale = the sources' long answers) plus provenance and the context's ids and order."""
    return {"id": record_id, "prompt": format_training_prompt(context.passages, question),
            "question": question, "answer": answer, "hops": hops,
            "source_qa_ids": [qa.id for qa in sources],
            "doc_ids": list(dict.fromkeys(qa.doc_id for qa in sources)),
            "rationale": [qa.answer for qa in sources],
            "meta": {"generator": "mimg", "chain": kind, "score": score, **context.meta(),
                     "prompt_version": PROMPT_VERSION}}


def training_records(chain: Chain, context: ContextBuilder, config: MimgConfig,
                     written: Collection[str] = ()) -> list[dict[str, Any]]:
    """docs/methods.md, MIMG step 6: the training record of each kept merge of a chain (id `seed|kind|hops`), its
    context from `context`; records whose id is in `written` are left out."""
    records = []
    for merge in chain.steps:
        record_id = f"{chain.id}|{merge.hops}"
        if merge.kept and record_id not in written:
            records.append(training_record(record_id, merge.question, merge.answer, merge.hops, merge.sources,
                                           chain.kind, merge.score, context.for_record(record_id, merge.sources,
                                                                                       config)))
    return records


def single_hop_records(qas: Sequence[SingleHopQA], context: ContextBuilder, config: MimgConfig,
                       written: Collection[str] = ()) -> list[dict[str, Any]]:
    """docs/methods.md, MIMG step 6 without the merger (the ablation, `multi_hop_merge: false`): a 1-hop training
    record (id `qa|single_hop|1`) per seed QA (every kept QA or `max_seeds` sampled, as chains are seeded), its
    answer the long answer; records whose id is in `written` are left out."""
    records = []
    for index in seed_indices(len(qas), config.max_seeds, config.seed):
        qa = qas[index]
        record_id = f"{qa.id}|{SINGLE_HOP}|1"
        if record_id not in written:
            records.append(training_record(record_id, qa.question, qa.answer, 1, [qa], SINGLE_HOP, qa.score,
                                           context.for_record(record_id, [qa], config)))
    return records


def expected_calls(config: MimgConfig, documents: int | None, input_tokens: float) -> ExpectedCalls | None:
    """Calls of the config docstring: per chunk 1 question call + per question 1 answer + 1 verification; per
    seed QA and chain kind (max_hops - 1) x (1 merge + 1 verification when `verify_merged`), every QA kept and
    every merge passing (an upper figure: real chains stop early), none without `multi_hop_merge`. Organising
    documents makes no call. Chunks per document: its mean size over `chunk_tokens`. None when the documents are
    unknown here."""
    if documents is None:
        return None
    chunks = documents * max(1, -(-int(input_tokens) // config.chunk_tokens))
    single_hop = chunks * (1 + 2 * config.max_questions)
    qas = chunks * config.max_questions
    seeds = qas if config.max_seeds is None else min(qas, config.max_seeds)
    multi_hop = (seeds * len(config.chains) * (config.max_hops - 1) * (2 if config.verify_merged else 1)
                 if config.multi_hop_merge else 0)
    calls = single_hop + multi_hop
    return ExpectedCalls(calls, calls * (1 + config.max_reasks), config.max_tokens,
                         min(input_tokens, config.chunk_tokens),
                         f"mimg ~{chunks} chunks: {single_hop} single-hop + up to {multi_hop} multi-hop calls")
