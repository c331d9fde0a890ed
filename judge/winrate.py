"""AlpacaEval win rates from preferences: head-to-head counts, standard error, and the length-controlled GLM.

docs/methods.md, Judge step 7: AlpacaEval 2 (Dubois et al. 2024). A preference is AlpacaEval's:
a number in [1, 2] per instruction, 1 = the baseline (output_1) better, 2 = the model (output_2)
better, 1.5 a draw (0 is read as a draw too), continuous for weighted annotators; None/NaN =
no preference (dropped, counted).

Raw win rate (AlpacaEval `AbsoluteScoringRule.describe_head2head`): mean(preference - 1) * 100, its
standard error the sample SEM (ddof 1) * 100; n_wins / n_wins_base count preferences above / below
1.5, n_draws those equal to 1.5. discrete_win_rate rounds each preference first (ZeroOneScoringRule).

Length-controlled win rate (AlpacaEval `glm_winrate.py`, GLM "length_controlled_v1"):

    P(model preferred on i) = sigmoid(theta + phi * tanh(delta_i / sd(delta)) + psi * difficulty_i)

with delta_i = len(output_1) - len(output_2) (baseline minus model, characters), sd the sample
standard deviation of delta over the instructions, no other intercept; fitted by maximum likelihood
on the soft targets y_i = preference_i - 1. The LC win rate is the mean prediction with the length
term switched off: mean_i sigmoid(theta + psi * difficulty_i) * 100. AlpacaEval additionally fits
an L1-penalised LogisticRegressionCV and regularises towards two "gamed" baselines whose annotations
(df_gamed.csv) and the per-instruction `instruction_difficulty` live on the Hugging Face hub; here the
fit is the unpenalised MLE (the limit of their fit without the gamed rows), and the difficulty term
enters only when the caller supplies difficulties (otherwise psi is absent from the model). Its
standard error is a percentile-free bootstrap SE: the SD of the LC win rate over refits on
resampled instructions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from chat.stats import DEFAULT_SEED

#: A preference equal to this is a draw (AlpacaEval also reads 0 as a draw).
DRAW = 1.5

#: Bootstrap defaults of the LC standard error.
DEFAULT_LC_RESAMPLES = 200


def clean_preferences(preferences: Sequence[float | None]) -> np.ndarray:
    """Preferences as floats, 0 read as a draw (1.5), None kept as NaN; shape (n,)."""
    values = np.array([math.nan if p is None else float(p) for p in preferences], dtype=np.float64)
    values[values == 0.0] = DRAW
    return values


def head_to_head(preferences: Sequence[float | None]) -> dict[str, Any]:
    """win_rate, standard_error, n_wins, n_wins_base, n_draws, n_total, discrete_win_rate (AlpacaEval's
    describe_head2head with the absolute and the zero-one scoring rules); NaN preferences are dropped."""
    values = clean_preferences(preferences)
    values = values[~np.isnan(values)]
    shifted = values - 1.0                                    # (n,) in [0, 1]: share of the model
    n_total = len(shifted)
    discrete = np.round(values)                               # ties stay 1.5 below: they were set aside first
    discrete = np.where(values == DRAW, DRAW, discrete) - 1.0
    return {
        "win_rate": float(shifted.mean() * 100) if n_total else math.nan,
        "standard_error": float(shifted.std(ddof=1) / math.sqrt(n_total) * 100) if n_total > 1 else math.nan,
        "n_wins": int((shifted > 0.5).sum()),
        "n_wins_base": int((shifted < 0.5).sum()),
        "n_draws": int((values == DRAW).sum()),
        "n_total": n_total,
        "discrete_win_rate": float(discrete.mean() * 100) if n_total else math.nan,
    }


@dataclass
class LengthControlledFit:
    """The fitted GLM: coefficients by AlpacaEval's column names, the LC win rate and its bootstrap SE."""

    length_controlled_winrate: float
    coefficients: dict[str, float]
    lc_standard_error: float
    n: int
    delta_len_sd: float
    difficulty: bool
    converged: bool
    resamples: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Coefficient names as AlpacaEval's weights CSVs spell them.
