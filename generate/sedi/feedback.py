"""SeDi's iterative feedback (docs/methods.md, SeDi step 6): the per-pair signal, thresholds relative to the seed
set, and what the scores do to the seed pool."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from chat.backends.base import Completion
from generate.sedi.config import SediConfig
from generate.seeds import SeedTask

if TYPE_CHECKING:
    from generate.sedi.algorithm import Candidate, SediState


def response_loss(completion: Completion) -> float | None:
    """The responder's mean negative log-probability per generated token of its own response (the per-token SFT
    loss of that pair for the model that wrote it); None when the backend returned no logprobs."""
    if not completion.logprobs:
        return None
    return float(-np.mean([entry.logprob for entry in completion.logprobs]))


@dataclass(frozen=True)
class FeedbackThresholds:
    """The cut-offs one run applies to feedback scores: `retire` (mean offspring score below it retires a seed),
    `promote` (a kept pair at or above it becomes a seed), `keep` (a pair below it is dropped; None keeps all).
    `source` is seed_quantiles (computed from `seed_scores` scores of the seed set) or absolute."""

    signal: str
    source: str
    retire: float
    promote: float
    keep: float | None
    seed_scores: int = 0
    seed_mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "FeedbackThresholds":
        return cls(**row)


def absolute_thresholds(config: SediConfig) -> FeedbackThresholds:
    """The configured `retire_threshold`, `promote_threshold` and `keep_threshold` as they are."""
    return FeedbackThresholds(config.feedback_signal, "absolute", config.retire_threshold, config.promote_threshold,
                              config.keep_threshold)


def seed_quantile_thresholds(scores: Sequence[float], config: SediConfig) -> FeedbackThresholds:
    """The `retire_quantile`, `promote_quantile` and `keep_quantile` quantiles (linear interpolation) of the seed
    set's scores."""
    values = np.asarray(scores, dtype=np.float64)      # [seeds scored]

    def quantile(q: float) -> float:
        return round(float(np.quantile(values, q)), 6)

    keep = None if config.keep_quantile is None else quantile(config.keep_quantile)
    return FeedbackThresholds(config.feedback_signal, "seed_quantiles", quantile(config.retire_quantile),
                              quantile(config.promote_quantile), keep, len(values), round(float(values.mean()), 6))


def apply_feedback(state: "SediState", scored: list["Candidate"], kept: list["Candidate"], config: SediConfig,
                   thresholds: FeedbackThresholds) -> tuple[list[str], list[str], dict[str, list[float]]]:
    """SeDi's iterative feedback (docs/methods.md, SeDi step 6): credit each scored pair's feedback score (kept or
    dropped by the keep filter) to the seeds shown when it was generated; retire seeds with at least
    `min_offspring` scores whose mean is below `thresholds.retire` (never below `seed_examples` active seeds,
    lowest mean first); promote kept pairs scoring >= `thresholds.promote` into the seed pool.
    Returns (retired ids, promoted ids, this iteration's offspring scores by seed id)."""
    credited: dict[str, list[float]] = defaultdict(list)
    for candidate in scored:
        if candidate.feedback_score is None:
            continue
        for seed_id in candidate.seed_ids:
            credited[seed_id].append(candidate.feedback_score)
            state.offspring_scores[seed_id].append(candidate.feedback_score)
    failing = sorted((float(np.mean(scores)), seed_id) for seed_id, scores in state.offspring_scores.items()
                     if seed_id in state.seeds and seed_id not in state.retired
                     and len(scores) >= config.min_offspring and np.mean(scores) < thresholds.retire)
    room = max(len(state.active_seeds()) - config.seed_examples, 0)
    retired = [seed_id for _, seed_id in failing[:room]]
    state.retired.update(retired)
    promoted = [c.id for c in kept if c.feedback_score is not None and c.feedback_score >= thresholds.promote]
    for candidate in kept:
        if candidate.id in promoted:
            state.seeds[candidate.id] = SeedTask(candidate.id, candidate.instruction, candidate.response)
    return retired, promoted, dict(credited)
