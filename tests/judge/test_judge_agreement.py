"""Agreement statistics against hand-computed values and scipy / scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from judge import agreement as ag


def labels(text: str) -> np.ndarray:
    return ag.encode_labels([{"a": "A", "b": "B", "t": "tie"}[c] for c in text])


def test_accuracy_with_and_without_ties_hand_computed():
    x = labels("aabbt" "at")
    y = labels("abbtt" "ta")
    # with ties: agree at positions 0, 2, 4 -> 3 / 7
    assert ag.accuracy_with_ties(x, y) == pytest.approx(3 / 7)
    # without ties: items where neither says tie: 0 (a,a), 1 (a,b), 2 (b,b) -> 2 / 3
    assert ag.accuracy_without_ties(x, y) == pytest.approx(2 / 3)


def test_cohen_kappa_hand_computed_two_by_two():
    # 10 items: x = A A A A A A B B B B, y = A A A A B B B B B A
    x = labels("aaaaaabbbb")
    y = labels("aaaabbbbba")
    # p_o = (4 + 3) / 10 = 0.7; marginals x: A .6 B .4, y: A .5 B .5 -> p_e = .3 + .2 = .5
    assert ag.cohen_kappa(x, y) == pytest.approx((0.7 - 0.5) / (1 - 0.5))


def test_cohen_kappa_matches_scikit_learn_on_random_three_class_labels():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, 200)
    y = np.where(rng.random(200) < 0.6, x, rng.integers(0, 3, 200))
    assert ag.cohen_kappa(x, y) == pytest.approx(cohen_kappa_score(x, y))


def test_cohen_kappa_undefined_when_both_judges_always_say_the_same_label():
    x = labels("aaaa")
    assert math.isnan(ag.cohen_kappa(x, x))


def test_confusion_matrix_counts():
    x, y = labels("aabt"), labels("abbt")
    assert ag.confusion_matrix(x, y).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, 300)
    y = np.where(rng.random(300) < 0.7, x, rng.integers(0, 3, 300))
    first = ag.bootstrap_accuracy_ci(x, y, seed=5)
    assert first == ag.bootstrap_accuracy_ci(x, y, seed=5)
    assert first != ag.bootstrap_accuracy_ci(x, y, seed=6)
    low, high = first
    assert low < ag.accuracy_with_ties(x, y) < high
    # normal approximation of a proportion's 95% CI half-width: 1.96 * sqrt(p (1-p) / n)
    p = ag.accuracy_with_ties(x, y)
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(p * (1 - p) / 300), rel=0.2)
    k_low, k_high = ag.bootstrap_kappa_ci(x, y, seed=5)
    assert k_low < ag.cohen_kappa(x, y) < k_high


def test_bootstrap_kappa_resamples_match_a_loop_over_cohen_kappa():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, 50)
    y = np.where(rng.random(50) < 0.5, x, rng.integers(0, 3, 50))
    idx = np.random.default_rng(9).integers(0, 50, size=(200, 50))
    looped = np.array([ag.cohen_kappa(x[i], y[i]) for i in idx])
    expected = tuple(np.percentile(looped[~np.isnan(looped)], [2.5, 97.5]))
    assert ag.bootstrap_kappa_ci(x, y, resamples=200, seed=9) == pytest.approx(expected)


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 11, 60).astype(float)
    y = x + rng.normal(0, 2, 60)
    result = ag.rank_correlations(x, y)
    assert result["spearman"] == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    assert result["kendall"] == pytest.approx(scipy_stats.kendalltau(x, y).statistic)
    low, high = ag.bootstrap_spearman_ci(x, y)
    assert low < result["spearman"] < high


def test_rank_correlations_of_constant_scores_are_undefined():
    assert math.isnan(ag.rank_correlations([3, 3, 3], [1, 2, 3])["spearman"])


def test_position_consistency_and_first_position_preference():
    first = ["A", "A", "B", None, "tie"]
    second = ["A", "B", "A", "A", "tie"]
    result = ag.position_consistency(first, second)
    assert result["n"] == 4
    assert result["consistent"] == pytest.approx(2 / 4)
    assert result["prefers_first_shown"] == pytest.approx(1 / 4)   # item 1: A first, then B (shown first)
    assert result["prefers_second_shown"] == pytest.approx(1 / 4)


def test_length_bias_counts_only_decided_verdicts_with_different_lengths():
    winners = ["A", "B", "A", "tie", "A"]
    len_a = [100, 100, 10, 50, 20]
    len_b = [10, 10, 100, 10, 20]
    result = ag.length_bias(winners, len_a, len_b)
    # item 0 picks longer, item 1 shorter, item 2 shorter; tie and equal-length left out
    assert result["n"] == 3
    assert result["prefers_longer"] == pytest.approx(1 / 3)


def test_win_rate_counts_ties_as_half():
    assert ag.win_rate(["A", "A", "B", "tie"]) == pytest.approx(2.5 / 4)


def test_breakdown_groups_by_key():
    x, y = labels("aabb"), labels("abbb")
    result = ag.breakdown(["c1", "c1", "c2", "c2"], x, y, ag.accuracy_with_ties)
    assert result == {"c1": 0.5, "c2": 1.0}
