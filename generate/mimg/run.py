"""`generate mimg` as a resumable two-stage job: documents -> verified single-hop QAs -> verified multi-hop QAs.

Files of a run on OUT:
    OUT.qas.jsonl       stage 1 sink, one line per chunk: proposed/rejected questions and every QA with its
                        answer, short answer, verification score and kept/dropped (the intermediate QAs).
    OUT.chains.jsonl    stage 2 sink, one line per (seed QA, chain kind): the seed's document group, the neighbours
                        sampled and every merge step (not written without `multi_hop_merge`).
    OUT                 training records `{id, prompt, question, answer, hops, source_qa_ids, doc_ids, rationale,
                        meta}`, one per kept merged QA (without `multi_hop_merge`: one per seed single-hop QA); meta
                        names the context's passages in order and the document group.
    OUT.summary.json    both stages' runner summaries and the report: pass rate per agent, hop distribution,
                        calls and tokens per kept multi-hop QA (over all files, resumed runs included).
    OUT.fingerprint.json  the settings OUT was written with; a rerun with other settings is refused.
Rerunning the same command skips finished chunks, chains and records. Stage 2 starts once stage 1 was not
interrupted and had no failed chunk; it organises the documents (a fixed walk over their embeddings, the same on
every rerun) and computes neighbours over the kept QAs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chat.backends import configured_backends
from chat.backends.base import UsageLedger
from chat.compute_thread import run_compute
from chat.runner import (JsonlSink, RunSummary, backend_identities, check_settings, claim_output, encode_record,
                         format_summary, iter_records, run_jobs, summary_path, write_json_atomic)
from generate.documents import Chunk, chunk_documents, read_documents
from generate.mimg.algorithm import (MIN_CHAIN_QAS, ContextBuilder, DocumentGroups, Embed, GroupContext,
                                     MimgBackends, RelatedQAs, SingleHopQA, TrainingPassages, multi_hop_chain,
                                     single_hop_chunk, single_hop_records, training_records)
from generate.mimg.config import MimgConfig
from generate.run_settings import generator_settings


def qas_path(output: str | Path) -> Path:
    return Path(f"{output}.qas.jsonl")


def chains_path(output: str | Path) -> Path:
    return Path(f"{output}.chains.jsonl")


@dataclass
class MimgRunResult:
    """What one run did: each stage's runner summary (None if stage 2 did not run) and the report over all files."""

    single_hop: RunSummary
    multi_hop: RunSummary | None
    output: Path
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        codes = [self.single_hop.exit_code] + ([self.multi_hop.exit_code] if self.multi_hop else [])
        return max(codes)


def default_embedder(config: MimgConfig) -> Embed:
    """MiniLM (or the sentence-transformers model at `config.embedder`), offline, unit-length vectors, on the compute
    thread (chat/compute_thread.py)."""
    from generate.diversity import MiniLMEmbedder

    if config.embedder == "minilm":
        return MiniLMEmbedder(config.embed_device).encode
    from sentence_transformers import SentenceTransformer

    model = run_compute(SentenceTransformer, config.embedder, device=config.embed_device, local_files_only=True)
    return lambda texts: np.asarray(run_compute(model.encode, list(texts), normalize_embeddings=True,
                                                show_progress_bar=False), dtype=np.float32)


def kept_single_hop_qas(path: Path, chunk_ids: set[str]) -> list[SingleHopQA]:
    """The kept QAs of the stage-1 sink whose chunk is among this run's chunks, in file order."""
    return [SingleHopQA.from_dict(qa, row["doc_id"], row["id"]) for row in iter_records(path)
            if row["id"] in chunk_ids for qa in row.get("qas", []) if qa.get("kept")]


