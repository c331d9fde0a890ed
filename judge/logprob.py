"""Logprob verdicts: candidate-token probabilities at a reply's first position, order averaging, expected grades.

docs/methods.md, Judge step 4: the judging conventions carried to logprobs as AlpacaEval's weighted
annotators do: the judge answers with one token and its top-k alternatives at that position give P(A),
P(B), P(tie) (or a grade distribution) instead of one sampled verdict. Token texts are matched after stripping
whitespace, so variants such as "A" and " A" are summed; the candidates' probabilities are then
renormalized over the candidates alone. A first position without any candidate among its top-k
alternatives is no verdict (None, counted), never guessed.
"""

from __future__ import annotations

import math
from typing import Mapping

from chat.backends.base import Completion
from chat.errors import ConfigError

#: How many alternatives logprob judges ask for at each position (OpenAI's maximum `top_logprobs`).
TOP_LOGPROBS = 20

#: The pairwise verdict token the prompt asks for -> verdict (C is FastChat's tie).
PAIRWISE_TOKENS: dict[str, str] = {"A": "A", "B": "B", "C": "tie"}

#: Grades are asked as one digit 0-9 (one token in every tokenizer, unlike "10", which Qwen splits into
#: "1", "0") and mapped to the 1-10 scale as digit + 1.
GRADE_TOKENS: dict[str, int] = {str(digit): digit + 1 for digit in range(10)}

#: Verdict names of a pairwise distribution, in report order.
OUTCOMES = ("A", "B", "tie")


def first_position_top(completion: Completion, backend_name: str) -> dict[str, float] | None:
    """The first generated position's alternatives (token -> logprob, the generated token included);
    None when the reply has no tokens. A backend that returned no logprobs at all is a ConfigError."""
    if completion.logprobs is None:
        raise ConfigError(f"judge backend {backend_name} returned no logprobs, which logprob verdicts need: use "
                          "--verdict-mode text (or a server that returns logprobs)")
    if not completion.logprobs:
        return None
    first = completion.logprobs[0]
    return {first.token: first.logprob, **first.top}


def candidate_distribution(top: Mapping[str, float] | None,
                           candidates: Mapping[str, str | int]) -> tuple[dict[str | int, float] | None, float]:
    """(renormalized probability of each candidate value, the candidates' total raw probability).

    `top` maps token text -> logprob; `candidates` maps the expected token text -> the value it stands
    for. Tokens are matched after stripping whitespace and summed per value. The distribution is None
    when no candidate appears (mass 0).
    """
    mass: dict[str | int, float] = {value: 0.0 for value in candidates.values()}
    for token, logprob in (top or {}).items():
        value = candidates.get(token.strip())
        if value is not None:
            mass[value] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None, 0.0
    return {value: p / total for value, p in mass.items()}, total


def swap_sides(probabilities: Mapping[str, float]) -> dict[str, float]:
    """A pairwise distribution of the other presentation order, in the original names (A and B swapped)."""
    return {"A": probabilities["B"], "B": probabilities["A"], "tie": probabilities["tie"]}


def average_orders(first: Mapping[str, float], second_mapped: Mapping[str, float]) -> dict[str, float]:
    """The mean of both orders' distributions (the second already mapped back): a pure position bias cancels."""
    return {outcome: (first[outcome] + second_mapped[outcome]) / 2.0 for outcome in OUTCOMES}


def pick_winner(probabilities: Mapping[str, float], tie_margin: float) -> str:
    """A or B, whichever is more probable by more than `tie_margin`; a tie otherwise.

    P(tie) does not compete in an argmax of its own (a small judge answers the tie token most of the
    time; its P(A) vs P(B) still carries the preference): it enters through the renormalization, which
    pulls P(A) and P(B) together the more probable the tie token is, so a margin turns verdicts that
    lean on the tie token into ties.
    """
    difference = probabilities["A"] - probabilities["B"]
    if abs(difference) <= tie_margin:
        return "tie"
    return "A" if difference > 0 else "B"


def expected_grade(distribution: Mapping[int, float]) -> float:
    """Sum of grade * probability over a renormalized grade distribution."""
    return float(sum(grade * p for grade, p in distribution.items()))
