"""AlpacaEval win rates from the recorded GPT-4-turbo preferences against AlpacaEval's published leaderboard numbers.

`turnwise judge winrate --annotations` on the two files of ../shared/data/judgments/alpaca_eval; the
raw win rate must equal the published one to 0.1 point. Published (tatsu-lab/alpaca_eval,
src/alpaca_eval/leaderboards/data_AlpacaEval_2/alpaca_eval_cot_gpt4_turbo_fn_leaderboard.csv, the
annotator the Mistral file records): Mistral-7B-Instruct-v0.2 win_rate 15.527950310559005,
standard_error 1.2772783712147573. The weighted FuseChat-Gemma-2-9B-Instruct file has no published
row in the leaderboard versions available offline: its numbers are reported without a target.
The length-controlled win rate and the fitted GLM coefficients are reported for both.

Run: .venv/bin/python bench/judge_winrate.py [--out runs/bench/judge-winrate]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import record  # noqa: E402

ALPACA_DIR = REPO.parent / "shared" / "data" / "judgments" / "alpaca_eval"

#: model -> (published raw win rate, the leaderboard file it comes from)
PUBLISHED = {"Mistral-7B-Instruct-v0.2": (15.527950310559005, "alpaca_eval_cot_gpt4_turbo_fn_leaderboard.csv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "judge-winrate")
    args = parser.parse_args()
    if not ALPACA_DIR.is_dir():
        sys.exit(f"shared AlpacaEval annotations not found at {ALPACA_DIR}")

    from app.cli import main as turnwise

    started = time.monotonic()
    files = sorted(str(p) for p in ALPACA_DIR.glob("*.annotations.json.gz"))
    assert turnwise(["judge", "winrate", "--annotations", *files, "-o", str(args.out)]) == 0
    elapsed = time.monotonic() - started
    report = json.loads((args.out / "report.json").read_text())
    for model, part in report["models"].items():
        row, fit = part["leaderboard"], part["length_controlled"]
        published = PUBLISHED.get(model)
        details = {"win_rate": row["win_rate"], "standard_error": row["standard_error"],
                   "length_controlled_winrate": row["length_controlled_winrate"],
                   "lc_standard_error": row["lc_standard_error"], "coefficients": fit["coefficients"],
                   "n_total": row["n_total"], "annotator": row["annotator"], "elapsed_s": round(elapsed, 1)}
        print(json.dumps({model: details}, indent=2))
        if published is None:
            record(f"judge winrate on recorded AlpacaEval annotations, {model}: raw and LC win rate",
                   baseline="no published row available offline", ratio=None, unit="points", target="none",
                   met=None, details=details)
            continue
        value, source = published
        difference = row["win_rate"] - value
        record(f"judge winrate on recorded AlpacaEval annotations, {model}: raw win rate vs published",
               baseline=f"AlpacaEval {source}: {value:.4f}", ratio=difference, unit="points",
               target="|difference| <= 0.1", met=abs(difference) <= 0.1, details={**details, "published": value})


if __name__ == "__main__":
    main()
