"""Loading and rendering the versioned judge prompt templates shipped as package data (judge/prompts/<version>/)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chat.conversation import Conversation
from chat.errors import ConfigError
from chat.prompts import PromptSet, prompt_directories

PROMPTS_PACKAGE = "judge.prompts"
DEFAULT_PROMPT_VERSION = "v1"


def prompt_versions() -> list[str]:
    return prompt_directories(PROMPTS_PACKAGE)


@lru_cache(maxsize=None)
def prompt_set(version: str) -> PromptSet:
    """The judge templates of prompt version `version` (a directory of judge/prompts/)."""
    if version not in prompt_versions():
        raise ConfigError(f"prompt_version: unknown judge prompt version {version!r} (known: {', '.join(prompt_versions())})")
    return PromptSet(PROMPTS_PACKAGE, version)


def render(version: str, name: str, **values: Any) -> str:
    """The template `name` (without .jinja) of prompt version `version`, rendered and stripped."""
    return prompt_set(version).render(name, **values)


def numbered_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """Messages as `{role, content, turn}` dicts for templates; `turn` counts user turns from 1."""
    turn = 0
    rows = []
    for message in conversation.messages:
        if message.role == "user":
            turn += 1
        rows.append({"role": message.role, "content": message.content, "turn": max(turn, 1)})
    return rows
