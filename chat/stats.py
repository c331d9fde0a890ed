"""Percentile bootstrap confidence intervals: the one resampling primitive of `rm eval` and the judge statistics."""

from __future__ import annotations

import math

import numpy as np

#: Bootstrap defaults: resamples and the seed (results are reproducible for a given seed).
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
#: Level of every reported confidence interval.
CI_LEVEL = 0.95


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices drawn with replacement from range(n)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Central `level` interval of the resampled statistics (NaN resamples left out). values: (R,)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def bootstrap_mean_ci(values: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                      level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean (accuracies, win rates: values are 1 / 0.5 / 0 per item). values: (n,)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (math.nan, math.nan)
    idx = bootstrap_indices(len(values), resamples, seed)    # (R, n)
    return percentile_interval(values[idx].mean(axis=1), level)
