"""ROUGE-L (LCS F-measure over tokens) and an indexed pool that finds the most similar earlier text fast."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")

#: Pairs sampled at most for the mean pairwise ROUGE-L of a set of texts.
MAX_ROUGE_PAIRS = 20000


def rouge_tokens(text: str) -> list[str]:
    """Tokens as rouge_score's default tokenizer makes them: lowercased, split at every run of
    characters outside [a-z0-9] (so non-ASCII letters and punctuation separate/vanish), no stemming."""
    return [token for token in _NON_ALPHANUMERIC.sub(" ", text.lower()).split() if token]


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Bit-parallel (Crochemore et al. 2001): bit i of V is 1 while a[i] is not yet matched; for each
    token y of b, with M = positions of y in a: V <- (V + (V & M)) | (V & ~M). O(len(b)) big-int steps.
    """
    if not a or not b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        m = masks.get(token)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l_tokens(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists: 2 * LCS / (len(a) + len(b)) (= 2PR / (P + R)); 0 if either is empty."""
    if not a or not b:
        return 0.0
    return 2.0 * lcs_length(a, b) / (len(a) + len(b))


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts (symmetric; matches rouge_score's `rougeL` fmeasure, no stemmer)."""
    return rouge_l_tokens(rouge_tokens(a), rouge_tokens(b))


@dataclass(frozen=True)
class Neighbour:
    """The pool entry most similar to a query: its index, its id and the ROUGE-L F-measure."""

    index: int
    id: str
    score: float


class RougePool:
    """Texts checked against each other by ROUGE-L without comparing every pair (docs/methods.md, SeDi step 3).

    An inverted index maps each token to the entries holding it with their counts. For a query,
    the bag-of-words overlap with every entry sharing a token is summed with numpy; since the LCS
    cannot exceed that overlap, 2 * overlap / (len(query) + len(entry)) bounds the F-measure from
    above. Exact LCS runs only on entries whose bound reaches the threshold (or, for the nearest
    neighbour, on entries in decreasing bound order until the bound falls below the best found).
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.tokens: list[list[str]] = []
        self._lengths: list[int] = []
        self._postings: dict[str, tuple[list[int], list[int]]] = {}
        self._length_array = np.zeros(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, text: str, id: str = "") -> int:
        """Add a text; returns its index."""
        tokens = rouge_tokens(text)
        index = len(self.ids)
        self.ids.append(id or str(index))
        self.tokens.append(tokens)
        self._lengths.append(len(tokens))
        for token, count in Counter(tokens).items():
            entries, counts = self._postings.setdefault(token, ([], []))
            entries.append(index)
            counts.append(count)
        return index

    def _bounds(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(candidate indices, F-measure upper bounds) of entries sharing at least one token with `tokens`."""
        n = len(self.ids)
        overlap = np.zeros(n, dtype=np.float64)
        for token, count in Counter(tokens).items():
            posting = self._postings.get(token)
            if posting is None:
                continue
            entries = np.asarray(posting[0], dtype=np.int64)
            counts = np.asarray(posting[1], dtype=np.float64)
            overlap[entries] += np.minimum(counts, count)   # each entry appears once per token: no add.at needed
        candidates = np.nonzero(overlap)[0]
        if len(self._length_array) != n:
            self._length_array = np.asarray(self._lengths, dtype=np.float64)
        bounds = 2.0 * overlap[candidates] / (len(tokens) + self._length_array[candidates])
        return candidates, bounds

    def nearest(self, text: str) -> Neighbour | None:
        """The entry with the highest ROUGE-L to `text` (None when no entry shares a token with it)."""
        tokens = rouge_tokens(text)
        if not tokens or not self.ids:
            return None
        candidates, bounds = self._bounds(tokens)
        best: Neighbour | None = None
        for position in np.argsort(-bounds, kind="stable"):
            if best is not None and bounds[position] <= best.score:
                break
            index = int(candidates[position])
            score = rouge_l_tokens(tokens, self.tokens[index])
            if best is None or score > best.score:
                best = Neighbour(index, self.ids[index], score)
        return best

    def any_at_least(self, text: str, threshold: float) -> Neighbour | None:
        """The first entry (in decreasing bound order) whose ROUGE-L with `text` is >= threshold, or None."""
        tokens = rouge_tokens(text)
        if not tokens or not self.ids:
            return None
        candidates, bounds = self._bounds(tokens)
        keep = bounds >= threshold - 1e-12
        for position in np.nonzero(keep)[0][np.argsort(-bounds[keep], kind="stable")]:
            index = int(candidates[position])
            score = rouge_l_tokens(tokens, self.tokens[index])
            if score >= threshold:
                return Neighbour(index, self.ids[index], score)
        return None


def mean_pairwise_rouge_l(texts: Sequence[str], *, max_pairs: int = MAX_ROUGE_PAIRS, seed: int = 0) -> float | None:
    """Mean ROUGE-L over all pairs of `texts`, or over `max_pairs` random distinct pairs when there are more."""
    n = len(texts)
    if n < 2:
        return None
    tokens = [rouge_tokens(text) for text in texts]
    total_pairs = n * (n - 1) // 2
    if total_pairs <= max_pairs:
        pairs: Iterable[tuple[int, int]] = ((i, j) for i in range(n) for j in range(i + 1, n))
    else:
        rng = random.Random(seed)
        sampled = set()
        while len(sampled) < max_pairs:
            i, j = rng.randrange(n), rng.randrange(n)
            if i != j:
                sampled.add((min(i, j), max(i, j)))
        pairs = sorted(sampled)
        total_pairs = max_pairs
    return sum(rouge_l_tokens(tokens[i], tokens[j]) for i, j in pairs) / total_pairs
