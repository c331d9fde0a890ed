"""Continue a conversation with a backend: answer its open user turn and its scripted follow-ups."""

from __future__ import annotations

from chat.backends.base import ChatBackend, Usage
from chat.conversation import Conversation
from chat.errors import BackendError


async def answer_scripted_turns(backend: ChatBackend, conversation: Conversation, *, temperature: float = 0.0,
                                max_tokens: int = 512, seed: int | None = None,
                                max_reasks: int = 2) -> tuple[Conversation, Usage]:
    """Answer the trailing user turn, then ask and answer each of `meta["next_user_turns"]` in order
    (MT-Bench style: the second question is asked after the model's first answer is in the history).

    Returns the completed conversation (no pending turns left in meta) and the usage of these calls.
    An empty (whitespace-only) reply is asked again up to `max_reasks` times with the next seed; after
    that BackendError is raised, so the runner records the item as failed (nothing is invented).
    """
    usage = Usage()
    pending = list(conversation.meta.get("next_user_turns") or [])
    meta = {k: v for k, v in conversation.meta.items() if k != "next_user_turns"}
    current = Conversation(list(conversation.messages), id=conversation.id, meta=meta)
    while True:
        if current.ends_with_user:
            for attempt in range(max_reasks + 1):
                completion = await backend.chat(current.messages, temperature=temperature, max_tokens=max_tokens,
                                                seed=None if seed is None else seed + attempt)
                usage.count(completion)
                if completion.text.strip():
                    break
            else:
                raise BackendError(f"{backend.name}: empty reply to turn {current.turns} after {max_reasks} re-asks")
            current = current.appended("assistant", completion.text.strip())
        if not pending:
            return current, usage
        current = current.appended("user", pending.pop(0))
