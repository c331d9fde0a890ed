"""The embedded instruct model as a pairwise judge on RMB helpfulness pairs, in both verdict modes.

Takes `--n` RMB pairwise items spread over the 32 helpfulness scenarios (the first items of each
file, in file order), writes them as canonical pairs, and for each `--modes` entry runs `turnwise judge
pairs` with configs/judge/embedded-pairwise.yaml and `--verdict_mode MODE` (both orders; text mode re-asks
once with a JSON schema that the local backend enforces), then `turnwise judge agree` against the RMB labels
(chosen wins), one report per mode and one with the modes side by side. Reported per mode: verdicts per
order, accuracy vs labels, position consistency and length bias, beside the prefer-longer baseline on the
same pairs.

Run: .venv/bin/python bench/judge_embedded_pairwise.py [--n 200] [--modes logprob text] [--out DIR]
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


def prefer_longer_accuracy(pairs: list) -> float:
    """Share of pairs whose chosen final reply is the longer one (ties count half): the length baseline."""
    scores = []
    for pair in pairs:
        chosen, rejected = len(pair.chosen.messages[-1].content), len(pair.rejected.messages[-1].content)
        scores.append(1.0 if chosen > rejected else 0.5 if chosen == rejected else 0.0)
    return sum(scores) / len(scores)


def judge_mode(turnwise, pairs_path: Path, out: Path, mode: str) -> dict:
    """Judge every pair in `mode`, compare with the labels; the numbers of one mode."""
    verdicts = out / f"verdicts-{mode}.jsonl"
    started = time.monotonic()
    code = turnwise(["judge", "pairs", "--config", str(REPO / "configs/judge/embedded-pairwise.yaml"),
                     "--verdict_mode", mode, "--input", str(pairs_path), "-o", str(verdicts), "--no-progress"])
    elapsed = time.monotonic() - started
    assert code == 0, code
    code = turnwise(["judge", "agree", "--a", str(pairs_path), "--b", str(verdicts), "-o", str(out / f"agree-{mode}")])
    assert code == 0, code
    report = json.loads((out / f"agree-{mode}" / "report.json").read_text())
    summary = json.loads(verdicts.with_name(verdicts.name + ".summary.json").read_text())
    judge = report["judges"]["b"]
    return {"mode": mode, "items": report["counts"]["records_b"], "elapsed_s": round(elapsed, 1),
            "llm": summary["usage"].get("total"), "counters": summary["extra"],
            "unparseable_pairs": judge["unparseable"], "shares": judge["shares"],
            "position_consistency": judge["position_consistency"], "length_bias": judge["length_bias"],
            "agreement_with_rmb_labels": report["agreement"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--modes", nargs="+", choices=["logprob", "text"], default=["logprob", "text"])
    parser.add_argument("--max-chars", type=int, default=3000, help="skip items longer than this (CPU time)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "judge-embedded")
    args = parser.parse_args()

    from app.cli import main as turnwise
    from chat.formats import write_jsonl

    args.out.mkdir(parents=True, exist_ok=True)
    pairs = sample_pairs(args.n, args.max_chars)
    pairs_path = args.out / "rmb-pairs.jsonl"
    write_jsonl(pairs, pairs_path)
    longer = prefer_longer_accuracy(pairs)
    for mode in args.modes:
        numbers = judge_mode(turnwise, pairs_path, args.out, mode)
        numbers["prefer_longer_accuracy"] = round(longer, 4)
        print(json.dumps(numbers, indent=2), flush=True)
        record_judge(numbers)
    if len(args.modes) > 1:
        verdict_files = [str(args.out / f"verdicts-{mode}.jsonl") for mode in args.modes]
        code = turnwise(["judge", "agree", "--a", str(pairs_path), "--b", *verdict_files, "-o", str(args.out / "agree")])
        assert code == 0, code
        print(f"side by side: {args.out / 'agree' / 'report.md'}")


def record_judge(numbers: dict) -> None:
    """One result row per mode: agreement with the RMB labels, verdicts per order, position and length bias."""
    agreement = numbers["agreement_with_rmb_labels"]
    position = numbers["position_consistency"] or {"n": 0}
    bias = numbers["length_bias"] or {"n": 0}
    items = numbers["items"]
    orders = 2 * items
    unparseable_orders = numbers["counters"].get("unparseable_orders", 0)
    verdict_share = (orders - unparseable_orders) / orders if orders else 0.0
    parts = [f"{items} pairs, verdicts in {orders - unparseable_orders} of {orders} orders",
             f"position consistency {position['consistent']:.2f} (n = {position['n']})" if position["n"]
             else "position consistency n = 0",
             f"prefers longer {bias['prefers_longer']:.2f} (n = {bias['n']})" if bias["n"] else "length bias n = 0",
             f"prefer-longer baseline accuracy {numbers['prefer_longer_accuracy']:.3f}"]
    if agreement:
        parts.insert(1, f"kappa {agreement['kappa']:.3f}, {agreement['n']} compared")
    record(f"embedded instruct model as a pairwise judge, {numbers['mode']} verdicts (RMB helpfulness, both orders): "
           "accuracy vs RMB labels",
           baseline="RMB labels (chosen wins)", ratio=agreement["accuracy"] if agreement else None, unit="accuracy",
           target="none (prefer-longer shown beside it)", met=None,
           details={"summary": "; ".join(parts), **numbers})
    record(f"embedded instruct model as a pairwise judge, {numbers['mode']} verdicts: orders with a verdict",
           baseline="orders judged", ratio=round(verdict_share, 4), unit="share", target=">= 0.99",
           met=verdict_share >= 0.99, details={"summary": parts[0], **numbers})


if __name__ == "__main__":
    main()
