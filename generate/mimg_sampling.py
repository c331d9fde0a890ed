"""Multiple question sampling (docs/methods.md, MIMG step 4): nearest QAs by "question + answer" embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: `texts -> [len(texts), d]` unit vectors (generate.diversity.MiniLMEmbedder.encode, or a test fake).
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Neighbour:
    """A QA picked for a seed: its index in the QA list and its cosine similarity to the seed."""

    index: int
    similarity: float


def qa_text(question: str, answer: str) -> str:
    """What is embedded for a QA: the question, then its (short) answer."""
    return f"{question} {answer}"


def nearest_neighbours(vectors: np.ndarray, doc_ids: Sequence[str], seed: int, k: int, kind: str,
                       questions: Sequence[str] | None = None) -> list[Neighbour]:
    """The `k` QAs most similar to QA `seed` (cosine of unit vectors [n, d]), most similar first: within the
    seed's document (kind "indoc") or in other documents ("crossdoc"). The seed itself is never picked, nor
    (given `questions`) a QA whose question, case-folded, is the seed's or an already picked one's; ties break
    by index."""
    similarities = vectors @ vectors[seed]                       # [n]
    same_doc = np.asarray([doc == doc_ids[seed] for doc in doc_ids])
    allowed = same_doc if kind == "indoc" else ~same_doc
    allowed[seed] = False
    candidates = np.flatnonzero(allowed)
    picked: list[Neighbour] = []
    seen = {questions[seed].casefold().strip()} if questions is not None else set()
    for index in candidates[np.lexsort((candidates, -similarities[candidates]))]:
        if len(picked) == k:
            break
        if questions is not None:
            key = questions[index].casefold().strip()
            if key in seen:
                continue
            seen.add(key)
        picked.append(Neighbour(int(index), float(similarities[index])))
    return picked
