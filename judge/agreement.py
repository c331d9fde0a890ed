"""Agreement statistics between two judges: accuracy, Cohen's kappa, bootstrap CIs, rank correlations, biases.

docs/methods.md, Judge step 8: agreement is reported with and without ties; turnwise adds Cohen's
kappa, bootstrap confidence intervals, position consistency and length bias. Everything here is
plain numpy on small integer arrays; verdict labels are encoded as

    0 = A preferred, 1 = B preferred, 2 = tie      (LABELS[i] is the name of code i)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from chat.stats import (CI_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, bootstrap_indices, bootstrap_mean_ci,
                        percentile_interval)

#: Verdict names by integer code.
LABELS = ("A", "B", "tie")
A, B, TIE = 0, 1, 2
N_LABELS = len(LABELS)


def encode_labels(winners: Sequence[str]) -> np.ndarray:
    """["A", "B", "tie", ...] -> int array of codes, shape (n,)."""
    index = {name: code for code, name in enumerate(LABELS)}
    return np.array([index[w] for w in winners], dtype=np.int64)


# ----------------------------------------------------------------------------- pairwise verdicts

def accuracy_with_ties(x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of items where both judges give the same verdict, a tie counting as a verdict.
    x, y: (n,) label codes."""
    if len(x) == 0:
        return math.nan
    return float(np.mean(x == y))


def accuracy_without_ties(x: np.ndarray, y: np.ndarray) -> float:
    """Agreement over the items where neither judge says tie (FastChat's "w/o tie").
    x, y: (n,) label codes."""
    decided = (x != TIE) & (y != TIE)                     # (n,) bool
    if not decided.any():
        return math.nan
    return float(np.mean(x[decided] == y[decided]))


def confusion_matrix(x: np.ndarray, y: np.ndarray, n_labels: int = N_LABELS) -> np.ndarray:
    """counts[i, j] = number of items with x == i and y == j; shape (n_labels, n_labels)."""
    counts = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(counts, (x, y), 1)
    return counts


def cohen_kappa(x: np.ndarray, y: np.ndarray, n_labels: int = N_LABELS) -> float:
    """Cohen's kappa = (p_o - p_e) / (1 - p_e), chance agreement p_e from the two marginals.

    p_o = trace(C) / n, p_e = sum_k (row_k / n) * (col_k / n) for the confusion matrix C.
    When p_e == 1 (both judges always give the same single label) kappa is undefined: NaN, as in
    scikit-learn.
    """
    counts = confusion_matrix(x, y, n_labels).astype(np.float64)   # (K, K)
    n = counts.sum()
    if n == 0:
        return math.nan
    p_observed = np.trace(counts) / n
    p_expected = float(counts.sum(axis=1) @ counts.sum(axis=0)) / (n * n)
    if p_expected == 1.0:
        return math.nan
    return float((p_observed - p_expected) / (1.0 - p_expected))


