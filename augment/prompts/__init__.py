"""MUSIC prompt templates (Jinja, package data), rendered by name from one versioned set."""

from chat.prompts import PromptSet

PROMPTS = PromptSet(__package__, "v2", version="music-v2")
#: The template set in use; written into every record's `meta.prompt_version`.
PROMPT_VERSION = PROMPTS.version
render = PROMPTS.render
