"""`augment inspect`: a pair side by side turn by turn with the divergence marked, and dataset statistics."""

from __future__ import annotations

import statistics
import textwrap
from collections import Counter
from typing import Any, Sequence

from chat.conversation import Message, PreferencePair
from chat.errors import ConfigError


def select_pair(pairs: Sequence[PreferencePair], *, pair_id: str | None = None,
                index: int | None = None) -> PreferencePair:
    """The pair with `pair_id`, else the one at `index` (0-based; default 0)."""
    if not pairs:
        raise ConfigError("the file holds no pairs")
    if pair_id is not None:
        for pair in pairs:
            if pair.id == pair_id:
                return pair
        raise ConfigError(f"no pair with id {pair_id!r} (ids look like {pairs[0].id!r})")
    index = 0 if index is None else index
    if not -len(pairs) <= index < len(pairs):
        raise ConfigError(f"--index {index} is out of range: the file holds {len(pairs)} pairs")
    return pairs[index]


def divergence_turn(pair: PreferencePair) -> int:
    """`meta.divergence_turn` when recorded, else the turn of the first message that differs."""
    recorded = pair.meta.get("divergence_turn")
    if isinstance(recorded, int):
        return recorded
    shared = pair.chosen.messages[:pair.shared_prefix_length]
    return sum(1 for m in shared if m.role == "user") + (0 if shared and shared[-1].role == "user" else 1)


def _by_turn(messages: Sequence[Message]) -> dict[int, list[Message]]:
    """Messages grouped by user turn (turn 0: a leading system message)."""
    turns: dict[int, list[Message]] = {}
    turn = 0
    for message in messages:
        if message.role == "user":
            turn += 1
        turns.setdefault(turn, []).append(message)
    return turns


def _cell(message: Message | None, width: int) -> list[str]:
    if message is None:
        return []
    lines: list[str] = []
    for paragraph in f"{message.role.upper()}: {message.content}".splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width=width, replace_whitespace=False, drop_whitespace=True) or [""])
    return lines


def render_pair(pair: PreferencePair, width: int = 120) -> str:
    """The pair as two columns (chosen | rejected), one block per turn; `=` between identical messages,
    the divergence turn's header marked `<<< divergence`."""
    column = max(20, (width - 3) // 2)
    d = divergence_turn(pair)
    meta = pair.meta
    lines = [f"pair {pair.id}" + (f" (source {meta['source_id']})" if "source_id" in meta else "")
             + f" - divergence at turn {d} of {pair.chosen.turns}"
             + (f" - prompts {meta['prompt_version']}" if "prompt_version" in meta else "")]
    for swap in meta.get("swaps") or []:
        swapped = swap.get("swapped")
        lines.append(f"  swap at turn {swap.get('turn')}: {_short(swap.get('original', ''))!r} -> "
                     + (repr(_short(swapped)) if swapped is not None else "(seed's own rejected response)"))
    lines.append(f"{'CHOSEN':<{column}} | REJECTED")
    chosen, rejected = _by_turn(pair.chosen.messages), _by_turn(pair.rejected.messages)
    for turn in sorted(set(chosen) | set(rejected)):
        marker = "  <<< divergence" if turn == d else ""
        title = "system" if turn == 0 else f"turn {turn}"
        rule = "=" if turn == d else "-"
        lines.append(f"{rule * 3} {title}{marker} ".ljust(2 * column + 3, rule))
        left_turn, right_turn = chosen.get(turn, []), rejected.get(turn, [])
        for i in range(max(len(left_turn), len(right_turn))):
            left = left_turn[i] if i < len(left_turn) else None
            right = right_turn[i] if i < len(right_turn) else None
            separator = " = " if left == right else " | "
            left_lines, right_lines = _cell(left, column), _cell(right, column)
            for j in range(max(len(left_lines), len(right_lines))):
                a = left_lines[j] if j < len(left_lines) else ""
                b = right_lines[j] if j < len(right_lines) else ""
                lines.append(f"{a:<{column}}{separator}{b}".rstrip())
    return "\n".join(lines)


def pair_stats(pairs: Sequence[PreferencePair]) -> dict[str, Any]:
    """Divergence-turn and turn-count histograms, lengths (characters) and swap counts of a pair file."""
    def describe(values: list[int]) -> dict[str, float]:
        if not values:
            return {}
        return {"mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
                "min": min(values), "max": max(values)}

    chosen_chars = [sum(len(m.content) for m in p.chosen.messages) for p in pairs]
    rejected_chars = [sum(len(m.content) for m in p.rejected.messages) for p in pairs]
    assistant_chars = [len(m.content) for p in pairs for side in (p.chosen, p.rejected)
                       for m in side.messages if m.role == "assistant"]
    swaps = [len(p.meta.get("swaps") or []) for p in pairs]
    return {
        "pairs": len(pairs),
        "divergence_turn": dict(sorted(Counter(divergence_turn(p) for p in pairs).items())),
        "turns": dict(sorted(Counter(p.chosen.turns for p in pairs).items())),
        "chosen_chars": describe(chosen_chars),
        "rejected_chars": describe(rejected_chars),
        "assistant_turn_chars": describe(assistant_chars),
        "rejected_longer_share": round(sum(r > c for c, r in zip(chosen_chars, rejected_chars)) / len(pairs), 3)
        if pairs else 0.0,
        "swaps_per_pair": describe(swaps),
        "origin": dict(Counter(str(p.meta["origin"]) for p in pairs if "origin" in p.meta)),
    }


def render_stats(stats: dict[str, Any], bar_width: int = 40) -> str:
    """The statistics as text, histograms drawn with `#` bars."""
    lines = [f"pairs: {stats['pairs']}"]
    for name in ("divergence_turn", "turns"):
        histogram = stats[name]
        lines.append(f"{name.replace('_', ' ')}:")
        largest = max(histogram.values(), default=1)
        for value, count in histogram.items():
            lines.append(f"  {value:>3}  {'#' * max(1, round(bar_width * count / largest)):<{bar_width}}  {count}")
    for name in ("chosen_chars", "rejected_chars", "assistant_turn_chars", "swaps_per_pair"):
        values = stats[name]
        if values:
            lines.append(f"{name.replace('_', ' ')}: mean {values['mean']}, median {values['median']}, "
                         f"min {values['min']}, max {values['max']}")
    lines.append(f"rejected longer than chosen: {stats['rejected_longer_share']:.1%}")
    if stats["origin"]:
        lines.append("origin: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["origin"].items())))
    return "\n".join(lines)


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
