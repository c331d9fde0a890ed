"""`turnwise demo`: the embedded default end to end on CPU with the pip-shipped model and the project's own seeds."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path

from chat.backends.base import BackendSpec, UsageLedger
from chat.conversation import Conversation

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SEEDS = REPO_ROOT / "configs" / "demo" / "seed_prompts.jsonl"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="Run the embedded default on CPU: serve the embedded instruct model, answer the demo seeds through it",
        description="Serves the embedded model (Qwen2.5-Coder-0.5B-Instruct: small-model quality) on 127.0.0.1, "
                    "answers the project's two-turn demo prompts through the OpenAI-compatible client with retries "
                    "and a response cache, via the resumable runner. Rerunning resumes; a fresh run dir with the "
                    "same cache makes no model calls.")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory (default: runs/demo)")
    parser.add_argument("--seeds", type=Path, default=DEMO_SEEDS, help="prompts in any readable format")
    parser.add_argument("--limit", type=int, help="answer only the first N prompts")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per reply (default: 64)")
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="sampling temperature; seeded, so replies are reproducible and cached (default: 0.7)")
    parser.add_argument("--concurrency", type=int, default=8, help="conversations in flight (default: 8)")
    parser.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    from chat.backends import build_backend
    from chat.backends.local import LocalBackend
    from chat.embedded import embedded_model_dir
    from chat.formats import load_conversations
    from chat.runner import format_summary, run_jobs
    from chat.serve import ChatServer

    args.out.mkdir(parents=True, exist_ok=True)
    seeds = load_conversations(args.seeds, limit=args.limit)
    started = time.monotonic()
    model_dir = embedded_model_dir()
    print(f"[1/3] embedded model ready in {time.monotonic() - started:.1f}s: {model_dir}")

    local = LocalBackend(BackendSpec(kind="local", model="embedded", max_batch_size=args.concurrency))
    with ChatServer(local, "embedded") as server:
        print(f"[2/3] serving {local.name} at {server.base_url} (OpenAI-compatible)")
        ledger = UsageLedger()
        client = build_backend({"kind": "openai", "base_url": server.base_url, "model": "embedded",
                                "concurrency": args.concurrency, "timeout": 600,
                                # the port changes every run: key the cache on the model served, not the URL
                                "endpoint_identity": local.cache_identity},
                               role="assistant", ledger=ledger, cache_path=args.out / "responses.sqlite")

        async def answer(seed: Conversation) -> dict:
            from chat.dialogue import answer_scripted_turns

            conversation, usage = await answer_scripted_turns(client, seed, temperature=args.temperature,
                                                              max_tokens=args.max_tokens, seed=0)
            return {"messages": conversation.to_messages(),
                    "meta": {**conversation.meta, "model": "embedded Qwen2.5-Coder-0.5B-Instruct",
                             "usage": usage.to_dict()}}

        async def answer_all():
            try:
                return await run_jobs(seeds, answer, args.out / "conversations.jsonl", concurrency=args.concurrency,
                                      ledger=ledger, description="demo conversations")
            finally:
                await client.aclose()

        summary = asyncio.run(answer_all())
    print(f"[3/3] {format_summary(summary)}")
    _print_sample(args.out / "conversations.jsonl")
    print("Note: replies come from Qwen2.5-Coder-0.5B-Instruct, a 0.5B model: expect small-model quality.")
    return summary.exit_code


def _print_sample(path: Path) -> None:
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    if not first:
        return
    record = json.loads(first)
    print(f"sample conversation {record['id']}:")
    for message in record["messages"]:
        print(f"  {message['role']:>9}: {message['content'][:160]!r}")
