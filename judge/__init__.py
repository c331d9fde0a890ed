"""LLM and RM judges, agreement statistics and the multi-turn best-of-N protocol."""
