"""SeDi's training batches as they reach OUT (docs/methods.md, SeDi step 4): diverse batches that close when full
(or when the run ends) and are then written in order."""

from __future__ import annotations

from typing import Any

from generate.diversity import Batch, BatchAssembler


class TrainingBatches(BatchAssembler):
    """`BatchAssembler` whose batches close: a closed batch (full, or flushed at the end of a run) admits no one
    again, even if it is not full, so that a written batch stays as it was written."""

    def __init__(self, batch_size: int, threshold: float, open_batches: int, similarity: str = "rouge"):
        super().__init__(batch_size, threshold, open_batches, similarity)
        self.closed: set[int] = set()

    @property
    def open(self) -> list[Batch]:
        """Batches neither closed nor full, oldest first."""
        return [batch for batch in self.batches
                if batch.number not in self.closed and len(batch.ids) < self.batch_size]

    def close(self, every: bool = False) -> list[Batch]:
        """Close the full batches (`every`: each batch with a member), oldest first, and return them."""
        closing = [batch for batch in self.batches if batch.number not in self.closed and batch.ids
                   and (every or len(batch.ids) >= self.batch_size)]
        self.closed.update(batch.number for batch in closing)
        return closing

    def restore_open(self, members: dict[int, list[tuple[str, str, Any]]], count: int) -> None:
        """A resumed run: `count` batches so far, of which those in `members` (number -> [(id, text, vector or
        None)]) are open; the others were closed (and written)."""
        super().restore({number: members.get(number, []) for number in range(count)})
        self.closed = set(range(count)) - set(members)
