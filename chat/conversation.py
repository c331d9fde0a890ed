"""Conversation data model: Message, Conversation, PreferencePair, Document, with validation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

ROLES = ("system", "user", "assistant")


class ValidationError(ValueError):
    """A record breaks the data model; `field` names the offending field (e.g. ``chosen[3].role``)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Conversation:
    """A dialogue. It may end on a user turn: then it is a prompt awaiting an assistant reply.

    `meta["next_user_turns"]`, when present, holds scripted follow-up user turns that have not
    been asked yet (MT-Bench's second question, for example).
    """

    messages: list[Message]
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_id([m.to_dict() for m in self.messages])

    @classmethod
    def from_messages(cls, messages: Iterable[dict[str, Any] | Message], id: str = "",
                      meta: dict[str, Any] | None = None, field_name: str = "messages") -> "Conversation":
        """Build and validate a conversation from `{role, content}` dicts; errors name `field_name[i].key`."""
        built = [_message(m, f"{field_name}[{i}]") for i, m in enumerate(messages)]
        conversation = cls(built, id=str(id) if id else "", meta=dict(meta or {}))
        conversation.validate(field_name)
        return conversation

    def validate(self, field_name: str = "messages") -> None:
        """Raise ValidationError unless roles are known, content is non-empty text, at most one
        leading system message is present and user/assistant turns alternate starting with user."""
        if not self.messages:
            raise ValidationError(field_name, "conversation has no messages")
        expected = "user"
        for i, message in enumerate(self.messages):
            where = f"{field_name}[{i}]"
            if message.role not in ROLES:
                raise ValidationError(f"{where}.role", f"unknown role {message.role!r} (expected one of {', '.join(ROLES)})")
            if not isinstance(message.content, str):
                raise ValidationError(f"{where}.content", f"expected a string, got {type(message.content).__name__}")
            if not message.content.strip():
                raise ValidationError(f"{where}.content", "empty content")
            if message.role == "system":
                if i != 0:
                    raise ValidationError(f"{where}.role", "a system message is only allowed as the first message")
                continue
            if message.role != expected:
                raise ValidationError(f"{where}.role", f"roles must alternate user/assistant: expected {expected!r}, got {message.role!r}")
            expected = "assistant" if expected == "user" else "user"
        if all(m.role == "system" for m in self.messages):
            raise ValidationError(field_name, "conversation has only a system message")

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None

    @property
    def turns(self) -> int:
        """Number of user turns."""
        return sum(1 for m in self.messages if m.role == "user")

    @property
    def ends_with_user(self) -> bool:
        return self.messages[-1].role == "user"

    def assistant_indices(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if m.role == "assistant"]

    def prefix(self, n_messages: int) -> "Conversation":
        return Conversation(self.messages[:n_messages], id=f"{self.id}:{n_messages}", meta=dict(self.meta))

    def appended(self, role: str, content: str) -> "Conversation":
        """A copy with one more message (same id and meta)."""
        return Conversation([*self.messages, Message(role, content)], id=self.id, meta=dict(self.meta))

    def to_messages(self) -> list[dict[str, str]]:
        return [m.to_dict() for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messages": self.to_messages(), "meta": self.meta}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Conversation":
        return cls.from_messages(row["messages"], id=row.get("id", ""), meta=row.get("meta") or {})


@dataclass
class PreferencePair:
    """Two conversations for the same prompt; `chosen` is preferred over `rejected`."""

    chosen: Conversation
    rejected: Conversation
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_id({"chosen": self.chosen.to_messages(), "rejected": self.rejected.to_messages()})

    @classmethod
    def from_messages(cls, chosen: Iterable[dict[str, Any]], rejected: Iterable[dict[str, Any]], id: str = "",
                      meta: dict[str, Any] | None = None) -> "PreferencePair":
        chosen_conversation = Conversation.from_messages(chosen, field_name="chosen")
        rejected_conversation = Conversation.from_messages(rejected, field_name="rejected")
        for name, conversation in (("chosen", chosen_conversation), ("rejected", rejected_conversation)):
            if conversation.messages[-1].role != "assistant":
                raise ValidationError(name, "a preference conversation must end with an assistant message")
        pair = cls(chosen_conversation, rejected_conversation, id=str(id) if id else "", meta=dict(meta or {}))
        chosen_conversation.id = f"{pair.id}:chosen"
        rejected_conversation.id = f"{pair.id}:rejected"
        return pair

    @property
    def shared_prefix_length(self) -> int:
        """Number of leading messages identical in both conversations."""
        n = 0
        for a, b in zip(self.chosen.messages, self.rejected.messages):
            if a != b:
                break
            n += 1
        return n

    def to_dict(self) -> dict[str, Any]:
        """Canonical TRL conversational preference row (DESIGN.md)."""
        return {"id": self.id, "chosen": self.chosen.to_messages(), "rejected": self.rejected.to_messages(),
                "meta": self.meta}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "PreferencePair":
        return cls.from_messages(row["chosen"], row["rejected"], id=row.get("id", ""), meta=row.get("meta") or {})


@dataclass
class Document:
    """A source text (for long-context QA generation)."""

    id: str
    text: str
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "content": self.text, "meta": self.meta}


Record = Conversation | PreferencePair | Document


def content_id(value: Any) -> str:
    """A stable 16-hex-digit id derived from a JSON-serialisable value."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def _message(value: Any, where: str) -> Message:
    if isinstance(value, Message):
        return value
    if not isinstance(value, dict):
        raise ValidationError(where, f"expected an object with role and content, got {type(value).__name__}")
    for key in ("role", "content"):
        if key not in value:
            raise ValidationError(f"{where}.{key}", "missing field")
    role, content = value["role"], value["content"]
    if not isinstance(role, str):
        raise ValidationError(f"{where}.role", f"expected a string, got {type(role).__name__}")
    if not isinstance(content, str):
        raise ValidationError(f"{where}.content", f"expected a string, got {type(content).__name__}")
    return Message(role, content)
