"""Agreement of a trained CPU reward model with the recorded GPT-4-turbo verdicts of AlpacaEval.

For each of the two AlpacaEval annotation files in ../shared/data/judgments/alpaca_eval, the RM
judges all 805 pairs (`turnwise judge pairs --judge rm`), and `turnwise judge agree` compares its
verdicts with GPT-4-turbo's: accuracy with / without ties, Cohen's kappa, bootstrap 95% CIs.

Run: .venv/bin/python bench/judge_rm_alpaca.py --rm runs/rm-minilm [--out runs/bench/judge-rm-alpaca]
(train the RM first: turnwise rm train --config configs/rm/cpu-minilm.yaml --output_dir runs/rm-minilm
 --train_data ../shared/data/preference/hh-rlhf-harmless-base-test.first1800.jsonl.gz --skip_invalid_rows true)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import record  # noqa: E402

ALPACA_DIR = REPO.parent / "shared" / "data" / "judgments" / "alpaca_eval"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rm", required=True, help="trained reward model directory")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "judge-rm-alpaca")
    args = parser.parse_args()

    from app.cli import main as turnwise

    results = {}
    for annotation_file in sorted(ALPACA_DIR.glob("*.annotations.json.gz")):
        name = re.sub(r"\.(weighted_)?alpaca_eval.*$", "", annotation_file.name)  # the evaluated model
        verdicts = args.out / f"{name}.verdicts.jsonl"
        started = time.monotonic()
        assert turnwise(["judge", "pairs", "--judge", "rm", "--rm", args.rm, "--input", str(annotation_file),
                         "-o", str(verdicts), "--no-progress"]) == 0
        elapsed = time.monotonic() - started
        assert turnwise(["judge", "agree", "--a", str(annotation_file), "--b", str(verdicts),
                         "-o", str(args.out / f"{name}.agreement")]) == 0
        report = json.loads((args.out / f"{name}.agreement" / "report.json").read_text())
        overall = report["agreement"]
        results[name] = {"pairs": report["counts"]["compared"], "judge_s": round(elapsed, 1),
                         **{k: overall[k] for k in ("accuracy", "accuracy_ci", "accuracy_without_ties",
                                                    "accuracy_without_ties_ci", "kappa", "kappa_ci")},
                         "rm_length_bias": report["judges"]["b"]["length_bias"],
                         "gpt4_length_bias": report["judges"]["a"]["length_bias"]}
    print(json.dumps(results, indent=2))
    for name, result in results.items():
        record_agreement(Path(args.rm).name, name, result)


def record_agreement(rm_name: str, annotations: str, result: dict) -> None:
    """One result row per AlpacaEval file: the RM's accuracy against GPT-4-turbo's recorded verdicts."""
    def longer(bias: dict | None) -> str:
        return f"{bias['prefers_longer']:.3f}" if bias and bias.get("n") else "n.a."

    low, high = result["accuracy_ci"]
    kappa_low, kappa_high = result["kappa_ci"]
    summary = (f"95% CI [{low:.3f}, {high:.3f}]; kappa {result['kappa']:.3f} [{kappa_low:.3f}, {kappa_high:.3f}]; "
               f"{result['pairs']} pairs; prefers longer: RM {longer(result['rm_length_bias'])}, "
               f"GPT-4-turbo {longer(result['gpt4_length_bias'])}")
    record(f"trained CPU RM ({rm_name}) vs GPT-4-turbo verdicts, AlpacaEval {annotations}: accuracy",
           baseline="recorded GPT-4-turbo verdicts", ratio=result["accuracy"], unit="accuracy", target="none",
           met=None, details={"summary": summary, **result})


if __name__ == "__main__":
    main()
