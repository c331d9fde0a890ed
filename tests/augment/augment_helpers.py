"""A scripted MUSIC simulator for tests: it recognises the role each request plays from its prompt."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from augment.config import MusicConfig
from augment.prompts import render
from augment.turns import MusicBackends
from chat.backends.base import Completion
from chat.backends.scripted import ScriptedBackend
from chat.conversation import content_id
from chat.user_simulator import user_simulator_system

USER_SYSTEM = user_simulator_system()
CONTRAST_SYSTEM = render("contrast_system")
SWAPPED_MARK = "different request ["  # the fake contrast step's swapped instructions start so
_INSTRUCTION = re.compile(r"Latest user instruction:\n(.*)\n\nReply with the JSON object\.", re.DOTALL)


def role_of(messages: list[dict[str, str]]) -> str:
    """user | contrast | contrast_reask | contrastive_assistant | assistant, from the request's prompts."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    if system == USER_SYSTEM:
        return "user"
    if system == CONTRAST_SYSTEM:
        return "contrast" if len(messages) == 2 else "contrast_reask"
    if messages and messages[-1]["role"] == "user" and messages[-1]["content"].startswith(SWAPPED_MARK):
        return "contrastive_assistant"  # the latest user turn silently replaced by the swapped instruction
    return "assistant"


def short_hash(value: Any) -> str:
    return content_id(value)[:6]


class FakeSimulator:
    """Content-derived replies, so a branch's replies change exactly when its history changes.

    user: `question N [hash of the flipped conversation]` (N = the user turn it writes); assistant: `answer [hash of the last user turn]`;
    contrast: JSON swap `different request [hash of the instruction]`; contrastive assistant:
    `answer [hash of the swapped instruction]`. `overrides[role]` replaces a role's reply
    (a string, a Completion, or a function of the request messages).
    """

    def __init__(self, **overrides: str | Completion | Callable[[list[dict[str, str]]], Any]):
        self.overrides = overrides
        self.roles: list[str] = []

    def __call__(self, messages: list[dict[str, str]], params: dict[str, Any]) -> str | Completion:
        role = role_of(messages)
        self.roles.append(role)
        if role in self.overrides:
            override = self.overrides[role]
            return override(messages) if callable(override) else override
        if role == "user":  # the simulator sees the conversation flipped: the real user turns are "assistant"
            turn = sum(m["role"] == "assistant" for m in messages) + 1
            return f"question {turn} [{short_hash(messages[1:])}]"
        if role in ("contrast", "contrast_reask"):
            instruction = _INSTRUCTION.search(messages[1]["content"]).group(1)
            return json.dumps({"swapped_instruction": f"different request [{short_hash(instruction)}]",
                               "reason": "a neighbouring task"})
        if role == "contrastive_assistant":
            return f"answer [{short_hash(messages[-1]['content'])}]"
        return f"answer [{short_hash(messages[-1]['content'])}]"


def fake_backends(simulator: Callable | None = None) -> tuple[MusicBackends, ScriptedBackend]:
    """One scripted backend playing every role (a FakeSimulator unless another responder is given)."""
    backend = ScriptedBackend(simulator or FakeSimulator())
    return MusicBackends(backend, backend, backend), backend


def requests_of(backend: ScriptedBackend, role: str) -> list[list[dict[str, str]]]:
    return [request.messages for request in backend.requests if role_of(request.messages) == role]


def config(**values: Any) -> MusicConfig:
    """A MusicConfig for tests (scripted backends are passed directly, so `backends` is never built)."""
    return MusicConfig(**values)
