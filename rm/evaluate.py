"""`turnwise rm eval`: pairwise accuracy with bootstrap CI, per source/category, margins, length baselines, reports."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from chat.conversation import PreferencePair
from chat.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_mean_ci

logger = logging.getLogger(__name__)

#: Pair meta keys whose values split the accuracy report (the first ones found in the data are used).
GROUP_KEYS = ("source", "category", "category_path", "subset", "origin")


@dataclass
class Accuracy:
    n: int
    accuracy: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "ci95": [self.ci_low, self.ci_high]}


@dataclass
class EvalReport:
    model: str
    data: str
    overall: Accuracy
    margin: dict[str, float]
    rewards: dict[str, dict[str, float]]
    baselines: dict[str, Accuracy]
    groups: dict[str, dict[str, Accuracy]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, **self.overall.to_dict(), "margin": self.margin,
                "rewards": self.rewards, "baselines": {k: v.to_dict() for k, v in self.baselines.items()},
                "groups": {key: {value: acc.to_dict() for value, acc in table.items()}
                           for key, table in self.groups.items()},
                "seconds": self.seconds}

    def to_markdown(self) -> str:
        o = self.overall
        lines = [f"# Reward model evaluation: {self.model}", "", f"Data: `{self.data}` ({o.n} pairs)", "",
                 "| scorer | accuracy | 95% CI |", "|---|---|---|",
                 f"| reward model | {o.accuracy:.4f} | [{o.ci_low:.4f}, {o.ci_high:.4f}] |"]
        for name, acc in self.baselines.items():
            lines.append(f"| baseline: {name.replace('_', ' ')} | {acc.accuracy:.4f} | [{acc.ci_low:.4f}, {acc.ci_high:.4f}] |")
        m = self.margin
        lines += ["", "Reward margin (chosen - rejected): "
                  f"mean {m['mean']:.4f}, std {m['std']:.4f}, median {m['median']:.4f}, "
                  f"p5 {m['p5']:.4f}, p95 {m['p95']:.4f}"]
        for key, table in self.groups.items():
            lines += ["", f"## By {key}", "", f"| {key} | n | accuracy | 95% CI |", "|---|---|---|---|"]
            for value, acc in sorted(table.items()):
                lines.append(f"| {value} | {acc.n} | {acc.accuracy:.4f} | [{acc.ci_low:.4f}, {acc.ci_high:.4f}] |")
        return "\n".join(lines) + "\n"


def pair_outcomes(first: Sequence[float], second: Sequence[float]) -> np.ndarray:
    """1 where first > second, 0.5 on a tie, 0 otherwise (the pairwise-accuracy credit of each pair)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


def bootstrap_accuracy(outcomes: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Accuracy:
    """Mean of per-pair outcomes with a percentile bootstrap 95% interval (pairs resampled with replacement)."""
    n = len(outcomes)
    if n == 0:
        return Accuracy(0, float("nan"), float("nan"), float("nan"))
    low, high = bootstrap_mean_ci(outcomes, resamples=resamples, seed=seed)
    return Accuracy(n, float(outcomes.mean()), low, high)


def final_reply_length(pair_side: Any) -> int:
    return len(pair_side.messages[-1].content)


def evaluate_scores(pairs: Sequence[PreferencePair], scores: Sequence[tuple[float, float]], *, model: str = "",
                    data: str = "", resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> EvalReport:
    """Accuracy (r_chosen > r_rejected), CI, margins, per-group tables and the two length baselines."""
    chosen = np.array([c for c, _ in scores], dtype=float)
    rejected = np.array([r for _, r in scores], dtype=float)
    outcomes = pair_outcomes(chosen, rejected)
    margins = chosen - rejected
    chosen_length = [final_reply_length(p.chosen) for p in pairs]
    rejected_length = [final_reply_length(p.rejected) for p in pairs]
    baselines = {
        "prefer_longer": bootstrap_accuracy(pair_outcomes(chosen_length, rejected_length), resamples, seed),
        "prefer_shorter": bootstrap_accuracy(pair_outcomes(rejected_length, chosen_length), resamples, seed),
    }
    groups: dict[str, dict[str, Accuracy]] = {}
    for key in GROUP_KEYS:
        values = [_group_value(p.meta.get(key)) for p in pairs]
        if all(v is None for v in values):
            continue
        table = {}
        for value in sorted({v for v in values if v is not None}):
            mask = np.array([v == value for v in values])
            table[value] = bootstrap_accuracy(outcomes[mask], resamples, seed)
        groups[key] = table
    return EvalReport(
        model=model, data=data, overall=bootstrap_accuracy(outcomes, resamples, seed),
        margin=_stats(margins), rewards={"chosen": _stats(chosen), "rejected": _stats(rejected)},
        baselines=baselines, groups=groups)


def write_report(report: EvalReport, scores: Sequence[tuple[float, float]], pairs: Sequence[PreferencePair],
                 output_dir: Path) -> dict[str, Path]:
    """report.json, report.md, rewards.png (chosen vs rejected histogram) and scores.jsonl in `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "report.json", "markdown": output_dir / "report.md",
             "histogram": output_dir / "rewards.png", "scores": output_dir / "scores.jsonl"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    paths["markdown"].write_text(report.to_markdown(), encoding="utf-8")
    with paths["scores"].open("w", encoding="utf-8") as handle:
        for pair, (c, r) in zip(pairs, scores):
            handle.write(json.dumps({"id": pair.id, "chosen": c, "rejected": r}) + "\n")
    plot_reward_histogram([c for c, _ in scores], [r for _, r in scores], paths["histogram"], report.model)
    return paths


def plot_reward_histogram(chosen: Sequence[float], rejected: Sequence[float], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    values = np.concatenate([np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)])
    bins = np.histogram_bin_edges(values, bins=40) if len(values) else 10
    axis.hist(chosen, bins=bins, alpha=0.6, label="chosen")
    axis.hist(rejected, bins=bins, alpha=0.6, label="rejected")
    axis.set_xlabel("reward")
    axis.set_ylabel("pairs")
    axis.set_title(f"Rewards: chosen vs rejected {title}".strip())
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _group_value(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return "/".join(str(v) for v in value)
    return str(value)


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {k: float("nan") for k in ("mean", "std", "median", "p5", "p95", "min", "max")}
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(median), "p5": float(p5),
            "p95": float(p95), "min": float(values.min()), "max": float(values.max())}
