"""Benchmark: training tokens/s of `turnwise rm train` defaults vs TRL RewardTrainer, defaults and tuned.

    .venv/bin/python bench/rm_train_throughput.py --steps 30 --batch-size 8

Same model (pretrained MiniLM + fresh head, same seed), same hh-rlhf training pairs in the same
token ids, same steps, batch size and learning rate. TRL side: RewardConfig defaults (gradient
checkpointing on, bf16 autocast on, random sampler, pairs longer than max_length dropped; max_length
512 instead of 1024 only because MiniLM has 512 positions; use_cpu=True, which TRL's bf16 default needs on CPU;
target >= 1.5x). TRL tuned: fp32, no checkpointing, length-grouped sampler (target >= 1.3x; TRL_CONFIGS).
turnwise side: RMTrainConfig defaults
(length-grouped sampler, no checkpointing, fp32 on CPU, long pairs left-truncated by turns).
tokens/s = real (non-padding) tokens trained / train_runtime. Both RMs are then scored on the same
held-out pairs with the same scorer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import record  # noqa: E402
from bench.rm_common import hh_rlhf_pairs  # noqa: E402
from rm.evaluate import bootstrap_accuracy, pair_outcomes  # noqa: E402
from rm.model import RewardModel  # noqa: E402


#: TRL RewardConfig settings of each baseline (on top of the shared steps, batch, learning rate, max_length).
#: "tuned": what an informed CPU user sets: fp32 (no bf16 autocast), no gradient checkpointing, and the same
#: length-grouped sampler turnwise uses; TRL 1.16's RewardTrainer has no padding-free option.
TRL_CONFIGS = {"defaults": {}, "tuned": {"bf16": False, "gradient_checkpointing": False,
                                         "train_sampling_strategy": "group_by_length",
                                         # keeps the `length` column for the sampler (the Trainer drops columns
                                         # the model's forward does not take)
                                         "remove_unused_columns": False}}
TRL_LABELS = {"defaults": "TRL defaults", "tuned": "TRL tuned (fp32, no checkpointing, group_by_length)"}
TRL_TARGETS = {"defaults": 1.5, "tuned": 1.3}


def accuracy(model, tokenizer, pairs, max_length: int) -> tuple[float, float, float]:
    scores = RewardModel(model, tokenizer, max_length=max_length).score_pairs(pairs)
    result = bootstrap_accuracy(pair_outcomes([c for c, _ in scores], [r for _, r in scores]))
    return result.accuracy, result.ci_low, result.ci_high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--trl", nargs="+", choices=sorted(TRL_CONFIGS), default=["defaults", "tuned"],
                        help="TRL baselines: its defaults, and TRL configured as well as it allows for this job")
    args = parser.parse_args()

    from chat.config import build_config
    from rm.config import RMTrainConfig
    from rm.data import tokenize_pairs
    from rm.encoding import ConversationEncoder
    from rm.train import load_tokenizer, train_reward_model

    pairs = hh_rlhf_pairs()
    train_pairs, eval_pairs = pairs[:1500], pairs[1500:]
    common = dict(max_steps=args.steps, per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
                  seed=0, report_to="none", save_strategy="no", logging_steps=args.steps, disable_tqdm=True,
                  dataloader_num_workers=0, max_length=args.max_length)

    with tempfile.TemporaryDirectory() as tmp:
        # turnwise defaults
        config = build_config(RMTrainConfig, {"model_name_or_path": "minilm", "output_dir": f"{tmp}/turnwise",
                                              **common})
        ours = train_reward_model(config, train_pairs, [])
        ours_runtime = ours.train_metrics["train_runtime"]
        ours_model = RewardModel.load(f"{tmp}/turnwise", device="cpu")
        ours_accuracy = accuracy(ours_model.model, ours_model.tokenizer, eval_pairs, args.max_length)

        tokenizer = load_tokenizer(config)
        columns = tokenize_pairs(train_pairs, ConversationEncoder(tokenizer, max_length=None)).columns
        trl_runs = [train_trl(name, TRL_CONFIGS[name], columns, tokenizer, common, f"{tmp}/trl-{name}", eval_pairs,
                              args.max_length) for name in args.trl]

    ours_rate = ours.train_tokens / ours_runtime
    print(f"{args.steps} steps x {args.batch_size} pairs, MiniLM, CPU; eval on {len(eval_pairs)} held-out pairs")
    print(f"turnwise defaults: {ours.train_tokens} tokens in {ours_runtime:.1f} s = {ours_rate:.0f} tokens/s; "
          f"kept all {len(train_pairs)} pairs ({ours.truncation['train']['truncated_sequences']} sequences "
          f"left-truncated); eval accuracy {ours_accuracy[0]:.4f} [{ours_accuracy[1]:.4f}, {ours_accuracy[2]:.4f}]")
    for run in trl_runs:
        label, trl_accuracy = TRL_LABELS[run["name"]], run["accuracy"]
        trl_rate = run["tokens"] / run["runtime_s"]
        print(f"{label}: {run['tokens']} tokens in {run['runtime_s']:.1f} s = {trl_rate:.0f} tokens/s; kept "
              f"{run['kept']} of {len(train_pairs)} pairs (dropped {len(train_pairs) - run['kept']} > {args.max_length} "
              f"tokens); eval accuracy {trl_accuracy[0]:.4f} [{trl_accuracy[1]:.4f}, {trl_accuracy[2]:.4f}]")
        speed_up = ours_rate / trl_rate
        difference = 100 * (ours_accuracy[0] - trl_accuracy[0])
        target = TRL_TARGETS[run["name"]]
        print(f"  speed-up (tokens/s): {speed_up:.2f}x (target >= {target}x); "
              f"accuracy difference {difference:+.2f} points (target within 1)")
        numbers = {"steps": args.steps, "batch_size": args.batch_size, "turnwise_tokens": ours.train_tokens,
                   "turnwise_runtime_s": ours_runtime, "trl_tokens": run["tokens"], "trl_runtime_s": run["runtime_s"],
                   "trl_pairs_kept": run["kept"], "trl_settings": TRL_CONFIGS[run["name"]],
                   "turnwise_accuracy": list(ours_accuracy), "trl_accuracy": list(trl_accuracy)}
        versus = "TRL" if run["name"] == "defaults" else f"TRL {run['name']}"
        record(f"RM training tokens/s, MiniLM, {args.steps} steps x {args.batch_size} pairs: turnwise defaults vs "
               f"{versus}", baseline=label, ratio=speed_up, target=f">= {target}x", met=speed_up >= target,
               details={"summary": f"{ours_rate:.0f} vs {trl_rate:.0f} tokens/s; TRL kept {run['kept']} of "
                                   f"{len(train_pairs)} pairs", **numbers})
        record(f"RM held-out accuracy after {args.steps} steps: turnwise defaults vs {versus}",
               baseline=label, ratio=difference, unit="points",
               target="no more than 1 point below TRL (difference >= -1)", met=difference >= -1,
               details={"summary": f"{ours_accuracy[0]:.4f} [{ours_accuracy[1]:.4f}, {ours_accuracy[2]:.4f}] vs "
                                   f"{trl_accuracy[0]:.4f} [{trl_accuracy[1]:.4f}, {trl_accuracy[2]:.4f}] on "
                                   f"{len(eval_pairs)} pairs", **numbers})


def train_trl(name: str, settings: dict, columns: dict, tokenizer, common: dict, output_dir: str, eval_pairs,
              max_length: int) -> dict:
    """One TRL RewardTrainer run on the same token ids (TRL's documented pre-tokenized dataset path)."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from chat.embedded import minilm_dir

    data = {"chosen_ids": columns["chosen_ids"], "rejected_ids": columns["rejected_ids"]}
    if settings.get("train_sampling_strategy") == "group_by_length":
        # the length column TRL's length-grouped sampler reads: the longer side of each pair
        data["length"] = [max(len(c), len(r)) for c, r in zip(columns["chosen_ids"], columns["rejected_ids"])]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=1)
    # use_cpu: on a CPU machine TRL's default bf16=True refuses to start without it
    trl_args = RewardConfig(output_dir=output_dir, use_cpu=not torch.cuda.is_available(), **common, **settings)
    trainer = RewardTrainer(model=model, args=trl_args, train_dataset=Dataset.from_dict(data),
                            processing_class=tokenizer)
    kept = len(trainer.train_dataset)
    output = trainer.train()
    return {"name": name, "kept": kept, "tokens": trainer._total_train_tokens,
            "runtime_s": output.metrics["train_runtime"],
            "accuracy": accuracy(trainer.model.eval(), tokenizer, eval_pairs, max_length)}

if __name__ == "__main__":
    main()
