"""A pairwise verdict asked in both presentation orders: map the swapped order back, combine the two."""

from __future__ import annotations

#: A verdict in the other presentation order maps back by swapping A and B.
SWAP = {"A": "B", "B": "A", "tie": "tie", None: None}


def combine_orders(first: str | None, second_mapped: str | None) -> str | None:
    """Both presentation orders -> one verdict (docs/methods.md, Judge step 3): agreeing orders keep
    their verdict, disagreeing ones are a tie; an unparseable order leaves the pair unparseable."""
    if first is None or second_mapped is None:
        return None
    return first if first == second_mapped else "tie"
