"""Prompt templates of the generators (Jinja, package data), rendered by name from one versioned set."""

from chat.prompts import PromptSet

#: v2: the structured steps (reviewer votes, chairman questions, instruction batches, advisor suggestions,
#: judge verdicts, MIMG questions / answers / scores / merges) ask for a JSON object matching their schema.
#: v3: the Review-Instruct chairman decides breadth or depth itself and reviewers have personas; the CoEvol
#: advisor sees the conversation window and the editor its word budget.
PROMPTS = PromptSet(__package__, "v3", version="generate-v3")
#: The template set in use; written into every record's `meta.prompt_version`.
PROMPT_VERSION = PROMPTS.version
render = PROMPTS.render
