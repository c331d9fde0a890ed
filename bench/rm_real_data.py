"""Real-data check: train `configs/rm/cpu-minilm.yaml` on 1,500 hh-rlhf pairs, evaluate on the rest, vs length baselines.

    .venv/bin/python bench/rm_real_data.py --output-dir runs/rm-minilm-hh [--override key=value ...]

Data: ../shared/data/preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz (1,796 valid pairs: 4 rows
with an empty turn are skipped and counted). Train = the first 1,500 pairs, eval = the other 296.
Prints accuracy with a bootstrap 95% CI, the prefer-longer / prefer-shorter baselines and wall times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from bench.rm_common import REPO_ROOT, hh_rlhf_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "rm" / "cpu-minilm.yaml"))
    parser.add_argument("--output-dir", default="runs/rm-minilm-hh")
    parser.add_argument("--train-pairs", type=int, default=1500)
    parser.add_argument("--override", nargs="*", default=[], help="config overrides, key=value (YAML values)")
    args = parser.parse_args()

    import yaml

    from chat.config import build_config, load_yaml
    from rm.config import RMTrainConfig
    from rm.evaluate import evaluate_scores, write_report
    from rm.model import RewardModel
    from rm.train import train_reward_model

    pairs = hh_rlhf_pairs()
    train, held_out = pairs[: args.train_pairs], pairs[args.train_pairs:]
    values = {**load_yaml(args.config), "output_dir": args.output_dir, "disable_tqdm": True}
    for item in args.override:
        key, _, value = item.partition("=")
        values[key] = yaml.safe_load(value)
    config = build_config(RMTrainConfig, values, source=args.config)

    started = time.perf_counter()
    result = train_reward_model(config, train, [])
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = RewardModel.load(args.output_dir)
    scores = model.score_pairs(held_out)
    score_seconds = time.perf_counter() - started
    report = evaluate_scores(held_out, scores, model=args.output_dir, data="hh-rlhf harmless-base pairs 1500+")
    report.seconds = score_seconds
    write_report(report, scores, held_out, Path(args.output_dir) / "eval")
    truncation = result.truncation["train"]
    print(f"train: {len(train)} pairs, {result.global_step} steps, {train_seconds:.0f} s wall "
          f"({result.tokens_per_second:.0f} tokens/s); {truncation['truncated_sequences']} of "
          f"{truncation['sequences']} sequences left-truncated to {config.max_length} tokens, none dropped")
    print(f"eval: {len(held_out)} pairs scored in {score_seconds:.1f} s")
    print(report.to_markdown())
    ours = report.overall
    for name, baseline in report.baselines.items():
        label = name.replace("_", " ") + " final reply"
        difference = 100 * (ours.accuracy - baseline.accuracy)
        record(f"RM {Path(args.config).stem} trained on {len(train)} hh-rlhf pairs: held-out accuracy vs {label}",
               baseline=label, ratio=difference, unit="points", target="> 0 points, RM's 95% CI above the baseline",
               met=ours.ci_low > baseline.accuracy,
               details={"summary": f"{ours.accuracy:.4f} [{ours.ci_low:.4f}, {ours.ci_high:.4f}] vs "
                                   f"{baseline.accuracy:.4f} on {len(held_out)} pairs; {result.global_step} steps, "
                                   f"train {train_seconds:.0f} s", "rm": ours.to_dict(), "baseline": baseline.to_dict(),
                        "train_seconds": round(train_seconds, 1), "score_seconds": round(score_seconds, 1),
                        "tokens_per_second": result.tokens_per_second})


if __name__ == "__main__":
    main()
