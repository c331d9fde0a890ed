"""MUSIC prompt templates, version 2 (package data)."""
