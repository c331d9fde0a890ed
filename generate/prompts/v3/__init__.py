"""Generator prompt templates, version 2: structured steps answer with JSON objects (package data)."""