def bootstrap_accuracy_ci(x: np.ndarray, y: np.ndarray, *, ties: bool = True, resamples: int = DEFAULT_RESAMPLES,
                          seed: int = DEFAULT_SEED, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the accuracy (with ties, or without: only undecided items dropped)."""
    if not ties:
        decided = (x != TIE) & (y != TIE)
        x, y = x[decided], y[decided]
    if len(x) == 0:
        return (math.nan, math.nan)
    idx = bootstrap_indices(len(x), resamples, seed)        # (R, n)
    agree = (x == y).astype(np.float64)                      # (n,)
    return percentile_interval(agree[idx].mean(axis=1), level)  # (R,) accuracies


def bootstrap_kappa_ci(x: np.ndarray, y: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                       level: float = CI_LEVEL, n_labels: int = N_LABELS) -> tuple[float, float]:
    """Percentile bootstrap CI of Cohen's kappa, all resamples computed at once."""
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    idx = bootstrap_indices(n, resamples, seed)             # (R, n)
    xs, ys = x[idx], y[idx]                                  # (R, n) label codes
    p_observed = (xs == ys).mean(axis=1)                     # (R,)
    onehot = np.eye(n_labels)
    row_marginal = onehot[xs].mean(axis=1)                   # (R, K) share of each label for judge x
    col_marginal = onehot[ys].mean(axis=1)                   # (R, K) same for judge y
    p_expected = (row_marginal * col_marginal).sum(axis=1)   # (R,)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappas = np.where(p_expected < 1.0, (p_observed - p_expected) / (1.0 - p_expected), np.nan)
    return percentile_interval(kappas, level)


def win_rate(winners: Sequence[str]) -> float:
    """(wins of A + 0.5 ties) / total (docs/methods.md, Judge step 7)."""
    points = win_points(winners)
    return float(points.mean()) if len(points) else math.nan


def win_points(winners: Sequence[str]) -> np.ndarray:
    """Per item: 1.0 when A wins, 0.5 for a tie, 0.0 when B wins; shape (n,)."""
    return np.array([{"A": 1.0, "tie": 0.5, "B": 0.0}[w] for w in winners], dtype=np.float64)


# ----------------------------------------------------------------------------- graded scores

def rank_correlations(scores_x: Sequence[float], scores_y: Sequence[float]) -> dict[str, float]:
    """Spearman's rho and Kendall's tau-b (scipy) between two judges' scores of the same items."""
    from scipy import stats

    x = np.asarray(scores_x, dtype=np.float64)
    y = np.asarray(scores_y, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"spearman": math.nan, "spearman_p": math.nan, "kendall": math.nan, "kendall_p": math.nan}
    spearman = stats.spearmanr(x, y)
    kendall = stats.kendalltau(x, y)
    return {"spearman": float(spearman.statistic), "spearman_p": float(spearman.pvalue),
            "kendall": float(kendall.statistic), "kendall_p": float(kendall.pvalue)}


def bootstrap_spearman_ci(scores_x: Sequence[float], scores_y: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
                          seed: int = DEFAULT_SEED, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of Spearman's rho (rank each resample, then Pearson of the ranks)."""
    from scipy import stats

    x = np.asarray(scores_x, dtype=np.float64)
    y = np.asarray(scores_y, dtype=np.float64)
    if len(x) < 2:
        return (math.nan, math.nan)
    idx = bootstrap_indices(len(x), resamples, seed)                 # (R, n)
    rx = stats.rankdata(x[idx], axis=1)                               # (R, n) average ranks (ties shared)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))  # (R,)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(denominator > 0, (rx * ry).sum(axis=1) / denominator, np.nan)
    return percentile_interval(rho, level)


# ----------------------------------------------------------------------------- judge biases

def position_consistency(first_order: Sequence[str | None], second_order: Sequence[str | None]) -> dict[str, Any]:
    """Share of items whose verdicts in the two presentation orders agree.

    first_order[i], second_order[i]: the verdict of item i shown as (A, B) and as (B, A), both
    already mapped back to the original A/B names; None where that order was unparseable (left out).
    """
    both = [(f, s) for f, s in zip(first_order, second_order) if f is not None and s is not None]
    if not both:
        return {"n": 0, "consistent": math.nan, "prefers_first_shown": math.nan}
    same = sum(1 for f, s in both if f == s)
    # A judge with position bias prefers whatever is shown first: "A" in the first order, "B" in the second.
    first_shown = sum(1 for f, s in both if f == "A" and s == "B")
    second_shown = sum(1 for f, s in both if f == "B" and s == "A")
    return {"n": len(both), "consistent": same / len(both), "prefers_first_shown": first_shown / len(both),
            "prefers_second_shown": second_shown / len(both)}


def length_bias(winners: Sequence[str], length_a: Sequence[int], length_b: Sequence[int]) -> dict[str, Any]:
    """P(the judge prefers the longer answer), over decided verdicts (A or B) whose answers differ in length.

    0.5 means no length preference; the CI comes from the bootstrap.
    """
    picks_longer = [
        1.0 if (w == "A") == (la > lb) else 0.0
        for w, la, lb in zip(winners, length_a, length_b)
        if w in ("A", "B") and la != lb
    ]
    if not picks_longer:
        return {"n": 0, "prefers_longer": math.nan, "ci": [math.nan, math.nan]}
    values = np.array(picks_longer)
    return {"n": len(values), "prefers_longer": float(values.mean()), "ci": list(bootstrap_mean_ci(values))}


# ----------------------------------------------------------------------------- summaries

@dataclass
class PairwiseAgreement:
    """Agreement of judge y with reference judge x on n matched pairwise verdicts."""

    n: int
    n_without_ties: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    accuracy_without_ties: float
    accuracy_without_ties_ci: tuple[float, float]
    kappa: float
    kappa_ci: tuple[float, float]
    confusion: list[list[int]]      # confusion[i][j]: x said LABELS[i], y said LABELS[j]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def pairwise_agreement(x: np.ndarray, y: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED) -> PairwiseAgreement:
    """All pairwise agreement statistics of two aligned label arrays x, y of shape (n,)."""
    decided = (x != TIE) & (y != TIE)
    return PairwiseAgreement(
        n=len(x), n_without_ties=int(decided.sum()),
        accuracy=accuracy_with_ties(x, y),
        accuracy_ci=bootstrap_accuracy_ci(x, y, ties=True, resamples=resamples, seed=seed),
        accuracy_without_ties=accuracy_without_ties(x, y),
        accuracy_without_ties_ci=bootstrap_accuracy_ci(x, y, ties=False, resamples=resamples, seed=seed),
        kappa=cohen_kappa(x, y),
        kappa_ci=bootstrap_kappa_ci(x, y, resamples=resamples, seed=seed),
        confusion=confusion_matrix(x, y).tolist())


def breakdown(keys: Sequence[Any], x: np.ndarray, y: np.ndarray,
              statistic: Callable[[np.ndarray, np.ndarray], Any]) -> dict[str, Any]:
    """statistic(x[group], y[group]) for every distinct key (category, turn), keys sorted as strings."""
    keys_array = np.array([str(k) for k in keys])
    return {key: statistic(x[keys_array == key], y[keys_array == key]) for key in sorted(set(keys_array.tolist()))}
