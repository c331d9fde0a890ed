"""OpenRLHF reward queries (chat-template-formatted text) -> the RM's token ids, via its own chat template."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chat.conversation import Conversation, ValidationError

logger = logging.getLogger(__name__)

# Placeholder contents rendered through the template to find its role markers (never in real text).
_USER_1, _ASSISTANT_1, _USER_2, _ASSISTANT_2, _SYSTEM = (f"\u2063tw{name}\u2063" for name in ("u1", "a1", "u2", "a2", "s"))


@dataclass(frozen=True)
class TemplateMarkers:
    """The fixed text a chat template writes around turns: `head` before the first user turn, `user_end`
    between a user turn and the assistant reply, `assistant_end` between a reply and the next user turn,
    `tail` after the last reply; with a system message: `system_head` before it, `system_end` after it."""

    head: str
    user_end: str
    assistant_end: str
    tail: str
    system_head: str | None
    system_end: str | None


def template_markers(tokenizer: Any) -> TemplateMarkers | None:
    """Markers of `tokenizer`'s chat template, or None if its turns are not rendered uniformly."""
    def render(messages: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False)

    turns = [{"role": "user", "content": _USER_1}, {"role": "assistant", "content": _ASSISTANT_1},
             {"role": "user", "content": _USER_2}, {"role": "assistant", "content": _ASSISTANT_2}]
    try:
        text = render(turns)
        head, rest = text.split(_USER_1)
        user_end, rest = rest.split(_ASSISTANT_1)
        assistant_end, rest = rest.split(_USER_2)
        second_user_end, tail = rest.split(_ASSISTANT_2)
    except ValueError:  # a placeholder missing or repeated: the template rewrites contents
        return None
    if second_user_end != user_end:
        return None
    system_head = system_end = None
    try:
        with_system = render([{"role": "system", "content": _SYSTEM}, *turns])
        before, after = with_system.split(_SYSTEM)
        if _USER_1 in after:
            system_head, system_end = before, after.split(_USER_1)[0]
    except Exception:  # noqa: BLE001 - templates that reject a system role raise their own error types
        logger.debug("chat template has no system role")
    return TemplateMarkers(head, user_end, assistant_end, tail, system_head, system_end)


class QueryParser:
    """Turns an OpenRLHF query back into a Conversation when it is written in the RM's own chat template.

    OpenRLHF sends `prompt (chat template, generation prompt) + response` decoded with special tokens,
    possibly with pad tokens around it and EOS at the end. Pads and trailing EOS are removed, the text is
    split at the template's role markers, and the result is accepted only if rendering it again gives
    the same text: then the query scores exactly like the same messages sent to `/score`.
    """

    def __init__(self, tokenizer: Any):
        self.markers = template_markers(tokenizer)
        self.pad = tokenizer.pad_token
        self.strip_tokens = [t for t in {tokenizer.pad_token, tokenizer.eos_token} if t]
        self.bos = tokenizer.bos_token
        self._render = lambda messages: tokenizer.apply_chat_template(messages, tokenize=False)

    def clean(self, query: str) -> str:
        """The query without leading pad tokens and trailing pad/EOS tokens (as OpenRLHF's own server strips
        them); a BOS that is also the pad token is put back by `parse` where the template writes one."""
        text = query.strip()
        while self.pad and text.startswith(self.pad):
            text = text[len(self.pad):].lstrip()
        changed = True
        while changed:
            changed = False
            for token in self.strip_tokens:
                if text.endswith(token):
                    text, changed = text[: -len(token)].rstrip(), True
        return text

    def parse(self, query: str) -> Conversation | None:
        """The conversation the query renders, or None when it is not in this template."""
        if self.markers is None:
            return None
        text = self.clean(query)
        for messages in self._candidates(text):
            if messages is None:
                continue
            try:
                conversation = Conversation.from_messages(messages)
            except ValidationError:
                continue
            rendered = self._render(conversation.to_messages()).rstrip()
            if rendered in (text.rstrip(), (text + self.markers.tail).rstrip()) or (
                    self.bos and rendered in ((self.bos + text).rstrip(), (self.bos + text + self.markers.tail).rstrip())):
                return conversation
        return None

    def _candidates(self, text: str) -> list[list[dict[str, str]] | None]:
        m = self.markers
        assert m is not None
        starts = [text] + ([self.bos + text] if self.bos and not text.startswith(self.bos) else [])
        candidates = []
        for start in starts:
            if start.startswith(m.head):
                candidates.append(self._turns(start[len(m.head):], []))
            if m.system_head is not None and m.system_end and start.startswith(m.system_head):
                system, found, body = start[len(m.system_head):].partition(m.system_end)
                if found:
                    candidates.append(self._turns(body, [{"role": "system", "content": system}]))
        return candidates

    def _turns(self, body: str, messages: list[dict[str, str]]) -> list[dict[str, str]] | None:
        m = self.markers
        assert m is not None
        role = "user"
        while True:
            separator = m.user_end if role == "user" else m.assistant_end
            content, found, rest = body.partition(separator)
            if not found:
                break
            messages.append({"role": role, "content": content})
            body, role = rest, "assistant" if role == "user" else "user"
        if role != "assistant":
            return None  # a query ends with the policy's reply
        for suffix in (m.tail, m.tail.rstrip()):
            if suffix and body.endswith(suffix):
                body = body[: -len(suffix)]
                break
        messages.append({"role": "assistant", "content": body})
        return messages
