"""MUSIC's experiment on CPU with real data: a baseline RM on D vs a MUSIC RM on D + MUSIC pairs, one `turnwise run`.

    .venv/bin/python bench/music_experiment.py [--seeds 40] [--bon-prompts 16] [--run-dir runs/bench/music-experiment]

The protocol of docs/methods.md ("MUSIC", evaluation) at CPU scale, every LLM role on `embedded`
(Qwen2.5-Coder-0.5B-Instruct) and both RMs MiniLM (configs/rm/cpu-minilm.yaml, max_length 256, same steps):
- D: the first 400 valid hh-rlhf pairs, RMB helpfulness multi-turn pairs and RMB single-turn pairs (every RMB file except
  the MUSIC seed file); MUSIC seeds: the first `--seeds` single-turn rows of RMB Chat_Casual_Conversation, T=3.
- Held out, never trained on: the last 300 valid hh-rlhf pairs of the file and RMB multi-turn pairs of the same files.
- Both RMs are scored on the held-out sets here (accuracy, bootstrap CI, paired difference CI); the pipeline's
  bon stage gives the multi-turn best-of-N win rate of the MUSIC RM over the baseline on MT-Bench first turns,
  N in {2, 4}, judged by the embedded model with logprob verdicts in both orders.
Target (the MUSIC claim's single-turn side): the MUSIC RM is within 1 point of the baseline on hh-rlhf
held-out pairs. The multi-turn accuracies and the win rate are reported whatever they are.
A rerun with the same run directory resumes the pipeline where it stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.results import record

SHARED = REPO_ROOT.parent / "shared" / "data"
RMB_DIR = SHARED / "preference" / "rmb-pairwise"
HH_RLHF = SHARED / "preference" / "hh-rlhf-harmless-base-test.first1800.jsonl.gz"
MT_BENCH = SHARED / "mt_bench" / "question.jsonl"
SEED_FILE = RMB_DIR / "Helpfulness_Chat_Casual_Conversation.json.gz"
#: hh-rlhf pairs in D (the first ones) and held out (the last ones) of the file's valid pairs.
HH_TRAIN, HH_HELD_OUT = 400, 300
#: RMB pairs longer than this (characters over every turn of both sides) stay out (MiniLM reads 256 tokens).
MAX_PAIR_CHARS = 4000


def user_turns(pair: Any) -> int:
    return sum(message.role == "user" for message in pair.chosen.messages)


def pair_chars(pair: Any) -> int:
    return sum(len(m.content) for m in pair.chosen.messages) + len(pair.rejected.messages[-1].content)


def build_data(directory: Path, multi_turn_train: int, multi_turn_held_out: int, single_turn: int) -> dict[str, int]:
    """D.jsonl (training originals), held_out_hh.jsonl, held_out_multi_turn.jsonl; the counts of each."""
    from chat.formats import load_pairs
    from chat.formats.writer import write_jsonl

    hh = load_pairs(HH_RLHF, on_error="skip")
    rmb = [pair for path in sorted(RMB_DIR.glob("*.json.gz")) if path != SEED_FILE
           for pair in load_pairs(path, on_error="skip") if pair_chars(pair) < MAX_PAIR_CHARS]
    random.Random(0).shuffle(rmb)
    multi = [pair for pair in rmb if user_turns(pair) > 1]
    single = [pair for pair in rmb if user_turns(pair) == 1]
    held_out_multi = multi[:multi_turn_held_out]
    train = (hh[:HH_TRAIN] + multi[multi_turn_held_out:multi_turn_held_out + multi_turn_train]
             + single[:single_turn])
    random.Random(1).shuffle(train)
    files = {"D": train, "held_out_hh": hh[-HH_HELD_OUT:], "held_out_multi_turn": held_out_multi}
    directory.mkdir(parents=True, exist_ok=True)
    return {name: write_jsonl(pairs, directory / f"{name}.jsonl") for name, pairs in files.items()}


def pipeline_config(run_dir: Path, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline YAML of this experiment (augment, mix, rm_train, rm_eval, bon, report)."""
    return {
        "run_dir": str(run_dir),
        "label": "MUSIC experiment on CPU: real hh-rlhf + RMB data, Qwen2.5-Coder-0.5B-Instruct roles, MiniLM RMs.",
        "backends": {"llm": {"kind": "local", "model": "embedded", "max_batch_size": 8}},
        "augment": {"seeds": str(SEED_FILE), "config": {
            "backends": {"simulator": "llm"}, "turns": 3, "divergence": "uniform",
            "contrast_scope": "from_divergence", "reuse_seed_rejected": False, "max_tokens": args.max_tokens,
            "user_max_tokens": 48, "temperature": 0.3, "user_temperature": 0.5, "user_attempts": 3,
            "max_reasks": 2, "reask_temperature": 1.0, "drop_truncated": False, "concurrency": 16,
            "limit": args.seeds, "seed": 0}},
        "mix": {"original": str(data / "D.jsonl"), "ratio": None, "eval_fraction": 0.05, "seed": 0},
        "rm_train": {"config": "configs/rm/cpu-minilm.yaml", "overrides": {
            "max_length": 256, "per_device_train_batch_size": 16, "learning_rate": 1.0e-4, "warmup_steps": 10,
            "logging_steps": 10, "save_strategy": "steps", "save_steps": 20, "save_total_limit": 2}},
        "rm_eval": {"bootstrap": 1000},
        "bon": {"prompts": str(MT_BENCH), "prompts_format": "mt-bench",
                "backends": {"policy": "llm", "user_sim": "llm", "judge": "llm"},
                "config": {"limit": args.bon_prompts, "turns": 2, "n_values": [2, 4], "max_tokens": 64,
                           "user_max_tokens": 32, "temperature": 0.8, "concurrency": 4},
                "judge": {"judge": "llm-pairwise", "verdict_mode": "logprob", "max_tokens": 1, "max_reasks": 1}},
    }


