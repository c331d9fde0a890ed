"""Prompt templates of the generators (Jinja, package data), rendered by name from one versioned set."""

from chat.prompts import PromptSet

#: v2: the structured steps (reviewer votes, chairman questions, instruction batches, advisor suggestions,
#: judge verdicts, MIMG questions / answers / scores / merges) ask for a JSON object matching their schema.
PROMPTS = PromptSet(__package__, "v2", version="generate-v2")
#: The template set in use; written into every record's `meta.prompt_version`.
PROMPT_VERSION = PROMPTS.version
render = PROMPTS.render
