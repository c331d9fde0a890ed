"""MUSIC on real seeds with the embedded instruct model: kept share, the content filters on kept pairs, contrast validity.

    .venv/bin/python bench/music_quality.py [--seeds 32] [--turns 3] [--validity-rm runs/bench/rm-validity]

Seeds: the first `--seeds` rows of an RMB helpfulness file (default Chat_Casual_Conversation), grown by
`augment music` with every role (user, assistant, contrast) on `embedded` (the local backend enforces the
swap step's JSON schema while decoding). Reported:
- kept share of seeds, with every drop reason (target: at least 75% kept);
- the content filters of chat.filters re-run over every turn of every kept pair (target: none fails);
- contrast validity: an RM that never saw MUSIC output (configs/rm/cpu-minilm.yaml trained on 750 hh-rlhf
  pairs + 750 RMB helpfulness pairs from the other RMB files, trained here once into `--validity-rm` when
  absent) prefers the chosen conversation over the rejected one in at least 60% of kept pairs. Its max_length
  (128) keeps the last turns of a pair, and chosen and rejected always differ there.
The response cache is off, so every call is made and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import record

PREFERENCE = REPO_ROOT.parent / "shared" / "data" / "preference"
RMB_DIR = PREFERENCE / "rmb-pairwise"
HH_RLHF = PREFERENCE / "hh-rlhf-harmless-base-test.first1800.jsonl.gz"
#: RMB pairs longer than this (characters) stay out of the validity RM's training data (CPU time).
MAX_PAIR_CHARS = 4000


def validity_training_pairs(seed_file: Path, per_source: int = 750) -> list:
    """hh-rlhf's first `per_source` pairs + `per_source` RMB pairs from every RMB file except the seeds' own."""
    from chat.formats import load_pairs

    hh = load_pairs(HH_RLHF, on_error="skip")[:per_source]
    rmb = [pair for path in sorted(RMB_DIR.glob("*.json.gz")) if path.name != seed_file.name
           for pair in load_pairs(path, on_error="skip")
           if sum(len(m.content) for m in pair.chosen.messages) + len(pair.rejected.messages[-1].content)
           < MAX_PAIR_CHARS]
    random.Random(0).shuffle(rmb)
    pairs = hh + rmb[:per_source]
    random.Random(1).shuffle(pairs)
    return pairs


def train_validity_rm(output_dir: Path, seed_file: Path) -> float:
    """Train the validity RM with configs/rm/cpu-minilm.yaml; returns the training seconds."""
    from chat.config import build_config, load_yaml
    from rm.config import RMTrainConfig
    from rm.train import train_reward_model

    config_path = REPO_ROOT / "configs" / "rm" / "cpu-minilm.yaml"
    values = {**load_yaml(config_path), "output_dir": str(output_dir), "disable_tqdm": True}
    started = time.perf_counter()
    train_reward_model(build_config(RMTrainConfig, values, source=str(config_path)),
                       validity_training_pairs(seed_file), [])
    return time.perf_counter() - started


def filter_failures(pair) -> list[str]:
    """Every content-filter reason that some turn of a kept pair still triggers (should be none)."""
    from chat.filters import degenerate_reason, repeat_reason, scaffolding_reason

    reasons = []
    for conversation in (pair.chosen, pair.rejected):
        messages = [m for m in conversation.messages if m.role != "system"]
        for index, message in enumerate(messages):
            checks = [degenerate_reason(message.content)]
            if message.role == "user":
                checks.append(scaffolding_reason(message.content))
            if index:
                checks.append(repeat_reason(message.content, messages[index - 1].content))
            reasons.extend(reason for reason in checks if reason)
    return reasons


async def synthesize(seeds: Path, output: Path, args: argparse.Namespace):
    from augment.config import MusicConfig
    from augment.run import run_music_async

    spec = {"kind": "local", "model": "embedded", "cache": False, "concurrency": args.concurrency,
            "max_batch_size": args.concurrency}
    config = MusicConfig(backends={"simulator": spec}, turns=args.turns, max_tokens=args.max_tokens,
                         temperature=0.3, user_temperature=0.5, user_max_tokens=48, user_attempts=3,
                         drop_truncated=False, max_reasks=2, reask_temperature=1.0, concurrency=args.concurrency,
                         limit=args.seeds, seed=0)
    return await run_music_async(seeds, output, config, progress=False, handle_sigint=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed-file", type=Path, default=RMB_DIR / "Helpfulness_Chat_Casual_Conversation.json.gz")
    parser.add_argument("--validity-rm", type=Path, default=REPO_ROOT / "runs" / "bench" / "rm-validity")
    parser.add_argument("--out", type=Path, default=None, help="keep the kept pairs here (default: a temp dir)")
    args = parser.parse_args()
    if not args.seed_file.exists() or not HH_RLHF.exists():
        print(f"skipped: ../shared data not found ({args.seed_file})")
        return

    from chat.formats import load_pairs
    from rm.model import RewardModel

    train_s = None
    if not (args.validity_rm / "turnwise_rm.json").exists():
        train_s = round(train_validity_rm(args.validity_rm, args.seed_file), 1)
        print(f"validity RM trained in {train_s} s -> {args.validity_rm}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        output = (args.out or Path(tmp)) / "music.jsonl"
        output.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        result = asyncio.run(synthesize(args.seed_file, output, args))
        elapsed = time.perf_counter() - started
        kept_pairs = load_pairs(output) if output.exists() and output.stat().st_size else []

    seeds = result.summary.done
    dropped = {key.removeprefix("dropped_"): value for key, value in sorted(result.counters.items())
               if key.startswith("dropped_") and value}
    failing = {pair.id: filter_failures(pair) for pair in kept_pairs}
    failing = {pair_id: reasons for pair_id, reasons in failing.items() if reasons}
    rm = RewardModel.load(args.validity_rm)
    chosen = rm.score([pair.chosen for pair in kept_pairs]) if kept_pairs else []
    rejected = rm.score([pair.rejected for pair in kept_pairs]) if kept_pairs else []
    prefers = [c > r for c, r in zip(chosen, rejected)]
    validity = sum(prefers) / len(prefers) if prefers else None
    numbers = {"seeds": seeds, "kept": len(kept_pairs), "dropped": dropped, "elapsed_s": round(elapsed, 1),
               "llm_calls": result.counters["llm_calls"], "completion_tokens": result.counters["completion_tokens"],
               "filter_failures": failing, "validity_rm_prefers_chosen": validity,
               "validity_rm_train_s": train_s, "turns": args.turns, "max_tokens": args.max_tokens}
    print(json.dumps(numbers, indent=2))
    setup = (f"{seeds} seeds of {args.seed_file.name}, T={args.turns}, every role on embedded, "
             f"{numbers['llm_calls']} calls, {round(elapsed)} s")
    kept_share = len(kept_pairs) / seeds if seeds else 0.0
    drops = ", ".join(f"{reason} {count}" for reason, count in dropped.items()) or "none"
    record("MUSIC on the embedded instruct model: kept pairs per seed", baseline="seeds in", ratio=kept_share,
           target=">= 0.75", met=kept_share >= 0.75,
           details={"summary": f"{len(kept_pairs)} of {seeds} kept; dropped {drops}; {setup}", **numbers})
    record("MUSIC kept pairs that fail a content filter", baseline="kept pairs", unit="pairs",
           ratio=float(len(failing)), target="0", met=not failing,
           details={"summary": f"{len(failing)} of {len(kept_pairs)} kept pairs fail a filter", **numbers})
    record("MUSIC contrast validity: RM never trained on MUSIC prefers chosen", baseline="kept pairs",
           unit="share", ratio=validity, target=">= 0.60", met=validity is not None and validity >= 0.60,
           details={"summary": f"{sum(prefers)} of {len(prefers)} kept pairs (cpu-minilm on 750 hh-rlhf + "
                               f"750 RMB pairs, seed file excluded)", **numbers})


if __name__ == "__main__":
    main()