LENGTH_TERM = "np.tanh(std_delta_len)"
DIFFICULTY_TERM = "instruction_difficulty"
MODEL_TERM = "not_gamed_baseline.astype(float)"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _fit_soft_logistic(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, bool]:
    """Unpenalised logistic regression on soft targets: argmin_beta -sum y log s(X beta) + (1-y) log(1-s(X beta)).
    features: (n, k) without intercept; targets: (n,) in [0, 1]. Returns (beta (k,), converged)."""
    from scipy.optimize import minimize

    def loss_and_gradient(beta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = features @ beta                                   # (n,)
        # -[y log s(z) + (1-y) log s(-z)] = logaddexp(0, -z) * y + logaddexp(0, z) * (1-y)
        loss = np.sum(targets * np.logaddexp(0.0, -logits) + (1.0 - targets) * np.logaddexp(0.0, logits))
        gradient = features.T @ (_sigmoid(logits) - targets)       # (k,)
        return float(loss), gradient

    result = minimize(loss_and_gradient, np.zeros(features.shape[1]), jac=True, method="BFGS",
                      options={"gtol": 1e-8, "maxiter": 1000})
    return result.x, bool(result.success)


def _design(delta_len: np.ndarray, difficulty: np.ndarray | None, sd: float) -> np.ndarray:
    """(n, k) design matrix: tanh(delta / sd), [difficulty], 1 (the model term)."""
    columns = [np.tanh(delta_len / sd) if sd > 0 else np.zeros_like(delta_len)]
    if difficulty is not None:
        columns.append(difficulty)
    columns.append(np.ones_like(delta_len))
    return np.stack(columns, axis=1)


def _lc_from(beta: np.ndarray, difficulty: np.ndarray | None, n: int) -> float:
    """mean_i sigmoid(theta + psi * difficulty_i) * 100 (the length term set to 0)."""
    logits = np.full(n, beta[-1]) + (beta[1] * difficulty if difficulty is not None else 0.0)
    return float(_sigmoid(logits).mean() * 100)


def length_controlled(preferences: Sequence[float | None], len_baseline: Sequence[int], len_model: Sequence[int],
                      difficulty: Sequence[float] | None = None, *, resamples: int = DEFAULT_LC_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> LengthControlledFit:
    """Fit AlpacaEval's length-controlled GLM (module docstring) on the rows with a preference.

    len_baseline / len_model: characters of output_1 / output_2 per row; difficulty: one value per
    row or None (then the model has no difficulty term). `resamples` bootstrap refits give the SE.
    """
    values = clean_preferences(preferences)
    keep = ~np.isnan(values)
    targets = values[keep] - 1.0                                            # (n,)
    delta = (np.asarray(len_baseline, dtype=np.float64) - np.asarray(len_model, dtype=np.float64))[keep]
    diff = np.asarray(difficulty, dtype=np.float64)[keep] if difficulty is not None else None
    n = len(targets)
    notes: list[str] = []
    if n < 2:
        return LengthControlledFit(math.nan, {}, math.nan, n, math.nan, diff is not None, False, 0,
                                   ["fewer than 2 preferences: no fit"])
    sd = float(delta.std(ddof=1))
    if sd == 0:
        notes.append("all length differences equal: the length term is constant 0")
    beta, converged = _fit_soft_logistic(_design(delta, diff, sd), targets)
    names = [LENGTH_TERM] + ([DIFFICULTY_TERM] if diff is not None else []) + [MODEL_TERM]
    estimates = []
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)                                    # (n,) resampled rows
        d_idx = delta[idx]
        sd_idx = float(d_idx.std(ddof=1))
        diff_idx = diff[idx] if diff is not None else None
        beta_idx, _ = _fit_soft_logistic(_design(d_idx, diff_idx, sd_idx), targets[idx])
        estimates.append(_lc_from(beta_idx, diff_idx, n))
    se = float(np.std(estimates, ddof=1)) if resamples > 1 else math.nan
    if not converged:
        notes.append("the optimiser did not report convergence")
    return LengthControlledFit(_lc_from(beta, diff, n), dict(zip(names, map(float, beta))), se, n, sd,
                               diff is not None, converged, resamples, notes)
