"""Benchmark `augment music` with the embedded model: pairs per minute at 1 vs N concurrent seeds,
LLM calls and tokens per kept pair, and the share of seeds dropped by each filter.

    .venv/bin/python bench/augment_music.py --seeds 8 --concurrency 1 8
    .venv/bin/python bench/augment_music.py --seeds 8 --concurrency 8 --swap-writer model

`--swap-writer model` has the embedded model write the contrastive step's JSON too (the `local` backend
enforces its schema while decoding), so the drop shares are the real filters' on that model (including the
content filters of `chat.filters`). `--swap-writer derived` (default) answers only that JSON step without a
model call (a swap derived from the instruction text), so that every conversation turn is still generated
by the model: the throughput numbers are then about the turn generation, which is where the tokens go. The model is loaded and warmed up before timing; the response cache is off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from augment.config import MusicConfig  # noqa: E402
from augment.run import run_music_async  # noqa: E402
from augment.turns import DROP_REASONS, MusicBackends  # noqa: E402
from bench.results import record  # noqa: E402
from chat.backends import build_backend  # noqa: E402
from chat.backends.base import Completion, ResponseFormat  # noqa: E402
from chat.conversation import Message  # noqa: E402


class DerivedSwapWriter:
    """Answers the contrastive step's JSON request (the one with a `response_format`) with a swap derived from
    the instruction, without a model call; every other request goes to `inner`."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.cache_identity = f"derived-swap+{inner.cache_identity}"

    async def chat(self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512,
                   stop: Sequence[str] | None = None, seed: int | None = None,
                   response_format: ResponseFormat | None = None, logprobs: int | None = None) -> Completion:
        if response_format is None:
            return await self.inner.chat(messages, temperature=temperature, max_tokens=max_tokens, stop=stop,
                                         seed=seed, logprobs=logprobs)
        instruction = messages[-1].content.split("Latest user instruction:\n")[-1].split("\n\nReply with")[0]
        swapped = f"Do the opposite of this request: {instruction}"
        return Completion(json.dumps({"swapped_instruction": swapped, "reason": "derived"}), "stop",
                          {"prompt_tokens": 0, "completion_tokens": 0})

    async def aclose(self) -> None:
        await self.inner.aclose()


def seed_file() -> Path:
    shared = REPO_ROOT.parent / "shared" / "data" / "mt_bench" / "question.jsonl"
    return shared if shared.exists() else REPO_ROOT / "configs" / "demo" / "seed_prompts.jsonl"


async def measure(backends: MusicBackends, config: MusicConfig, source: Path) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        result = await run_music_async(source, Path(directory) / "out.jsonl", config, backends=backends,
                                       progress=False, handle_sigint=False)
        elapsed = time.perf_counter() - started
    seeds = result.summary.done
    cost = result.per_kept() or {}
    return {
        "concurrency": config.concurrency, "seeds": seeds, "kept": result.kept, "elapsed_s": round(elapsed, 1),
        "seeds_per_min": round(60 * seeds / elapsed, 2), "pairs_per_min": round(60 * result.kept / elapsed, 2),
        "llm_calls": result.counters["llm_calls"],
        "completion_tokens": result.counters["completion_tokens"],
        "completion_tokens_per_s": round(result.counters["completion_tokens"] / elapsed, 1),
        "calls_per_kept_pair": round(cost.get("llm_calls", 0.0), 2),
        "tokens_per_kept_pair": round(cost.get("tokens", 0.0), 1),
        "dropped_share": {reason: round(result.counters[f"dropped_{reason}"] / seeds, 3) for reason in DROP_REASONS
                          if result.counters[f"dropped_{reason}"]} if seeds else {},
    }


async def main_async(args: argparse.Namespace) -> list[dict]:
    spec = {"kind": "local", "model": "embedded", "cache": False, "concurrency": 16, "max_batch_size": 16}
    local = build_backend(spec, role="simulator", cache=False)
    await local.chat([Message("user", "Hello")], max_tokens=4)  # load and warm up outside the timing
    contrast = DerivedSwapWriter(local) if args.swap_writer == "derived" else local
    backends = MusicBackends(user=local, assistant=local, contrast=contrast)
    rows = []
    for concurrency in args.concurrency:
        config = MusicConfig(backends={"simulator": spec}, turns=args.turns, max_tokens=args.max_tokens, drop_truncated=False,
                             max_reasks=1, concurrency=concurrency, limit=args.seeds, seed=0)
        rows.append(await measure(backends, config, seed_file()))
        print(json.dumps(rows[-1]), flush=True)
    await local.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--swap-writer", choices=["derived", "model"], default="derived")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    print(f"\nseeds {args.seeds}, T={args.turns}, max_tokens {args.max_tokens}, swap writer {args.swap_writer}")
    print("| concurrency | seeds/min | kept pairs/min | gen tok/s | calls/kept pair | tokens/kept pair | dropped share |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['concurrency']} | {row['seeds_per_min']} | {row['pairs_per_min']} | "
              f"{row['completion_tokens_per_s']} | {row['calls_per_kept_pair']} | {row['tokens_per_kept_pair']} | "
              f"{row['dropped_share']} |")
    setup = f"{args.seeds} seeds, T={args.turns}, max_tokens {args.max_tokens}, swap JSON by {args.swap_writer}"
    if len(rows) >= 2 and rows[0]["seeds_per_min"]:
        first, last = rows[0], rows[-1]
        speed_up = last["seeds_per_min"] / first["seeds_per_min"]
        print(f"speed-up (seeds/min) at concurrency {last['concurrency']} vs {first['concurrency']}: {speed_up:.2f}x")
        record(f"MUSIC on the embedded model: seeds/min, {last['concurrency']} vs {first['concurrency']} "
               "seeds in flight",
               baseline=f"{first['concurrency']} seed(s) in flight, same seeds", ratio=speed_up, target="none",
               met=None, details={"summary": f"{last['seeds_per_min']} vs {first['seeds_per_min']} seeds/min, "
                                             f"{last['completion_tokens_per_s']} vs {first['completion_tokens_per_s']} "
                                             f"generated tok/s; {setup}", "rows": rows})
    last = rows[-1]
    if last["seeds"]:
        kept_share = last["kept"] / last["seeds"]
        dropped = ", ".join(f"{reason} {share:.1%}" for reason, share in last["dropped_share"].items()) or "none"
        print(f"kept pairs per seed at concurrency {last['concurrency']}: {kept_share:.3f} (dropped: {dropped})")
        record(f"MUSIC on the embedded model, swap JSON by {args.swap_writer}: kept pairs per seed",
               baseline="seeds in", ratio=kept_share, target="none", met=None,
               details={"summary": f"{last['kept']} of {last['seeds']} kept; dropped {dropped}; "
                                   f"{last['llm_calls']} calls, {last['completion_tokens']} generated tokens, "
                                   f"{last['elapsed_s']} s; {setup}", "row": last})


if __name__ == "__main__":
    main()
