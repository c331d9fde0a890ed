"""Prompt templates of the simulated user (package data), one directory per version."""
