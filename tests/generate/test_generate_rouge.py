"""ROUGE-L: rouge_score's tokenization, hand-computed values, the bit-parallel LCS, and the indexed pool."""

from __future__ import annotations

import random
import time

import pytest

from generate.rouge import RougePool, lcs_length, mean_pairwise_rouge_l, rouge_l, rouge_tokens


def dp_lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_tokens_are_lowercased_and_split_at_non_alphanumerics_like_rouge_score():
    assert rouge_tokens("Hello, World! It's 2024-05.") == ["hello", "world", "it", "s", "2024", "05"]
    assert rouge_tokens("café naïve") == ["caf", "na", "ve"]
    assert rouge_tokens("  ...  ") == []


@pytest.mark.parametrize("a, b, expected", [
    # LCS "the cat on mat" = 4 of 6 and 6 tokens: F = 2*4/12
    ("The cat sat on the mat.", "the cat was on a mat", 2 * 4 / 12),
    # identical after tokenization
    ("Write a poem!", "write A poem", 1.0),
    # no shared token
    ("alpha beta", "gamma delta", 0.0),
    # LCS "a b" of 3 and 4 tokens: P = 2/3, R = 2/4, F = 2PR/(P+R) = 4/7
    ("a x b", "a b y z", 4 / 7),
    # order matters: LCS of "a b c" and "c b a" is 1
    ("a b c", "c b a", 2 * 1 / 6),
    ("", "anything", 0.0),
])
def test_rouge_l_matches_hand_computed_values(a, b, expected):
    assert rouge_l(a, b) == pytest.approx(expected)
    assert rouge_l(b, a) == pytest.approx(expected)


def test_bit_parallel_lcs_equals_dynamic_programming_on_random_sequences():
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == dp_lcs(a, b)


def random_texts(n, seed=0, vocabulary=300):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocabulary)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) for _ in range(n)]


def test_pool_nearest_and_threshold_agree_with_brute_force():
    texts = random_texts(300, vocabulary=40)
    queries = random_texts(60, seed=1, vocabulary=40)
    pool = RougePool()
    for i, text in enumerate(texts):
        pool.add(text, f"t{i}")
    for query in queries:
        scores = [rouge_l(query, text) for text in texts]
        best = max(scores)
        nearest = pool.nearest(query)
        assert nearest.score == pytest.approx(best)
        assert scores[nearest.index] == pytest.approx(best)
        hit = pool.any_at_least(query, 0.4)
        assert (hit is not None) == (best >= 0.4)
        if hit is not None:
            assert hit.score >= 0.4


def test_empty_pool_and_no_shared_tokens_have_no_neighbour():
    pool = RougePool()
    assert pool.nearest("anything") is None
    pool.add("alpha beta")
    assert pool.nearest("gamma") is None
    assert pool.any_at_least("gamma", 0.1) is None


def test_pool_check_is_far_faster_than_comparing_every_pair():
    texts = random_texts(4000, seed=2, vocabulary=5000)
    pool = RougePool()
    started = time.perf_counter()
    for text in texts:
        pool.any_at_least(text, 0.7)
        pool.add(text)
    indexed = time.perf_counter() - started
    sample = texts[:200]
    started = time.perf_counter()
    for query in sample:
        for text in texts[:2000]:
            rouge_l(query, text)
    brute_200_queries = time.perf_counter() - started
    # brute force over the same 4000-insert run would cost ~ 20 x this sample (4000 queries, pool 2000 average)
    assert indexed < brute_200_queries * 20 / 5


def test_mean_pairwise_rouge_l_exact_and_sampled():
    assert mean_pairwise_rouge_l(["a b", "a b", "c d"]) == pytest.approx((1 + 0 + 0) / 3)
    assert mean_pairwise_rouge_l(["only one"]) is None
    texts = random_texts(200, vocabulary=30)
    exact = mean_pairwise_rouge_l(texts)
    sampled = mean_pairwise_rouge_l(texts, max_pairs=3000)
    assert sampled == pytest.approx(exact, abs=0.02)
