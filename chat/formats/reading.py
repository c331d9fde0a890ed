"""Reading a dataset: format detection from the first row, row-by-row parsing under a fail/skip policy, typed loaders."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

from chat.conversation import Conversation, Document, PreferencePair, ValidationError
from chat.errors import ConfigError, InputError
from chat.formats.base import CONVERSATION, DOCUMENT, FORMATS, JUDGE_PROMPT, PAIR, RecordParser, RecordReader
from chat.formats.fields import json_type
from chat.formats.sources import SourceRow, open_source

logger = logging.getLogger(__name__)

#: What to do with an invalid row: stop with an InputError, or set it aside as a reject.
ON_ERROR = ("fail", "skip")

#: How many unreadable rows detection looks past for the first row it can inspect.
DETECTION_WINDOW = 1000

#: Record kinds in words, for messages and summaries.
KIND_NAMES = {PAIR: "preference pairs", CONVERSATION: "conversations", DOCUMENT: "documents",
              JUDGE_PROMPT: "judge prompt templates"}


@dataclass
class RowResult:
    """The outcome of one source row: its records, or the InputError that rejected it (with the raw row)."""

    line: int
    records: list[Any] = field(default_factory=list)
    error: InputError | None = None
    raw: Any = None

    def reject(self) -> dict[str, Any]:
        """The row as written to `OUT.rejects.jsonl`."""
        assert self.error is not None
        return {"line": self.line, "field": self.error.field, "reason": self.error.reason, "raw": self.raw}


def detect_row_format(row: Any, source_name: str = "<row>", line: int = 1) -> str:
    """The first registered format whose reader recognises `row`; InputError naming the keys otherwise."""
    if not isinstance(row, dict):
        raise InputError(source_name, line, "row", f"expected a JSON object, got {json_type(row)}")
    for name in FORMATS.names():
        reader: RecordReader = FORMATS.get(name)
        if reader.matches(row):
            return name
    keys = ", ".join(sorted(str(key) for key in row)[:12]) or "none"
    raise InputError(source_name, line, "format",
                     f"cannot detect the format from the first row's keys ({keys}); "
                     f"pass --format (one of: {', '.join(FORMATS.names())})")


class DatasetReader:
    """An opened source: its format (given or detected from the first readable row), and its rows.

    Opening reads only as far as the first object row. Iterating yields one RowResult per row,
    in file order; an empty source is an InputError.
    """

    def __init__(self, source: str | Path, format: str | None = None, *, split: str = "train"):
        self.source = open_source(source, split)
        self.name = self.source.info.name
        self._rows: Iterator[SourceRow] = self.source.rows()
        self._peeked: list[SourceRow] = []
        self.format = format or self.source.implied_format or self._detect()
        self.reader: RecordReader = FORMATS.get(self.format)
        self.kind: str = self.reader.kind

    def _detect(self) -> str:
        for row in self._rows:
            self._peeked.append(row)
            if row.error is None and isinstance(row.value, dict):
                return detect_row_format(row.value, self.name, row.line)
            if len(self._peeked) >= DETECTION_WINDOW:
                break
        if not self._peeked:
            raise self._empty()
        first = self._peeked[0]
        field_name, reason = first.error or ("row", f"expected a JSON object, got {json_type(first.value)}")
        raise InputError(self.name, first.line, _prefixed(first.prefix, field_name), reason)

    def _empty(self) -> InputError:
        return InputError(self.name, 1, "file", "empty file: no rows")

    def __iter__(self) -> Iterator[RowResult]:
        parse = self.reader.bind(self.source.info)
        rows = chain(self._peeked, self._rows)
        self._peeked = []
        count = 0
        for row in rows:
            count += 1
            yield self._parse(row, parse)
        if count == 0:
            raise self._empty()

    def _parse(self, row: SourceRow, parse: RecordParser) -> RowResult:
        if row.error is not None:
            field_name, reason = row.error
            return RowResult(row.line, error=InputError(self.name, row.line, _prefixed(row.prefix, field_name), reason),
                             raw=row.raw)
        if not isinstance(row.value, dict):
            return RowResult(row.line, raw=row.value, error=InputError(
                self.name, row.line, _prefixed(row.prefix, "row"), f"expected a JSON object, got {json_type(row.value)}"))
        try:
            return RowResult(row.line, records=list(parse(row.value)))
        except ValidationError as exc:
            return RowResult(row.line, error=InputError(self.name, row.line, _prefixed(row.prefix, exc.field), exc.reason),
                             raw=row.value)

    def records(self, *, on_error: str = "fail", rejects: list | None = None,
                limit: int | None = None) -> Iterator[Any]:
        """Records in file order. "fail": the first invalid row raises its InputError; "skip": invalid
        rows are appended to `rejects` as `{line, field, reason, raw}` and left out. `limit` caps the records."""
        check_on_error(on_error)
        produced = 0
        for result in self:
            if limit is not None and produced >= limit:
                return
            if result.error is not None:
                if on_error == "fail":
                    raise result.error
                logger.debug("skipping %s", result.error)
                if rejects is not None:
                    rejects.append(result.reject())
                continue
            for record in result.records:
                if limit is not None and produced >= limit:
                    return
                produced += 1
                yield record


def _prefixed(prefix: str, field_name: str) -> str:
    """The field path inside the file: a JSON list element's index before the row's own field."""
    if not prefix:
        return field_name
    if field_name in ("", "row"):
        return prefix
    return prefix + field_name if field_name.startswith("[") else f"{prefix}.{field_name}"


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")


def detect_format(source: str | Path) -> str:
    """The format of a local file or hub dataset, from its first row (and the file name for .txt)."""
    return DatasetReader(source).format


def read_records(source: str | Path, format: str | None = None, *, on_error: str = "fail",
                 rejects: list | None = None, limit: int | None = None,
                 split: str = "train") -> Iterator[Conversation | PreferencePair | Document]:
    """Stream the records of `source` (see `DatasetReader.records` for `on_error`, `rejects`, `limit`).

    The source is opened and its format detected now; rows are read as the iterator advances.
    LINE in errors is the 1-based line where the row starts (Parquet and hub datasets: the row
    number); for elements of a JSON list the field path starts with the element index, "[29].chosen".
    """
    check_on_error(on_error)
    return DatasetReader(source, format, split=split).records(on_error=on_error, rejects=rejects, limit=limit)


def read_records_of(source: str | Path, kinds: tuple[type, ...], expected: str, format: str | None = None, *,
                    on_error: str = "skip", counters: Any = None) -> Iterator[Any]:
    """Records of `source` that must be of `kinds` (else InputError naming `expected`, e.g. "prompts").

    With on_error="skip", invalid rows are left out: the first is logged and their number is added to
    `counters["input_rows_rejected"]` (a collections.Counter) once the source is exhausted.
    """
    rejects: list[dict] = []
    for record in read_records(source, format, on_error=on_error, rejects=rejects):
        if not isinstance(record, kinds):
            raise InputError(str(source), None, "format",
                             f"expected {expected}, got {type(record).__name__.lower()}s")
        yield record
    if rejects:
        first = rejects[0]
        logger.warning("%s: skipped %d invalid rows (first: line %s: %s: %s)", source, len(rejects), first["line"],
                       first["field"], first["reason"])
        if counters is not None:
            counters["input_rows_rejected"] += len(rejects)


def _load(source: str | Path, format: str | None, kind: str, options: dict[str, Any]) -> list[Any]:
    split = options.pop("split", "train")
    check_on_error(options.get("on_error", "fail"))
    dataset = DatasetReader(source, format, split=split)
    if dataset.kind != kind:
        raise InputError(dataset.name, None, "format",
                         f"format {dataset.format!r} holds {KIND_NAMES[dataset.kind]}, not {KIND_NAMES[kind]}")
    return list(dataset.records(**options))


def load_pairs(source: str | Path, format: str | None = None, **options: Any) -> list[PreferencePair]:
    """All preference pairs of a pair-format source (options as for `read_records`)."""
    return _load(source, format, PAIR, options)


def load_conversations(source: str | Path, format: str | None = None, **options: Any) -> list[Conversation]:
    """All conversations of a conversation-format source; a preference-pair source is an InputError."""
    return _load(source, format, CONVERSATION, options)


def load_documents(source: str | Path, format: str | None = None, **options: Any) -> list[Document]:
    """All documents of a document source (`{id, content}` rows or a .txt file)."""
    return _load(source, format, DOCUMENT, options)


def load_judge_prompts(source: str | Path, format: str | None = None, **options: Any) -> list[Any]:
    """All JudgePromptTemplates of a FastChat judge_prompts.jsonl."""
    return _load(source, format, JUDGE_PROMPT, options)
