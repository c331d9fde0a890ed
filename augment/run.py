"""`augment music` as a resumable job: seeds -> synthesize_pair -> kept pairs in OUT, every outcome in OUT.seeds.jsonl.

Files of a run on OUT:
    OUT                      kept pairs only, canonical preference JSONL (`chat.formats`, `rm train`, TRL read it).
    OUT.seeds.jsonl          the runner's sink: one line per finished seed, `{"id": seed id, "kept": true,
                             "pair_id"}` or `{"id", "kept": false, "dropped": reason, "detail", ...}`. Dropped
                             seeds are remembered here, so a resumed run redoes neither kept nor dropped ones.
    OUT.seeds.jsonl.summary.json / .errors.jsonl   the runner's summary and failed seeds (retried next run).
    OUT.fingerprint.json     the settings OUT was written with; a rerun with other settings is refused
                             (`chat.runner.fingerprint`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from augment.config import MusicConfig
from augment.music import PairResult, music_pair_id, synthesize_pair
from augment.prompts import PROMPT_VERSION
from augment.seeds import Seed, read_seeds
from augment.turns import MusicBackends
from chat.agents import count_usage
from chat.backends import configured_backends
from chat.runner import (FilteredRunResult, backend_identities, check_settings, claim_output, config_settings,
                         run_filtered, seed_log_path)
from chat.user_simulator import USER_SIMULATOR_VERSION

#: The sinks of a run on OUT (besides OUT itself): what `--overwrite` removes with their side files.
SINKS = ("", ".seeds.jsonl")


async def run_music_async(input_path: str | Path, output: str | Path, config: MusicConfig, *,
                          backends: MusicBackends | None = None, progress: bool = True,
                          handle_sigint: bool = True, overwrite: bool = False) -> FilteredRunResult:
    """Synthesize one MUSIC pair per seed of `input_path` into `output` (see the module docstring).

    `backends` overrides `config.backends` (tests pass scripted ones); backends built here are closed here.
    An `output` written with other settings is refused unless `overwrite` (which starts it over).
    """
    output = Path(output)
    counters: Counter = Counter()
    # Reading every seed first: a bad input fails before any model is loaded or any output is written.
    seeds = list(read_seeds(input_path, config.seed_turns, format=config.input_format,
                            on_error=config.input_on_error, counters=counters))
    if not overwrite:          # refused before any model is loaded; the backends' identities are checked next
        check_settings(output, music_settings(config), sinks=SINKS)
    async with configured_backends(config.backends, build=backends is None) as (built, ledger):
        roles = backends or MusicBackends.from_roles(built)
        claim_output(output, {**music_settings(config), **backend_identities(roles)}, overwrite=overwrite,
                     sinks=SINKS)

        async def grow(seed: Seed) -> tuple[dict[str, Any] | None, dict[str, Any]]:
            result = await synthesize_pair(seed, roles, config)
            count_result(counters, result)
            return (result.pair.to_dict() if result.pair is not None else None), seed_outcome(result)

        return await run_filtered(seeds, grow, output, item_id=lambda seed: seed.id,
                                  kept_id=lambda seed: music_pair_id(seed.id), kept_key="pair_id", counters=counters,
                                  concurrency=config.concurrency, ledger=ledger, description="augment music",
                                  progress=progress, limit=config.limit, input_name=str(input_path),
                                  handle_sigint=handle_sigint)


def run_music(input_path: str | Path, output: str | Path, config: MusicConfig, **kwargs: Any) -> FilteredRunResult:
    """Synchronous `run_music_async`."""
    return asyncio.run(run_music_async(input_path, output, config, **kwargs))


def music_settings(config: MusicConfig) -> dict[str, Any]:
    """What decides the pairs of a run besides the backends' identities: the config's record-changing fields and
    the prompt versions."""
    return {**config_settings("augment", config), "augment.prompt_version": PROMPT_VERSION,
            "augment.user_simulator_version": USER_SIMULATOR_VERSION}


def count_result(counters: Counter, result: PairResult) -> None:
    counters["kept" if result.kept else f"dropped_{result.reason}"] += 1
    count_usage(counters, result.usage)


def seed_outcome(result: PairResult) -> dict[str, Any]:
    """The seed log line of one result."""
    if result.pair is not None:
        return {"id": result.seed_id, "kept": True, "pair_id": result.pair.id,
                "divergence_turn": result.divergence_turn, "usage": result.usage}
    return {"id": result.seed_id, "kept": False, "dropped": result.reason, "detail": result.detail,
            "divergence_turn": result.divergence_turn, "swaps": result.swaps, "usage": result.usage}


def format_music_summary(result: FilteredRunResult) -> str:
    """The augment-specific lines the CLI prints after the runner's summary."""
    dropped = result.dropped
    lines = [f"pairs kept this run: {result.kept}; dropped: {sum(dropped.values())}"
             + (f" ({', '.join(f'{reason} {count}' for reason, count in dropped.items())})" if dropped else "")]
    cost = result.per_kept()
    if cost is not None:
        lines.append(f"per kept pair: {cost['llm_calls']:.1f} LLM calls, {cost['tokens']:.0f} tokens "
                     f"({cost['completion_tokens']:.0f} generated)")
    lines.append(f"{result.kept_total} pairs in {result.output}; seed outcomes in {seed_log_path(result.output)}")
    return "\n".join(lines)
