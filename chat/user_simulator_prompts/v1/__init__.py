"""Simulated-user templates, version 1 (package data)."""
