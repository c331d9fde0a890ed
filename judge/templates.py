"""Loading and rendering the versioned judge prompt templates shipped as package data (judge/prompts/<version>/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from chat.conversation import Conversation
from chat.errors import ConfigError

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT_VERSION = "v1"


def prompt_versions() -> list[str]:
    return sorted(p.name for p in PROMPTS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))


@lru_cache(maxsize=None)
def _environment(version: str) -> jinja2.Environment:
    directory = PROMPTS_DIR / version
    if not directory.is_dir():
        raise ConfigError(f"prompt_version: unknown judge prompt version {version!r} (known: {', '.join(prompt_versions())})")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, autoescape=False)


def render(version: str, name: str, **values: Any) -> str:
    """The template `name` (without .jinja) of prompt version `version`, rendered and stripped."""
    return _environment(version).get_template(f"{name}.jinja").render(**values).strip()


def numbered_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """Messages as `{role, content, turn}` dicts for templates; `turn` counts user turns from 1."""
    turn = 0
    rows = []
    for message in conversation.messages:
        if message.role == "user":
            turn += 1
        rows.append({"role": message.role, "content": message.content, "turn": max(turn, 1)})
    return rows
