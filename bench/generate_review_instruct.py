"""Bench: Review-Instruct on the embedded instruct model: share of seeds grown into a kept conversation, drop reasons.

Seeds: the first N Self-Instruct seed tasks (../shared/data/seeds/self_instruct_seed_tasks.jsonl, instruction + its
input); R rounds of candidate answer, N reviewer votes and the chairman's next question; backend `local` on
Qwen2.5-Coder-0.5B-Instruct with 8 requests per batch and no response cache (every call is a model call). A seed is
dropped at its first step that does not parse after its re-asks (`parse_failure`, the step named in the details) or
whose text fails the shared degenerate-text filter (`degenerate_text`). The chairman's question after the last round
is asked as by default; it goes into meta only, so its failure keeps the conversation.
Run: .venv/bin/python bench/generate_review_instruct.py [--seeds 16 --rounds 2 --reviewers 3 --max-tokens 160]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.runner import read_records, seed_log_path  # noqa: E402
from generate.review_instruct.config import ReviewInstructConfig  # noqa: E402
from generate.review_instruct.run import run_review_instruct  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "seeds" / "self_instruct_seed_tasks.jsonl"
TARGET = 0.5


def failed_steps(output: Path) -> tuple[Counter, list[str]]:
    """Dropped seeds by reason and the step that failed ("parse_failure at reviewer_2"), and the first few
    failure details, from OUT.seeds.jsonl."""
    steps: Counter = Counter()
    examples: list[str] = []
    for row in read_records(seed_log_path(output)):
        if not row.get("kept"):
            step = re.sub(r"/\d+$", "", row.get("detail", "").split(":", 1)[0]) or "?"
            steps[f"{row['dropped']} at {step}"] += 1
            if len(examples) < 4:
                examples.append(row.get("detail", "")[:200])
    return steps, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="R")
    parser.add_argument("--reviewers", type=int, default=3, help="N")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--max-words", type=int, default=150,
                        help="answer/review word limit (above max-tokens' words, so a cut-off answer still parses)")
    parser.add_argument("--concurrency", type=int, default=8, help="seeds grown at once")
    args = parser.parse_args()
    config = ReviewInstructConfig(
        backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8, "cache": False}},
        reviewers=args.reviewers, rounds=args.rounds,
        max_tokens=args.max_tokens, max_words=args.max_words, max_reasks=1, concurrency=args.concurrency,
        limit=args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "review.jsonl"
        started = time.monotonic()
        result = run_review_instruct(SEEDS, output, config, progress=False, handle_sigint=False)
        seconds = time.monotonic() - started
        steps, examples = failed_steps(output)
    seeds = result.summary.done
    share = result.kept / seeds if seeds else 0.0
    per_kept = result.per_kept()
    numbers = {"seeds": seeds, "kept": result.kept, "dropped": result.dropped, "dropped_at_step": dict(steps),
               "failure_examples": examples,
               "llm_calls": result.counters["llm_calls"], "reasks": result.counters["reasks"],
               "prompt_tokens": result.counters["prompt_tokens"],
               "completion_tokens": result.counters["completion_tokens"],
               "decisions": {k.removeprefix("decision_"): v for k, v in result.counters.items()
                             if k.startswith("decision_")},
               "calls_per_kept": per_kept["llm_calls"] if per_kept else None, "seconds": round(seconds, 1),
               "setup": f"{seeds} Self-Instruct seed tasks, R={args.rounds}, N={args.reviewers} reviewers, "
                        f"max_tokens {args.max_tokens}, max_words {args.max_words}, 1 re-ask, "
                        f"{args.concurrency} seeds in flight, no response cache"}
    print(json.dumps(numbers, indent=2))
    drops = ", ".join(f"{reason} {count}" for reason, count in steps.most_common()) or "none"
    record("Review-Instruct on the embedded instruct model: share of seeds kept as conversations",
           baseline="seeds in", unit="share", ratio=share, target=f">= {TARGET:.2f}", met=share >= TARGET,
           details={"summary": f"{result.kept} of {seeds} kept; dropped: {drops}; {numbers['setup']}", **numbers})


if __name__ == "__main__":
    main()
