"""Source documents of MIMG (docs/methods.md, MIMG step 1): reading `{id, content}` rows, HotpotQA paragraphs and
.txt files, and chunking them by an approximate token count.

Token counts are approximated without a tokenizer (chat/token_estimate.py), so the budget does not depend on
which backend model later reads the chunk. Chunks are whole paragraphs packed greedily; a paragraph longer
than the budget is split at sentence ends, and a sentence longer than the budget at word boundaries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from chat.conversation import Conversation, Document, PreferencePair, content_id
from chat.errors import InputError
from chat.formats import read_records
from chat.token_estimate import approx_tokens

logger = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document of about `chunk_tokens` approximate tokens; `index` counts from 0 in the document."""

    id: str
    doc_id: str
    index: int
    title: str
    text: str

    def passage(self) -> dict[str, str]:
        """`{title, text}` as the prompt templates show a passage."""
        return {"title": self.title, "text": self.text}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "doc_id": self.doc_id, "index": self.index, "title": self.title, "text": self.text}


def chunk_id(doc_id: str, index: int) -> str:
    return f"{doc_id}#{index}"


def _word_runs(words: Sequence[str], max_tokens: int) -> list[list[str]]:
    """`words` packed greedily into runs of at most `max_tokens` approximate tokens (a word longer than the budget
    is a run of its own)."""
    runs: list[list[str]] = [[]]
    for word in words:
        if runs[-1] and approx_tokens(" ".join([*runs[-1], word])) > max_tokens:
            runs.append([])
        runs[-1].append(word)
    return runs


def _pieces(paragraph: str, max_tokens: int) -> Iterator[str]:
    """`paragraph` split into pieces of at most `max_tokens` approximate tokens (sentences, then words)."""
    if approx_tokens(paragraph) <= max_tokens:
        yield paragraph
        return
    current: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        words = sentence.split()
        if approx_tokens(sentence) > max_tokens:  # one sentence over budget: cut it at word boundaries
            if current:
                yield " ".join(current)
                current = []
            *whole_runs, words = _word_runs(words, max_tokens)
            yield from (" ".join(run) for run in whole_runs)
        if current and approx_tokens(" ".join([*current, *words])) > max_tokens:
            yield " ".join(current)
            current = []
        current.extend(words)
    if current:
        yield " ".join(current)


def chunk_document(document: Document, chunk_tokens: int) -> list[Chunk]:
    """The chunks of one document (docs/methods.md, MIMG step 1): whole paragraphs packed up to `chunk_tokens`
    approximate tokens; over-long paragraphs are split at sentence ends. Paragraph breaks are kept inside a chunk."""
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(document.text) if p.strip()]
    texts: list[str] = []
    current: list[str] = []
    for paragraph in paragraphs:
        for piece in _pieces(paragraph, chunk_tokens):
            if current and approx_tokens("\n\n".join([*current, piece])) > chunk_tokens:
                texts.append("\n\n".join(current))
                current = []
            current.append(piece)
    if current:
        texts.append("\n\n".join(current))
    return [Chunk(chunk_id(document.id, i), document.id, i, document.title, text) for i, text in enumerate(texts)]


def hotpotqa_documents(conversation: Conversation) -> list[Document]:
    """Each context paragraph of a HotpotQA row as a document, id = content id of its title (so the same
    Wikipedia paragraph shared by several rows is one document)."""
    return [Document(id=content_id(paragraph["title"]), text=paragraph["text"], title=paragraph["title"],
                     meta={"source": "hotpotqa"})
            for paragraph in conversation.meta.get("context", []) if paragraph.get("text", "").strip()]


def read_documents(paths: Sequence[str | Path], *, format: str | None = None, on_error: str = "skip",
                   limit: int | None = None) -> list[Document]:
    """Documents of every path: `{id, content}` rows (LongMIT corpus), .txt files (one document each), HotpotQA
    rows (their context paragraphs). Repeated ids are kept once (the first). `limit` caps the documents."""
    documents: dict[str, Document] = {}
    for path in paths:
        for record in _records(path, format, on_error):
            for document in _as_documents(record, path):
                if limit is not None and len(documents) >= limit:
                    return list(documents.values())
                documents.setdefault(document.id, document)
    return list(documents.values())


def _records(path: str | Path, format: str | None, on_error: str) -> Iterable[Any]:
    rejects: list[dict] = []
    yield from read_records(path, format, on_error=on_error, rejects=rejects)
    if rejects:
        first = rejects[0]
        logger.warning("%s: skipped %d invalid rows (first: line %s: %s: %s)", path, len(rejects), first["line"],
                       first["field"], first["reason"])


def _as_documents(record: Any, path: str | Path) -> list[Document]:
    if isinstance(record, Document):
        return [record]
    if isinstance(record, Conversation) and isinstance(record.meta.get("context"), list):
        return hotpotqa_documents(record)
    kind = "preference pairs" if isinstance(record, PreferencePair) else "conversations without context paragraphs"
    raise InputError(str(path), None, "format", f"expected documents ({{id, content}} rows, .txt, HotpotQA), "
                                                f"got {kind}")


def chunk_documents(documents: Iterable[Document], chunk_tokens: int) -> list[Chunk]:
    """All chunks of all documents, in document order."""
    return [chunk for document in documents for chunk in chunk_document(document, chunk_tokens)]