def compare_on(pairs: list, models: dict[str, Any]) -> dict[str, Any]:
    """Accuracy with bootstrap CI of each RM, and the paired MUSIC - baseline difference with its CI."""
    from rm.evaluate import bootstrap_accuracy, pair_outcomes

    outcomes = {}
    for name, model in models.items():
        scores = model.score_pairs(pairs)
        outcomes[name] = pair_outcomes([c for c, _ in scores], [r for _, r in scores])
    result: dict[str, Any] = {"n": len(pairs)}
    for name, values in outcomes.items():
        accuracy = bootstrap_accuracy(values)
        result[name] = {"accuracy": round(accuracy.accuracy, 4), "ci95": [round(accuracy.ci_low, 4),
                                                                         round(accuracy.ci_high, 4)]}
    difference = bootstrap_accuracy(outcomes["music"] - outcomes["baseline"])
    result["difference"] = {"points": round(100 * difference.accuracy, 2),
                            "ci95_points": [round(100 * difference.ci_low, 2), round(100 * difference.ci_high, 2)]}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="MUSIC seeds (single-turn RMB rows)")
    parser.add_argument("--max-tokens", type=int, default=128, help="MUSIC assistant turn budget")
    parser.add_argument("--bon-prompts", type=int, default=16)
    parser.add_argument("--multi-turn-train", type=int, default=400)
    parser.add_argument("--multi-turn-held-out", type=int, default=150)
    parser.add_argument("--single-turn", type=int, default=200, help="RMB single-turn pairs in D")
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / "runs" / "bench" / "music-experiment")
    args = parser.parse_args()
    for path in (SEED_FILE, HH_RLHF, MT_BENCH):
        if not path.exists():
            print(f"skipped: ../shared data not found ({path})")
            return 0

    import yaml

    from chat.formats import load_pairs
    from pipeline.config import PipelineConfig
    from pipeline.run import run_pipeline
    from rm.model import RewardModel

    data = args.run_dir / "data"
    counts = build_data(data, args.multi_turn_train, args.multi_turn_held_out, args.single_turn)
    print(f"data: {json.dumps(counts)}", flush=True)
    config_path = args.run_dir / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(pipeline_config(args.run_dir / "run", data, args), sort_keys=False))
    code = run_pipeline(PipelineConfig.load(config_path), progress=True, say=lambda line: print(line, flush=True))
    if code:
        print(f"the pipeline stopped with exit code {code}; rerun to resume")
        return code

    run = args.run_dir / "run"
    markers = {stage: json.loads((run / stage / "stage.json").read_text()) for stage in
               ("augment", "mix", "rm_train", "bon")}
    models = {name: RewardModel.load(str(run / "rm_train" / name)) for name in ("baseline", "music")}
    held_out = {name: compare_on(load_pairs(data / f"{name}.jsonl"), models)
                for name in ("held_out_hh", "held_out_multi_turn")}
    augment = markers["augment"]["counts"]
    music_pairs = markers["rm_train"]["counts"].get("music", {}).get("train_pairs")
    numbers = {"data": counts, "augment": augment, "rm_train": markers["rm_train"]["counts"],
               "held_out": held_out, "bon": markers["bon"]["metrics"].get("by_n"),
               "wall_s": {stage: marker.get("wall_s") for stage, marker in markers.items()}}
    print(json.dumps(numbers, indent=2, default=str))
    setup = (f"D {counts['D']} pairs (hh-rlhf 400 + RMB), {augment.get('kept_total')} MUSIC pairs from "
             f"{augment.get('inputs')} seeds (T=3), MUSIC RM trained on {music_pairs} pairs; MiniLM, same steps")

    # MUSIC on the embedded model (32 RMB seeds, T=3): kept share, content filters, contrast validity by the
    # baseline RM (trained on D only, never on MUSIC output)
    from bench.music_quality import filter_failures

    kept_pairs = load_pairs(run / "augment" / "pairs.jsonl") if augment.get("kept_total") else []
    failing = {pair.id: reasons for pair in kept_pairs if (reasons := filter_failures(pair))}
    prefers = [c > r for c, r in models["baseline"].score_pairs(kept_pairs)] if kept_pairs else []
    validity = sum(prefers) / len(prefers) if prefers else None
    seeds_in = augment.get("inputs") or 0
    kept_share = len(kept_pairs) / seeds_in if seeds_in else 0.0
    drops = ", ".join(f"{reason} {count}" for reason, count in (augment.get("dropped_this_run") or {}).items())
    music_setup = f"{seeds_in} seeds of {SEED_FILE.name}, T=3, every role on embedded, reasks at T=1.0"
    record("MUSIC experiment: kept pairs per seed (embedded instruct model)", baseline="seeds in", ratio=kept_share,
           target=">= 0.75", met=kept_share >= 0.75,
           details={"summary": f"{len(kept_pairs)} of {seeds_in} kept; dropped {drops or 'none'}; {music_setup}",
                    "augment": augment})
    record("MUSIC experiment: kept pairs that fail a content filter", baseline="kept pairs", unit="pairs",
           ratio=float(len(failing)), target="0", met=not failing,
           details={"summary": f"{len(failing)} of {len(kept_pairs)} kept pairs fail a filter", "failing": failing})
    record("MUSIC experiment: contrast validity, the baseline RM (never trained on MUSIC) prefers chosen",
           baseline="kept pairs", unit="share", ratio=validity, target=">= 0.60",
           met=validity is not None and validity >= 0.60,
           details={"summary": f"{sum(prefers)} of {len(prefers)} kept pairs"})

    hh = held_out["held_out_hh"]
    points = hh["difference"]["points"]
    record("MUSIC experiment: MUSIC RM vs baseline RM on held-out hh-rlhf pairs", baseline="baseline RM (D only)",
           unit="points", ratio=points, target=">= -1 point", met=points >= -1.0,
           details={"summary": f"{hh['music']['accuracy']:.3f} {hh['music']['ci95']} vs {hh['baseline']['accuracy']:.3f} "
                               f"{hh['baseline']['ci95']} on {hh['n']} pairs; difference {points} points, "
                               f"CI {hh['difference']['ci95_points']}; {setup}", **numbers})
    multi = held_out["held_out_multi_turn"]
    record("MUSIC experiment: MUSIC RM vs baseline RM on held-out RMB multi-turn pairs",
           baseline="baseline RM (D only)", unit="points", ratio=multi["difference"]["points"],
           target="report (paper: MUSIC RM ahead)", met=None,
           details={"summary": f"{multi['music']['accuracy']:.3f} {multi['music']['ci95']} vs "
                               f"{multi['baseline']['accuracy']:.3f} {multi['baseline']['ci95']} on {multi['n']} "
                               f"pairs; difference CI {multi['difference']['ci95_points']}; {setup}"})
    for n, result in sorted((markers["bon"]["metrics"].get("by_n") or {}).items(), key=lambda item: int(item[0])):
        record(f"MUSIC experiment: multi-turn best-of-{n} win rate of the MUSIC RM over the baseline RM",
               baseline="baseline RM picking among the same candidates", unit="share", ratio=result.get("win_rate"),
               target="report (paper: > 0.5)", met=None,
               details={"summary": f"{result.get('wins')} wins, {result.get('ties')} ties, {result.get('losses')} "
                                   f"losses over {result.get('n_prompts')} MT-Bench prompts, CI {result.get('ci')}; "
                                   f"judge: embedded, logprob, both orders", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