async def run_mimg_async(docs: str | Path | Sequence[str | Path], output: str | Path, config: MimgConfig, *,
                         backends: MimgBackends | None = None, embed: Embed | None = None, progress: bool = True,
                         handle_sigint: bool = True, overwrite: bool = False) -> MimgRunResult:
    """Generate multi-hop QAs from `docs` into `output` (see the module docstring). `backends` and `embed`
    override `config.backends` / `config.embedder` (tests pass scripted ones). An `output` written with other
    settings is refused unless `overwrite` (which starts it over)."""
    output = Path(output)
    paths = [docs] if isinstance(docs, (str, Path)) else list(docs)
    documents = read_documents(paths, format=config.input_format, on_error=config.input_on_error, limit=config.limit)
    chunks = chunk_documents(documents, config.chunk_tokens)
    chunk_map = {chunk.id: chunk for chunk in chunks}
    multi_hop: RunSummary | None = None
    sinks = ("", ".qas.jsonl", ".chains.jsonl")
    if not overwrite:          # refused before any model is loaded; the backends' identities are checked next
        check_settings(output, generator_settings(config), sinks=sinks)
    async with configured_backends(config.backends, build=backends is None) as (built, ledger):
        roles = backends or MimgBackends.from_roles(built)
        claim_output(output, {**generator_settings(config), **backend_identities(roles)}, overwrite=overwrite,
                     sinks=sinks)

        async def single_hop_worker(chunk: Any) -> dict[str, Any]:
            return await single_hop_chunk(chunk, roles, config)

        single_hop = await run_jobs(chunks, single_hop_worker, qas_path(output), item_id=lambda chunk: chunk.id,
                                    concurrency=config.concurrency, ledger=ledger,
                                    description="generate mimg: single-hop QAs", progress=progress,
                                    input_name=", ".join(map(str, paths)), handle_sigint=handle_sigint)
        # merges sample neighbours from every kept single-hop QA: with chunks still failed, the pool is
        # incomplete and the chains would differ from those of a complete run, so they wait for the rerun
        if not single_hop.interrupted and not single_hop.errors:
            multi_hop = await _multi_hop_stage(output, config, roles, chunk_map, embed, ledger, progress,
                                               handle_sigint)
    report = mimg_report(output)
    write_json_atomic(summary_path(output), {"single_hop": single_hop.to_dict(),
                                             "multi_hop": multi_hop.to_dict() if multi_hop else None,
                                             "report": report})
    return MimgRunResult(single_hop, multi_hop, output, report)


def needs_embedder(config: MimgConfig, kept_qas: int) -> bool:
    """Whether stage 2 embeds anything: documents (organised, with a QA to write) or QAs (with a chain to merge)."""
    chains = config.multi_hop_merge and kept_qas >= MIN_CHAIN_QAS
    return chains or (config.organise_documents and kept_qas > 0)


def training_context(config: MimgConfig, chunk_map: dict[str, Chunk],
                     embedder: Embed | None) -> tuple[DocumentGroups | None, ContextBuilder]:
    """docs/methods.md, MIMG steps 1 and 6: the document groups (None unless `organise_documents`) and where the
    training records take their context from."""
    if not config.organise_documents or embedder is None:
        return None, TrainingPassages(chunk_map)
    chunks = list(chunk_map.values())
    groups = DocumentGroups.embedded(chunks, embedder, config)
    return groups, GroupContext.of_chunks(groups, chunks)


async def _multi_hop_stage(output: Path, config: MimgConfig, roles: MimgBackends, chunk_map: dict[str, Chunk],
                           embed: Embed | None, ledger: UsageLedger | None, progress: bool,
                           handle_sigint: bool) -> RunSummary | None:
    """Stage 2 over the kept QAs of the stage-1 sink (docs/methods.md, MIMG steps 1, 4-6): the documents organised,
    then one chain per (seed QA, kind), its log line to OUT.chains.jsonl and its training records to OUT; without
    `multi_hop_merge`, a training record per seed QA and no runner summary (None)."""
    qas = kept_single_hop_qas(qas_path(output), set(chunk_map))
    # the embedder is loaded only when there is something to embed
    embedder = (embed or default_embedder(config)) if needs_embedder(config, len(qas)) else None
    groups, context = training_context(config, chunk_map, embedder)
    if not config.multi_hop_merge:
        with JsonlSink(output) as records_sink:
            for record in single_hop_records(qas, context, config, records_sink.finished_ids):
                records_sink.append(record["id"], encode_record(record))
        return None
    related = RelatedQAs.embedded(qas, embedder, groups)
    with JsonlSink(output) as records_sink:
        async def chain_worker(item: tuple[int, str]) -> dict[str, Any]:
            chain = await multi_hop_chain(related, *item, chunk_map, roles, config)
            for record in training_records(chain, context, config, records_sink.finished_ids):
                records_sink.append(record["id"], encode_record(record))
            return chain.to_dict()

        return await run_jobs(related.chain_seeds(config), chain_worker, chains_path(output),
                              item_id=lambda item: f"{related.qas[item[0]].id}|{item[1]}",
                              concurrency=config.concurrency, ledger=ledger,
                              description="generate mimg: multi-hop merges", progress=progress,
                              input_name=str(qas_path(output)), handle_sigint=handle_sigint)


def _rate(passed: int, total: int) -> dict[str, Any]:
    return {"passed": passed, "total": total, "rate": passed / total if total else None}


