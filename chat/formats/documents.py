"""Plain documents: `{id, content}` rows (LongMIT corpus, canonical Document rows) and .txt files."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Document, ValidationError, content_id
from chat.formats.base import DOCUMENT, FORMATS, RecordReader
from chat.formats.fields import optional, row_id, row_meta, scalar_extras

_KNOWN = frozenset({"id", "content", "text", "title", "meta"})


class DocumentReader(RecordReader):
    """Source texts for long-context QA; the text is `content` (or `text`), the id the row's own or a content id."""

    kind = DOCUMENT

    def matches(self, row: dict[str, Any]) -> bool:
        return isinstance(row.get("content", row.get("text")), str)

    def records(self, row: dict[str, Any]) -> Iterator[Document]:
        key = "content" if "content" in row or "text" not in row else "text"
        text = optional(row, key, str)
        if text is None:
            raise ValidationError(key, "missing field")
        if not text.strip():
            raise ValidationError(key, "empty content")
        yield Document(id=row_id(row, "id") or content_id(text), text=text, title=optional(row, "title", str, ""),
                       meta={**scalar_extras(row, _KNOWN), **row_meta(row)})


FORMATS.add("documents", DocumentReader(), "documents {id, content} (e.g. the LongMIT corpus) and .txt files")
