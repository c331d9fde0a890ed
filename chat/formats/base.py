"""The reader interface every dataset format implements, and the FORMATS registry that holds them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

from chat.registry import registry

#: Format name -> RecordReader, in detection order (most specific first).
FORMATS = registry("formats", "format")

#: What a reader yields for one source row.
RecordParser = Callable[[dict[str, Any]], Iterable[Any]]

#: The kinds of record a format holds.
PAIR, CONVERSATION, DOCUMENT, JUDGE_PROMPT = "pair", "conversation", "document", "judge-prompt"


@dataclass(frozen=True)
class SourceInfo:
    """Where rows come from: `name` as the user gave it (path or hub id), `path` for local files."""

    name: str
    path: Path | None = None


class RecordReader(ABC):
    """Maps source rows of one format into the data model.

    `matches(row)` decides detection from a dataset's first row; `records(row)` builds the
    records of one row (usually one), raising ValidationError (with the offending field) for an
    invalid row. A reader that needs more than the row itself (a sibling file) overrides `bind`.
    """

    kind: ClassVar[str] = CONVERSATION

    @abstractmethod
    def matches(self, row: dict[str, Any]) -> bool:
        """Whether `row` (a dataset's first row) looks like this format."""

    @abstractmethod
    def records(self, row: dict[str, Any]) -> Iterable[Any]:
        """The records built from one valid row; ValidationError for an invalid one."""

    def bind(self, source: SourceInfo) -> RecordParser:
        """The row parser for one source (default: `records`, which needs no context)."""
        return self.records