def mimg_report(output: str | Path) -> dict[str, Any]:
    """Pass rate per agent, drop reasons (rejected questions, dropped single-hop QAs, failed merges), hop
    distribution and cost, over every line of the run's files."""
    drops: dict[str, Counter] = {"questions": Counter(), "single_hop": Counter(), "multi_hop": Counter()}
    calls = cache_hits = tokens = 0
    chunks = chunks_parsed = proposed = accepted = answered = asked = verified = passed = kept_single = 0
    merges = merges_parsed = merged_verified = merged_passed = 0
    for row in iter_records(qas_path(output)):
        chunks += 1
        usage = row.get("usage", {})
        calls += usage.get("calls", 0)
        cache_hits += usage.get("cache_hits", 0)
        tokens += usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        if "question_failure" in row:
            continue
        chunks_parsed += 1
        proposed += row["questions"]
        for rejected in row["rejected"]:
            drops["questions"][rejected["reason"].split(":")[0].replace(" ", "_")] += 1
        for qa in row["qas"]:
            if qa.get("dropped"):
                drops["single_hop"][qa["dropped"]] += 1
            accepted += 1
            asked += 1
            answered += "answer" in qa and qa.get("dropped") != "unanswerable"
            if "score" in qa:
                verified += 1
                passed += bool(qa.get("kept"))
            kept_single += bool(qa.get("kept"))
    for row in iter_records(chains_path(output)):
        usage = row.get("usage", {})
        calls += usage.get("calls", 0)
        cache_hits += usage.get("cache_hits", 0)
        tokens += usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        for merge in row["steps"]:
            if merge.get("dropped"):
                drops["multi_hop"][merge["dropped"]] += 1
            merges += 1
            merges_parsed += bool(merge["question"])
            if merge["score"] is not None:
                merged_verified += 1
                merged_passed += merge["kept"]
    hops: Counter = Counter()
    chains: Counter = Counter()
    for record in iter_records(output):
        hops[record["hops"]] += 1
        chains[record["meta"]["chain"]] += 1
    kept_multi = sum(count for hop, count in hops.items() if hop > 1)
    return {
        "chunks": chunks,
        "pass_rates": {
            "question_agent_replies": _rate(chunks_parsed, chunks),
            "questions_self_contained": _rate(accepted, proposed),
            "answer_agent": _rate(answered, asked),
            "verification_single_hop": _rate(passed, verified),
            "merger_agent": _rate(merges_parsed, merges),
            "verification_multi_hop": _rate(merged_passed, merged_verified),
        },
        "dropped": {stage: dict(sorted(counts.items())) for stage, counts in drops.items()},
        "single_hop_qas_kept": kept_single,
        "multi_hop_qas_kept": kept_multi,
        "training_records": sum(hops.values()),
        "hop_distribution": {str(h): hops[h] for h in sorted(hops)},
        "chain_kinds": dict(sorted(chains.items())),
        "llm_calls": calls, "cache_hits": cache_hits, "tokens": tokens,
        "per_kept_multi_hop_qa": ({"llm_calls": calls / kept_multi, "tokens": tokens / kept_multi}
                                  if kept_multi else None),
    }


def run_mimg(docs: str | Path | Sequence[str | Path], output: str | Path, config: MimgConfig,
             **kwargs: Any) -> MimgRunResult:
    """Synchronous `run_mimg_async`."""
    return asyncio.run(run_mimg_async(docs, output, config, **kwargs))


def format_mimg_report(report: dict[str, Any]) -> str:
    """The lines the CLI prints after the runner summaries."""
    lines = [f"chunks: {report['chunks']}; single-hop QAs kept: {report['single_hop_qas_kept']}; multi-hop QAs "
             f"kept: {report['multi_hop_qas_kept']}; training records: {report['training_records']}"]
    for name, rate in report["pass_rates"].items():
        shown = "-" if rate["rate"] is None else f"{rate['rate']:.0%}"
        lines.append(f"  {name.replace('_', ' ')}: {rate['passed']}/{rate['total']} ({shown})")
    for stage, counts in report["dropped"].items():
        if counts:
            lines.append(f"  dropped {stage.replace('_', '-')}: "
                         + ", ".join(f"{reason} {count}" for reason, count in counts.items()))
    lines.append("hop distribution: " + (", ".join(f"{h}-hop {n}" for h, n in report["hop_distribution"].items())
                                         or "-"))
    cost = report["per_kept_multi_hop_qa"]
    if cost:
        lines.append(f"per kept multi-hop QA: {cost['llm_calls']:.2f} LLM calls, {cost['tokens']:.0f} tokens")
    return "\n".join(lines)


def format_mimg_run(result: MimgRunResult, output: str | Path) -> str:
    """What the CLI prints after a run: each stage's runner summary (or why stage 2 did not start), the report."""
    lines = [format_summary(result.single_hop)]
    if result.multi_hop is not None:
        lines.append(format_summary(result.multi_hop))
    elif result.single_hop.errors:
        lines.append("multi-hop merges not started: they need every chunk's single-hop QAs; rerun the same command")
    lines.append(format_mimg_report(result.report))
    return "\n".join(lines)
