"""Child process for the runner's kill and Ctrl-C tests: a deterministic job over N items.

Usage: python runner_child.py OUTPUT [--items N] [--concurrency C] [--sleep-ms LO HI]
                              [--started-log PATH] [--fast-items K --slow-s S]
Prints "running" once the job is about to start; exits 130 when interrupted, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys

from chat.runner import format_summary, run

ALPHABET = "abcdefghij klmnopqrstuvwxyz\n\"\\éüß中文🙂"


def expected_record(item_id: str) -> dict:
    """The record of one item: a pure function of its id (varied sizes, non-ASCII text)."""
    rng = random.Random(f"record-{item_id}")
    return {"id": item_id, "value": rng.random(), "text": "".join(rng.choices(ALPHABET, k=rng.randint(1, 4000)))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sleep-ms", type=float, nargs=2, default=(5.0, 25.0))
    parser.add_argument("--started-log", default=None, help="append each item id here when its worker starts")
    parser.add_argument("--fast-items", type=int, default=None, help="only the first K items sleep --sleep-ms ...")
    parser.add_argument("--slow-s", type=float, default=30.0, help="... the others sleep this long")
    args = parser.parse_args()
    items = [{"id": f"item-{index:04d}", "index": index} for index in range(args.items)]

    async def worker(item: dict) -> dict:
        if args.started_log:
            with open(args.started_log, "a", encoding="utf-8") as log:
                log.write(item["id"] + "\n")
        if args.fast_items is not None and item["index"] >= args.fast_items:
            delay = args.slow_s
        else:
            delay = random.Random(f"delay-{item['id']}").uniform(*args.sleep_ms) / 1000
        await asyncio.sleep(delay)
        return expected_record(item["id"])

    print("running", flush=True)
    summary = run(items, worker, args.output, concurrency=args.concurrency, progress=False, description="child")
    print(format_summary(summary), flush=True)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
