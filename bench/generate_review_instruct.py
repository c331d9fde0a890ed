"""Bench: Review-Instruct on the embedded instruct model: share of seeds grown into a kept conversation, drop reasons,
and the review ablations (docs/methods.md, Review-Instruct step 3): 3 reviewers, 1 reviewer and no review on the
same seeds, compared by the diversity of their instructions and the RM score of their conversations.

Seeds: the first N Self-Instruct seed tasks (../shared/data/seeds/self_instruct_seed_tasks.jsonl, instruction + its
input); R rounds of candidate answer, N reviewer votes and the chairman's next question; backend `local` on
Qwen2.5-Coder-0.5B-Instruct with 8 requests per batch and no response cache (every call is a model call). A seed is
dropped at its first step that does not parse after its re-asks (`parse_failure`, the step named in the details) or
whose text fails the shared degenerate-text filter (`degenerate_text`). The chairman's question after the last round
is asked as by default; it goes into meta only, so its failure keeps the conversation.
Diversity is measured over every user instruction of the kept conversations (distinct-1/2, mean pairwise ROUGE-L,
MiniLM embedding dispersion: generate/stats.py); the RM score is that of each kept conversation under the CPU RM
trained on hh-rlhf (`--rm`, default runs/rm-minilm-hh from `bench/run_all --only rm_real_data`; its rows are left out
with a note when it is absent). Variant 0 is the no-review ablation (`review: false`).
Run: .venv/bin/python bench/generate_review_instruct.py [--seeds 16 --rounds 2 --variants 3 1 0 --max-tokens 320]
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
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from chat.formats import load_conversations  # noqa: E402
from chat.runner import read_records, seed_log_path  # noqa: E402
from generate.diversity import MiniLMEmbedder  # noqa: E402
from generate.review_instruct.config import ReviewInstructConfig  # noqa: E402
from generate.review_instruct.run import run_review_instruct  # noqa: E402
from generate.stats import generation_stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "data" / "seeds" / "self_instruct_seed_tasks.jsonl"
TRAINED_RM = REPO / "runs" / "rm-minilm-hh"
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


def variant_name(reviewers: int) -> str:
    return "no review" if reviewers == 0 else f"{reviewers} reviewer{'s' if reviewers > 1 else ''}"


def run_variant(reviewers: int, args: argparse.Namespace, embedder: MiniLMEmbedder, rm: Any) -> dict[str, Any]:
    """One Review-Instruct run on the seeds: kept share, drops, calls, diversity and RM scores of what it kept."""
    config = ReviewInstructConfig(
        backends={"default": {"kind": "local", "model": "embedded", "max_batch_size": 8, "cache": False}},
        reviewers=max(reviewers, 1), review=reviewers > 0, rounds=args.rounds,
        max_tokens=args.max_tokens, max_words=args.max_words, max_reasks=1, concurrency=args.concurrency,
        limit=args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "review.jsonl"
        started = time.monotonic()
        result = run_review_instruct(SEEDS, output, config, progress=False, handle_sigint=False)
        seconds = time.monotonic() - started
        steps, examples = failed_steps(output)
        conversations = load_conversations(output) if output.exists() else []
    stats = generation_stats(conversations, embed=embedder.encode)
    scores = [float(s) for s in rm.score(conversations)] if rm is not None and conversations else []
    seeds = result.summary.done
    per_kept = result.per_kept()
    return {"variant": variant_name(reviewers), "seeds": seeds, "kept": result.kept, "dropped": result.dropped,
            "share": result.kept / seeds if seeds else 0.0, "dropped_at_step": dict(steps),
            "failure_examples": examples,
            "llm_calls": result.counters["llm_calls"], "reasks": result.counters["reasks"],
            "prompt_tokens": result.counters["prompt_tokens"],
            "completion_tokens": result.counters["completion_tokens"],
            "decisions": {k.removeprefix("decision_"): v for k, v in result.counters.items()
                          if k.startswith("decision_")},
            "calls_per_kept": per_kept["llm_calls"] if per_kept else None, "seconds": round(seconds, 1),
            "instructions": stats["instructions"], "distinct_1": stats["distinct_1"],
            "distinct_2": stats["distinct_2"], "mean_pairwise_rouge_l": stats["mean_pairwise_rouge_l"],
            "embedding_dispersion": stats.get("embedding_dispersion"),
            "rm_mean": float(np.mean(scores)) if scores else None, "rm_scores": scores}


def number(value: float | None, digits: int = 3) -> str:
    return "n.a." if value is None else f"{value:.{digits}f}"


def diversity_text(run: dict[str, Any]) -> str:
    return (f"{run['variant']}: {run['kept']} of {run['seeds']} kept, {run['instructions']} instructions, "
            f"distinct-1/2 {number(run['distinct_1'])}/{number(run['distinct_2'])}, ROUGE-L "
            f"{number(run['mean_pairwise_rouge_l'])}, dispersion {number(run['embedding_dispersion'])}, "
            f"RM {number(run['rm_mean'])}, {run['calls_per_kept'] or 0:.1f} calls per kept")


def record_keep_share(run: dict[str, Any], setup: str, target: bool) -> None:
    drops = ", ".join(f"{reason} {count}" for reason, count in Counter(run["dropped_at_step"]).most_common()) or "none"
    record(f"Review-Instruct on the embedded instruct model ({run['variant']}): share of seeds kept as conversations",
           baseline="seeds in", unit="share", ratio=run["share"], target=f">= {TARGET:.2f}" if target else "none",
           met=run["share"] >= TARGET if target else None,
           details={"summary": f"{run['kept']} of {run['seeds']} kept; dropped: {drops}; {setup}", **run})


def record_against(run: dict[str, Any], baseline: dict[str, Any], rm_name: str | None, setup: str) -> None:
    """distinct-2 of `run` over `baseline`'s (diversity in the details), and the RM score difference."""
    d2, base_d2 = run["distinct_2"], baseline["distinct_2"]
    both = f"{diversity_text(run)}; {diversity_text(baseline)}; {setup}"
    record(f"Review-Instruct {run['variant']} vs {baseline['variant']}: distinct-2 of the kept instructions",
           baseline=f"{baseline['variant']}, same seeds and backend", target="none", met=None,
           ratio=d2 / base_d2 if d2 and base_d2 else None, details={"summary": both, "ours": run, "theirs": baseline})
    if rm_name and run["rm_mean"] is not None and baseline["rm_mean"] is not None:
        difference = run["rm_mean"] - baseline["rm_mean"]
        record(f"Review-Instruct {run['variant']} vs {baseline['variant']}: mean RM score of the kept conversations",
               baseline=f"{baseline['variant']}, same seeds and backend", unit="reward difference", target="none",
               met=None,
               ratio=difference,
               details={"summary": f"{run['rm_mean']:+.3f} vs {baseline['rm_mean']:+.3f} ({rm_name}; "
                                   f"{run['kept']} vs {baseline['kept']} conversations); {setup}",
                        "ours": run["rm_scores"], "theirs": baseline["rm_scores"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="R")
    parser.add_argument("--variants", type=int, nargs="+", default=[3, 1, 0],
                        help="reviewers N of each run; 0 = no review (the first is the kept-share target's run)")
    parser.add_argument("--max-tokens", type=int, default=320,
                        help="per reply: room for an answer or a review at the word limit (a cut-off answer is "
                             "dropped)")
    parser.add_argument("--max-words", type=int, default=150, help="answer/review word limit")
    parser.add_argument("--concurrency", type=int, default=8, help="seeds grown at once")
    parser.add_argument("--rm", default=str(TRAINED_RM), help="RM scoring the kept conversations (absent: no RM rows)")
    args = parser.parse_args()
    rm, rm_name = None, None
    if Path(args.rm, "config.json").exists():
        from rm.scorer import load_reward_model

        rm, rm_name = load_reward_model(args.rm), Path(args.rm).name
    else:
        print(f"no RM at {args.rm}: RM score rows left out (bench/run_all --only rm_real_data trains it)")
    embedder = MiniLMEmbedder()
    setup = (f"{args.seeds} Self-Instruct seed tasks, R={args.rounds}, max_tokens {args.max_tokens}, max_words "
             f"{args.max_words}, 1 re-ask, {args.concurrency} seeds in flight, no response cache")
    runs = [run_variant(reviewers, args, embedder, rm) for reviewers in args.variants]
    print(json.dumps([{k: v for k, v in run.items() if k != "rm_scores"} for run in runs], indent=2))
    for position, run in enumerate(runs):
        record_keep_share(run, setup, target=position == 0)
    for run in runs[:-1]:
        record_against(run, runs[-1], rm_name, setup)


if __name__ == "__main__":
    main()
