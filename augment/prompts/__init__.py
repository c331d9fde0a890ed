"""MUSIC prompt templates (Jinja, package data), rendered by name from one versioned set."""

from chat.prompts import PromptSet

PROMPTS = PromptSet(__package__, "v1", version="music-v1")
#: The template set in use; written into every record's `meta.prompt_version`.
PROMPT_VERSION = PROMPTS.version
render = PROMPTS.render
