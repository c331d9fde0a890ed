"""Tokenizer-free token counts: one rule for every budget that must not depend on which model reads the text.

`approx_tokens(text) = ceil(characters / 4)`, the usual rule of thumb for English BPE vocabularies. It counts
code and text without spaces as well as prose, and needs no tokenizer, so a budget set in a config means the
same whichever backend model later reads the text.
"""

from __future__ import annotations

from typing import Sequence

from chat.conversation import Message

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
#: Tokens a chat template adds around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4


def approx_tokens(text: str) -> int:
    """Approximate token count of a text: ceil(characters / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def approx_conversation_tokens(messages: Sequence[Message]) -> int:
    """Approximate token count of a conversation: each message's text plus its template overhead."""
    return sum(approx_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)
