"""Prompt templates of the generators (Jinja, package data), rendered by name from one versioned set."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

#: The template set in use; written into every record's `meta.prompt_version`.
PROMPT_VERSION = "generate-v1"
_TEMPLATE_DIR = "v1"


@lru_cache(maxsize=None)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    source = resources.files(__package__).joinpath(_TEMPLATE_DIR, f"{name}.jinja").read_text(encoding="utf-8")
    return _environment().from_string(source)


def render(name: str, **values: Any) -> str:
    """The text of template `name` (e.g. "candidate_system") with `values`, surrounding whitespace stripped."""
    return _template(name).render(**values).strip()
