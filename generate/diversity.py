"""Batch-level diversity (docs/methods.md, SeDi step 4): training batches whose instructions are mutually dissimilar."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from chat.compute_thread import run_compute
from generate.rouge import rouge_l_tokens, rouge_tokens

logger = logging.getLogger(__name__)

#: Size of an all-MiniLM-L6-v2 sentence embedding.
EMBEDDING_DIM = 384


class MiniLMEmbedder:
    """Sentence embeddings (unit length) from the all-MiniLM-L6-v2 model shipped by pip, loaded offline; loaded
    and run on the compute thread (chat/compute_thread.py)."""

    def __init__(self, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        from chat.embedded import minilm_dir

        self.model = run_compute(SentenceTransformer, str(minilm_dir()), device=device, local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), EMBEDDING_DIM] float32, L2-normalised (cosine similarity = dot product)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.asarray(run_compute(self.model.encode, list(texts), batch_size=64, normalize_embeddings=True,
                                      show_progress_bar=False), dtype=np.float32)


@dataclass
class Batch:
    """One training batch being filled: its members' ids, tokens (ROUGE-L) or vectors (embedding)."""

    number: int
    ids: list[str] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


class BatchAssembler:
    """Places instructions into batches of `batch_size` so that, inside a batch, every pair's similarity
    (ROUGE-L, or cosine of embeddings) is below `threshold`. Up to `open_batches` batches fill at once;
    an instruction that fits none of them (and cannot open a new one) is rejected. A member taken out
    again (its pair was dropped later) frees its place, even in a batch that had filled up."""

    def __init__(self, batch_size: int, threshold: float, open_batches: int, similarity: str = "rouge"):
        self.batch_size = batch_size
        self.threshold = threshold
        self.open_batches = open_batches
        self.similarity = similarity
        self.batches: list[Batch] = []

    @property
    def open(self) -> list[Batch]:
        """Batches not yet full, oldest first."""
        return [batch for batch in self.batches if len(batch.ids) < self.batch_size]

    @property
    def full(self) -> int:
        return sum(len(batch.ids) >= self.batch_size for batch in self.batches)

    def _max_similarity(self, batch: Batch, tokens: list[str], vector: np.ndarray | None) -> float:
        if not batch.ids:
            return 0.0
        if self.similarity == "embedding":
            return float(np.max(np.stack(batch.vectors) @ vector))
        return max(rouge_l_tokens(tokens, other) for other in batch.tokens)

    def place(self, item_id: str, text: str, vector: np.ndarray | None = None) -> tuple[int, float] | None:
        """(batch number, highest similarity to a member) of the batch `item_id` joins, or None if none admits it."""
        if self.similarity == "embedding" and vector is None:
            raise ValueError("embedding similarity needs the instruction's vector")
        tokens = rouge_tokens(text)
        open_batches = self.open
        for batch in open_batches:
            similarity = self._max_similarity(batch, tokens, vector)
            if similarity < self.threshold:
                return self._join(batch, item_id, tokens, vector), similarity
        if len(open_batches) < self.open_batches:
            batch = Batch(len(self.batches))
            self.batches.append(batch)
            return self._join(batch, item_id, tokens, vector), 0.0
        return None

    @staticmethod
    def _join(batch: Batch, item_id: str, tokens: list[str], vector: np.ndarray | None) -> int:
        batch.ids.append(item_id)
        batch.tokens.append(tokens)
        if vector is not None:
            batch.vectors.append(vector)
        return batch.number

    def remove(self, item_id: str) -> None:
        """Take a member out of its batch again."""
        for batch in self.batches:
            if item_id in batch.ids:
                index = batch.ids.index(item_id)
                for values in (batch.ids, batch.tokens, batch.vectors):
                    if index < len(values):
                        del values[index]
                return

    def restore(self, members: dict[int, list[tuple[str, str, Any]]]) -> None:
        """Rebuild the state of a resumed run: batch number -> [(id, text, vector or None)] of its members."""
        for number in range(max(members, default=-1) + 1):
            batch = Batch(number)
            for item_id, text, vector in members.get(number, []):
                self._join(batch, item_id, rouge_tokens(text), vector)
            self.batches.append(batch)
