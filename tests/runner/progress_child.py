"""Child process for the progress test: 3 slow items whose worker records one LLM call each, stderr a pipe.

Usage: python progress_child.py OUTPUT
Each item takes 0.8 s and the progress interval is 0.2 s, so status lines must come while no item has
finished yet (the timer, not item completions, writes them).
"""

from __future__ import annotations

import asyncio
import sys
import time

from chat.backends.base import Completion, UsageLedger
from chat.runner import run


def main() -> int:
    ledger = UsageLedger()

    async def worker(item: dict) -> dict:
        started = time.monotonic()
        ledger.record("simulator", Completion("x", "stop", {"prompt_tokens": 50, "completion_tokens": 10}), started)
        await asyncio.sleep(0.8)
        return {"id": item["id"]}

    items = [{"id": f"item-{n}"} for n in range(3)]
    summary = run(items, worker, sys.argv[1], concurrency=3, ledger=ledger, description="augment music",
                  progress=True, progress_log_every_s=0.2)
    return 0 if summary.done == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
