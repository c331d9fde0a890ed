"""Generator prompt templates, version 1 (package data)."""
