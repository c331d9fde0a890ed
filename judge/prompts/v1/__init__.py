"""Judge prompts, version v1: the project's own wording (pairwise, single grade, per-turn grade, user simulator)."""
