"""Conversation -> token ids for a reward model: chat template, one BOS, assistant-turn ends, left truncation by turns."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from chat.conversation import Conversation, Message

logger = logging.getLogger(__name__)

#: Rendering used when the tokenizer has no chat template (encoders such as MiniLM). Saved with the
#: tokenizer after training, so a trained RM always scores with the template it was trained with.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
)


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give `tokenizer` the plain role-prefixed template if it has none; True if one was added."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return True


def ensure_pad_token(tokenizer: Any) -> None:
    """Sequence-classification batches need a pad token: fall back to EOS, then UNK."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token


@dataclass
class EncodedConversation:
    """Token ids of one conversation, ready for the RM.

    `turn_ends[k]` is the index in `input_ids` of the last token of the k-th assistant turn (the
    token whose hidden state the RM scores for the prefix ending there); None when the encoding is
    not prefix-stable (a prefix's ids are not a prefix of the whole ids) or the conversation was
    truncated, in which case per-turn rewards must be computed prefix by prefix.
    """

    input_ids: list[int]
    turn_ends: list[int] | None = None
    truncated_turns: int = 0   # earlier user/assistant exchanges removed to fit max_length
    truncated_tokens: int = 0  # tokens cut inside a message (the final exchange alone was too long)
    dropped_system: bool = False

    @property
    def truncated(self) -> bool:
        return self.truncated_turns > 0 or self.truncated_tokens > 0 or self.dropped_system


@dataclass
class TruncationStats:
    """How many sequences the encoder shortened, so a run can report it (nothing is ever dropped)."""

    sequences: int = 0
    truncated_sequences: int = 0
    removed_turns: int = 0
    cut_inside_message: int = 0
    dropped_system: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, encoded: EncodedConversation, name: str = "") -> None:
        self.sequences += 1
        if encoded.truncated:
            self.truncated_sequences += 1
            self.removed_turns += encoded.truncated_turns
            self.cut_inside_message += int(encoded.truncated_tokens > 0)
            self.dropped_system += int(encoded.dropped_system)
            if name and len(self.examples) < 5:
                self.examples.append(name)

    def to_dict(self) -> dict[str, Any]:
        return {"sequences": self.sequences, "truncated_sequences": self.truncated_sequences,
                "removed_turns": self.removed_turns, "cut_inside_message": self.cut_inside_message,
                "dropped_system": self.dropped_system, "examples": self.examples}


class ConversationEncoder:
    """Renders conversations with the tokenizer's chat template and tokenizes them for the RM.

    - BOS: if the rendered text already starts with the BOS token (Gemma's template writes it), the
      tokenizer is told not to add special tokens, so the sequence never starts with two BOS.
    - Truncation (`max_length`): whole earlier user/assistant exchanges are removed from the left
      so the final turns are kept; then the system message; only if the final exchange alone is
      still too long are tokens cut from the left (a leading BOS/[CLS] kept). A conversation is never dropped.
    """

    def __init__(self, tokenizer: Any, max_length: int | None = None):
        ensure_chat_template(tokenizer)
        ensure_pad_token(tokenizer)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.bos_token: str | None = tokenizer.bos_token
        self.special_ids = set(tokenizer.all_special_ids)

    def render(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template([m.to_dict() for m in messages], tokenize=False)

    def tokenize_text(self, text: str) -> list[int]:
        starts_with_bos = self.bos_token is not None and text.startswith(self.bos_token)
        # verbose=False: over-long texts are expected here, they are truncated by turns afterwards
        return list(self.tokenizer(text, add_special_tokens=not starts_with_bos, verbose=False)["input_ids"])

    def tokenize_messages(self, messages: Sequence[Message]) -> list[int]:
        return self.tokenize_text(self.render(messages))

    def encode(self, conversation: Conversation, *, with_turn_ends: bool = False) -> EncodedConversation:
        """Token ids of `conversation` (left-truncated to `max_length`), optionally with assistant-turn ends."""
        messages = list(conversation.messages)
        ids = self.tokenize_messages(messages)
        if self.max_length is not None and len(ids) > self.max_length:
            return self._truncate(messages)
        encoded = EncodedConversation(ids)
        if with_turn_ends:
            encoded.turn_ends = self._turn_ends(messages, ids)
        return encoded

    def _turn_ends(self, messages: list[Message], ids: list[int]) -> list[int] | None:
        """Index of the last token of every assistant turn, if every prefix tokenizes to a prefix of `ids`."""
        ends = []
        for i, message in enumerate(messages):
            if message.role != "assistant":
                continue
            prefix_ids = ids if i == len(messages) - 1 else self.tokenize_messages(messages[: i + 1])
            if len(prefix_ids) > len(ids) or ids[: len(prefix_ids)] != prefix_ids:
                return None
            ends.append(len(prefix_ids) - 1)
        return ends

    def _truncate(self, messages: list[Message]) -> EncodedConversation:
        assert self.max_length is not None
        system = messages[:1] if messages[0].role == "system" else []
        body = messages[len(system):]
        # Exchanges: [user, assistant] groups; a trailing lone user message is its own group.
        groups = [body[i:i + 2] for i in range(0, len(body), 2)]
        for removed in range(1, len(groups)):
            kept = system + [m for g in groups[removed:] for m in g]
            ids = self.tokenize_messages(kept)
            if len(ids) <= self.max_length:
                return EncodedConversation(ids, truncated_turns=removed)
        last = groups[-1]
        removed = len(groups) - 1
        dropped_system = False
        ids = self.tokenize_messages(system + last)
        if system and len(ids) > self.max_length:
            ids = self.tokenize_messages(last)
            dropped_system = True
        if len(ids) <= self.max_length:
            return EncodedConversation(ids, truncated_turns=removed, dropped_system=dropped_system)
        keep_first = ids[0] in self.special_ids  # BOS (decoders) or [CLS] (encoders) stays in front
        budget = self.max_length - int(keep_first)
        cut = len(ids) - self.max_length
        ids = ([ids[0]] if keep_first else []) + ids[-budget:]
        return EncodedConversation(ids, truncated_turns=removed, truncated_tokens=cut, dropped_system=dropped_system)
