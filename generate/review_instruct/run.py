"""`generate review-instruct` as a resumable job: seeds -> conversations in OUT, every outcome in OUT.seeds.jsonl.

Files of a run on OUT:
    OUT                  kept conversations, canonical `{id, messages, meta}` JSONL (per-round reviews, votes,
                         breadth/depth decisions, RM scores and usage in meta).
    OUT.seeds.jsonl      the runner's sink: one line per finished seed (kept, or dropped with its reason), so a
                         resumed run redoes neither.
    OUT.seeds.jsonl.summary.json / .errors.jsonl   the runner's summary (counters) and failed seeds.
    OUT.fingerprint.json the settings OUT was written with; a rerun with other settings is refused.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from chat.agents import count_usage
from chat.backends import configured_backends
from chat.runner import FilteredRunResult, backend_identities, check_settings, claim_output, run_filtered
from generate.review_instruct.algorithm import (ConversationResult, ReviewInstructBackends, review_conversation_id,
                                                review_instruct_conversation)
from generate.review_instruct.config import ReviewInstructConfig
from generate.run_settings import generator_settings
from generate.seeds import SeedPrompt, read_seed_records, seed_prompts
from rm.scorer import optional_scorer


def count_result(counters: Counter, result: ConversationResult) -> None:
    counters["kept" if result.kept else f"dropped_{result.reason}"] += 1
    counters["reasks"] += result.reasks
    count_usage(counters, result.usage)
    for round_ in result.rounds:
        if round_["decision"] in ("breadth", "depth"):
            counters[f"decision_{round_['decision']}"] += 1


def seed_outcome(result: ConversationResult) -> dict[str, Any]:
    """The seed log line of one result."""
    if result.conversation is not None:
        return {"id": result.seed_id, "kept": True, "conversation_id": result.conversation.id, "usage": result.usage}
    return {"id": result.seed_id, "kept": False, "dropped": result.reason, "detail": result.detail,
            "rounds": result.rounds, "usage": result.usage}


async def run_review_instruct_async(input_path: str | Path, output: str | Path, config: ReviewInstructConfig, *,
                                    backends: ReviewInstructBackends | None = None, rm: Any = None,
                                    progress: bool = True, handle_sigint: bool = True,
                                    overwrite: bool = False) -> FilteredRunResult:
    """Grow one conversation per seed of `input_path` into `output` (see the module docstring).

    `backends` overrides `config.backends` and `rm` (any object with score/score_turns) overrides
    `config.rm` (tests pass scripted ones); what is built here is closed here. An `output` written with other
    settings is refused unless `overwrite` (which starts it over).
    """
    output = Path(output)
    counters: Counter = Counter()
    # every seed is read first: a bad input row fails before any LLM call or output
    seeds = list(seed_prompts(read_seed_records(input_path, format=config.input_format,
                                                on_error=config.input_on_error, counters=counters), counters))
    scorer = optional_scorer(rm, config.rm, config.rm_device)
    sinks = ("", ".seeds.jsonl")
    if not overwrite:          # refused before any model is loaded; the backends' identities are checked next
        check_settings(output, generator_settings(config), sinks=sinks)
    async with configured_backends(config.backends, build=backends is None) as (built, ledger):
        roles = backends or ReviewInstructBackends.from_roles(built, config.reviewers)
        claim_output(output, {**generator_settings(config), **backend_identities(roles)}, overwrite=overwrite,
                     sinks=sinks)

        async def grow(seed: SeedPrompt) -> tuple[dict[str, Any] | None, dict[str, Any]]:
            result = await review_instruct_conversation(seed, roles, config, scorer)
            count_result(counters, result)
            kept = result.conversation.to_dict() if result.conversation is not None else None
            return kept, seed_outcome(result)

        return await run_filtered(seeds, grow, output, item_id=lambda seed: seed.id,
                                  kept_id=lambda seed: review_conversation_id(seed.id), kept_key="conversation_id",
                                  counters=counters, concurrency=config.concurrency, ledger=ledger,
                                  description="generate review-instruct", progress=progress, limit=config.limit,
                                  input_name=str(input_path), handle_sigint=handle_sigint)


def run_review_instruct(input_path: str | Path, output: str | Path, config: ReviewInstructConfig,
                        **kwargs: Any) -> FilteredRunResult:
    """Synchronous `run_review_instruct_async`."""
    return asyncio.run(run_review_instruct_async(input_path, output, config, **kwargs))
