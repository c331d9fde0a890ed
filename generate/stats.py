"""`generate stats`: diversity and difficulty metrics of generated data, with PNG plots, to compare modes and ablations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from chat.conversation import Conversation
from chat.formats import load_conversations
from generate.rouge import MAX_ROUGE_PAIRS, mean_pairwise_rouge_l, rouge_tokens


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct-n: distinct n-grams / all n-grams over the texts (rouge tokenization)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        tokens = rouge_tokens(text)
        grams.extend(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else None


def embedding_dispersion(vectors: np.ndarray) -> float | None:
    """Mean cosine distance of unit vectors [n, d] to their centroid direction: 1 - mean(v . c/|c|)."""
    if len(vectors) < 2:
        return None
    centroid = vectors.mean(axis=0)
    norm = np.linalg.norm(centroid)
    if norm == 0:
        return 1.0
    return float(1.0 - np.mean(vectors @ (centroid / norm)))


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "min": float(array.min()),
            "median": float(np.median(array)), "max": float(array.max())}


def user_turns(conversation: Conversation) -> list[str]:
    return [m.content for m in conversation.messages if m.role == "user"]


def rm_scores(conversation: Conversation) -> list[float]:
    """The RM scores a generator recorded: per-turn (review-instruct) or per pair (sedi)."""
    meta = conversation.meta
    if isinstance(meta.get("rm_turn_scores"), list):
        return [float(value) for value in meta["rm_turn_scores"]]
    if isinstance(meta.get("rm_score"), (int, float)):
        return [float(meta["rm_score"])]
    return []


def generation_stats(conversations: Sequence[Conversation], *, embed: Callable[[list[str]], np.ndarray] | None = None,
                     max_pairs: int = MAX_ROUGE_PAIRS, seed: int = 0) -> dict[str, Any]:
    """Metrics over every user instruction of the conversations (all turns) and per conversation."""
    instructions = [text for conversation in conversations for text in user_turns(conversation)]
    scores = [score for conversation in conversations for score in rm_scores(conversation)]
    decisions: dict[str, int] = {}
    for conversation in conversations:
        for round_ in conversation.meta.get("rounds", []) or []:
            decision = round_.get("decision")
            if decision:
                decisions[decision] = decisions.get(decision, 0) + 1
    stats: dict[str, Any] = {
        "conversations": len(conversations),
        "instructions": len(instructions),
        "distinct_1": distinct_n(instructions, 1),
        "distinct_2": distinct_n(instructions, 2),
        "distinct_3": distinct_n(instructions, 3),
        "mean_pairwise_rouge_l": mean_pairwise_rouge_l(instructions, max_pairs=max_pairs, seed=seed),
        "rouge_pairs_sampled": len(instructions) * (len(instructions) - 1) // 2 > max_pairs,
        "instruction_words": _summary([len(text.split()) for text in instructions]),
        "user_turns": _summary([len(user_turns(c)) for c in conversations]),
        "rm_score": _summary(scores),
        "decisions": decisions,
    }
    if embed is not None and len(instructions) >= 2:
        stats["embedding_dispersion"] = embedding_dispersion(embed(instructions))
    return stats


def plot_stats(conversations: Sequence[Conversation], directory: Path, name: str) -> list[Path]:
    """Histograms of instruction length, user turns and RM scores as PNG files in `directory`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    series = {
        "instruction_words": [len(t.split()) for c in conversations for t in user_turns(c)],
        "user_turns": [len(user_turns(c)) for c in conversations],
        "rm_score": [s for c in conversations for s in rm_scores(c)],
    }
    written = []
    for key, values in series.items():
        if not values:
            continue
        figure, axes = plt.subplots(figsize=(5, 3.2))
        axes.hist(values, bins=min(30, max(5, len(set(values)))))
        axes.set_xlabel(key.replace("_", " "))
        axes.set_ylabel("count")
        axes.set_title(f"{name}: {key.replace('_', ' ')}")
        figure.tight_layout()
        path = directory / f"{name}.{key}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def stats_for_file(path: str | Path, *, embeddings: bool = True, plots_dir: Path | None = None,
                   max_pairs: int = MAX_ROUGE_PAIRS) -> dict[str, Any]:
    """`generation_stats` of a generator output file (any conversation format), plus its plots."""
    path = Path(path)
    conversations = load_conversations(path)
    embed = None
    if embeddings:
        from generate.diversity import MiniLMEmbedder

        embedder = MiniLMEmbedder()
        embed = embedder.encode
    stats = {"path": str(path), **generation_stats(conversations, embed=embed, max_pairs=max_pairs)}
    if plots_dir is not None:
        stats["plots"] = [str(p) for p in plot_stats(conversations, plots_dir, path.name.split(".")[0])]
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """A few readable lines of the metrics."""
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [f"{stats.get('path', '')}: {stats['conversations']} conversations, {stats['instructions']} instructions"]
    lines.append("distinct-1/2/3: " + " / ".join(number(stats[f"distinct_{n}"]) for n in (1, 2, 3)))
    lines.append(f"mean pairwise ROUGE-L: {number(stats['mean_pairwise_rouge_l'])}"
                 + (" (sampled pairs)" if stats["rouge_pairs_sampled"] else ""))
    if "embedding_dispersion" in stats:
        lines.append(f"embedding dispersion: {number(stats['embedding_dispersion'])}")
    for key in ("instruction_words", "user_turns", "rm_score"):
        summary = stats[key]
        lines.append(f"{key.replace('_', ' ')}: " + ("-" if summary is None else ", ".join(
            f"{name} {number(value)}" for name, value in summary.items())))
    if stats["decisions"]:
        lines.append("decisions: " + json.dumps(stats["decisions"]))
    for plot in stats.get("plots", []):
        lines.append(f"plot: {plot}")
    return "\n".join(lines)
