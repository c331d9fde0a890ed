"""Position consistency and length bias of the embedded local model as a pairwise judge (issue 5).

Takes `--n` RMB pairwise items spread over the 32 helpfulness scenarios (the first items of each
file, in file order), writes them as canonical pairs, runs `turnwise judge pairs` with
configs/judge/embedded-pairwise.yaml (both orders, at most one re-ask), then `turnwise judge agree`
against the RMB labels (chosen wins). The embedded model is a 270M *base* model: expect many
unparseable verdicts; the point is to measure them honestly, not to judge well.

Run: .venv/bin/python bench/judge_embedded_pairwise.py [--n 100] [--out runs/bench/judge-embedded]
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

RMB_DIR = REPO.parent / "shared" / "data" / "preference" / "rmb-pairwise"


def sample_pairs(n: int, max_chars: int) -> list:
    """The first items of each RMB file in turn until `n` pairs (prompt + answers under `max_chars`)."""
    from chat.formats import load_pairs

    per_file = [[p for p in load_pairs(path, on_error="skip") if sum(len(m.content) for m in p.chosen.messages)
                 + len(p.rejected.messages[-1].content) <= max_chars] for path in sorted(RMB_DIR.glob("*.json.gz"))]
    chosen, depth = [], 0
    while len(chosen) < n and any(depth < len(items) for items in per_file):
        for items in per_file:
            if depth < len(items) and len(chosen) < n:
                chosen.append(items[depth])
        depth += 1
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--max-chars", type=int, default=3000, help="skip items longer than this (CPU time)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "judge-embedded")
    args = parser.parse_args()

    from chat.cli import main as turnwise
    from chat.formats import write_jsonl

    args.out.mkdir(parents=True, exist_ok=True)
    pairs_path = args.out / "rmb-pairs.jsonl"
    write_jsonl(sample_pairs(args.n, args.max_chars), pairs_path)
    verdicts = args.out / "verdicts.jsonl"
    started = time.monotonic()
    code = turnwise(["judge", "pairs", "--config", str(REPO / "configs/judge/embedded-pairwise.yaml"),
                     "--input", str(pairs_path), "-o", str(verdicts), "--no-progress"])
    elapsed = time.monotonic() - started
    assert code == 0, code
    code = turnwise(["judge", "agree", "--a", str(pairs_path), "--b", str(verdicts), "-o", str(args.out / "agreement")])
    assert code == 0, code
    report = json.loads((args.out / "agreement" / "report.json").read_text())
    summary = json.loads(verdicts.with_name(verdicts.name + ".summary.json").read_text())
    judge = report["judges"]["b"]
    numbers = {"items": report["counts"]["records_b"], "elapsed_s": round(elapsed, 1),
               "llm": summary["usage"].get("total"), "counters": summary["extra"],
               "unparseable_pairs": judge["unparseable"], "shares": judge["shares"],
               "position_consistency": judge["position_consistency"], "length_bias": judge["length_bias"],
               "agreement_with_rmb_labels": report["agreement"]}
    print(json.dumps(numbers, indent=2))
    record_judge(numbers)


def record_judge(numbers: dict) -> None:
    """One result row: the judge's agreement with the RMB labels, with its parse failures and biases."""
    agreement = numbers["agreement_with_rmb_labels"]
    position = numbers["position_consistency"] or {"n": 0}
    bias = numbers["length_bias"] or {"n": 0}
    items = numbers["items"]
    parts = [f"{items} items, {numbers['unparseable_pairs']} unparseable pairs, "
             f"{numbers['counters'].get('unparseable_orders', 0)} of {2 * items} orders",
             f"position consistency {position['consistent']:.2f} (n = {position['n']})" if position["n"]
             else "position consistency n = 0",
             f"prefers longer {bias['prefers_longer']:.2f} (n = {bias['n']})" if bias["n"] else "length bias n = 0"]
    if agreement:
        parts.insert(1, f"kappa {agreement['kappa']:.3f}, {agreement['n']} compared")
    record("embedded Gemma 3 270M base as a pairwise judge (RMB helpfulness, both orders): agreement with RMB labels",
           baseline="RMB labels (chosen wins)", ratio=agreement["accuracy"] if agreement else None, unit="accuracy",
           target="none", met=None, details={"summary": "; ".join(parts), **numbers})


if __name__ == "__main__":
    main()
