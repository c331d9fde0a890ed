"""HotpotQA rows `{question, answer, type, level, supporting_facts, context}` as question/answer conversations."""

from __future__ import annotations

from typing import Any, Iterator

from chat.conversation import Conversation, ValidationError
from chat.formats.base import CONVERSATION, FORMATS, RecordReader
from chat.formats.fields import json_type, optional, require, require_text, row_id


def context_paragraphs(context: Any) -> list[dict[str, str]]:
    """`[{title, text}]` from the hub layout `{title: [...], sentences: [[...]]}` or the original
    `[[title, [sentences]], ...]`; a paragraph's sentences carry their own spacing and are concatenated."""
    if isinstance(context, dict):
        titles = require(context, "title", list, "context")
        sentences = require(context, "sentences", list, "context")
        if len(titles) != len(sentences):
            raise ValidationError("context", f"{len(titles)} titles but {len(sentences)} sentence lists")
        pairs = list(zip(titles, sentences))
    elif isinstance(context, list):
        pairs = []
        for i, item in enumerate(context):
            if not (isinstance(item, list) and len(item) == 2):
                raise ValidationError(f"context[{i}]", f"expected [title, sentences], got {json_type(item)}")
            pairs.append((item[0], item[1]))
    else:
        raise ValidationError("context", f"expected an object or a list, got {json_type(context)}")
    paragraphs = []
    for i, (title, sentences) in enumerate(pairs):
        if not isinstance(title, str):
            raise ValidationError(f"context.title[{i}]", f"expected a string, got {json_type(title)}")
        if not (isinstance(sentences, list) and all(isinstance(s, str) for s in sentences)):
            raise ValidationError(f"context.sentences[{i}]", "expected a list of strings")
        paragraphs.append({"title": title, "text": "".join(sentences)})
    return paragraphs


def supporting_facts(facts: Any) -> list[dict[str, Any]]:
    """`[{title, sent_id}]` from either HotpotQA layout (dict of lists, or list of [title, sent_id])."""
    if facts is None:
        return []
    if isinstance(facts, dict):
        titles, sent_ids = facts.get("title", []), facts.get("sent_id", [])
        if not (isinstance(titles, list) and isinstance(sent_ids, list)):
            raise ValidationError("supporting_facts", "expected lists under title and sent_id")
        return [{"title": t, "sent_id": s} for t, s in zip(titles, sent_ids)]
    if isinstance(facts, list):
        if not all(isinstance(f, list) and len(f) == 2 for f in facts):
            raise ValidationError("supporting_facts", "expected [title, sent_id] pairs")
        return [{"title": t, "sent_id": s} for t, s in facts]
    raise ValidationError("supporting_facts", f"expected an object or a list, got {json_type(facts)}")


class HotpotQAReader(RecordReader):
    """HotpotQA (Yang et al. 2018): user = question, assistant = answer; the paragraphs go to
    `meta["context"]` as `[{title, text}]`, with the supporting facts, type and level."""

    kind = CONVERSATION

    def matches(self, row: dict[str, Any]) -> bool:
        return isinstance(row.get("question"), str) and "answer" in row and "context" in row

    def records(self, row: dict[str, Any]) -> Iterator[Conversation]:
        question, answer = require_text(row, "question"), require_text(row, "answer")
        meta = {
            "source": "hotpotqa",
            "type": optional(row, "type", str, ""),
            "level": optional(row, "level", str, ""),
            "supporting_facts": supporting_facts(row.get("supporting_facts")),
            "context": context_paragraphs(require(row, "context", (dict, list))),
        }
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        yield Conversation.from_messages(messages, id=row_id(row, "_id", "id"), meta=meta)


FORMATS.add("hotpotqa", HotpotQAReader(),
            "HotpotQA {question, answer, type, level, supporting_facts, context} (paragraphs in meta.context)")
